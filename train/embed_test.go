package train

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// shops returns a table of a numeric feature and an embedded column of 12 shops (feature 1,
// a category index, −1 for a few missing): the class is the shop's group (shop mod 3), which
// no ordering of the indices separates linearly, flipped by the numeric feature's sign.
func shops(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	ds := &data.Dataset{Name: "shops", N: n, Dim: 2, X: make([]float64, 2*n), Y: make([]int32, n), NumClasses: 3,
		Embedded: []data.EmbeddedColumn{{Name: "shop", Column: 1, Categories: 12, Dim: 4}}}
	for i := range n {
		shop := rng.IntN(12)
		x := rng.NormFloat64()
		y := shop % 3
		if x < 0 {
			y = (y + 1) % 3
		}
		ds.X[2*i], ds.X[2*i+1], ds.Y[i] = x, float64(shop), int32(y)
	}
	return ds
}

func TestFitWithEmbeddedColumnLearnsUnderDP(t *testing.T) {
	trainSet, testSet := shops(4000, 1), shops(600, 2)
	spec, err := FitEmbeddings(model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{32}, Output: 3}, trainSet)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Embeddings) != 1 || spec.Embeddings[0] != model.EmbeddingSpec(trainSet.Embedded[0]) {
		t.Fatalf("FitEmbeddings gave %+v, want the dataset's shop column", spec.Embeddings)
	}
	for _, dp := range []bool{false, true} {
		t.Run(map[bool]string{false: "sgd", true: "dp-sgd"}[dp], func(t *testing.T) {
			m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Epochs: 6, BatchSize: 100, Optimizer: model.OptimizerConfig{LR: 0.3, Momentum: 0.5}, Seed: 7}
			if dp {
				cfg.DP = &DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 1}
			}
			tr, err := New(m, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if dp {
				if err := tr.EnableDP(seededNoise{rand.New(rand.NewPCG(5, 5))}, rand.New(rand.NewPCG(6, 6))); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := tr.Fit(context.Background(), trainSet, testSet, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if acc := rep[len(rep)-1].Test.Accuracy; acc < 0.9 {
				t.Fatalf("test accuracy %v < 0.9", acc)
			}
		})
	}
}

func TestCheckCompatibleEmbeddings(t *testing.T) {
	ds := shops(10, 3)
	plain := model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{4}, Output: 3}
	other := plain
	other.Embeddings = []model.EmbeddingSpec{{Column: 1, Categories: 12, Dim: 5}}
	blobSpec := plain
	blobSpec.Embeddings = []model.EmbeddingSpec{{Column: 1, Categories: 3, Dim: 2}}
	for _, tc := range []struct {
		name string
		spec model.Spec
		ds   *data.Dataset
		want string
	}{
		{"indices read as numbers", plain, ds, "dataset shops embeds 1 categorical columns (shop: a category index in feature 1), which the model reads as numbers"},
		{"other dims", other, ds, "differ from the dataset's embedded columns"},
		{"dataset without embedded columns", blobSpec, blobs(10, 1), "the dataset embeds none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.New(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckCompatible(m, tc.ds); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
