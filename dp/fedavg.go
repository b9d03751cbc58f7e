package dp

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/dp/accountant"
)

// User-level DP for federated averaging (DP-FedAvg, McMahan et al. 2018, "Learning
// Differentially Private Recurrent Language Models"): each client clips its whole update
// to L2 norm S on the client (under secure aggregation the server never sees one update),
// the server sums the clipped updates, Gaussian noise of standard deviation σ·S is added to
// the sum, and the sum is divided by the EXPECTED number of clients m, not the number that
// reported (dividing by the realised count leaks). Accounting treats a round as one step
// of the Poisson-subsampled Gaussian mechanism with q = m / population; see
// UserLevelEpsilon.

// ClipUpdate validates a client's update, clips it in place to L2 norm at most clip, and
// returns its norm before clipping (which the client reports, as the indicator
// norm ≤ clip, for adaptive clipping). An update with a NaN or infinite element is
// rejected, naming the first bad index, and left unchanged.
func ClipUpdate(update []float64, clip float64) (norm float64, err error) {
	if err := ValidateClipNorm(clip); err != nil {
		return 0, err
	}
	for i, x := range update {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("dp: update element %d is %v: updates must be finite", i, x)
		}
	}
	norm = L2Norm(update)
	if f := ClipFactor(norm, clip); f != 1 {
		for i := range update {
			update[i] *= f
		}
	}
	return norm, nil
}

// CentralNoiseStd returns σ·S, the standard deviation of the Gaussian noise the server adds
// to the sum of updates clipped to S when the noise multiplier is σ.
func CentralNoiseStd(noiseMultiplier, clip float64) (float64, error) {
	if err := validateNoiseMultiplier(noiseMultiplier); err != nil {
		return 0, err
	}
	if err := ValidateClipNorm(clip); err != nil {
		return 0, err
	}
	return noiseMultiplier * clip, nil
}

// DistributedNoiseStd returns σ·S/√m_min, the standard deviation of the noise share each
// client adds to its own clipped update before it is encrypted, when the key committee
// decrypts only sums of at least m_min updates (secure_aggregation.min_contributions): any
// sum that is ever decrypted then holds at least m_min shares, so its noise is at least
// N(0, σ²S²) — the accounted mechanism — whoever dropped out. A sum of more updates carries
// proportionally more noise; the accountant does not take credit for it. Calibrating to
// the expected count m instead would leave about half of the Poisson-sampled rounds with
// less noise than accounted for at the moment they are decrypted (topping it up afterwards
// protects the model, not the sum the decrypting parties saw).
func DistributedNoiseStd(noiseMultiplier, clip float64, minContributors int) (float64, error) {
	std, err := CentralNoiseStd(noiseMultiplier, clip)
	if err != nil {
		return 0, err
	}
	if minContributors < 1 {
		return 0, fmt.Errorf("dp: minimum contributors %d: must be ≥ 1", minContributors)
	}
	return std / math.Sqrt(float64(minContributors)), nil
}

func validateNoiseMultiplier(sigma float64) error {
	if math.IsNaN(sigma) || sigma < 0 || math.IsInf(sigma, 0) {
		return fmt.Errorf("dp: noise multiplier %v: must be finite and ≥ 0", sigma)
	}
	return nil
}

// ClipIndicator is what a client reports for adaptive clipping: the centred indicator
// 1[norm ≤ clip] − ½, i.e. +½ if its update norm is at most the round's clip norm, else −½
// (Andrew et al. 2021, Sec. 3; TF Privacy's QuantileEstimatorQuery). Centring makes the
// sensitivity of the sum ½ under adding or removing one client, which is what
// UpdateNoiseMultiplier's budget split assumes; an uncentred {0, 1} indicator has
// sensitivity 1 and would cost more than accounted for.
func ClipIndicator(norm, clip float64) float64 {
	if norm <= clip {
		return 0.5
	}
	return -0.5
}

// AdaptiveClipperLiteral configures an AdaptiveClipper. Zero fields take the published
// defaults of Andrew et al. 2021 ("Differentially Private Learning with Adaptive
// Clipping"): target quantile 0.5 (the median), learning rate 0.2, and count-noise standard
// deviation m/20 for m expected clients per round.
type AdaptiveClipperLiteral struct {
	InitialClip     float64 // C⁰ > 0
	TargetQuantile  float64 // γ in (0, 1); default 0.5
	LearningRate    float64 // η > 0; default 0.2
	ExpectedClients float64 // m > 0, expected clients per round (required)
	CountNoiseStd   float64 // σ_b ≥ 0; default m/20. Negative disables the noise (tests only).
	// MaxClip > 0 caps the clip norm (for example at the bound a secure-aggregation
	// parameter set was sized for); 0 leaves it uncapped, as in the paper.
	MaxClip float64
}

