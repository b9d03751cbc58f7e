package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// rangeSpec is examples/tabular's price table with ranges in place of means and stds:
// the federation estimates them in its statistics round.
const rangeSpec = `name: housing-price-ranges
format: csv
columns:
  - {name: region, type: categorical, categories: [east, north, south, west]}
  - {name: rooms, range: [0, 10]}
  - {name: area_m2, range: [0, 300]}
  - {name: age_years, missing: mean, range: [0, 400]}
  - {name: distance_km, range: [0, 120]}
  - {name: garden, type: categorical, categories: ["no", "yes"]}
  - {name: energy, type: categorical, missing: zero, categories: [A, B, C, D, E, F, G]}
target: {column: price_k, range: [0, 800]}
test_path: %s
`

// TestServerEvaluatesWithEstimatedStatistics: 'confide server' whose federation.dataset and
// evaluation.dataset are a spec with ranges only evaluates centrally once its statistics
// round has estimated the means and stds: every round (and the initial model, whose
// evaluation waits for them) has an R², which equals the R² of 'confide model predict' on
// the raw evaluation rows with the round's checkpoint (the reference: the checkpoint
// records the estimated schema, and predict encodes raw rows with it). Restarted from its
// state directory, the server evaluates its next round with the stored estimated schema.
func TestServerEvaluatesWithEstimatedStatistics(t *testing.T) {
	tabular, err := filepath.Abs(filepath.Join("..", "..", "examples", "tabular", "data"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "ranges.yaml")
	if err := os.WriteFile(spec, fmt.Appendf(nil, rangeSpec, filepath.Join(tabular, "eval.csv")), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf(`listen: %s
linger: 100ms
evaluation:
  dataset: %s
federation:
  rounds: 3
  dataset: %s
  model: {type: mlp, input: 17, hidden: [16], output: 1, loss: mse}
  sampling: {fraction_fit: 1.0, min_fit: 4, min_available: 4}
  deadlines: {fit: 1m, client_timeout: 30s}
  strategy: {name: fedavg}
  training: {epochs: 2, batch_size: 32, optimizer: sgd, lr: 0.1}
  dp: {statistics_noise_multiplier: 1}
`, addr, spec, spec)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	state, checkpoints := filepath.Join(dir, "state"), filepath.Join(dir, "checkpoints")

	// federate runs the server (with extra flags) and four clients, one a region's file.
	federate := func(extra ...string) serverResult {
		t.Helper()
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append([]string{"server", "--config", cfg, "--insecure", "--state-dir", state, "--checkpoint-dir", checkpoints, "-o", "json"}, extra...))
		done := make(chan error, 1)
		go func() { done <- root.ExecuteContext(ctx) }()
		quiet := slog.New(slog.DiscardHandler)
		var wg sync.WaitGroup
		for i, region := range []string{"east", "north", "south", "west"} {
			tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Source: &client.DataSource{Path: filepath.Join(tabular, "train-"+region+".csv"), Seed: uint64(i + 1)}, Seed: uint64(i + 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			wg.Go(func() {
				// The server may not listen yet: the client retries until it does.
				if err := client.Run(ctx, client.Config{Server: addr, Name: region, Insecure: true, PollWait: 2 * time.Second, Logger: quiet}, tr); err != nil && ctx.Err() == nil {
					t.Errorf("client %s: %v", region, err)
				}
			})
		}
		if err := <-done; err != nil {
			t.Fatalf("server: %v", err)
		}
		wg.Wait()
		var res serverResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("server output: %v\n%s", err, out.String())
		}
		return res
	}

	res := federate()
	if len(res.History) != 3 {
		t.Fatalf("%d rounds, want 3: %+v", len(res.History), res.History)
	}
	if res.InitialAccuracy == nil {
		t.Error("the initial model was not evaluated")
	}
	for _, r := range res.History {
		r2, ok := r.Central["r2"]
		if r.Failed || !ok || math.IsNaN(r2) {
			t.Fatalf("round %d: failed %v (%s), central %v; want an R²", r.Round, r.Failed, r.Reason, r.Central)
		}
	}
	last := res.History[2].Central["r2"]
	if last < 0.5 {
		t.Errorf("round 3: R² %.4f, want ≥ 0.5 (inputs standardised with the estimates)", last)
	}
	checkpoint := filepath.Join(checkpoints, "round-0003.confide")
	m, err := model.Load(checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := data.ParseSchemaJSON(m.Meta.Dataset)
	if err != nil || len(recorded.Estimates()) != 0 {
		t.Fatalf("the checkpoint's dataset %s (%v): want the estimated schema", m.Meta.Dataset, err)
	}
	if got := predictR2(t, checkpoint, filepath.Join(tabular, "eval.csv")); math.Abs(got-last) > 1e-9 {
		t.Errorf("predict on eval.csv with round 3's checkpoint: R² %.12f; the server's central evaluation: %.12f", got, last)
	}

	// model evaluate with the server's spec (ranges only) reads its test file with the
	// checkpoint's recorded schema.
	ev := runJSON(t, "model", "evaluate", checkpoint, "--dataset", spec)
	if got := ev["regression"].(map[string]any)["r2"].(float64); math.Abs(got-last) > 1e-9 {
		t.Errorf("model evaluate --dataset %s: R² %.12f; the server's: %.12f", filepath.Base(spec), got, last)
	}

	// Restarted from its state: one more round, evaluated with the stored estimates.
	again := federate("--rounds", "4")
	r4 := again.History[len(again.History)-1]
	if r4.Round != 4 || r4.Failed || r4.Central == nil {
		t.Fatalf("after the restart: last round %+v; want round 4 evaluated centrally", r4)
	}
	m4, err := model.Load(filepath.Join(checkpoints, "round-0004.confide"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m4.Meta.Dataset, m.Meta.Dataset) {
		t.Errorf("round 4's checkpoint records %s, round 3's %s: want the stored estimated schema", m4.Meta.Dataset, m.Meta.Dataset)
	}
	if got := predictR2(t, filepath.Join(checkpoints, "round-0004.confide"), filepath.Join(tabular, "eval.csv")); math.Abs(got-r4.Central["r2"]) > 1e-9 {
		t.Errorf("predict with round 4's checkpoint: R² %.12f; the server's: %.12f", got, r4.Central["r2"])
	}
}

// predictR2 runs 'confide model predict' on a table's raw rows and returns the R² of its
// values against the file's price_k column.
func predictR2(t *testing.T, modelFile, table string) float64 {
	t.Helper()
	r := predictJSON(t, modelFile, table)
	y := columnValues(t, table, "price_k")
	mean := 0.0
	for _, v := range y {
		mean += v / float64(len(y))
	}
	if len(r.Predictions) != len(y) {
		t.Fatalf("%d predictions for %d rows", len(r.Predictions), len(y))
	}
	var sse, sst float64
	for i, p := range r.Predictions {
		sse += (p.Value - y[i]) * (p.Value - y[i])
		sst += (y[i] - mean) * (y[i] - mean)
	}
	return 1 - sse/sst
}

// TestCheckpointMetaRecordsACompleteFederationSchema: a server's checkpoints record the
// federation's schema from the start when it is complete (examples/tabular's, with its
// means and stds), and none while statistics are still to be estimated (the
// CheckpointStore takes the estimated one from the statistics round's record).
func TestCheckpointMetaRecordsACompleteFederationSchema(t *testing.T) {
	complete, err := data.ReadSchemaFile(filepath.Join("..", "..", "examples", "tabular", "housing-price.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := data.ParseSchema(fmt.Appendf(nil, rangeSpec, "eval.csv"), "")
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 17, Hidden: []int{8}, Output: 1, Loss: model.LossMSE}
	for _, tc := range []struct {
		name   string
		schema *data.Schema
		want   bool
	}{{"complete", complete, true}, {"ranges", ranges, false}} {
		t.Run(tc.name, func(t *testing.T) {
			meta := checkpointMeta(nil, server.Config{Model: spec, Dataset: tc.schema})
			if got := len(meta.Dataset) > 0; got != tc.want {
				t.Fatalf("records a dataset: %v, want %v", got, tc.want)
			}
			if !tc.want {
				return
			}
			s, err := data.ParseSchemaJSON(meta.Dataset)
			if err != nil || s.Path != "" || *s.Target.Mean != *complete.Target.Mean {
				t.Fatalf("recorded %s (%v), want the spec without paths", meta.Dataset, err)
			}
		})
	}
}
