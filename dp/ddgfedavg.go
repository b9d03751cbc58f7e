package dp

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/dp/accountant"
)

// DiscreteUserLevel is distributed user-level DP (DP-FedAvg) with the distributed discrete
// Gaussian (Kairouz, Liu and Steinke 2021) under secure aggregation's packed encoding: every
// client clips its update to L2 norm Clip, scales by its weight (at most MaxWeight) and
// rounds every value stochastically to an integer number of quantisation steps Step, then
// adds its share N_Z(0, σ_z²) to each; the committee decrypts only sums of at least
// MinShares and at most MaxShares updates. The constant offsets of the encoding are the same
// for every client and cancel in the analysis; the count of contributors is released.
//
// The guarantee is for zero-out neighbours: one taking-part client's update replaced by
// zero. Who takes part is public (the server sees the signed uploads, and the decrypted
// count), so adding or removing a whole client — which changes the quantised sum by its
// encoding offsets too — is not what Δ2 bounds. Shares are redrawn beyond ±14σ_z (secagg's
// clamp): the truncated discrete Gaussian is within total variation 1.6e-44 a value of the
// untruncated one, which adds at most (1 + e^ε)·rounds·clients·d·1.6e-44 to δ — not
// included in the reported δ (below 1e-20 for 10^4 rounds of 10^4 clients of 10^9 values
// while ε < 40). The noise also assumes the m_min clients of a sum are honest: clients
// that collude with the server can remove their own shares, as in the floating-point mode.
type DiscreteUserLevel struct {
	NoiseMultiplier float64 // z: every released sum carries at least (z·Δ2)² of variance
	Clip            float64 // S, the clip norm of an update
	MaxWeight       float64 // W, the largest aggregation weight
	Step            float64 // δ, the quantisation step of a value
	Dim             int     // d, the values a client rounds and noises
	MinShares       int     // m_min, the fewest updates in a decrypted sum
	MaxShares       int     // the most updates in a decrypted sum
}

// Sensitivity is a client's contribution's largest change of the released sum, in steps:
// L2 = W·S/δ + √d (RoundedL2Bound: stochastic rounding moves every coordinate by less than
// one step), L1 = √d·L2.
func (u DiscreteUserLevel) Sensitivity() (accountant.DDGSensitivity, error) {
	if !(u.Clip > 0) || !(u.MaxWeight > 0) || !(u.Step > 0) || math.IsInf(u.Clip*u.MaxWeight/u.Step, 0) || u.Dim < 1 {
		return accountant.DDGSensitivity{}, fmt.Errorf("dp: discrete user-level DP: clip %v, max weight %v, step %v, dimension %d: need positive finite values", u.Clip, u.MaxWeight, u.Step, u.Dim)
	}
	l2 := accountant.RoundedL2Bound(u.MaxWeight*u.Clip/u.Step, u.Dim)
	return accountant.DDGSensitivity{L2: l2, L1: math.Sqrt(float64(u.Dim)) * l2}, nil
}

// LocalVariance is σ_z², each client's share's variance in squared steps: ⌈(z·L2)²/m_min⌉,
// so that any m_min shares sum to at least the (z·L2)² the accountant assumes. It fails
// beyond 2^40 (what dp.NewDiscreteGaussian samples).
func (u DiscreteUserLevel) LocalVariance() (uint64, error) {
	s, err := u.Sensitivity()
	if err != nil {
		return 0, err
	}
	if err := validateNoiseMultiplier(u.NoiseMultiplier); err != nil || u.NoiseMultiplier == 0 {
		return 0, fmt.Errorf("dp: discrete user-level DP: noise multiplier %v: must be positive and finite", u.NoiseMultiplier)
	}
	if u.MinShares < 1 {
		return 0, fmt.Errorf("dp: discrete user-level DP: minimum contributors %d: must be ≥ 1", u.MinShares)
	}
	v := math.Ceil(u.NoiseMultiplier * u.NoiseMultiplier * s.L2 * s.L2 / float64(u.MinShares))
	if v > 1<<40 {
		return 0, fmt.Errorf("dp: discrete user-level DP: each client's noise variance would be %.3g squared steps, above 2^40: lower value_bits or the noise multiplier", v)
	}
	return uint64(max(v, 1)), nil
}

// Epsilon returns the user-level (ε, δ) of rounds released sums (Proposition 14 of Kairouz
// et al. composed over the rounds, accountant.DistributedDiscreteGaussianEpsilonRange over
// MinShares…MaxShares), on the grid and conversion of cfg. Every round is charged in full:
// the analysis takes no amplification by the sampling of clients, so ε is larger than the
// floating-point mode's subsampled Gaussian at the same z.
func (u DiscreteUserLevel) Epsilon(rounds int, delta float64, cfg accountant.Config) (accountant.Result, error) {
	res := accountant.Result{Delta: delta, Method: accountant.MethodRDP, Conversion: cfg.Conversion}
	if rounds == 0 {
		return res, nil
	}
	s, err := u.Sensitivity()
	if err != nil {
		return res, err
	}
	v, err := u.LocalVariance()
	if err != nil {
		return res, err
	}
	grid := cfg.Grid
	if grid.Orders == nil {
		if grid, err = accountant.GridByName(grid.Name); err != nil {
			return res, err
		}
	}
	res.Grid = grid.Name
	if res.Grid == "" {
		res.Grid = "custom"
	}
	res.Epsilon, res.Order, err = accountant.DistributedDiscreteGaussianEpsilonRange(s, float64(v), u.MinShares, max(u.MaxShares, u.MinShares), u.Dim, rounds, delta, grid, cfg.Conversion)
	return res, err
}

// DescribeDiscrete says how Epsilon accounted, for records and reports.
func DescribeDiscrete(r accountant.Result) string {
	return fmt.Sprintf("RDP of the distributed discrete Gaussian (Kairouz, Liu and Steinke 2021, Prop. 14) for zero-out neighbours, every round charged in full, %s orders (best α = %g), %s conversion", r.Grid, r.Order, r.Conversion)
}
