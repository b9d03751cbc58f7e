package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/dp/dpsgd"
	quality "github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// Config holds local training hyper-parameters.
type Config struct {
	Epochs    int                   `json:"epochs" yaml:"epochs"`
	BatchSize int                   `json:"batch_size" yaml:"batch_size"`
	Optimizer model.OptimizerConfig `json:"optimizer" yaml:"optimizer"`
	// Schedule is constant (default) or cosine (decay to 0 over all steps of the run).
	Schedule string `json:"schedule,omitempty" yaml:"schedule,omitempty"`
	// Warmup is the number of steps of linear learning-rate warm-up.
	Warmup int    `json:"warmup,omitempty" yaml:"warmup,omitempty"`
	Seed   uint64 `json:"seed" yaml:"seed"`
	// DP, when set, trains with DP-SGD: Poisson sampling with rate BatchSize/N, per-example
	// clipping and Gaussian noise. An epoch is then N/BatchSize steps.
	DP *DPConfig `json:"dp,omitempty" yaml:"dp,omitempty"`
}

// DPConfig holds DP-SGD's noise multiplier σ and clipping: norm C, flat or per layer (see
// dpsgd.Config).
type DPConfig struct {
	NoiseMultiplier float64 `json:"noise_multiplier" yaml:"noise_multiplier"`
	// SampleRate, when > 0, fixes the Poisson sampling rate q instead of BatchSize/N, and
	// Steps, when > 0, the steps of an epoch instead of N/BatchSize: a schedule set by
	// someone who does not know N (a federation's server, so that it can account every
	// client's ε from the task alone). BatchSize should then be the expected batch q·N.
	SampleRate        float64   `json:"sample_rate,omitempty" yaml:"sample_rate,omitempty"`
	Steps             int       `json:"steps,omitempty" yaml:"steps,omitempty"`
	MaxGradNorm       float64   `json:"max_grad_norm" yaml:"max_grad_norm"`
	Clipping          string    `json:"clipping,omitempty" yaml:"clipping,omitempty"`
	LayerMaxGradNorms []float64 `json:"layer_max_grad_norms,omitempty" yaml:"layer_max_grad_norms,omitempty"`
	// Distributed noise (a federation's dp.distributed): NoiseShares > 1 adds noise of
	// multiplier NoiseMultiplier/√NoiseShares to each step, for a result released only
	// inside sums of at least NoiseShares such results; the steps are recorded at
	// NoiseMultiplier (the sum's) with Shares = NoiseShares. ExpectedBatch, when > 0,
	// divides the noisy sum instead of BatchSize (a divisor that does not depend on the
	// local data), and SumClip projects the clipped sum (dpsgd.Config.SumClip).
	NoiseShares   int     `json:"noise_shares,omitempty" yaml:"noise_shares,omitempty"`
	ExpectedBatch float64 `json:"expected_batch,omitempty" yaml:"expected_batch,omitempty"`
	SumClip       float64 `json:"sum_clip,omitempty" yaml:"sum_clip,omitempty"`
}

// dpsgd returns the DP-SGD optimizer's configuration for batches of expected size batch.
func (d DPConfig) dpsgd(batch int) dpsgd.Config {
	expected := float64(max(batch, 1))
	if d.ExpectedBatch > 0 {
		expected = d.ExpectedBatch
	}
	return dpsgd.Config{
		NoiseMultiplier: dp.DistributedStep{NoiseMultiplier: d.NoiseMultiplier, Shares: d.NoiseShares}.ShareNoiseMultiplier(), MaxGradNorm: d.MaxGradNorm, ExpectedBatch: expected,
		Clipping: d.Clipping, LayerMaxGradNorms: d.LayerMaxGradNorms, SumClip: d.SumClip,
	}
}

// shares is the Shares of the steps' accounting entries (0 without distributed noise).
func (d DPConfig) shares() int {
	if d.NoiseShares > 1 {
		return d.NoiseShares
	}
	return 0
}

