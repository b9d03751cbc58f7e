package sim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// TestSimEstimatesStatistics: a sim on a dataset spec that gives ranges instead of means
// and stds runs the federation's statistics round on its virtual clients' rows (in the
// clear and under secure aggregation), the estimates are near the training rows' pooled
// values, and the regressor trained on rows standardised with them reaches R² ≥ 0.9.
func TestSimEstimatesStatistics(t *testing.T) {
	const rows = 20000
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("x1,x2,y\n")
	var xs []float64
	for range rows {
		x1, x2 := 8+2*rng.NormFloat64(), 3*(rng.Float64()-0.5)
		fmt.Fprintf(&b, "%.6f,%.6f,%.6f\n", x1, x2, 3*x1+4*x2+0.5*rng.NormFloat64())
		xs = append(xs, x1)
	}
	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "rows.yaml")
	if err := os.WriteFile(spec, []byte(`format: csv
path: rows.csv
test_fraction: 0.2
columns:
  - {name: x1, range: [0, 20]}
  - {name: x2, range: [-2, 2]}
target: {column: y, range: [0, 80]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secure    bool
		transport string
	}{{false, sim.TransportMemory}, {true, sim.TransportMemory}, {true, sim.TransportGRPC}} {
		secure := tc.secure
		t.Run(fmt.Sprintf("secagg=%v/%s", secure, tc.transport), func(t *testing.T) {
			c := sim.Config{
				Name: "stats", Seed: 3, Rounds: 8, Clients: 4, ClientsPerRound: 4, Partition: "iid",
				Dataset:    sim.DatasetConfig{Name: spec},
				Model:      model.Spec{Type: model.TypeMLP, Hidden: []int{16}, Loss: model.LossMSE, Output: 1},
				Training:   sim.TrainingConfig{Epochs: 2, BatchSize: 16, LR: 0.05},
				ResultsDir: "-", Transport: tc.transport,
			}
			if secure {
				c.DP.UpdateClipNorm = 5
				c.SecureAggregation = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12}
			}
			var logs bytes.Buffer
			rep, err := sim.Run(t.Context(), c, sim.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			var est map[string][2]float64
			for _, line := range strings.Split(logs.String(), "\n") {
				var rec struct {
					Msg       string                `json:"msg"`
					Estimates map[string][2]float64 `json:"estimates"`
				}
				if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "dataset statistics estimated" {
					est = rec.Estimates
				}
			}
			last := rep.Rounds[len(rep.Rounds)-1]
			if last.R2 == nil || *last.R2 < 0.9 {
				t.Fatalf("final R² %v, want ≥ 0.9 on rows standardised with the estimates", deref(last.R2))
			}
			if tc.transport == sim.TransportGRPC {
				return // the gRPC transport sees the coordinator's records, not its notices
			}
			x1, ok := est["columns[0] (x1)"]
			if !ok {
				t.Fatalf("no estimates logged:\n%s", logs.String())
			}
			// The noise on each of the 9 sums: 4 clients' N(0, z²·9) in the clear (z = 5,
			// the default), 4 shares of N(0, z²·9/2) under secure aggregation; on the 80%
			// of the rows that are training rows, six of its standard errors of the mean
			// (h·2σ/n with h = 10) and of the std (h²·2σ/(n·2·std)), plus 0.05 for the
			// training rows' own difference from the file's mean and std.
			sigma := 5 * 3 * 2.0
			if secure {
				sigma /= math.Sqrt2
			}
			n := 0.8 * rows
			tolMean, tolStd := 6*10*2*sigma/n+0.05, 6*100*2*sigma/(n*2*2)+0.05
			var s float64
			for _, v := range xs {
				s += v
			}
			if m := s / float64(len(xs)); math.Abs(x1[0]-m) > tolMean || math.Abs(x1[1]-2) > tolStd {
				t.Fatalf("estimated x1 mean %v std %v, want %.3f ± %.3f and 2 ± %.3f (log:\n%s)", x1[0], x1[1], m, tolMean, tolStd, logs.String())
			}
			t.Logf("estimates %v; final R² %.4f", est, *last.R2)
		})
	}
}

// TestSimModelFileRecordsTheEstimatedSchema: the model.confide of a sim on a dataset spec
// records the schema its rows were encoded with — after the statistics round, the
// estimated means and stds — so that `confide model predict` reads raw rows with it.
func TestSimModelFileRecordsTheEstimatedSchema(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x1,x2,y\n")
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		x1, x2 := 8+2*rng.NormFloat64(), 3*(rng.Float64()-0.5)
		fmt.Fprintf(&b, "%.6f,%.6f,%.6f\n", x1, x2, 3*x1+4*x2+0.5*rng.NormFloat64())
	}
	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "rows.yaml")
	if err := os.WriteFile(spec, []byte("format: csv\npath: rows.csv\ntest_fraction: 0.2\ncolumns:\n  - {name: x1, range: [0, 20]}\n  - {name: x2, mean: 0, std: 0.87}\ntarget: {column: y, range: [0, 80]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	c := sim.Config{
		Name: "stats", Seed: 3, Rounds: 1, Clients: 4, ClientsPerRound: 4, Partition: "iid",
		Dataset:    sim.DatasetConfig{Name: spec},
		Model:      model.Spec{Type: model.TypeMLP, Hidden: []int{4}, Loss: model.LossMSE, Output: 1},
		Training:   sim.TrainingConfig{Epochs: 1, BatchSize: 16, LR: 0.05},
		ResultsDir: out, Plots: new(bool),
	}
	if _, err := sim.Run(t.Context(), c, sim.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(filepath.Join(out, "model.confide"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Columns []struct {
			Name      string   `json:"name"`
			Mean, Std *float64 `json:",omitempty"`
		} `json:"columns"`
		Target struct {
			Mean, Std *float64
		} `json:"target"`
	}
	if err := json.Unmarshal(m.Meta.Dataset, &got); err != nil {
		t.Fatalf("model file's dataset %q: %v", m.Meta.Dataset, err)
	}
	if len(got.Columns) != 2 || got.Columns[0].Mean == nil || got.Columns[0].Std == nil || math.Abs(*got.Columns[0].Mean-8) > 1 ||
		got.Columns[1].Mean == nil || *got.Columns[1].Mean != 0 || got.Target.Mean == nil || math.Abs(*got.Target.Mean-24) > 4 {
		t.Fatalf("model file's dataset %s: want x1's estimated mean near 8, x2's given mean 0, the target's estimated mean near 24", m.Meta.Dataset)
	}
}
