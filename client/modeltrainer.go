package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/dpsgd"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// ModelTrainerConfig configures the built-in trainer.
type ModelTrainerConfig struct {
	// Train is the local training set; Test (optional) is used for evaluate tasks.
	Train, Test *data.Dataset
	// Source, instead of Train and Test, is the client's own files, read with the
	// federation's dataset schema when the first task brings it.
	Source *DataSource
	// Budget limits the privacy the client's data spends over all rounds, kept in a
	// dp.Ledger in Store (see OpenLedger). nil means no budget: the trainer keeps no
	// ledger, refuses nothing on privacy grounds and trains as the task asks, with or
	// without DP-SGD noise, so its updates carry no record-level DP guarantee this client
	// accounts for.
	Budget *dp.Budget
	// RaiseBudget allows Budget to exceed the budget the ledger holds; the raise is
	// recorded in the ledger (dp.WithRaiseBudget). Without it a larger budget is refused.
	RaiseBudget bool
	// LedgerOptions are passed on when the ledger is opened: dp.WithAccountant chooses the
	// accountant of a new ledger (a simulator's dp.accountant).
	LedgerOptions []dp.LedgerOption
	// Store keeps the privacy ledger; nil keeps it in memory (it then dies with the process).
	Store Store
	// Seed, when non-zero, makes DP noise and batch sampling deterministic (tests,
	// simulations). Zero draws them from crypto/rand, as a deployment must.
	Seed uint64
	// Models, when set, lends the trainer its models instead of building one per task
	// (a simulator's worker keeps one Models for the virtual clients it runs in turn).
	Models *Models
	// Featured, when set, says that Train and Test already hold the output of this feature
	// stage (model.FeatureSpec), computed once by the caller, e.g. a simulator for the
	// whole dataset its virtual clients share: tasks whose model has this stage train and
	// evaluate on them as they are, others are refused. Without it, the trainer computes a
	// model's feature stage on Train and Test on the first task that needs it and keeps the
	// result for its lifetime.
	Featured *model.FeatureSpec
	// Precision is the number format of the model's layer math (model.SetPrecision):
	// model.Float64 (the zero value) or model.Float32, about twice as fast. Parameters,
	// updates, clipping and noise are float64 in both.
	Precision model.Precision
}

// Models keeps built models for reuse across tasks and trainers, one per architecture, so
// that a trainer built for a single task allocates no parameter vectors. It is used by one
// goroutine at a time; the parameters a Fit returns alias the lent model and are valid
// until the next task that uses the same Models.
type Models struct{ bySpec map[string]*model.Model }

// NewModels returns an empty model cache.
func NewModels() *Models { return &Models{bySpec: map[string]*model.Model{}} }

// model returns the model for spec with parameters params, its layer math in precision p:
// the cached one when there is a cache (built on first use), otherwise a new one.
func (c *Models) model(spec model.Spec, params []float64, p model.Precision) (*model.Model, error) {
	var m *model.Model
	key := string(spec.JSON())
	if c != nil {
		m = c.bySpec[key]
	}
	if m == nil {
		var err error
		if m, err = model.New(spec, rand.New(rand.NewPCG(0, 0))); err != nil {
			return nil, err
		}
		if c != nil {
			c.bySpec[key] = m
		}
	}
	if err := m.SetPrecision(p); err != nil {
		return nil, err
	}
	if err := m.SetParams(params); err != nil {
		return nil, err
	}
	return m, nil
}

// ModelTrainer is the built-in Trainer for Confide models: it builds the model the server
// ships, trains it with DP-SGD (when the task asks for noise) on the local training set,
// adds FedProx's proximal term when μ > 0, and keeps the client's privacy ledger when it
// has a budget: a task that would take ε over the budget, or that asks for training
// without DP-SGD noise, is refused before training, and the steps are charged before the
// trained parameters are returned. Close releases the ledger.
type ModelTrainer struct {
	cfg     ModelTrainerConfig
	account *PrivacyAccount
	noise   dpsgd.Noise
	rng     *rand.Rand
	// featured caches, by feature stage (its spec's JSON) and dataset, the stage's output
	// on Train and Test (without cfg.Featured).
	featured map[featuredKey]*data.Dataset
	source   *sourceData // what cfg.Source was read into
}