// Validate checks the configuration, naming the key and the fix.
func (c Config) Validate() error {
	var errs []error
	if c.Epochs <= 0 {
		errs = append(errs, fmt.Errorf("epochs = %d: must be ≥ 1", c.Epochs))
	}
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("batch_size = %d: must be ≥ 1", c.BatchSize))
	}
	switch c.Schedule {
	case "", "constant", "cosine":
	default:
		errs = append(errs, fmt.Errorf("schedule %q: use constant or cosine", c.Schedule))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup = %d: must be ≥ 0", c.Warmup))
	}
	if _, err := model.NewOptimizer(c.Optimizer); err != nil {
		errs = append(errs, err)
	}
	if c.DP != nil {
		if err := c.DP.dpsgd(c.BatchSize).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("dp: %w", err))
		}
		if q := c.DP.SampleRate; math.IsNaN(q) || q < 0 || q > 1 {
			errs = append(errs, fmt.Errorf("dp.sample_rate = %v: must be in (0, 1] (0: batch_size / examples)", q))
		}
		if c.DP.Steps < 0 {
			errs = append(errs, fmt.Errorf("dp.steps = %d: must be ≥ 0 (0: examples / batch_size per epoch)", c.DP.Steps))
		}
		if c.DP.NoiseShares < 0 {
			errs = append(errs, fmt.Errorf("dp.noise_shares = %d: must be ≥ 0 (0 or 1: the noise is not distributed)", c.DP.NoiseShares))
		}
		if e := c.DP.ExpectedBatch; math.IsNaN(e) || e < 0 || math.IsInf(e, 0) {
			errs = append(errs, fmt.Errorf("dp.expected_batch = %v: must be finite and ≥ 0 (0: batch_size)", e))
		}
	}
	return errors.Join(errs...)
}

// Metrics summarise a pass over data.
type Metrics struct {
	Loss     float64 `json:"loss"`
	Accuracy float64 `json:"accuracy"`
	Examples int     `json:"examples"`
	// Regression holds a regression model's errors in the targets' own units (evaluation
	// of a TaskRegress dataset only; Accuracy is then 0).
	Regression *quality.RegressionReport `json:"regression,omitempty"`
}

// EpochReport is what Fit reports after each epoch.
type EpochReport struct {
	Epoch    int           `json:"epoch"`
	Train    Metrics       `json:"train"`
	Test     *Metrics      `json:"test,omitempty"`
	LR       float64       `json:"lr"`
	Duration time.Duration `json:"duration_ns"`
}

// Trainer trains one model. It is not safe for concurrent use. A pruned model (one whose
// spec has a mask) keeps its pruned parameters at zero: New zeroes them, and every step,
// plain or DP-SGD, zeroes them again after the optimizer's update. Under DP-SGD the
// per-example gradients are clipped with their pruned coordinates included (the ghost norms
// cannot leave them out); dropping those coordinates afterwards only shrinks the norm, so
// the sensitivity, and ε, stay as accounted.
type Trainer struct {
	Model  *model.Model
	Opt    model.Optimizer
	cfg    Config
	rng    *rand.Rand
	step   int
	total  int
	baseLR float64

	batch data.Batch
	in    model.Input

	// DP-SGD state (cfg.DP set).
	dp      *dpsgd.Optimizer
	sampler *rand.Rand
	idx     []int
	dpSteps []accountant.Step

	// featured holds, for a model with a feature stage, the transformed copy of every
	// dataset the trainer has seen (in memory only), so each is transformed once.
	featured map[*data.Dataset]*data.Dataset
	// featureCache is the directory of the on-disk feature cache ("": none).
	featureCache string

	distill *distillState // knowledge distillation from a teacher (Distill); nil: none
}

// New returns a trainer for m. total is the number of optimisation steps the run will take
// (for schedules); 0 means constant.
func New(m *model.Model, cfg Config) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opt, err := model.NewOptimizer(cfg.Optimizer)
	if err != nil {
		return nil, err
	}
	if m.Quantization() != nil {
		return nil, errors.New("train: the model is quantised (int8) for inference: train or fine-tune the float64 model, then quantise it")
	}
	m.ApplyMask()
	return &Trainer{Model: m, Opt: opt, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7261696e)), baseLR: cfg.Optimizer.LR}, nil
}