// AdaptiveClipper tracks the γ-quantile of client update norms with the geometric update
// of Andrew et al. 2021: after a round with clip C, the clients' indicators b_i = 1[‖Δ_i‖ ≤ C]
// are summed, N(0, σ_b²) is added, b̄ = (Σ b_i + noise)/m, and
//
//	C ← C·exp(−η(b̄ − γ)).
//
// Clients report the centred indicator b_i − ½ (ClipIndicator), so the server recovers
// b̄ = (Σ(b_i − ½) + noise)/m + ½. The noisy count is itself a Gaussian mechanism of
// sensitivity ½; its cost is folded into the update's noise multiplier by
// UpdateNoiseMultiplier. AdaptiveClipper is a plain value updated
// once per round; it is not safe for concurrent use.
type AdaptiveClipper struct {
	clip, quantile, rate, m, countStd, maxClip float64
}

// NewAdaptiveClipper validates lit, fills the defaults and returns the clipper.
func NewAdaptiveClipper(lit AdaptiveClipperLiteral) (*AdaptiveClipper, error) {
	a := &AdaptiveClipper{clip: lit.InitialClip, quantile: lit.TargetQuantile, rate: lit.LearningRate, m: lit.ExpectedClients, countStd: lit.CountNoiseStd, maxClip: lit.MaxClip}
	if a.quantile == 0 {
		a.quantile = 0.5
	}
	if a.rate == 0 {
		a.rate = 0.2
	}
	switch {
	case !(a.clip > 0) || math.IsInf(a.clip, 0):
		return nil, fmt.Errorf("dp: adaptive clipping: initial clip %v: must be finite and > 0", lit.InitialClip)
	case !(a.quantile > 0 && a.quantile < 1):
		return nil, fmt.Errorf("dp: adaptive clipping: target quantile %v: must be in (0, 1)", lit.TargetQuantile)
	case !(a.rate > 0) || math.IsInf(a.rate, 0):
		return nil, fmt.Errorf("dp: adaptive clipping: learning rate %v: must be finite and > 0", lit.LearningRate)
	case !(a.m > 0) || math.IsInf(a.m, 0):
		return nil, fmt.Errorf("dp: adaptive clipping: expected clients %v: must be finite and > 0", lit.ExpectedClients)
	case math.IsNaN(a.countStd) || math.IsInf(a.countStd, 0):
		return nil, fmt.Errorf("dp: adaptive clipping: count noise std %v: must be finite", lit.CountNoiseStd)
	case math.IsNaN(a.maxClip) || a.maxClip < 0 || math.IsInf(a.maxClip, 0):
		return nil, fmt.Errorf("dp: adaptive clipping: max clip %v: must be finite and ≥ 0 (0: no cap)", lit.MaxClip)
	case a.maxClip > 0 && a.clip > a.maxClip:
		return nil, fmt.Errorf("dp: adaptive clipping: initial clip %v exceeds max clip %v", lit.InitialClip, lit.MaxClip)
	}
	switch {
	case a.countStd == 0:
		a.countStd = a.m / 20
	case a.countStd < 0:
		a.countStd = 0
	}
	return a, nil
}

// Clip returns the clip norm for the next round.
func (a *AdaptiveClipper) Clip() float64 { return a.clip }

// SetClip restores the clip norm a clipper had reached (a restarted server continues with
// it); it must be finite, positive and within MaxClip.
func (a *AdaptiveClipper) SetClip(c float64) error {
	if !(c > 0) || math.IsInf(c, 0) || (a.maxClip > 0 && c > a.maxClip) {
		return fmt.Errorf("dp: adaptive clipping: clip %v: must be finite, > 0 and at most the max clip %v", c, a.maxClip)
	}
	a.clip = c
	return nil
}

// CountNoiseStd returns σ_b, the standard deviation of the noise on the indicator sum.
func (a *AdaptiveClipper) CountNoiseStd() float64 { return a.countStd }

// DistributedCountNoiseStd returns σ_b/√m_min, each client's share of the count noise when
// it is added on the clients and the committee decrypts only sums of at least m_min
// updates (see DistributedNoiseStd).
func (a *AdaptiveClipper) DistributedCountNoiseStd(minContributors int) float64 {
	return a.countStd / math.Sqrt(float64(max(minContributors, 1)))
}

