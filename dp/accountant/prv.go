package accountant

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/integrate/quad"
)

// The PRV accountant: numerical composition of privacy loss random variables (Gopi, Lee,
// Wutschitz 2021, "Numerical Composition of Differential Privacy", NeurIPS; arXiv
// 2106.02848). Read while writing this (the code is ours): Opacus'
// opacus/accountants/prv.py and opacus/accountants/analysis/prv/{prvs,domain,compose}.py,
// themselves derived from github.com/microsoft/prv_accountant.
//
// One step of the Poisson-subsampled Gaussian mechanism has the privacy loss random
// variable Y = log(P(X)/Q(X)) with X ~ P, for P = (1−q)N(0, σ²) + qN(1, σ²) and Q = N(0, σ²).
// The loss is a monotone function of the Gaussian sample, so Y's CDF is a mixture of two
// normal CDFs (Gopi et al., App. B, Prop. B1 and B4). The loss of T composed steps is the
// sum of T independent copies. The algorithm (Gopi et al., Alg. 1 and Sec. 5):
//
//  1. Domain: truncate every Y to [−L, L], with L from the RDP tail bound of the whole
//     composition at δ_err/4 and of each single step at δ_err/(8T), plus 3 (Remark 5.6, as
//     the reference implementations do), and a mesh Δ = ε_err / √(T·log(12/δ_err)/2).
//  2. Discretise: the mass of each cell [t_i − Δ/2, t_i + Δ/2], then shift the grid by the
//     difference between the truncated variable's mean and the discrete mean, so that
//     composition does not accumulate a bias (Gopi et al., Sec. 5.1).
//  3. Compose: the k-fold sum's PMF is the inverse FFT of the k-th power of the PMF's FFT,
//     a circular convolution whose wrap-around the domain makes negligible; histories of
//     several (σ, q) multiply their transforms.
//  4. Read out: δ(ε) = Σ_{t ≥ ε} p(t)(1 − e^{ε−t}); Gopi et al.'s Theorem 5.5 bounds the
//     true curve by δ̃(ε + ε_err) − δ_err ≤ δ(ε) ≤ δ̃(ε − ε_err) + δ_err, so
//     ε(δ) ≤ ε̃(δ − δ_err) + ε_err is the upper bound reported.
//
// Which pair: P is the mixture and Q the Gaussian, the "remove" direction. For the
// Poisson-subsampled Gaussian it dominates the "add" direction (Q against P) at every ε
// (TestPRVRemoveDominatesAdd checks it numerically), so composing it bounds both, as Opacus
// and the reference implementation assume.

// PRVConfig sets the PRV accountant's error bounds. Zero fields take the defaults of Opacus'
// PRVAccountant.get_epsilon: ε_err = 0.01 and δ_err = δ/1000.
type PRVConfig struct {
	// EpsilonError is ε_err: the reported ε is the estimate at δ − δ_err plus ε_err.
	EpsilonError float64 `json:"epsilon_error,omitempty"`
	// DeltaError is δ_err, the slack in δ of the discretisation and truncation.
	DeltaError float64 `json:"delta_error,omitempty"`
}

const (
	defaultPRVEpsilonError = 0.01
	defaultPRVDeltaRatio   = 1e-3
	// defaultPRVDeltaErrorForDelta is δ_err when a δ is asked for (Delta), where no target
	// δ sets it.
	defaultPRVDeltaErrorForDelta = 1e-10
	// MaxPRVPoints bounds the discretisation grid: about 8·MaxPRVPoints·5 bytes of memory
	// at the peak (the PMF, its transform and the FFT's work space). A history that needs
	// more (very many steps with a large ε) falls back to the RDP bound, and says so.
	MaxPRVPoints = 1 << 24
)

// PRVBounds is what the PRV accountant knows about ε at the reported δ: the exact ε of the
// composed mechanism lies in [Lower, Upper]; Estimate is the discretised curve's own value.
type PRVBounds struct {
	Lower        float64 `json:"epsilon_lower"`
	Estimate     float64 `json:"epsilon_estimate"`
	Upper        float64 `json:"epsilon_upper"`
	EpsilonError float64 `json:"epsilon_error"`
	DeltaError   float64 `json:"delta_error"`
	// Points is the size of the discretisation grid (after rounding up to a size the FFT
	// handles fast) and MeshSize its spacing.
	Points   int     `json:"points"`
	MeshSize float64 `json:"mesh_size"`
	// RDPEpsilon is the RDP accountant's ε for the same history and δ. Both are valid
	// bounds, so Result.Epsilon is the smaller: Upper except in corners where the
	// discretisation slack ε_err exceeds what PRV gains over RDP.
	RDPEpsilon float64 `json:"rdp_epsilon"`
	// Fallback, when set, says why no PRV bound was computed (Upper is then +Inf and ε is
	// the RDP bound).
	Fallback string `json:"fallback,omitempty"`
}

