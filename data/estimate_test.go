package data

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEstimateSchemaChecks: a range asks for estimation with normalize standard only, and
// the errors name the key and the fix.
func TestEstimateSchemaChecks(t *testing.T) {
	for _, tc := range []struct {
		name, column string
		want         string // "" valid for a federation
	}{
		{"range", `{name: a, range: [0, 10]}`, ""},
		{"range with both statistics", `{name: a, range: [0, 10], mean: 1, std: 2}`, ""},
		{"range with mean only", `{name: a, range: [0, 10], mean: 1}`, "give both mean and std, or neither"},
		{"reversed range", `{name: a, range: [10, 0]}`, "give finite lo < hi"},
		{"one value", `{name: a, range: [10]}`, "give [lo, hi]"},
		{"minmax", `{name: a, normalize: minmax, range: [0, 1]}`, "min and max cannot be estimated federatedly"},
		{"minmax without min", `{name: a, normalize: minmax}`, "cannot be estimated federatedly"},
		{"neither", `{name: a}`, "give range: [lo, hi] to estimate them federatedly"},
		{"categorical", `{name: a, type: categorical, categories: [x], range: [0, 1]}`, "apply to numeric columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchema([]byte("format: csv\nlabel: {column: y, classes: [p, q]}\ncolumns:\n  - "+tc.column+"\n"), "")
			if err == nil {
				err = s.ValidateFederated()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// TestStatisticsSumsAndEstimates: the sums of a file are the clipped, scaled counts and
// moments; WithStatistics turns the exact sums back into the file's mean and std; a
// federated load refuses the schema until then.
func TestStatisticsSumsAndEstimates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.csv")
	// a: 1, 3, 5, 7 and a missing value (not counted); b: 30 is clipped to the range's 10.
	csv := "a,b,y\n1,0,1\n3,2,2\n5,4,3\n7,6,4\nNA,30,5\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSchema([]byte(`
format: csv
columns:
  - {name: a, range: [0, 8], missing: mean}
  - {name: b, range: [0, 10]}
target: {column: y, mean: 3, std: 1}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSchema(context.Background(), s, LoadOptions{Path: path, Federated: true}); !errors.Is(err, ErrStatisticsPending) {
		t.Fatalf("federated load of a schema with estimates pending: %v, want ErrStatisticsPending", err)
	}
	sums, n, err := s.StatisticsSums(context.Background(), path, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 || len(sums) != 6 {
		t.Fatalf("%d rows, %d sums; want 5, 6", n, len(sums))
	}
	// a: u = (x − 4)/4 = −0.75, −0.25, 0.25, 0.75; b: u = (x − 5)/5 of 0, 2, 4, 6, 10.
	want := []float64{4, 0, 4 * (0.5625 + 0.0625) / 2, 5, (-5 - 3 - 1 + 1 + 5) / 5.0, (25 + 9 + 1 + 1 + 25) / 25.0}
	for i := range want {
		if math.Abs(sums[i]-want[i]) > 1e-12 {
			t.Fatalf("sums %v, want %v", sums, want)
		}
	}
	if sums, _, _ := s.StatisticsSums(context.Background(), path, false, 2); sums[0] != 2 || sums[3] != 2 {
		t.Fatalf("max rows 2: counts %v, %v, want 2", sums[0], sums[3])
	}
	e, err := s.WithStatistics(sums)
	if err != nil {
		t.Fatal(err)
	}
	// a: mean 4, population std √5; b (clipped): mean 4.4, std √(Σx²/5 − 4.4²).
	bStd := math.Sqrt((0+4+16+36+100)/5.0 - 4.4*4.4)
	for _, c := range []struct {
		got       *Column
		mean, std float64
	}{{&e.Columns[0], 4, math.Sqrt(5)}, {&e.Columns[1], 4.4, bStd}} {
		if math.Abs(*c.got.Mean-c.mean) > 1e-12 || math.Abs(*c.got.Std-c.std) > 1e-12 {
			t.Fatalf("%s: mean %v std %v, want %v %v", c.got.Name, *c.got.Mean, *c.got.Std, c.mean, c.std)
		}
	}
	if len(e.Estimates()) != 0 {
		t.Fatalf("estimates left after WithStatistics: %v", e.Estimates())
	}
	if _, err := LoadSchema(context.Background(), e, LoadOptions{Path: path, Federated: true}); err != nil {
		t.Fatalf("federated load with the estimates: %v", err)
	}
	if _, err := s.WithStatistics([]float64{1.5, 0, 0, 5, 0, 1}); err == nil || !strings.Contains(err.Error(), "too few") {
		t.Fatalf("a noised count of 1.5: %v, want too few to estimate", err)
	}
}

// TestDatasetStatisticsSumsMatchTheFile: a dataset encoded under RawForEstimates (as a
// simulator holds its clients' rows) gives the sums StatisticsSums reads from the file,
// with a one-hot column before the estimated ones, and ApplyEstimates standardises it as
// a load with the estimated schema does — also for a missing: mean column with missing
// cells, which the sums leave out and the standardised rows hold as 0, the column's mean.
func TestDatasetStatisticsSumsMatchTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.csv")
	csv := "c,a,b,y\nu,1,2,10\nv,3,,12\nu,5,6,9\nw,7,NA,15\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ParseSchema([]byte(`
format: csv
columns:
  - {name: c, type: categorical, categories: [u, v, w]}
  - {name: a, range: [0, 8]}
  - {name: b, range: [0, 8], missing: mean}
target: {column: y, range: [0, 20]}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s.RawForEstimates(), LoadOptions{Path: path, NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	pending := s.PendingEstimates(ld.Schema)
	got, err := pending.DatasetStatisticsSums(ld.Train, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := s.StatisticsSums(context.Background(), path, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("dataset sums %v, file sums %v", got, want)
		}
	}
	est, err := pending.WithStatistics(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := pending.ApplyEstimates(est, ld.Train); err != nil {
		t.Fatal(err)
	}
	direct, err := LoadSchema(context.Background(), est, LoadOptions{Path: path, NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range direct.Train.X {
		if math.Abs(direct.Train.X[i]-ld.Train.X[i]) > 1e-12 {
			t.Fatalf("standardised in place %v, loaded with the estimates %v", ld.Train.X, direct.Train.X)
		}
	}
	for i := range direct.Train.Values {
		if math.Abs(direct.Train.Values[i]-ld.Train.Values[i]) > 1e-12 {
			t.Fatalf("targets standardised in place %v, loaded with the estimates %v", ld.Train.Values, direct.Train.Values)
		}
	}
}
