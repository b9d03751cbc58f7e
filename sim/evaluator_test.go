package sim

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// TestEvaluatorShardsSmallTestSets: the central evaluation uses every worker even when the
// test set is smaller than one batch, and sharding does not change its result.
func TestEvaluatorShardsSmallTestSets(t *testing.T) {
	const n = 600
	rng := rand.New(rand.NewPCG(1, 2))
	test := &data.Dataset{Name: "blobs", N: n, Dim: 4, X: make([]float64, 4*n), Y: make([]int32, n), NumClasses: 3}
	for i := range n {
		test.Y[i] = int32(i % 3)
		for j := range 4 {
			test.X[4*i+j] = float64(test.Y[i]) + rng.NormFloat64()
		}
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{8}, Output: 3}
	m, err := model.New(spec, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]float64
	for _, workers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			e, err := newEvaluator(spec, test, Config{Workers: workers, Rounds: 1, Evaluation: EvaluationConfig{Every: 1, BatchSize: 1000}})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.models) != workers {
				t.Fatalf("%d evaluation shards for %d workers and %d test examples (batch 1000), want %d", len(e.models), workers, n, workers)
			}
			got, err := e.central(1, m.Params)
			if err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = got
			}
			for k, v := range want {
				if d := got[k] - v; d > 1e-9 || d < -1e-9 {
					t.Errorf("%s = %v with %d shards, %v with one", k, got[k], workers, v)
				}
			}
		})
	}
}
