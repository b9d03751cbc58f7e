package dp

import (
	"fmt"
	"math"
)

// DistributedTail is t of the bound ‖ξ‖ ≤ s·(√d + t) on the norm of a noise share
// ξ ~ N(0, s²I_d), which fails with probability at most exp(−t²/2) ≈ 5·10⁻³² (Laurent &
// Massart 2000).
const DistributedTail = 12

// DistributedStep is one client's step of DP-FedSGD with distributed record-level noise: a
// single DP-SGD step of plain SGD whose noisy sum is divided by SampleRate·WeightScale
// (the expected batch of a client of WeightScale examples, a divisor that does not depend
// on the client's data), with noise of multiplier NoiseMultiplier/√Shares on each of at
// least Shares updates that are only ever released summed (secure aggregation). The sum
// of Shares updates then carries NoiseMultiplier's noise: each of its records has the
// guarantee of a DP-SGD step at NoiseMultiplier and SampleRate, provided the other
// updates in the sum are honest.
//
// The update Δ = −LR·(P(Σ clip_C(g_i)) + ξ)/(q·WeightScale) must stay within the update
// clip UpdateClip whatever the data, since that clip acts after the noise, where a
// data-dependent clip would break the analysis: P projects the clipped sum onto the ball
// of radius SumClip() = UpdateClip·q·WeightScale/LR − NoiseMultiplier/√Shares·C·(√Dim + t),
// which keeps ‖Δ‖ ≤ UpdateClip except with probability exp(−t²/2), t = DistributedTail.
// The projection is 1-Lipschitz, so one example still moves the sum by at most C.
type DistributedStep struct {
	NoiseMultiplier, MaxGradNorm, SampleRate, WeightScale, LR, UpdateClip float64
	Shares, Dim                                                           int
}

// ShareNoiseMultiplier is the noise multiplier each client adds: NoiseMultiplier/√Shares.
func (s DistributedStep) ShareNoiseMultiplier() float64 {
	return s.NoiseMultiplier / math.Sqrt(float64(max(s.Shares, 1)))
}

// SumClip returns the radius of the clipped sum's projection, or an error naming the
// settings to change when it leaves less than one example's clip C.
func (s DistributedStep) SumClip() (float64, error) {
	for _, f := range []struct {
		name string
		v    float64
	}{{"noise multiplier", s.NoiseMultiplier}, {"max_grad_norm", s.MaxGradNorm}, {"sample rate", s.SampleRate}, {"weight_scale", s.WeightScale}, {"learning rate", s.LR}, {"update_clip_norm", s.UpdateClip}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return 0, fmt.Errorf("dp: distributed noise: %s %v: must be positive and finite", f.name, f.v)
		}
	}
	if s.Shares < 1 || s.Dim < 1 {
		return 0, fmt.Errorf("dp: distributed noise: %d shares over %d values: want both ≥ 1", s.Shares, s.Dim)
	}
	noise := s.ShareNoiseMultiplier() * s.MaxGradNorm * (math.Sqrt(float64(s.Dim)) + DistributedTail)
	r := s.UpdateClip*s.SampleRate*s.WeightScale/s.LR - noise
	if !(r >= s.MaxGradNorm) {
		return 0, fmt.Errorf("dp: distributed noise: an update lr·(‖clipped sum‖ + ‖noise share‖)/(q·weight_scale) = %g·(‖sum‖ + %.4g)/%g must fit dp.update_clip_norm %g, which leaves the clipped gradient sum %.4g, less than one example's clip %g: raise dp.update_clip_norm or training.weight_scale, or lower training.lr", s.LR, noise, s.SampleRate*s.WeightScale, s.UpdateClip, r, s.MaxGradNorm)
	}
	return r, nil
}
