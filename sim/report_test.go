package sim

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// rounds.csv carries a regression model's R², RMSE and MAE under their columns, and leaves
// them empty for a classifier's rounds.
func TestRoundsCSVRegressionColumns(t *testing.T) {
	r2, rmse, mae, acc := 0.9, 2.5, 1.75, 0.5
	path := filepath.Join(t.TempDir(), "rounds.csv")
	if err := writeCSV(path, []RoundMetrics{{Round: 1, R2: &r2, RMSE: &rmse, MAE: &mae}, {Round: 2, Accuracy: &acc}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int {
		i := slices.Index(rows[0], name)
		if i < 0 {
			t.Fatalf("rounds.csv header %v has no %s", rows[0], name)
		}
		return i
	}
	for name, want := range map[string][2]string{"r2": {"0.9", ""}, "rmse": {"2.5", ""}, "mae": {"1.75", ""}, "accuracy": {"", "0.5"}} {
		if got := [2]string{rows[1][col(name)], rows[2][col(name)]}; got != want {
			t.Errorf("column %s: %q, want %q", name, got, want)
		}
	}
}
