package client_test

import (
	"slices"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/model"
)

// TestSharedModelsTrainLikeFreshModels: trainers that borrow their model from a shared
// Models (as the simulator's workers do) produce exactly the parameters and evaluations of
// trainers that build their own, and the second trainer reuses the first one's model.
func TestSharedModelsTrainLikeFreshModels(t *testing.T) {
	shared := client.NewModels()
	global := zeros()
	cfg := client.FitConfig{Round: 1, Model: blobSpec, Epochs: 2, BatchSize: 10, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1},
		DP: client.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, Delta: 1e-5}}
	run := func(models *client.Models, seed uint64) (params []float64, first *float64, loss float64) {
		ds := blobs(100, seed)
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: ds, Test: ds, Seed: seed, Models: models})
		if err != nil {
			t.Fatal(err)
		}
		fr, err := tr.Fit(t.Context(), global, cfg)
		if err != nil {
			t.Fatal(err)
		}
		first = &fr.Params[0]
		params = slices.Clone(fr.Params)
		er, err := tr.Evaluate(t.Context(), params, client.EvaluateConfig{Model: blobSpec, BatchSize: 32})
		if err != nil {
			t.Fatal(err)
		}
		return params, first, er.Loss
	}
	for _, seed := range []uint64{3, 4} {
		want, _, wantLoss := run(nil, seed)
		got, _, gotLoss := run(shared, seed)
		if !slices.Equal(got, want) || gotLoss != wantLoss {
			t.Fatalf("seed %d: shared model trained differently (loss %v vs %v)", seed, gotLoss, wantLoss)
		}
	}
	_, a, _ := run(shared, 5)
	_, b, _ := run(shared, 6)
	if a != b {
		t.Fatal("the second trainer built a new model instead of reusing the shared one")
	}
	if !slices.Equal(global, zeros()) {
		t.Fatal("Fit modified the global parameters")
	}
}
