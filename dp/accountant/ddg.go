package accountant

import (
	"fmt"
	"math"
)

// The distributed discrete Gaussian mechanism (Kairouz, Liu and Steinke 2021, "The
// Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
// arXiv 2102.06387): each of n clients adds N_Z(0, σ²) to its integer vector of dimension
// d (dp.DiscreteGaussian) and only the sum is released. The sum of n discrete Gaussians is
// not a discrete Gaussian; Theorem 1 bounds the difference by
//
//	τ = 10 · Σ_{k=1}^{n−1} exp(−2π²σ² · k/(k+1)),
//
// and Proposition 14 (Eq. 17) gives the Rényi DP of the released sum, for a change of one
// client's vector of L2 norm at most Δ2 and L1 norm at most Δ1 (in the same integer units),
// with the scales Δ2/√(nσ²) and Δ1/√(nσ²):
//
//	ε(α) = min{ α/2·(Δ2/√(nσ²))² + τ·d,
//	            α/2·((Δ2/√(nσ²))² + 2τ·Δ1/√(nσ²) + τ²·d),
//	            α/2·(Δ2/√(nσ²) + τ·√d)² }.
//
// google-research/federated's distributed_dp/accounting_utils.py (compute_rdp_dgaussian,
// ddgauss_epsilon) implements the same formulas; dp-accounting and Opacus have no DDG
// accountant. Steps compose by adding RDP order by order; without subsampling (every
// released round is charged in full).

// DistributedDiscreteGaussianTau returns τ for n clients each adding N_Z(0, localVariance)
// (Kairouz et al. 2021, Theorem 1).
func DistributedDiscreteGaussianTau(localVariance float64, n int) (float64, error) {
	if !(localVariance > 0) || math.IsInf(localVariance, 0) {
		return 0, fmt.Errorf("accountant: local variance %v: must be positive and finite", localVariance)
	}
	if n < 1 {
		return 0, fmt.Errorf("accountant: clients %d: must be ≥ 1", n)
	}
	tau := 0.0
	for k := 1; k < n; k++ {
		term := math.Exp(-2 * math.Pi * math.Pi * localVariance * float64(k) / float64(k+1))
		tau += term
		if term < tau*1e-17 {
			// Every later term is at most this one (k/(k+1) grows), so adding
			// (n−1−k)·term for the rest keeps τ an upper bound (a larger τ only raises ε)
			// without summing up to 2^30 negligible terms.
			tau += float64(n-1-k) * term
			break
		}
	}
	return 10 * tau, nil
}

// DDGSensitivity is a released vector's sensitivity in the integer units of the noise: the
// largest L2 and L1 norm of the change of one client's contribution.
type DDGSensitivity struct {
	L2, L1 float64
}

// DistributedDiscreteGaussianRDP returns ε(α) of one release of the sum of n clients'
// vectors of dimension dim, each noised with N_Z(0, localVariance), for the sensitivity s
// (Kairouz et al. 2021, Proposition 14, Eq. 17). +Inf for α = +Inf.
func DistributedDiscreteGaussianRDP(alpha float64, s DDGSensitivity, localVariance float64, n, dim int) (float64, error) {
	return DistributedDiscreteGaussianRDPRange(alpha, s, localVariance, n, n, dim)
}

// DistributedDiscreteGaussianRDPRange bounds ε(α) of one release of a sum of any number n
// ∈ [minN, maxN] of noised vectors (a round's count is not known in advance): Eq. 17 with
// the scale of the fewest shares, √(minN·σ²), which the Gaussian terms decrease in, and τ
// of the most, which grows with n, so it is at least the ε(α) of every such n.
func DistributedDiscreteGaussianRDPRange(alpha float64, s DDGSensitivity, localVariance float64, minN, maxN, dim int) (float64, error) {
	if err := validateOrder(alpha); err != nil {
		return 0, err
	}
	if !(s.L2 > 0) || !(s.L1 >= s.L2) || math.IsInf(s.L1, 0) {
		return 0, fmt.Errorf("accountant: sensitivity L2 %v, L1 %v: need 0 < L2 ≤ L1 < ∞", s.L2, s.L1)
	}
	if dim < 1 {
		return 0, fmt.Errorf("accountant: dimension %d: must be ≥ 1", dim)
	}
	if minN < 1 || maxN < minN {
		return 0, fmt.Errorf("accountant: clients from %d to %d: need 1 ≤ min ≤ max", minN, maxN)
	}
	tau, err := DistributedDiscreteGaussianTau(localVariance, maxN)
	if err != nil {
		return 0, err
	}
	if math.IsInf(alpha, 1) {
		return math.Inf(1), nil
	}
	sd := math.Sqrt(float64(minN) * localVariance)
	l2, l1, d := s.L2/sd, s.L1/sd, float64(dim)
	t1 := alpha/2*l2*l2 + tau*d
	t2 := alpha / 2 * (l2*l2 + 2*tau*l1 + tau*tau*d)
	t3 := alpha / 2 * (l2 + tau*math.Sqrt(d)) * (l2 + tau*math.Sqrt(d))
	return math.Min(t1, math.Min(t2, t3)), nil
}

// DistributedDiscreteGaussianEpsilon returns the ε of steps releases (each the sum of n
// clients' noised vectors, composed by adding RDP) at δ, minimised over the grid, with the
// order that attains it.
func DistributedDiscreteGaussianEpsilon(s DDGSensitivity, localVariance float64, n, dim, steps int, delta float64, grid Grid, c Conversion) (eps, order float64, err error) {
	return DistributedDiscreteGaussianEpsilonRange(s, localVariance, n, n, dim, steps, delta, grid, c)
}

// DistributedDiscreteGaussianEpsilonRange is DistributedDiscreteGaussianEpsilon for releases
// of sums of between minN and maxN shares (DistributedDiscreteGaussianRDPRange).
func DistributedDiscreteGaussianEpsilonRange(s DDGSensitivity, localVariance float64, minN, maxN, dim, steps int, delta float64, grid Grid, c Conversion) (eps, order float64, err error) {
	if steps < 0 {
		return 0, 0, fmt.Errorf("accountant: steps %d: must be ≥ 0", steps)
	}
	if len(grid.Orders) == 0 {
		return 0, 0, fmt.Errorf("accountant: empty grid of orders")
	}
	rdp := make([]float64, len(grid.Orders))
	for k, a := range grid.Orders {
		r, err := DistributedDiscreteGaussianRDPRange(a, s, localVariance, minN, maxN, dim)
		if err != nil {
			return 0, 0, err
		}
		rdp[k] = r * float64(steps)
	}
	return EpsilonFromRDP(grid.Orders, rdp, delta, c)
}

// RoundedL2Bound is the L2 norm bound of a vector of L2 norm at most l2 (in integer
// units) after unconditional stochastic rounding of each of its dim coordinates to an
// integer: l2 + √dim (Kairouz et al. 2021, Theorem 1's rounding term with β = 0; every
// coordinate moves by less than 1). The accounted sensitivity of a stochastically rounded
// update must use it, not l2.
func RoundedL2Bound(l2 float64, dim int) float64 { return l2 + math.Sqrt(float64(dim)) }
