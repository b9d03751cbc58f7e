package train

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
)

// The feature cache returns what Featurize computes, reads it back on the next run (here a
// planted file proves the read), and misses when the dataset or the feature spec changes.
func TestFeatureCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ds := bars(50, 1)
	spec := model.Spec{Type: model.TypeMLP, Input: 64, Output: 2,
		Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}}
	trainer := func(s model.Spec) *Trainer {
		m, err := model.New(s, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(m, Config{Epochs: 1, BatchSize: 10, Optimizer: model.OptimizerConfig{LR: 0.1}})
		if err != nil {
			t.Fatal(err)
		}
		tr.SetFeatureCache(dir)
		return tr
	}
	files := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.f64"))
		return m
	}
	tr := trainer(spec)
	want, err := Featurize(ctx, tr.Model.Features(), ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tr.Featurize(ctx, ds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.X, want.X) || len(files()) != 1 {
		t.Fatalf("first run: features differ or %d cache files", len(files()))
	}
	// Plant values of the right layout: the next trainer must read them, not compute.
	planted, err := readFeatures(files()[0], ds, got.Dim)
	if err != nil {
		t.Fatal(err)
	}
	for i := range planted.X {
		planted.X[i] = float64(i)
	}
	if err := writeFeatures(files()[0], planted); err != nil {
		t.Fatal(err)
	}
	var reported int
	again, err := trainer(spec).Featurize(ctx, ds, func(n int) { reported += n })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.X, planted.X) || reported != ds.N {
		t.Fatalf("second run did not read the cache (progress %d of %d)", reported, ds.N)
	}
	// A truncated file is computed again.
	if err := os.Truncate(files()[0], 100); err != nil {
		t.Fatal(err)
	}
	if got, err := trainer(spec).Featurize(ctx, ds, nil); err != nil || !slices.Equal(got.X, want.X) {
		t.Fatalf("after truncation: %v, features equal %v", err, err == nil && slices.Equal(got.X, want.X))
	}
	// Another dataset, another spec: other keys.
	if _, err := trainer(spec).Featurize(ctx, bars(50, 2), nil); err != nil {
		t.Fatal(err)
	}
	other := spec
	other.Features = &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 2, Shape: []int{8, 8}}
	if _, err := trainer(other).Featurize(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(files()); n != 3 {
		t.Fatalf("%d cache files, want 3 (one per dataset and spec)", n)
	}
}
