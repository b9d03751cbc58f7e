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

// Clipping modes.
const (
	// ClipFlat clips each example's whole gradient to norm C (Abadi et al. 2016).
	ClipFlat = "flat"
	// ClipPerLayer clips the gradient of each parametrised layer l separately to norm C_l,
	// with Σ_l C_l² = C² so the example's whole gradient still has norm ≤ C and the noise
	// σ·C is calibrated as for flat clipping (McMahan et al. 2018, "per-layer clipping";
	// Opacus' clipping="per_layer").
	ClipPerLayer = "per-layer"
)

// Config holds DP-SGD's parameters.
type Config struct {
	// NoiseMultiplier σ: the noise standard deviation is σ·MaxGradNorm.
	NoiseMultiplier float64 `json:"noise_multiplier" yaml:"noise_multiplier"`
	// MaxGradNorm C: every example's gradient is scaled to norm at most C.
	MaxGradNorm float64 `json:"max_grad_norm" yaml:"max_grad_norm"`
	// ExpectedBatch is q·N, the divisor of the noisy clipped sum.
	ExpectedBatch float64 `json:"expected_batch" yaml:"expected_batch"`
	// Clipping is flat (the default when empty) or per-layer.
	Clipping string `json:"clipping,omitempty" yaml:"clipping,omitempty"`
	// LayerMaxGradNorms are per-layer clipping's thresholds C_l, one per parametrised layer
	// of the model (model.ParamLayerSizes order); their root sum of squares must equal
	// MaxGradNorm. Empty splits C equally: C_l = C/√L for L layers.
	LayerMaxGradNorms []float64 `json:"layer_max_grad_norms,omitempty" yaml:"layer_max_grad_norms,omitempty"`
	// SumClip, when > 0, projects the clipped sum Σ_i clip_C(g_i) onto the L2 ball of
	// radius SumClip before the noise is added. The projection is 1-Lipschitz, so one
	// example still moves the sum by at most C and the step's guarantee is unchanged; it
	// bounds the noised step by (SumClip + ‖noise‖)/(q·N) whatever the data, which
	// distributed noise needs (no clip after the noise may depend on the data).
	SumClip float64 `json:"sum_clip,omitempty" yaml:"sum_clip,omitempty"`
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
	if math.IsNaN(c.SumClip) || c.SumClip < 0 || math.IsInf(c.SumClip, 0) {
		errs = append(errs, fmt.Errorf("sum_clip = %v: must be finite and ≥ 0 (0: no projection)", c.SumClip))
	}
	switch c.Clipping {
	case "", ClipFlat:
		if len(c.LayerMaxGradNorms) > 0 {
			errs = append(errs, fmt.Errorf("layer_max_grad_norms is set but clipping is %q: set clipping: %s, or remove them", c.clipping(), ClipPerLayer))
		}
	case ClipPerLayer:
		ss := 0.0
		for l, v := range c.LayerMaxGradNorms {
			if !(v > 0) || math.IsInf(v, 0) {
				errs = append(errs, fmt.Errorf("layer_max_grad_norms[%d] = %v: must be finite and > 0", l, v))
			}
			ss += v * v
		}
		if len(c.LayerMaxGradNorms) > 0 && c.MaxGradNorm > 0 && math.Abs(math.Sqrt(ss)-c.MaxGradNorm) > 1e-9*c.MaxGradNorm {
			errs = append(errs, fmt.Errorf("max_grad_norm = %v but the per-layer thresholds have root sum of squares %v: the noise is calibrated to it, so set max_grad_norm to %v", c.MaxGradNorm, math.Sqrt(ss), math.Sqrt(ss)))
		}
	default:
		errs = append(errs, fmt.Errorf("clipping %q unknown (use %s or %s)", c.Clipping, ClipFlat, ClipPerLayer))
	}
	return errors.Join(errs...)
}

func (c Config) clipping() string {
	if c.Clipping == "" {
		return ClipFlat
	}
	return c.Clipping
}

// StepStats describes one DP-SGD step.
type StepStats struct {
	Batch   int     // realised Poisson batch size
	Clipped int     // examples whose gradient norm (per-layer: any layer's) exceeded its threshold
	Loss    float64 // summed per-example loss
	model.Stats
}

// NormalsUser is a Noise that can also lend its standard normal draws to a pass that adds
// them itself (dp.SecureNoise.UseNormals): use zeroes the n values of z it used and reports
// whether it did; UseNormals reports false, without calling use, when it cannot.
type NormalsUser interface {
	UseNormals(n int, use func(z []float64) bool) bool
}

// Optimizer is DP-SGD around a base optimizer.
type Optimizer struct {
	Base  model.Optimizer
	Noise Noise
	cfg   Config

	norms, w []float64
	// Per-layer clipping: thresholds C_l, and per-layer norms and factors (layer × example).
	layerClip            []float64
	layerNorms, layerW   [][]float64
	layerNormBuf, layerB []float64
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
	o := &Optimizer{Base: base, Noise: noise, cfg: cfg}
	if cfg.clipping() == ClipPerLayer {
		L := len(m.ParamLayerSizes())
		switch {
		case L == 0:
			return nil, errors.New("dp-sgd: per-layer clipping: the model has no parametrised layers")
		case len(cfg.LayerMaxGradNorms) == 0:
			o.layerClip = make([]float64, L)
			for l := range o.layerClip {
				o.layerClip[l] = cfg.MaxGradNorm / math.Sqrt(float64(L))
			}
		case len(cfg.LayerMaxGradNorms) != L:
			return nil, fmt.Errorf("dp-sgd: %d per-layer thresholds for a model with %d parametrised layers", len(cfg.LayerMaxGradNorms), L)
		default:
			o.layerClip = append([]float64(nil), cfg.LayerMaxGradNorms...)
		}
	}
	return o, nil
}

