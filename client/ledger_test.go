package client_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
)

func dpFit(sigma float64) client.FitConfig {
	return client.FitConfig{Round: 1, Model: blobSpec, Epochs: 1, BatchSize: 20, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1},
		DP: client.DPConfig{NoiseMultiplier: sigma, MaxGradNorm: 1, Delta: 1e-5}}
}

// TestModelTrainerLedgerInAStateDirectory: a deployed client's trainer keeps the dp.Ledger
// file in its DirStore, locked while the trainer is open, pinned to its budget, raised only
// on request; the charged ε is what the file says.
func TestModelTrainerLedgerInAStateDirectory(t *testing.T) {
	dir := t.TempDir()
	store, err := client.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	budget := dp.Budget{Epsilon: 3, Delta: 1e-5}
	newTrainer := func(b dp.Budget, raise bool) (*client.ModelTrainer, error) {
		return client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, 1), Budget: &b, RaiseBudget: raise, Store: store, Seed: 5})
	}
	tr, err := newTrainer(budget, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Fit(t.Context(), zeros(), dpFit(2))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, client.LedgerName)
	snap, err := dp.ReadLedger(p)
	if err != nil || snap.Charges != 1 || snap.Budget != budget || len(snap.History) != 1 {
		t.Fatalf("ledger file after one fit: %+v, %v", snap, err)
	}
	if l := tr.Ledger(); l.Where() != p {
		t.Errorf("ledger at %s, want %s", l.Where(), p)
	}
	if eps, _ := tr.Ledger().Spent(); eps != res.Metrics["epsilon"] || !(eps > 0) {
		t.Errorf("ledger ε %v, fit reported %v", eps, res.Metrics["epsilon"])
	}
	// A second client process on the same state directory is kept out.
	if _, err := newTrainer(budget, false); !errors.Is(err, dp.ErrLedgerInUse) || !strings.Contains(err.Error(), p) {
		t.Fatalf("second trainer on the state directory: %v, want ErrLedgerInUse naming %s", err, p)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	bigger := dp.Budget{Epsilon: 5, Delta: 1e-5}
	if _, err := newTrainer(bigger, false); !errors.Is(err, dp.ErrBudgetMismatch) {
		t.Fatalf("restart with a larger budget: %v, want a refusal", err)
	}
	tr, err = newTrainer(bigger, true)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if h := tr.Ledger().BudgetHistory(); len(h) != 2 || h[1].Budget != bigger {
		t.Errorf("budget history after the raise: %+v", h)
	}
}

// TestModelTrainerWithoutBudget: a trainer without a budget (confide client --no-dp) keeps
// no ledger, trains tasks with or without DP-SGD noise and reports no ε.
func TestModelTrainerWithoutBudget(t *testing.T) {
	dir := t.TempDir()
	store, err := client.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, 1), Store: store, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Ledger() != nil {
		t.Fatal("a trainer without a budget has a ledger")
	}
	for _, sigma := range []float64{0, 2} {
		res, err := tr.Fit(t.Context(), zeros(), dpFit(sigma))
		if err != nil {
			t.Fatalf("σ = %v: %v", sigma, err)
		}
		if _, ok := res.Metrics["epsilon"]; ok {
			t.Errorf("σ = %v: ε %v reported without a ledger", sigma, res.Metrics["epsilon"])
		}
	}
	if _, err := os.Stat(filepath.Join(dir, client.LedgerName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ledger file written without a budget (%v)", err)
	}
	if _, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(10, 1), Budget: &dp.Budget{Delta: 1e-5}}); err == nil || !strings.Contains(err.Error(), "epsilon") {
		t.Errorf("ε = 0 budget: %v, want a refusal (no unlimited budgets)", err)
	}
}
