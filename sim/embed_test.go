package sim_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// shopsCSV writes n rows of a table whose label is its shop's group (shop mod 3), flipped
// by the sign of x: a shop's index carries no order a linear model could use, its learned
// embedding does.
func shopsCSV(t *testing.T, dir string, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 9))
	var b strings.Builder
	b.WriteString("shop,x,label\n")
	for range n {
		shop, x := rng.IntN(12), rng.NormFloat64()
		y := shop % 3
		if x < 0 {
			y = (y + 1) % 3
		}
		fmt.Fprintf(&b, "s%d,%.4f,c%d\n", shop, x, y)
	}
	if err := os.WriteFile(filepath.Join(dir, "shops.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSimEmbedsCategoricalColumns: an mlp spec without embeddings, on a dataset spec with
// an embedded column, gets the schema's embedding table (12 shops × 4) and the federation
// learns what the shop means.
func TestSimEmbedsCategoricalColumns(t *testing.T) {
	dir := t.TempDir()
	shopsCSV(t, dir, 3000)
	spec := filepath.Join(dir, "shops.yaml")
	if err := os.WriteFile(spec, []byte(`format: csv
path: shops.csv
test_fraction: 0.2
label: {column: label}
columns:
  - {name: shop, type: categorical, encoding: embedding, dim: 4}
  - {name: x, mean: 0, std: 1}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := sim.Config{
		Name: "shops", Seed: 3, Rounds: 6, Clients: 4, ClientsPerRound: 4, Partition: "iid",
		Dataset:    sim.DatasetConfig{Name: spec},
		Model:      model.Spec{Type: model.TypeMLP, Hidden: []int{16}},
		Training:   sim.TrainingConfig{Epochs: 2, BatchSize: 16, LR: 0.1},
		ResultsDir: "-",
	}
	rep, err := sim.Run(t.Context(), c, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The table (12×4), then Linear(4 + 1 → 16) and Linear(16 → 3).
	if want := 12*4 + 5*16 + 16 + 16*3 + 3; rep.Summary.Parameters != want {
		t.Errorf("the model has %d parameters, want %d (with the shop embedding)", rep.Summary.Parameters, want)
	}
	if acc := rep.Summary.FinalAccuracy; acc == nil || *acc < 0.9 {
		t.Fatalf("final accuracy %v, want ≥ 0.9", deref(acc))
	}
	t.Logf("final accuracy %.3f", *rep.Summary.FinalAccuracy)
}