// EnableDP switches the trainer to DP-SGD as configured in cfg.DP. noise supplies the
// Gaussian noise and sampler draws the Poisson batches; both must be cryptographically
// secure outside tests (dp.NewSecureNoise, dp.SecureRand).
func (t *Trainer) EnableDP(noise dpsgd.Noise, sampler *rand.Rand) error {
	if t.cfg.DP == nil {
		return errors.New("train: EnableDP without a dp section in the config")
	}
	o, err := dpsgd.New(t.Model, t.Opt, noise, t.cfg.DP.dpsgd(t.cfg.BatchSize))
	if err != nil {
		return err
	}
	t.dp, t.sampler = o, sampler
	return nil
}

// DPSteps returns the accounting history of the DP-SGD steps taken so far: one entry per
// epoch with its noise multiplier, sample rate and step count.
func (t *Trainer) DPSteps() []accountant.Step { return append([]accountant.Step(nil), t.dpSteps...) }

// PlannedDPSteps returns the accounting entry for epochs epochs over n examples, so a caller
// can check a privacy budget before training.
func (c Config) PlannedDPSteps(n, epochs int) accountant.Step {
	if c.DP == nil || n == 0 {
		return accountant.Step{}
	}
	return accountant.Step{NoiseMultiplier: c.DP.NoiseMultiplier, SampleRate: c.sampleRate(n), Steps: epochs * c.dpStepsPerEpoch(n), Shares: c.DP.shares()}
}

func (c Config) sampleRate(n int) float64 {
	if c.DP != nil && c.DP.SampleRate > 0 {
		return c.DP.SampleRate
	}
	return min(1, float64(c.BatchSize)/float64(n))
}

// dpStepsPerEpoch is DP.Steps when set, else N/(expected batch), rounded, at least 1.
func (c Config) dpStepsPerEpoch(n int) int {
	if c.DP != nil && c.DP.Steps > 0 {
		return c.DP.Steps
	}
	return max(1, int(math.Round(float64(n)/float64(c.BatchSize))))
}

// Rand is the trainer's random source (shuffling, dropout), derived from Config.Seed.
func (t *Trainer) Rand() *rand.Rand { return t.rng }

// SetTotalSteps tells the schedule how many steps the whole run takes.
func (t *Trainer) SetTotalSteps(n int) { t.total = n }

// lr returns the learning rate for the current step.
func (t *Trainer) lr() float64 {
	lr := t.baseLR
	if t.cfg.Warmup > 0 && t.step < t.cfg.Warmup {
		return lr * float64(t.step+1) / float64(t.cfg.Warmup)
	}
	if t.cfg.Schedule == "cosine" && t.total > 0 {
		p := float64(t.step-t.cfg.Warmup) / float64(max(1, t.total-t.cfg.Warmup))
		lr *= 0.5 * (1 + math.Cos(math.Pi*min(p, 1)))
	}
	return lr
}

// featureChunk is the number of examples Featurize transforms between progress reports.
const featureChunk = 1024

// Featurize returns ds with the model's feature stage (model.Features) applied to every
// example, or ds itself when the model has none. The result is computed once per dataset and
// kept in memory for the trainer's lifetime; Epoch and Fit use it, so calling Featurize first
// only serves to report progress (onExamples, when not nil, is called as examples are done)
// or to time the transform. The copy shares ds's labels and groups.
func (t *Trainer) Featurize(ctx context.Context, ds *data.Dataset, onExamples func(int)) (*data.Dataset, error) {
	f := t.Model.Features()
	if f == nil {
		return ds, nil
	}
	if c, ok := t.featured[ds]; ok {
		return c, nil
	}
	var c *data.Dataset
	var err error
	if t.featureCache != "" && t.Model.Spec.Features != nil {
		c, err = cachedFeaturize(ctx, t.featureCache, t.Model.Spec.Features, f, ds, onExamples)
	} else {
		c, err = Featurize(ctx, f, ds, onExamples)
	}
	if err != nil {
		return nil, err
	}
	t.remember(ds, c)
	return c, nil
}

// UseFeatures tells the trainer that featured holds the output of the model's feature stage
// on raw, computed elsewhere (by Featurize, once for a dataset many trainers share); Epoch
// and Fit given raw then read featured. raw may be featured itself: a dataset that already
// holds features, such as rows gathered from a featurized dataset.
func (t *Trainer) UseFeatures(raw, featured *data.Dataset) error {
	if err := CheckFeatured(t.Model, featured); err != nil {
		return err
	}
	if raw.N != featured.N {
		return fmt.Errorf("train: dataset %s has %d examples, its features %d", raw.Name, raw.N, featured.N)
	}
	t.remember(raw, featured)
	return nil
}