// LayerMaxGradNorms returns the per-layer thresholds C_l in use (nil with flat clipping).
func (o *Optimizer) LayerMaxGradNorms() []float64 { return append([]float64(nil), o.layerClip...) }

// Config returns the optimizer's configuration.
func (o *Optimizer) Config() Config { return o.cfg }

// Step runs one DP-SGD step on the batch in (which the caller drew by Poisson sampling; an
// empty batch has in.B = 0): grads = (P(Σ_i clip_C(g_i)) + N(0, σ²C²I)) / (q·N), with P the
// projection onto the ball of radius SumClip (none when 0), then the
// base optimizer updates m.Params. rng drives dropout (nil disables it).
func (o *Optimizer) Step(m *model.Model, in *model.Input, tg model.Targets, rng *rand.Rand) (StepStats, error) {
	st := StepStats{Batch: in.B}
	// The normalisation by q·N is folded into the clipping weights and the noise scale, so
	// no pass over the gradient is spent on it.
	inv := 1 / o.cfg.ExpectedBatch
	std := o.cfg.NoiseMultiplier * o.cfg.MaxGradNorm * inv
	weighed := false // o.w holds the batch's clipping weights
	if u, ok := o.Noise.(NormalsUser); ok && in.B > 0 && std > 0 && o.layerClip == nil && !(o.cfg.SumClip > 0) {
		// The noise is added in the update's pass (model.Model.AccumulateWeightedStep): the
		// same Params as below, without the passes over a float64 gradient.
		if err := o.flatWeights(m, in, tg, rng, inv, &st); err != nil {
			return st, err
		}
		var err error
		if u.UseNormals(len(m.Params), func(z []float64) bool {
			err = m.AccumulateWeightedStep(o.w, o.Base, std, z)
			return err == nil
		}) {
			return st, err
		}
		weighed = true
	}
	m.ZeroGrads()
	if in.B > 0 {
		var err error
		if weighed {
			err = m.AccumulateWeighted(o.w)
		} else {
			err = o.clippedSum(m, in, tg, rng, inv, &st)
		}
		if err != nil {
			return st, err
		}
		projectL2(m.Grads, o.cfg.SumClip*inv)
	}
	if std > 0 {
		o.Noise.AddGaussian(m.Grads, std)
	}
	m.Step(o.Base) // in float32 also rounds the new weights for the next pass (model.Model.Step)
	return st, nil
}

// projectL2 scales v onto the L2 ball of radius r (r = 0: no projection).
func projectL2(v []float64, r float64) {
	if !(r > 0) {
		return
	}
	if n := dp.L2Norm(v); n > r {
		f := r / n
		for i := range v {
			v[i] *= f
		}
	}
}

// clippedSum adds scale·Σ_i clip_C(g_i) to m.Grads (flat or per-layer clipping) and records
// the batch's loss and clipping statistics in st.
func (o *Optimizer) clippedSum(m *model.Model, in *model.Input, tg model.Targets, rng *rand.Rand, scale float64, st *StepStats) error {
	if o.layerClip != nil {
		return o.clipPerLayer(m, in, tg, rng, scale, st)
	}
	if err := o.flatWeights(m, in, tg, rng, scale, st); err != nil {
		return err
	}
	return m.AccumulateWeighted(o.w)
}

// flatWeights runs the ghost pass and sets o.w to each example's clipping factor times
// scale (flat clipping), recording the batch's loss and clipping statistics in st.
func (o *Optimizer) flatWeights(m *model.Model, in *model.Input, tg model.Targets, rng *rand.Rand, scale float64, st *StepStats) error {
	o.norms = growTo(o.norms, in.B)
	o.w = growTo(o.w, in.B)
	loss, ms, err := m.PerExampleNorms(in, tg, rng, o.norms)
	if err != nil {
		return err
	}
	st.Loss, st.Stats = loss, ms
	for i, n := range o.norms {
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return fmt.Errorf("dp-sgd: example %d has a non-finite gradient norm: lower the learning rate", i)
		}
		f := dp.ClipFactor(n, o.cfg.MaxGradNorm)
		if f < 1 {
			st.Clipped++
		}
		o.w[i] = f * scale
	}
	return nil
}

// clipPerLayer adds scale·Σ_i Σ_l clip_{C_l}(g_{i,l}) to m.Grads: each example's gradient clipped
// layer by layer.
func (o *Optimizer) clipPerLayer(m *model.Model, in *model.Input, tg model.Targets, rng *rand.Rand, scale float64, st *StepStats) error {
	L, B := len(o.layerClip), in.B
	o.layerNormBuf = growTo(o.layerNormBuf, L*B)
	o.layerB = growTo(o.layerB, L*B)
	o.layerNorms, o.layerW = o.layerNorms[:0], o.layerW[:0]
	for l := 0; l < L; l++ {
		o.layerNorms = append(o.layerNorms, o.layerNormBuf[l*B:(l+1)*B])
		o.layerW = append(o.layerW, o.layerB[l*B:(l+1)*B])
	}
	loss, ms, err := m.PerExampleLayerNorms(in, tg, rng, o.layerNorms)
	if err != nil {
		return err
	}
	st.Loss, st.Stats = loss, ms
	for i := 0; i < B; i++ {
		clipped := false
		for l, c := range o.layerClip {
			n := o.layerNorms[l][i]
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return fmt.Errorf("dp-sgd: example %d has a non-finite gradient norm in layer %d: lower the learning rate", i, l)
			}
			f := dp.ClipFactor(n, c)
			clipped = clipped || f < 1
			o.layerW[l][i] = f * scale
		}
		if clipped {
			st.Clipped++
		}
	}
	return m.AccumulateWeightedPerLayer(o.layerW)
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