func (c PRVConfig) validate() error {
	if math.IsNaN(c.EpsilonError) || c.EpsilonError < 0 || math.IsInf(c.EpsilonError, 0) {
		return fmt.Errorf("accountant: PRV epsilon error %v: must be finite and ≥ 0 (0: the default 0.01)", c.EpsilonError)
	}
	if math.IsNaN(c.DeltaError) || c.DeltaError < 0 || c.DeltaError >= 1 {
		return fmt.Errorf("accountant: PRV delta error %v: must be in [0, 1) (0: δ/1000)", c.DeltaError)
	}
	return nil
}

// sampledGaussianPRV is the privacy loss random variable of one step (see the comment above).
type sampledGaussianPRV struct{ q, sigma float64 }

// loss is the privacy loss at Gaussian sample x: log(1 − q + q·e^{(2x−1)/(2σ²)}).
func (p sampledGaussianPRV) loss(x float64) float64 {
	u := (2*x - 1) / (2 * p.sigma * p.sigma)
	switch {
	case u > 0:
		return u + math.Log(p.q+(1-p.q)*math.Exp(-u))
	case p.q > 0.5:
		// 1 + q·(e^u − 1) would cancel: add the two positive parts instead.
		return math.Log((1 - p.q) + p.q*math.Exp(u))
	}
	return math.Log1p(p.q * math.Expm1(u))
}

// sample is the inverse of loss: the x at which the loss equals t (−Inf at or below the
// loss's infimum log(1−q)).
func (p sampledGaussianPRV) sample(t float64) float64 {
	var z float64 // log((e^t − (1−q))/q)
	if t > 0 {
		// (e^t − 1 + q)/q = e^t·(1 − (1−q)e^{−t})/q, which does not overflow.
		z = t - math.Log(p.q) + math.Log1p((p.q-1)*math.Exp(-t))
	} else {
		d := math.Expm1(t) + p.q
		if d <= 0 {
			return math.Inf(-1)
		}
		z = math.Log(d / p.q)
	}
	return p.sigma*p.sigma*z + 0.5
}

// cdfAt is the CDF of Y at t, kept in whichever tail form is accurate: F(t) itself while
// F ≤ ½ (upper = false), the survival 1 − F(t) beyond (upper = true). Y ≤ t exactly when
// the Gaussian sample is ≤ x(t), so F is the mixture's normal CDF at x(t).
func (p sampledGaussianPRV) cdfAt(t float64) (v float64, upper bool) {
	x := p.sample(t)
	if math.IsInf(x, -1) {
		return 0, false
	}
	if math.IsInf(x, 1) {
		return 0, true
	}
	s := math.Sqrt2 * p.sigma
	f := 0.5 * ((1-p.q)*math.Erfc(-x/s) + p.q*math.Erfc(-(x-1)/s))
	if f <= 0.5 {
		return f, false
	}
	return 0.5 * ((1-p.q)*math.Erfc(x/s) + p.q*math.Erfc((x-1)/s)), true
}

// massBetween is F(b) − F(a) for a ≤ b given their tail forms (see cdfAt).
func massBetween(fa float64, ua bool, fb float64, ub bool) float64 {
	switch {
	case !ua && !ub:
		return fb - fa
	case ua && ub:
		return fa - fb
	case !ua && ub:
		return (1 - fa) - fb
	}
	return 0 // a beyond b: cannot happen for a ≤ b
}

// legendre16 holds 16-point Gauss–Legendre nodes and weights on [−1, 1].
var legendre16 = func() [2][16]float64 {
	var nw [2][16]float64
	quad.Legendre{}.FixedLocations(nw[0][:], nw[1][:], -1, 1)
	return nw
}()

// truncatedMean is E[Y | tMin ≤ Y ≤ tMax], integrated in the Gaussian sample x, where the
// integrand loss(x)·p(x) is smooth with Gaussian tails: 16-point Gauss–Legendre on panels
// of width ≤ σ/2 over the x-range, clipped to 40σ beyond the two means (where the density
// is below 1e-300).
func (p sampledGaussianPRV) truncatedMean(tMin, tMax, mass float64) float64 {
	lo := math.Max(p.sample(tMin), -40*p.sigma)
	hi := math.Min(p.sample(tMax), 1+40*p.sigma)
	if !(hi > lo) {
		return 0.5 * (tMin + tMax)
	}
	n := int(math.Ceil((hi - lo) / (p.sigma / 2)))
	n = max(n, 1)
	w := (hi - lo) / float64(n)
	c := 1 / (p.sigma * math.Sqrt(2*math.Pi))
	var sum float64
	for k := 0; k < n; k++ {
		a := lo + float64(k)*w
		var panel float64
		for j, u := range legendre16[0] {
			x := a + (u+1)*w/2
			d0, d1 := x/p.sigma, (x-1)/p.sigma
			dens := c * ((1-p.q)*math.Exp(-d0*d0/2) + p.q*math.Exp(-d1*d1/2))
			if dens > 0 {
				panel += legendre16[1][j] * p.loss(x) * dens
			}
		}
		sum += panel * w / 2
	}
	return sum / mass
}