func (t *Trainer) remember(raw, featured *data.Dataset) {
	if t.featured == nil {
		t.featured = make(map[*data.Dataset]*data.Dataset)
	}
	t.featured[raw] = featured
}

// MaxFeatureBytes bounds the memory Featurize allocates for one dataset's features (MNIST's
// 60,000 training images with J = 2, L = 8 scattering take 1.9 GB).
var MaxFeatureBytes = 8e9

// Featurize returns a copy of ds with the feature stage f applied to every example (in
// chunks, calling onExamples, when not nil, as examples are done). The copy shares ds's
// labels and groups. Computing it once per dataset and training on it (UseFeatures,
// EvaluateFeatures) saves the transform in every forward pass.
func Featurize(ctx context.Context, f model.Features, ds *data.Dataset, onExamples func(int)) (*data.Dataset, error) {
	if ds.IsText() || ds.Dim != f.InDim() {
		return nil, fmt.Errorf("train: the model's feature stage reads %d dense values per example; dataset %s has %d", f.InDim(), ds.Name, ds.Dim)
	}
	in, out := f.InDim(), f.OutDim()
	if need := float64(ds.N) * float64(out) * 8; need > MaxFeatureBytes {
		return nil, fmt.Errorf("train: the features of dataset %s need %.1f GB (%d examples × %d features), more than %.0f GB: lower the feature stage's l or j, or use fewer examples", ds.Name, need/1e9, ds.N, out, MaxFeatureBytes/1e9)
	}
	c := *ds
	c.X, c.Dim, c.Shape = make([]float64, ds.N*out), out, nil
	for lo := 0; lo < ds.N; lo += featureChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+featureChunk, ds.N)
		f.Transform(c.X[lo*out:hi*out], ds.X[lo*in:hi*in], hi-lo)
		if onExamples != nil {
			onExamples(hi - lo)
		}
	}
	return &c, nil
}

// CheckFeatured reports whether ds can be the output of m's feature stage (see Featurize)
// for m's trainable layers, naming the mismatch.
func CheckFeatured(m *model.Model, ds *data.Dataset) error {
	f := m.Features()
	if f == nil {
		return fmt.Errorf("train: dataset %s holds features but the model has no feature stage", ds.Name)
	}
	if ds.IsText() || ds.Dim != f.OutDim() {
		return fmt.Errorf("train: the model's feature stage writes %d features per example; dataset %s has %d", f.OutDim(), ds.Name, ds.Dim)
	}
	if ds.NumClasses > 0 && m.Spec.Output != ds.NumClasses {
		return fmt.Errorf("model output %d ≠ dataset %s class count %d", m.Spec.Output, ds.Name, ds.NumClasses)
	}
	return nil
}

// Input converts a gathered batch to the model's input and targets.
func Input(ds *data.Dataset, b *data.Batch, in *model.Input) model.Targets {
	*in = model.Input{X: b.X, Tokens: b.Tokens, Lengths: b.Lengths, B: b.N}
	if ds.IsText() {
		in.T = ds.SeqLen
	}
	switch ds.Task {
	case data.TaskNextToken:
		return model.Targets{Class: b.Targets}
	case data.TaskRegress:
		return model.Targets{Value: b.Values}
	}
	return model.Targets{Class: b.Y}
}

// CheckCompatible reports whether m can consume ds, naming the mismatch.
func CheckCompatible(m *model.Model, ds *data.Dataset) error {
	s := m.Spec
	if !s.IsSequence() {
		if ds.IsText() {
			return fmt.Errorf("model type %s needs dense features, dataset %s holds token sequences (use a sequence model)", s.Type, ds.Name)
		}
		if ds.Dim != s.Input {
			return fmt.Errorf("model input %d ≠ dataset %s feature count %d", s.Input, ds.Name, ds.Dim)
		}
		if err := checkEmbeddings(s, ds); err != nil {
			return err
		}
	}
	if ds.NumClasses > 0 && s.Output != ds.NumClasses {
		return fmt.Errorf("model output %d ≠ dataset %s class count %d", s.Output, ds.Name, ds.NumClasses)
	}
	return checkRegression(s, ds)
}

