package dpsgd

import (
	"errors"
	"fmt"
	"math"

	"github.com/confide-fl/confide/dp"
)

// Gradients is DP-SGD for a model that computes each example's gradient itself (any Go
// model, not only a model.Model, whose layers give Optimizer its ghost norms): Add clips an
// example's gradient to norm C and adds it to the batch's sum, Release adds Gaussian noise
// of standard deviation σ·C and divides by the expected batch q·N, as Optimizer.Step does.
// Draw each batch with PoissonSample and a secure generator (dp.SecureRand), so that the
// accountant's analysis of the sampled Gaussian mechanism applies, and record every step
// (noise multiplier, sample rate) in the client's ledger. Materialising B gradients costs
// B times the memory of one; it suits small custom models.
type Gradients struct {
	cfg     Config
	noise   Noise
	sum     []float64
	batch   int
	clipped int
}

// NewGradients returns DP-SGD's aggregation for gradients of dim values. Only flat
// clipping applies: the gradient has no layers Gradients knows of.
func NewGradients(dim int, noise Noise, cfg Config) (*Gradients, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dp-sgd: %w", err)
	}
	if cfg.clipping() != ClipFlat {
		return nil, errors.New("dp-sgd: materialised gradients are clipped flat (clipping: flat)")
	}
	if dim <= 0 || noise == nil {
		return nil, fmt.Errorf("dp-sgd: gradients of %d values with noise %v: want dim > 0 and a noise source", dim, noise)
	}
	return &Gradients{cfg: cfg, noise: noise, sum: make([]float64, dim)}, nil
}

// Add clips one example's gradient g to norm C and adds it to the batch's sum; g is not
// modified.
func (a *Gradients) Add(g []float64) error {
	if len(g) != len(a.sum) {
		return fmt.Errorf("dp-sgd: gradient of %d values, want %d", len(g), len(a.sum))
	}
	n := dp.L2Norm(g)
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return fmt.Errorf("dp-sgd: example %d of the batch has a non-finite gradient norm: lower the learning rate", a.batch)
	}
	f := dp.ClipFactor(n, a.cfg.MaxGradNorm)
	if f < 1 {
		a.clipped++
	}
	for i, v := range g {
		a.sum[i] += f * v
	}
	a.batch++
	return nil
}

// Release writes the step's private gradient (P(Σ clip_C(g_i)) + N(0, σ²C²·I)) / (q·N) into
// (P: the projection onto the ball of radius SumClip, none when 0)
// dst (of the gradients' length), starts the next batch, and reports the realised batch
// size (which the noisy gradient hides; do not publish it) and how many examples were
// clipped. An empty batch is a valid step: noise only.
func (a *Gradients) Release(dst []float64) (StepStats, error) {
	if len(dst) != len(a.sum) {
		return StepStats{}, fmt.Errorf("dp-sgd: destination of %d values, want %d", len(dst), len(a.sum))
	}
	copy(dst, a.sum)
	projectL2(dst, a.cfg.SumClip)
	if std := a.cfg.NoiseMultiplier * a.cfg.MaxGradNorm; std > 0 {
		a.noise.AddGaussian(dst, std)
	}
	inv := 1 / a.cfg.ExpectedBatch
	for i := range dst {
		dst[i] *= inv
	}
	st := StepStats{Batch: a.batch, Clipped: a.clipped}
	clear(a.sum)
	a.batch, a.clipped = 0, 0
	return st, nil
}
