package accountant

import (
	"fmt"
	"math"
)

// NoiseSearch asks for the noise multiplier that keeps Steps steps at sample rate
// SampleRate within (TargetEpsilon, Delta).
type NoiseSearch struct {
	TargetEpsilon float64
	Delta         float64
	SampleRate    float64
	Steps         int
	// EpsilonTolerance stops the bisection once the ε of the returned σ is within this
	// much below the target. Zero (the default) bisects until σ is known to a relative
	// 1e-10. Opacus' get_noise_multiplier uses 0.01; with OpacusOrders that setting
	// reproduces its results exactly (the same bracket [0, 10], doubled, then halved).
	EpsilonTolerance float64
}

// maxNoiseMultiplier bounds the doubling phase, as Opacus' MAX_SIGMA does.
const maxNoiseMultiplier = 1e6

// NoiseMultiplier returns the smallest noise multiplier σ (to the search's precision) whose
// ε after s.Steps steps stays at or below s.TargetEpsilon under the accountant cfg selects,
// found by bisection: σ_hi = 10 is doubled until ε(σ_hi) ≤ target, then [σ_lo, σ_hi] is
// halved, always keeping ε(σ_hi) ≤ target. The returned σ_hi therefore never overshoots
// the target. With SampleRate 0 or Steps 0 nothing is spent and the answer is 0. The PRV
// accountant bisects σ to a relative 1e-6 (its ε is only known to ε_err anyway, and each
// evaluation composes by FFT); with EpsilonTolerance 0.01 both reproduce Opacus'
// get_noise_multiplier.
func NoiseMultiplier(s NoiseSearch, cfg Config) (float64, Result, error) {
	if math.IsNaN(s.TargetEpsilon) || s.TargetEpsilon <= 0 || math.IsInf(s.TargetEpsilon, 0) {
		return 0, Result{}, fmt.Errorf("accountant: target epsilon %v: must be finite and > 0", s.TargetEpsilon)
	}
	if math.IsNaN(s.Delta) || s.Delta <= 0 || s.Delta >= 1 {
		return 0, Result{}, fmt.Errorf("accountant: delta %v: must be in (0, 1)", s.Delta)
	}
	if math.IsNaN(s.SampleRate) || s.SampleRate < 0 || s.SampleRate > 1 {
		return 0, Result{}, fmt.Errorf("accountant: sample rate %v: must be in [0, 1]", s.SampleRate)
	}
	if s.Steps < 0 {
		return 0, Result{}, fmt.Errorf("accountant: steps %d: must be ≥ 0", s.Steps)
	}
	if math.IsNaN(s.EpsilonTolerance) || s.EpsilonTolerance < 0 {
		return 0, Result{}, fmt.Errorf("accountant: epsilon tolerance %v: must be ≥ 0", s.EpsilonTolerance)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return 0, Result{}, err
	}
	eps := func(sigma float64) (Result, error) {
		return Epsilon([]Step{{NoiseMultiplier: sigma, SampleRate: s.SampleRate, Steps: s.Steps}}, s.Delta, cfg)
	}
	if s.SampleRate == 0 || s.Steps == 0 {
		r, err := eps(0)
		return 0, r, err
	}
	lo, hi := 0.0, 10.0
	var rHi Result
	for {
		hi *= 2
		if hi > maxNoiseMultiplier {
			return 0, Result{}, fmt.Errorf("accountant: no noise multiplier up to %g reaches epsilon %v at delta %v: the budget is too small", maxNoiseMultiplier, s.TargetEpsilon, s.Delta)
		}
		if rHi, err = eps(hi); err != nil {
			return 0, Result{}, err
		}
		if rHi.Epsilon <= s.TargetEpsilon {
			break
		}
	}
	prec := 1e-10
	if cfg.Method == MethodPRV {
		prec = 1e-6
	}
	for s.TargetEpsilon-rHi.Epsilon > s.EpsilonTolerance && hi-lo > prec*hi {
		mid := (lo + hi) / 2
		r, err := eps(mid)
		if err != nil {
			return 0, Result{}, err
		}
		if r.Epsilon < s.TargetEpsilon {
			hi, rHi = mid, r
		} else {
			lo = mid
		}
	}
	return hi, rHi, nil
}