// Epoch runs one epoch of shuffled mini-batch SGD over ds. onStep, when not nil, is called
// after every step with the number of examples processed.
func (t *Trainer) Epoch(ctx context.Context, ds *data.Dataset, onStep func(examples int)) (Metrics, error) {
	ds, err := t.Featurize(ctx, ds, nil)
	if err != nil {
		return Metrics{}, err
	}
	transformed := t.Model.Features() != nil
	if t.cfg.DP != nil {
		return t.dpEpoch(ctx, ds, transformed, onStep)
	}
	it, err := data.NewBatchIterator(ds.N, t.cfg.BatchSize, false)
	if err != nil {
		return Metrics{}, err
	}
	it.Reset(t.rng)
	var lossSum float64
	var st model.Stats
	n := 0
	for idx, ok := it.Next(); ok; idx, ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return Metrics{}, err
		}
		ds.Gather(&t.batch, idx)
		tg := Input(ds, &t.batch, &t.in)
		t.in.Transformed = transformed
		if t.distill != nil {
			if tg, err = t.softTargets(tg); err != nil {
				return Metrics{}, err
			}
		}
		t.Opt.SetLR(t.lr())
		// One call for the gradient and the update (model.Model.TrainStep: in float32 with
		// plain SGD no float64 gradient is formed); a diverged step is still applied, and
		// the epoch ends with an error.
		l, s, err := t.Model.TrainStep(&t.in, tg, 1/float64(len(idx)), t.rng, t.Opt)
		if err != nil {
			return Metrics{}, err
		}
		if math.IsNaN(l) || math.IsInf(l, 0) {
			return Metrics{}, fmt.Errorf("training diverged at step %d (loss %v): lower the learning rate", t.step, l)
		}
		t.Model.ApplyMask()
		t.step++
		lossSum += l
		st.Correct += s.Correct
		st.Count += s.Count
		n += len(idx)
		if onStep != nil {
			onStep(len(idx))
		}
	}
	return metrics(lossSum, st, n), nil
}

// dpEpoch runs N/(expected batch) DP-SGD steps, each on a Poisson-sampled batch.
func (t *Trainer) dpEpoch(ctx context.Context, ds *data.Dataset, transformed bool, onStep func(examples int)) (Metrics, error) {
	if t.dp == nil {
		return Metrics{}, errors.New("train: DP-SGD configured but EnableDP was not called")
	}
	q := t.cfg.sampleRate(ds.N)
	steps := t.cfg.dpStepsPerEpoch(ds.N)
	var lossSum float64
	var st model.Stats
	n := 0
	for s := 0; s < steps; s++ {
		if err := ctx.Err(); err != nil {
			return Metrics{}, err
		}
		t.idx = dpsgd.PoissonSample(t.idx[:0], ds.N, q, t.sampler)
		var tg model.Targets
		if len(t.idx) > 0 {
			ds.Gather(&t.batch, t.idx)
			tg = Input(ds, &t.batch, &t.in)
			t.in.Transformed = transformed
			if t.distill != nil {
				var err error
				if tg, err = t.softTargets(tg); err != nil {
					return Metrics{}, err
				}
			}
		} else {
			t.in = model.Input{}
		}
		t.Opt.SetLR(t.lr())
		ss, err := t.dp.Step(t.Model, &t.in, tg, t.rng)
		if err != nil {
			return Metrics{}, err
		}
		// The noise reached the pruned parameters too; zeroing them again is
		// post-processing, so ε is unchanged.
		t.Model.ApplyMask()
		if math.IsNaN(ss.Loss) || math.IsInf(ss.Loss, 0) {
			return Metrics{}, fmt.Errorf("training diverged at step %d (loss %v): lower the learning rate", t.step, ss.Loss)
		}
		t.step++
		lossSum += ss.Loss
		st.Correct += ss.Correct
		st.Count += ss.Count
		n += ss.Batch
		if onStep != nil {
			onStep(ss.Batch)
		}
	}
	t.recordDP(accountant.Step{NoiseMultiplier: t.cfg.DP.NoiseMultiplier, SampleRate: q, Steps: steps, Shares: t.cfg.DP.shares()})
	return metrics(lossSum, st, n), nil
}

