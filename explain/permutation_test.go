package explain

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// ruleModel is a linear classifier whose class-1 logit is 10·(x_0 − 0.5): it reads
// feature 0 and ignores the others.
func ruleModel(t *testing.T, dim int) *model.Model {
	m := newModel(t, model.Spec{Type: model.TypeMLP, Input: dim, Hidden: []int{}, Output: 2}, 1)
	clear(m.Params)
	m.Params[0*2+1] = 10 // W[0][1]; Linear's weights are In×Out row-major, then the bias
	m.Params[dim*2+1] = -5
	return m
}

// ruleData labels n uniform points in [0,1]^dim by x_0 > 0.5.
func ruleData(n, dim int, rng *rand.Rand) *data.Dataset {
	ds := &data.Dataset{Name: "rule", N: n, Dim: dim, X: make([]float64, n*dim), Y: make([]int32, n), NumClasses: 2}
	for i := range n {
		for j := range dim {
			ds.X[i*dim+j] = rng.Float64()
		}
		if ds.X[i*dim] > 0.5 {
			ds.Y[i] = 1
		}
	}
	return ds
}

func TestPermutationImportanceFindsTheFeatureUsed(t *testing.T) {
	const dim = 4
	m := ruleModel(t, dim)
	ds := ruleData(400, dim, rand.New(rand.NewPCG(1, 2)))
	x := slices.Clone(ds.X)
	res, err := PermutationImportance(context.Background(), m, ds, PermutationOptions{Rand: rand.New(rand.NewPCG(3, 4)), Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(x, ds.X) {
		t.Fatal("the dataset was modified")
	}
	if res.Accuracy != 1 || len(res.Importances) != dim {
		t.Fatalf("accuracy %g, %d importances", res.Accuracy, len(res.Importances))
	}
	// Shuffling x_0 labels about half the examples at random: accuracy drops by about 0.5.
	if imp := res.Importances[0]; imp.AccuracyDrop < 0.4 || imp.LossIncrease <= 0 || imp.AccuracyDropStd == 0 {
		t.Fatalf("feature 0: %+v", imp)
	}
	for _, imp := range res.Importances[1:] {
		if imp.AccuracyDrop != 0 || imp.LossIncrease != 0 {
			t.Fatalf("unused feature %d: %+v", imp.Group, imp)
		}
	}
	// Seeded: the same permutations give the same result.
	again, err := PermutationImportance(context.Background(), m, ds, PermutationOptions{Rand: rand.New(rand.NewPCG(3, 4)), Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	if again.Importances[0].LossIncrease != res.Importances[0].LossIncrease {
		t.Fatalf("rerun with the same seed: loss increase %g, first %g", again.Importances[0].LossIncrease, res.Importances[0].LossIncrease)
	}
}

func TestPatchGroups(t *testing.T) {
	g, err := PatchGroups(3, 5, 2)
	if err != nil {
		t.Fatal(err)
	}
	// 2×3 patches: rows {0,1},{2}; columns {0,1},{2,3},{4}.
	want := [][]int{{0, 1, 5, 6}, {2, 3, 7, 8}, {4, 9}, {10, 11}, {12, 13}, {14}}
	if len(g) != len(want) {
		t.Fatalf("%d groups, want %d", len(g), len(want))
	}
	for i := range want {
		if !slices.Equal(g[i], want[i]) {
			t.Fatalf("group %d = %v, want %v", i, g[i], want[i])
		}
	}
	if _, err := PatchGroups(28, 28, 0); err == nil {
		t.Fatal("patch 0: no error")
	}
}

func TestPermutationImportanceRejects(t *testing.T) {
	m := ruleModel(t, 4)
	ds := ruleData(10, 4, rand.New(rand.NewPCG(1, 2)))
	rng := rand.New(rand.NewPCG(1, 1))
	text := &data.Dataset{N: 2, Tokens: make([]int32, 4), SeqLen: 2, Lengths: []int32{2, 2}, Y: []int32{0, 1}, NumClasses: 2}
	cases := map[string]struct {
		ds *data.Dataset
		o  PermutationOptions
	}{
		"text":        {text, PermutationOptions{Rand: rng}},
		"no_rand":     {ds, PermutationOptions{}},
		"bad_feature": {ds, PermutationOptions{Rand: rng, Groups: [][]int{{4}}}},
		"wrong_dim":   {ruleData(10, 3, rng), PermutationOptions{Rand: rng}},
	}
	for name, c := range cases {
		if _, err := PermutationImportance(context.Background(), m, c.ds, c.o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := PermutationImportance(context.Background(), m, text, PermutationOptions{Rand: rng}); !errors.Is(err, ErrNotDense) {
		t.Errorf("text: %v, want ErrNotDense", err)
	}
}
