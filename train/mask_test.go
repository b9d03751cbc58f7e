package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
)

// A pruned model keeps its zeros through training with every optimizer, with and without
// DP-SGD (whose noise reaches every coordinate), and still learns with the rest.
func TestTrainingKeepsPrunedParametersZero(t *testing.T) {
	trainSet, testSet := blobs(600, 1), blobs(300, 2)
	for _, opt := range []model.OptimizerConfig{{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 1e-3}, {Name: "adam", LR: 0.01}} {
		for _, useDP := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dp=%v", opt.Name, useDP), func(t *testing.T) {
				m := newModel(t)
				if err := m.Prune(0.5, model.PruneGlobal); err != nil {
					t.Fatal(err)
				}
				// Pruned parameters that hold something (a global model with noise) are
				// zeroed before the first step.
				for i := range m.Params {
					if m.Spec.Mask.IsPruned(i) {
						m.Params[i] = 0.3
					}
				}
				before := slices.Clone(m.Params)
				cfg := Config{Epochs: 3, BatchSize: 32, Optimizer: opt, Seed: 3}
				if useDP {
					cfg.DP = &DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1}
				}
				tr, err := New(m, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if useDP {
					if err := tr.EnableDP(seededNoise{rand.New(rand.NewPCG(5, 5))}, rand.New(rand.NewPCG(6, 6))); err != nil {
						t.Fatal(err)
					}
				}
				rep, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				moved := 0
				for i, v := range m.Params {
					if m.Spec.Mask.IsPruned(i) {
						if v != 0 {
							t.Fatalf("pruned parameter %d is %v after training", i, v)
						}
					} else if v != before[i] {
						moved++
					}
				}
				if moved == 0 {
					t.Fatal("no kept parameter moved")
				}
				if acc := rep[len(rep)-1].Test.Accuracy; acc < 0.85 {
					t.Fatalf("test accuracy %v < 0.85 with half the weights pruned", acc)
				}
			})
		}
	}
}
