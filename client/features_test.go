package client_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// barsSpec is a linear classifier on the scattering features of data.Bars' 8×8 images.
var barsSpec = model.Spec{Type: model.TypeMLP, Input: 64, Output: 2,
	Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: model.FeatureNormGroup, Groups: 1}}

func barsFit() (global []float64, cfg client.FitConfig) {
	m, err := model.New(barsSpec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		panic(err)
	}
	return m.Params, client.FitConfig{Round: 1, Model: barsSpec, Epochs: 5, BatchSize: 20, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 1, Momentum: 0.5},
		DP: client.DPConfig{NoiseMultiplier: 0.5, MaxGradNorm: 1, Delta: 1e-5}}
}

// fitAndEvaluate runs a fit task and evaluates its parameters on the local data.
func fitAndEvaluate(t *testing.T, tr *client.ModelTrainer, global []float64, cfg client.FitConfig) ([]float64, client.EvaluateResult) {
	t.Helper()
	fr, err := tr.Fit(t.Context(), global, cfg)
	if err != nil {
		t.Fatal(err)
	}
	er, err := tr.Evaluate(t.Context(), fr.Params, client.EvaluateConfig{Model: barsSpec, BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(fr.Params), er
}

// TestModelTrainerFeaturizesOnce: a trainer whose tasks' model has a feature stage computes
// it on its local data on the first task and reuses it: a second task trains the same after
// the raw images were overwritten as after they were left alone.
func TestModelTrainerFeaturizesOnce(t *testing.T) {
	global, cfg := barsFit()
	secondFit := func(corrupt bool) []float64 {
		local := data.Bars(120, rand.New(rand.NewPCG(4, 4)))
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: local, Test: local, Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Fit(t.Context(), global, cfg); err != nil {
			t.Fatal(err)
		}
		if corrupt {
			clear(local.X)
		}
		params, er := fitAndEvaluate(t, tr, global, cfg)
		if er.Metrics["accuracy"] < 0.8 {
			t.Errorf("local accuracy %v after two tasks, want ≥ 0.8", er.Metrics["accuracy"])
		}
		return params
	}
	if a, b := secondFit(false), secondFit(true); !slices.Equal(a, b) {
		t.Fatal("the second task recomputed the features from the (overwritten) raw images")
	}
}

// TestModelTrainerOnPrecomputedFeatures: given its rows of features computed elsewhere
// (ModelTrainerConfig.Featured, as the simulator does), a trainer trains and evaluates as
// one given the raw images, and refuses a task whose model has another feature stage.
func TestModelTrainerOnPrecomputedFeatures(t *testing.T) {
	global, cfg := barsFit()
	local := data.Bars(120, rand.New(rand.NewPCG(4, 4)))
	m, err := model.New(barsSpec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	feats, err := train.Featurize(t.Context(), m.Features(), local, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := func(c client.ModelTrainerConfig) ([]float64, float64) {
		c.Seed = 9
		tr, err := client.NewModelTrainer(c)
		if err != nil {
			t.Fatal(err)
		}
		params, er := fitAndEvaluate(t, tr, global, cfg)
		return params, er.Loss
	}
	rawParams, rawLoss := run(client.ModelTrainerConfig{Train: local, Test: local})
	fs := *barsSpec.Features
	featParams, featLoss := run(client.ModelTrainerConfig{Train: feats, Test: feats, Featured: &fs})
	if !slices.Equal(rawParams, featParams) || rawLoss != featLoss {
		t.Fatalf("training on precomputed features differs (loss %v vs %v on raw images)", featLoss, rawLoss)
	}
	other := fs
	other.Groups = 5
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: feats, Featured: &other, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fit(t.Context(), global, cfg); err == nil {
		t.Fatal("a task with another feature stage than the data's was accepted")
	}
}