// Update applies the geometric update given the already-noised sum of centred indicators
// Σ(b_i − ½) + noise (for example decrypted from secure aggregation with distributed count
// noise) and returns the new clip norm, capped at MaxClip when one is set.
func (a *AdaptiveClipper) Update(noisyCentredSum float64) (float64, error) {
	if math.IsNaN(noisyCentredSum) || math.IsInf(noisyCentredSum, 0) {
		return a.clip, fmt.Errorf("dp: adaptive clipping: indicator sum %v: must be finite", noisyCentredSum)
	}
	bBar := noisyCentredSum/a.m + 0.5
	a.clip *= math.Exp(-a.rate * (bBar - a.quantile))
	if a.maxClip > 0 {
		a.clip = min(a.clip, a.maxClip)
	}
	return a.clip, nil
}

// UpdateWithNoise adds N(0, σ_b²) from src to the exact sum of centred indicators, then
// applies Update.
func (a *AdaptiveClipper) UpdateWithNoise(centredSum float64, src NoiseSource) (float64, error) {
	if src == nil {
		return a.clip, fmt.Errorf("dp: adaptive clipping: no noise source")
	}
	return a.Update(centredSum + a.countStd*src.Normal())
}

// UpdateNoiseMultiplier returns the noise multiplier z_Δ the update must use so that the
// update and the noisy count together cost no more than one Gaussian mechanism with noise
// multiplier z (Andrew et al. 2021, Sec. 3): z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2). The factor 2
// comes from the sensitivity ½ of the centred indicator that ClipIndicator returns: the
// pair (update sum with noise z_Δ·S, indicator sum with noise σ_b) is one Gaussian mechanism
// whose noise multiplier is (z_Δ⁻² + (½/σ_b)²)^(−1/2) = z. Account with z, noise the update
// with z_Δ·S. It fails when σ_b is too small for the budget (2σ_b ≤ z).
func UpdateNoiseMultiplier(z, countNoiseStd float64) (float64, error) {
	if err := validateNoiseMultiplier(z); err != nil || z == 0 {
		return 0, fmt.Errorf("dp: noise multiplier %v: must be finite and > 0", z)
	}
	if math.IsNaN(countNoiseStd) || countNoiseStd < 0 || math.IsInf(countNoiseStd, 0) {
		return 0, fmt.Errorf("dp: count noise std %v: must be finite and ≥ 0", countNoiseStd)
	}
	if countNoiseStd == 0 {
		return 0, fmt.Errorf("dp: count noise std is 0: a noiseless clipped count is not private")
	}
	rest := 1/(z*z) - 1/(4*countNoiseStd*countNoiseStd)
	if rest <= 0 {
		return 0, fmt.Errorf("dp: count noise std %v leaves no budget for the update at noise multiplier %v: need 2σ_b > z", countNoiseStd, z)
	}
	return 1 / math.Sqrt(rest), nil
}

// UserLevel describes DP-FedAvg rounds for user-level accounting.
type UserLevel struct {
	NoiseMultiplier float64 // z, the noise multiplier accounted for (see UpdateNoiseMultiplier)
	ClientsPerRound float64 // m, the expected clients sampled per round
	Population      int     // N, the clients that could be sampled
	Rounds          int     // T
	Delta           float64
}

// SampleRate returns q = m/N, the chance that one client takes part in a round.
func (u UserLevel) SampleRate() (float64, error) {
	if u.Population < 1 {
		return 0, fmt.Errorf("dp: population %d: must be ≥ 1", u.Population)
	}
	if math.IsNaN(u.ClientsPerRound) || u.ClientsPerRound < 0 || u.ClientsPerRound > float64(u.Population) {
		return 0, fmt.Errorf("dp: clients per round %v: must be in [0, population %d]", u.ClientsPerRound, u.Population)
	}
	return u.ClientsPerRound / float64(u.Population), nil
}

// UserLevelEpsilon returns the user-level (ε, δ) of T rounds of DP-FedAvg in which each
// client takes part independently with probability q = m/N (McMahan et al. 2018): the
// RDP accountant of the Poisson-subsampled Gaussian with that q, the noise multiplier and
// T steps. Sampling clients some other way (a fixed-size cohort) is not what this analysis
// covers.
func UserLevelEpsilon(u UserLevel, cfg accountant.Config) (accountant.Result, error) {
	q, err := u.SampleRate()
	if err != nil {
		return accountant.Result{}, err
	}
	if u.Rounds < 0 {
		return accountant.Result{}, fmt.Errorf("dp: rounds %d: must be ≥ 0", u.Rounds)
	}
	return accountant.Epsilon([]accountant.Step{{NoiseMultiplier: u.NoiseMultiplier, SampleRate: q, Steps: u.Rounds}}, u.Delta, cfg)
}
