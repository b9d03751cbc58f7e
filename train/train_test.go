package train

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// blobs returns a linearly separable 3-class problem: Gaussian clusters around 3 centres.
func blobs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	centres := [][2]float64{{2, 0}, {-1, 1.7}, {-1, -1.7}}
	ds := &data.Dataset{Name: "blobs", N: n, Dim: 2, X: make([]float64, 2*n), Y: make([]int32, n), NumClasses: 3}
	for i := 0; i < n; i++ {
		c := rng.IntN(3)
		ds.Y[i] = int32(c)
		ds.X[2*i] = centres[c][0] + 0.5*rng.NormFloat64()
		ds.X[2*i+1] = centres[c][1] + 0.5*rng.NormFloat64()
	}
	return ds
}

type seededNoise struct{ r *rand.Rand }

func (s seededNoise) AddGaussian(dst []float64, std float64) {
	for i := range dst {
		dst[i] += std * s.r.NormFloat64()
	}
}

func newModel(t *testing.T) *model.Model {
	m, err := model.New(model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{16}, Output: 3, Activation: "tanh"}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFitLearnsAndIsDeterministic(t *testing.T) {
	trainSet, testSet := blobs(2000, 1), blobs(500, 2)
	run := func() []EpochReport {
		tr, err := New(newModel(t), Config{Epochs: 3, BatchSize: 32, Optimizer: model.OptimizerConfig{LR: 0.1, Momentum: 0.9}, Schedule: "cosine", Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	a, b := run(), run()
	if acc := a[2].Test.Accuracy; acc < 0.95 {
		t.Fatalf("test accuracy %v < 0.95", acc)
	}
	for i := range a {
		if a[i].Test.Loss != b[i].Test.Loss || a[i].Train.Loss != b[i].Train.Loss {
			t.Fatalf("epoch %d differs between runs with the same seed", i+1)
		}
	}
}

func TestDPFitLearnsAndAccounts(t *testing.T) {
	trainSet, testSet := blobs(4000, 3), blobs(500, 4)
	cfg := Config{Epochs: 4, BatchSize: 100, Optimizer: model.OptimizerConfig{LR: 0.5, Momentum: 0.5}, Seed: 7,
		DP: &DPConfig{NoiseMultiplier: 1.0, MaxGradNorm: 1}}
	tr, err := New(newModel(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil); err == nil {
		t.Fatal("DP training ran without EnableDP")
	}
	if err := tr.EnableDP(seededNoise{rand.New(rand.NewPCG(5, 5))}, rand.New(rand.NewPCG(6, 6))); err != nil {
		t.Fatal(err)
	}
	rep, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc := rep[len(rep)-1].Test.Accuracy; acc < 0.9 {
		t.Fatalf("DP test accuracy %v < 0.9", acc)
	}
	steps := tr.DPSteps()
	want := cfg.PlannedDPSteps(trainSet.N, cfg.Epochs)
	if len(steps) != 1 || steps[0] != want || want.Steps != 160 || want.SampleRate != 0.025 {
		t.Fatalf("accounting history %+v, planned %+v", steps, want)
	}
}

func TestConfigValidation(t *testing.T) {
	good := Config{Epochs: 1, BatchSize: 8, Optimizer: model.OptimizerConfig{LR: 0.1}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"epochs":   {Epochs: 0, BatchSize: 8, Optimizer: good.Optimizer},
		"batch":    {Epochs: 1, BatchSize: 0, Optimizer: good.Optimizer},
		"schedule": {Epochs: 1, BatchSize: 8, Optimizer: good.Optimizer, Schedule: "linear"},
		"lr":       {Epochs: 1, BatchSize: 8},
		"dp clip":  {Epochs: 1, BatchSize: 8, Optimizer: good.Optimizer, DP: &DPConfig{NoiseMultiplier: 1}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}

// bars is data.Bars from seed.
func bars(n int, seed uint64) *data.Dataset { return data.Bars(n, rand.New(rand.NewPCG(seed, 2))) }

// TestFitWithFeatureStage: a model with a scattering stage trains (under DP-SGD, with
// per-layer clipping) on features computed once per dataset — Featurize returns the same
// cached copy every time — and those features are what the model computes from raw input.
func TestFitWithFeatureStage(t *testing.T) {
	trainSet, testSet := bars(600, 1), bars(200, 2)
	spec := model.Spec{Type: model.TypeMLP, Input: 64, Hidden: []int{8}, Output: 2, Activation: "tanh",
		Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: model.FeatureNormGroup, Groups: 5}}
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Epochs: 8, BatchSize: 50, Optimizer: model.OptimizerConfig{LR: 1, Momentum: 0.9}, Seed: 3,
		DP: &DPConfig{NoiseMultiplier: 0.3, MaxGradNorm: 1, Clipping: "per-layer"}}
	tr, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.EnableDP(seededNoise{rand.New(rand.NewPCG(5, 5))}, rand.New(rand.NewPCG(6, 6))); err != nil {
		t.Fatal(err)
	}
	calls := 0
	f, err := tr.Featurize(context.Background(), trainSet, func(n int) { calls += n })
	if err != nil {
		t.Fatal(err)
	}
	if calls != trainSet.N || f.N != trainSet.N || f.Dim != m.Features().OutDim() {
		t.Fatalf("featurized %d of %d examples into width %d", calls, trainSet.N, f.Dim)
	}
	if again, _ := tr.Featurize(context.Background(), trainSet, nil); again != f {
		t.Error("Featurize recomputed a dataset it had transformed")
	}
	want := make([]float64, f.Dim)
	m.Features().Transform(want, trainSet.X[5*64:6*64], 1)
	for k, v := range want {
		if f.X[5*f.Dim+k] != v {
			t.Fatalf("cached feature %d of example 5 differs from the model's transform", k)
		}
	}
	rep, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acc := rep[len(rep)-1].Test.Accuracy; acc < 0.95 {
		t.Errorf("test accuracy %v < 0.95 on bars", acc)
	}
	// Evaluating on raw images (the model transforms them itself) agrees with Fit's report.
	raw, err := Evaluate(m, testSet, 64)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Accuracy != rep[len(rep)-1].Test.Accuracy {
		t.Errorf("raw-input accuracy %v, Fit reported %v", raw.Accuracy, rep[len(rep)-1].Test.Accuracy)
	}
	if _, err := tr.Featurize(context.Background(), blobs(10, 1), nil); err == nil {
		t.Error("a dataset of the wrong width was featurized")
	}
}

// TestSharedFeatures: features computed once by the package's Featurize and handed to a
// trainer (UseFeatures, also on a dataset that holds them itself) train exactly as the
// trainer's own; EvaluateFeatures agrees with Evaluate on raw inputs; mismatched widths are
// errors.
func TestSharedFeatures(t *testing.T) {
	ctx := context.Background()
	trainSet, testSet := bars(200, 1), bars(100, 2)
	spec := model.Spec{Type: model.TypeMLP, Input: 64, Output: 2,
		Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}}
	cfg := Config{Epochs: 2, BatchSize: 20, Optimizer: model.OptimizerConfig{LR: 0.5}, Seed: 3}
	fit := func(use func(tr *Trainer) (*data.Dataset, error)) *model.Model {
		m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := use(tr)
		if err != nil {
			t.Fatal(err)
		}
		for range cfg.Epochs {
			if _, err := tr.Epoch(ctx, ds, nil); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	own := fit(func(*Trainer) (*data.Dataset, error) { return trainSet, nil })
	f, err := Featurize(ctx, own.Features(), trainSet, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, use := range map[string]func(*Trainer) (*data.Dataset, error){
		"raw_and_features": func(tr *Trainer) (*data.Dataset, error) { return trainSet, tr.UseFeatures(trainSet, f) },
		"features_only":    func(tr *Trainer) (*data.Dataset, error) { return f, tr.UseFeatures(f, f) },
	} {
		if m := fit(use); !slices.Equal(m.Params, own.Params) {
			t.Errorf("%s: training on shared features differs from the trainer's own", name)
		}
	}
	ft, err := Featurize(ctx, own.Features(), testSet, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := EvaluateFeatures(own, ft, 32)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Evaluate(own, testSet, 32)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(a.Loss-b.Loss) > 1e-12 || a.Accuracy != b.Accuracy {
		t.Errorf("on features %+v, on raw images %+v", a, b)
	}
	tr, err := New(own, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.UseFeatures(trainSet, trainSet); err == nil {
		t.Error("raw images accepted as features")
	}
	if err := tr.UseFeatures(testSet, f); err == nil {
		t.Error("features of another number of examples accepted")
	}
	if _, err := EvaluateFeatures(own, testSet, 32); err == nil {
		t.Error("EvaluateFeatures accepted raw images")
	}
}

// Featurize refuses, before allocating, features that would not fit the memory budget.
func TestFeaturizeRefusesOversizedFeatures(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 64, Output: 2,
		Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}}
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer func(b float64) { MaxFeatureBytes = b }(MaxFeatureBytes)
	MaxFeatureBytes = 1e6
	ds := bars(10_000, 1) // 10,000 × 80 features × 8 bytes = 6.4 MB
	_, err = Featurize(context.Background(), m.Features(), ds, nil)
	if err == nil || !strings.Contains(err.Error(), "lower the feature stage's l or j") {
		t.Fatalf("got %v, want a refusal naming the memory needed and the fix", err)
	}
}