type featuredKey struct {
	stage string
	ds    *data.Dataset
}

var _ Trainer = (*ModelTrainer)(nil)

// NewModelTrainer opens the ledger (with a budget) and prepares the random sources.
func NewModelTrainer(cfg ModelTrainerConfig) (*ModelTrainer, error) {
	if (cfg.Train == nil || cfg.Train.N == 0) && cfg.Source == nil {
		return nil, errors.New("client: the trainer needs a non-empty training set, or a data source")
	}
	if cfg.Source != nil && (cfg.Train != nil || cfg.Test != nil || cfg.Featured != nil) {
		return nil, errors.New("client: give the trainer a data source or datasets, not both")
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	t := &ModelTrainer{cfg: cfg}
	if cfg.Seed != 0 {
		t.rng = rand.New(rand.NewPCG(cfg.Seed, 0x6c6f63616c))
		t.noise = dp.NewDeterministicNoise(cfg.Seed)
	} else {
		var err error
		if t.rng, err = dp.SecureRand(); err != nil {
			return nil, err
		}
		if t.noise, err = dp.NewSecureNoise(); err != nil {
			return nil, err
		}
	}
	var err error
	if t.account, err = OpenPrivacyAccount(cfg.Store, cfg.Budget, cfg.RaiseBudget, cfg.LedgerOptions...); err != nil {
		return nil, err
	}
	return t, nil
}

// Ledger returns the client's privacy ledger, nil without a budget.
func (t *ModelTrainer) Ledger() *dp.Ledger { return t.account.Ledger() }

// Close releases the privacy ledger (its file lock), if any.
func (t *ModelTrainer) Close() error { return t.account.Close() }

// Fit trains from global and returns the new parameters.
func (t *ModelTrainer) Fit(ctx context.Context, global []float64, cfg FitConfig) (FitResult, error) {
	ds, _, err := t.localData(ctx, cfg.Dataset)
	if err != nil {
		return FitResult{}, err
	}
	m, err := t.cfg.Models.model(cfg.Model, global, t.cfg.Precision)
	if err != nil {
		return FitResult{}, err
	}
	feats, err := t.features(ctx, m, ds)
	if err != nil {
		return FitResult{}, err
	}
	tc := TrainConfig(cfg, ds.N, t.rng.Uint64())
	cfg.Epochs = tc.Epochs // 1 under the server's DP-SGD schedule
	dp := tc.DP != nil
	if err := t.account.Admit(cfg.DP, tc.PlannedDPSteps(ds.N, cfg.Epochs)); err != nil {
		return FitResult{}, err
	}
	tr, err := train.New(m, tc)
	if err != nil {
		return FitResult{}, fmt.Errorf("training config from the server: %w", err)
	}
	if feats != nil {
		if err := tr.UseFeatures(ds, feats); err != nil {
			return FitResult{}, err
		}
	}
	if cfg.ProximalMu > 0 {
		tr.Opt = &proximal{base: tr.Opt, mu: cfg.ProximalMu, anchor: global}
	}
	if cfg.Correction != nil {
		if len(cfg.Correction) != len(global) {
			return FitResult{}, fmt.Errorf("SCAFFOLD correction of %d values for a model of %d", len(cfg.Correction), len(global))
		}
		tr.Opt = &corrected{base: tr.Opt, corr: cfg.Correction}
	}
	if dp {
		if err := tr.EnableDP(t.noise, t.rng); err != nil {
			return FitResult{}, err
		}
	}
	stepsPerEpoch := (ds.N + cfg.BatchSize - 1) / cfg.BatchSize
	if tc.DP != nil && tc.DP.Steps > 0 {
		stepsPerEpoch = tc.DP.Steps
	}
	tr.SetTotalSteps(stepsPerEpoch * cfg.Epochs)
	var last train.Metrics
	for e := 0; e < cfg.Epochs; e++ {
		if last, err = tr.Epoch(ctx, ds, nil); err != nil {
			return FitResult{}, err
		}
	}
	metrics := map[string]float64{"loss": last.Loss, "accuracy": last.Accuracy}
	if dp && t.account.Ledger() != nil {
		// Charge before the parameters leave this function (a task whose deadline passed
		// is dropped uncharged: the server would refuse its result).
		if metrics["epsilon"], err = t.account.Charge(ctx, tr.DPSteps()...); err != nil {
			return FitResult{}, err
		}
	}
	return FitResult{Params: m.Params, NumExamples: ds.N, Metrics: metrics, Steps: stepsPerEpoch * cfg.Epochs}, nil
}

// Evaluate runs params on the local test set. It never evaluates on the training data:
// a loss on training examples under parameters the server chose is what loss-based
// membership inference needs, so a trainer without a test set refuses.
func (t *ModelTrainer) Evaluate(ctx context.Context, params []float64, cfg EvaluateConfig) (EvaluateResult, error) {
	_, ds, err := t.localData(ctx, cfg.Dataset)
	if err != nil {
		return EvaluateResult{}, err
	}
	if ds == nil || ds.N == 0 {
		return EvaluateResult{}, TaskError(errors.New("this client has no local test set and never evaluates on its training data"))
	}
	m, err := t.cfg.Models.model(cfg.Model, params, t.cfg.Precision)
	if err != nil {
		return EvaluateResult{}, err
	}
	feats, err := t.features(ctx, m, ds)
	if err != nil {
		return EvaluateResult{}, err
	}
	var r train.Metrics
	if feats != nil {
		r, err = train.EvaluateFeatures(m, feats, cfg.BatchSize)
	} else {
		r, err = train.Evaluate(m, ds, cfg.BatchSize)
	}
	if err != nil {
		return EvaluateResult{}, err
	}
	return EvaluateResult{NumExamples: r.Examples, Loss: r.Loss, Metrics: map[string]float64{"accuracy": r.Accuracy}}, nil
}

// features checks that m can read ds, the local training or test set, and returns the
// output of m's feature stage on ds (nil when m has none): ds itself when the caller
// computed it (Featured), else computed on the first task that needs it and kept.
func (t *ModelTrainer) features(ctx context.Context, m *model.Model, ds *data.Dataset) (*data.Dataset, error) {
	fs := m.Spec.Features
	if want := t.cfg.Featured; want != nil {
		if fs == nil || !bytes.Equal(featureKey(fs), featureKey(want)) {
			return nil, fmt.Errorf("client: the local data holds the features of %s, but the task's model has %s: the server's model does not match this client's data", want, describeFeatures(fs))
		}
		return ds, train.CheckFeatured(m, ds)
	}
	if err := train.CheckCompatible(m, ds); err != nil {
		return nil, err
	}
	if fs == nil {
		return nil, nil
	}
	key := featuredKey{stage: string(featureKey(fs)), ds: ds}
	if c, ok := t.featured[key]; ok {
		return c, nil
	}
	c, err := train.Featurize(ctx, m.Features(), ds, nil)
	if err != nil {
		return nil, err
	}
	if t.featured == nil {
		t.featured = map[featuredKey]*data.Dataset{}
	}
	for k := range t.featured {
		if k.ds == ds {
			delete(t.featured, k) // a new stage replaces the old one's features of ds
		}
	}
	t.featured[key] = c
	return c, nil
}

func featureKey(f *model.FeatureSpec) []byte {
	b, _ := json.Marshal(f) // a FeatureSpec always marshals
	return b
}

func describeFeatures(f *model.FeatureSpec) string {
	if f == nil {
		return "no feature stage"
	}
	return f.String()
}

// proximal adds FedProx's proximal gradient μ(w − w_global) (Li et al. 2020, Eq. 2) before
// the wrapped optimizer's step. Under DP-SGD it is added after the noise: it does not depend
// on the data, so it costs no privacy.
type proximal struct {
	base   model.Optimizer
	mu     float64
	anchor []float64
}

func (p *proximal) Step(params, grads []float64) {
	for i := range grads {
		grads[i] += p.mu * (params[i] - p.anchor[i])
	}
	p.base.Step(params, grads)
}
func (p *proximal) SetLR(lr float64) { p.base.SetLR(lr) }
func (p *proximal) LR() float64      { return p.base.LR() }