func (t *Trainer) recordDP(s accountant.Step) {
	if k := len(t.dpSteps) - 1; k >= 0 && t.dpSteps[k].SameMechanism(s) {
		t.dpSteps[k].Steps += s.Steps
		return
	}
	t.dpSteps = append(t.dpSteps, s)
}

func metrics(lossSum float64, st model.Stats, n int) Metrics {
	m := Metrics{Examples: n}
	if n > 0 {
		m.Loss = lossSum / float64(n)
	}
	if st.Count > 0 {
		m.Accuracy = float64(st.Correct) / float64(st.Count)
	}
	return m
}

// Evaluate computes the mean loss and the accuracy of m on ds in batches of batchSize.
func Evaluate(m *model.Model, ds *data.Dataset, batchSize int) (Metrics, error) {
	return evaluate(m, ds, batchSize, false)
}

// EvaluateFeatures is Evaluate on ds holding the output of m's feature stage (Featurize).
func EvaluateFeatures(m *model.Model, ds *data.Dataset, batchSize int) (Metrics, error) {
	if err := CheckFeatured(m, ds); err != nil {
		return Metrics{}, err
	}
	return evaluate(m, ds, batchSize, true)
}

// maxEvalRows bounds the rows (examples × sequence length) of one evaluation batch.
const maxEvalRows = 1 << 14

// evaluate is Evaluate; transformed says ds holds the output of m's feature stage.
func evaluate(m *model.Model, ds *data.Dataset, batchSize int, transformed bool) (Metrics, error) {
	if batchSize <= 0 {
		batchSize = 256
	}
	if ds.SeqLen > 0 {
		// A batch of sequences is B·T rows in every layer: bound the rows, not the examples
		// (512 windows of 256 characters held about 4 GB of a Transformer's activations).
		batchSize = max(1, min(batchSize, maxEvalRows/ds.SeqLen))
	}
	if ds.Task == data.TaskRegress {
		return evaluateRegression(m, ds, batchSize, transformed)
	}
	var b data.Batch
	var in model.Input
	idx := make([]int, 0, batchSize)
	var lossSum float64
	var st model.Stats
	for start := 0; start < ds.N; start += batchSize {
		idx = idx[:0]
		for i := start; i < min(start+batchSize, ds.N); i++ {
			idx = append(idx, i)
		}
		ds.Gather(&b, idx)
		tg := Input(ds, &b, &in)
		in.Transformed = transformed
		l, s, err := m.Evaluate(&in, tg)
		if err != nil {
			return Metrics{}, err
		}
		lossSum += l
		st.Correct += s.Correct
		st.Count += s.Count
	}
	return metrics(lossSum, st, ds.N), nil
}

// Fit trains for cfg.Epochs epochs over trainSet, evaluating on testSet (if not nil) after
// each epoch and calling onEpoch with the report.
func (t *Trainer) Fit(ctx context.Context, trainSet, testSet *data.Dataset, onEpoch func(EpochReport), onStep func(int)) ([]EpochReport, error) {
	check := CheckCompatible
	if t.featured[trainSet] == trainSet {
		check = CheckFeatured // features handed over as their own raw set (UseFeatures)
	}
	if err := check(t.Model, trainSet); err != nil {
		return nil, err
	}
	stepsPerEpoch := (trainSet.N + t.cfg.BatchSize - 1) / t.cfg.BatchSize
	if t.cfg.DP != nil {
		stepsPerEpoch = t.cfg.dpStepsPerEpoch(trainSet.N)
	}
	t.SetTotalSteps(stepsPerEpoch * t.cfg.Epochs)
	var reports []EpochReport
	for e := 1; e <= t.cfg.Epochs; e++ {
		start := time.Now()
		tr, err := t.Epoch(ctx, trainSet, onStep)
		if err != nil {
			return reports, err
		}
		r := EpochReport{Epoch: e, Train: tr, LR: t.Opt.LR(), Duration: time.Since(start)}
		if testSet != nil {
			ts, err := t.Featurize(ctx, testSet, nil)
			if err != nil {
				return reports, err
			}
			te, err := evaluate(t.Model, ts, 512, t.Model.Features() != nil)
			if err != nil {
				return reports, err
			}
			r.Test = &te
		}
		reports = append(reports, r)
		if onEpoch != nil {
			onEpoch(r)
		}
	}
	return reports, nil
}