// prvGrid is the discretisation domain shared by every step of a history: points
// t_i = (iMin + i)·dt for i in [0, size), padded to n ≥ size points for the FFT.
type prvGrid struct {
	dt   float64
	iMin int // t_min/dt, ≤ 0
	size int // points of the truncation domain [t_min, t_max]
	n    int // FFT length
}

func (g prvGrid) t(i int) float64 { return float64(g.iMin+i) * g.dt }

// errPRVTooLarge and errPRVPrecision are fallbacks, not failures: the RDP bound is used.
var (
	errPRVTooLarge  = errors.New("the discretisation would need more than MaxPRVPoints points")
	errPRVPrecision = errors.New("δ − δ_err is below the floating-point error of a grid this size")
)

// newPRVGrid chooses the domain and mesh for a history of total steps whose RDP tail bound
// at δ_err is l (Gopi et al., Remark 5.6; Opacus' compute_safe_domain_size and
// _get_domain), aligned so that 0 is a grid point and the domain has an even size.
func newPRVGrid(l, epsErr, deltaErr float64, total int) (prvGrid, error) {
	L := math.Max(l, epsErr) + 3
	dt := epsErr / math.Sqrt(float64(total)*math.Log(12/deltaErr)/2)
	lo := math.Floor(-L / dt)
	hi := math.Ceil(L / dt)
	if hi-lo+2 > MaxPRVPoints || math.IsInf(L, 0) || math.IsNaN(L) {
		return prvGrid{}, errPRVTooLarge
	}
	size := int(hi-lo) + 1
	if size%2 == 1 {
		size++
	}
	return prvGrid{dt: dt, iMin: int(lo), size: size, n: fastFFTSize(size)}, nil
}

// fastFFTSize is the smallest n ≥ m whose prime factors are 2, 3 and 5, the radices
// gonum's FFTPACK port handles quickly, and that it factors into at most 13 radices (it
// keeps 15 slots: n, the count, and the factors, a 4 counting once).
func fastFFTSize(m int) int {
	best := math.MaxInt
	for p2, a := 1, 0; p2 < 2*m; p2, a = p2*2, a+1 {
		for p3, b := p2, 0; p3 < 2*m; p3, b = p3*3, b+1 {
			for p5, c := p3, 0; p5 < 2*m; p5, c = p5*5, c+1 {
				if p5 >= m && p5 < best && a/2+a%2+b+c <= 13 {
					best = p5
				}
			}
		}
	}
	return best
}

// discretize writes the truncated PRV's cell masses on g into pmf (length g.n, zero past
// g.size) and returns the mean-preserving shift of the grid (Gopi et al., Sec. 5.1; Opacus'
// discretize). The first and last cells are half cells, as the truncation is to
// [t_min, t_max] itself.
func (p sampledGaussianPRV) discretize(g prvGrid, pmf []float64) (shift float64, err error) {
	tMin, tMax := g.t(0), g.t(g.size-1)
	f0, u0 := p.cdfAt(tMin)
	fN, uN := p.cdfAt(tMax)
	mass := massBetween(f0, u0, fN, uN)
	if !(mass > 0) {
		return 0, fmt.Errorf("accountant: PRV of σ = %v, q = %v has no mass in [%v, %v]", p.sigma, p.q, tMin, tMax)
	}
	inv := 1 / mass
	fa, ua := f0, u0
	var meanD float64
	for i := 0; i < g.size; i++ {
		var fb float64
		var ub bool
		if i == g.size-1 {
			fb, ub = fN, uN
		} else {
			fb, ub = p.cdfAt(g.t(i) + g.dt/2)
		}
		m := massBetween(fa, ua, fb, ub) * inv
		pmf[i] = m
		meanD += m * g.t(i)
		fa, ua = fb, ub
	}
	clear(pmf[g.size:])
	shift = p.truncatedMean(tMin, tMax, mass) - meanD
	if math.Abs(shift) >= g.dt/2 {
		return 0, fmt.Errorf("accountant: PRV of σ = %v, q = %v: the discrete mean differs from the continuous one by %v, more than half the mesh %v", p.sigma, p.q, shift, g.dt)
	}
	return shift, nil
}
