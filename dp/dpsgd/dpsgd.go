package dpsgd

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
)

// Noise adds independent N(0, std²) samples to every element of dst.
type Noise interface {
	AddGaussian(dst []float64, std float64)
}

// Config holds DP-SGD's parameters.
type Config struct {
	// NoiseMultiplier σ: the noise standard deviation is σ·MaxGradNorm.
	NoiseMultiplier float64 `json:"noise_multiplier" yaml:"noise_multiplier"`
	// MaxGradNorm C: every example's gradient is scaled to norm at most C.
	MaxGradNorm float64 `json:"max_grad_norm" yaml:"max_grad_norm"`
	// ExpectedBatch is q·N, the divisor of the noisy clipped sum.
	ExpectedBatch float64 `json:"expected_batch" yaml:"expected_batch"`
}

// Validate checks the configuration, naming the field and its valid range.
func (c Config) Validate() error {
	var errs []error
	if math.IsNaN(c.NoiseMultiplier) || c.NoiseMultiplier < 0 || math.IsInf(c.NoiseMultiplier, 0) {
		errs = append(errs, fmt.Errorf("noise_multiplier = %v: must be finite and ≥ 0", c.NoiseMultiplier))
	}
	if !(c.MaxGradNorm > 0) || math.IsInf(c.MaxGradNorm, 0) {
		errs = append(errs, fmt.Errorf("max_grad_norm = %v: must be finite and > 0", c.MaxGradNorm))
	}
	if !(c.ExpectedBatch > 0) || math.IsInf(c.ExpectedBatch, 0) {
		errs = append(errs, fmt.Errorf("expected batch = %v: must be > 0", c.ExpectedBatch))
	}
	return errors.Join(errs...)
}

// StepStats describes one DP-SGD step.
type StepStats struct {
	Batch   int     // realised Poisson batch size
	Clipped int     // examples whose gradient norm exceeded C
	Loss    float64 // summed per-example loss
	model.Stats
}

// Optimizer is DP-SGD around a base optimizer.
type Optimizer struct {
	Base  model.Optimizer
	Noise Noise
	cfg   Config

	norms, w []float64
}

// New returns a DP-SGD optimizer for m. It refuses models with layers that cannot report
// per-example gradients.
func New(m *model.Model, base model.Optimizer, noise Noise, cfg Config) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dp-sgd: %w", err)
	}
	if base == nil || noise == nil {
		return nil, errors.New("dp-sgd: base optimizer and noise source are required")
	}
	for i, l := range m.Layers() {
		if _, isParam := l.(model.ParamLayer); !isParam {
			if _, hasParams := l.(interface{ NumParams() int }); hasParams {
				return nil, fmt.Errorf("dp-sgd: layer %d (%T) has parameters but no per-example gradients", i, l)
			}
		}
	}
	return &Optimizer{Base: base, Noise: noise, cfg: cfg}, nil
}

// Config returns the optimizer's configuration.
func (o *Optimizer) Config() Config { return o.cfg }

// Step runs one DP-SGD step on the batch in (which the caller drew by Poisson sampling; an
// empty batch has in.B = 0): grads = (Σ_i clip_C(g_i) + N(0, σ²C²I)) / (q·N), then the
// base optimizer updates m.Params. rng drives dropout (nil disables it).
func (o *Optimizer) Step(m *model.Model, in *model.Input, tg model.Targets, rng *rand.Rand) (StepStats, error) {
	st := StepStats{Batch: in.B}
	m.ZeroGrads()
	if in.B > 0 {
		o.norms = growTo(o.norms, in.B)
		o.w = growTo(o.w, in.B)
		loss, ms, err := m.PerExampleNorms(in, tg, rng, o.norms)
		if err != nil {
			return st, err
		}
		st.Loss, st.Stats = loss, ms
		for i, n := range o.norms {
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return st, fmt.Errorf("dp-sgd: example %d has a non-finite gradient norm: lower the learning rate", i)
			}
			f := dp.ClipFactor(n, o.cfg.MaxGradNorm)
			if f < 1 {
				st.Clipped++
			}
			o.w[i] = f
		}
		if err := m.AccumulateWeighted(o.w); err != nil {
			return st, err
		}
	}
	if o.cfg.NoiseMultiplier > 0 {
		o.Noise.AddGaussian(m.Grads, o.cfg.NoiseMultiplier*o.cfg.MaxGradNorm)
	}
	inv := 1 / o.cfg.ExpectedBatch
	for i := range m.Grads {
		m.Grads[i] *= inv
	}
	o.Base.Step(m.Params, m.Grads)
	return st, nil
}

func growTo(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// PoissonSample appends to dst every index of [0, n) independently with probability q and
// returns it: the sampling DP-SGD's privacy analysis assumes (fixed-size shuffled batches
// are not covered by it). Gaps between chosen indices are drawn as geometric variables, so
// the cost is proportional to the batch, not to n. rng must be a secure source in
// production: the batch composition is part of what the analysis keeps secret.
func PoissonSample(dst []int, n int, q float64, rng *rand.Rand) []int {
	if q <= 0 || n <= 0 {
		return dst
	}
	if q >= 1 {
		for i := 0; i < n; i++ {
			dst = append(dst, i)
		}
		return dst
	}
	logq := math.Log1p(-q)
	i := -1
	for {
		// P(gap = k) = (1−q)^(k−1)·q for k ≥ 1: k = 1 + ⌊log U / log(1−q)⌋, U ∈ (0, 1].
		u := 1 - rng.Float64()
		gap := 1 + math.Floor(math.Log(u)/logq)
		if gap > float64(n-i) {
			return dst
		}
		i += int(gap)
		if i >= n {
			return dst
		}
		dst = append(dst, i)
	}
}
