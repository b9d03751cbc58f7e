package sim_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// blobs is a two-class problem: 4 features around ±1 per class.
func blobs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Dataset{Name: "blobs", N: n, Dim: 4, X: make([]float64, 4*n), Y: make([]int32, n), NumClasses: 2}
	for i := range n {
		y := int32(i % 2)
		ds.Y[i] = y
		for j := range 4 {
			ds.X[4*i+j] = float64(2*y-1) + 0.8*rng.NormFloat64()
		}
	}
	return ds
}

// small is a fast federation: 8 clients of 50 blobs, 4 a round, a tiny MLP.
func small() sim.Config {
	c := sim.Config{
		Name: "test", Seed: 7, Rounds: 3, Clients: 8, ClientsPerRound: 4,
		Partition:  "iid",
		Model:      model.Spec{Type: model.TypeMLP, Hidden: []int{8}},
		Training:   sim.TrainingConfig{Epochs: 1, BatchSize: 10, LR: 0.2},
		ResultsDir: "-",
	}
	return c
}

func run(t *testing.T, c sim.Config) *sim.Report {
	t.Helper()
	rep, err := sim.Run(t.Context(), c, sim.Options{Train: blobs(400, 1), Test: blobs(200, 2)})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func withDPAndSecAgg(c sim.Config) sim.Config {
	c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 1, UpdateClipNorm: 5}}
	c.SecureAggregation = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12}
	return c
}

func TestPlainFederationLearns(t *testing.T) {
	rep := run(t, small())
	s := rep.Summary
	if s.Rounds != 3 || len(rep.Rounds) != 3 {
		t.Fatalf("%d rounds in the summary, %d rows; want 3", s.Rounds, len(rep.Rounds))
	}
	for _, r := range rep.Rounds {
		if r.Failed || r.Sampled != 4 || r.Contributors != 4 {
			t.Fatalf("round %+v: want 4 sampled and 4 contributors", r)
		}
		if r.BytesDown == 0 || r.BytesUp == 0 {
			t.Fatalf("round %d: no traffic counted", r.Round)
		}
	}
	if s.FinalAccuracy == nil || *s.FinalAccuracy < 0.85 {
		t.Fatalf("final accuracy %v, want ≥ 0.85", s.FinalAccuracy)
	}
	if s.Privacy.DPSGD || s.Privacy.Epsilon != 0 {
		t.Fatalf("privacy %+v without DP", s.Privacy)
	}
}

func TestDPAndSecureAggregation(t *testing.T) {
	rep := run(t, withDPAndSecAgg(small()))
	s := rep.Summary
	for _, r := range rep.Rounds {
		if r.Failed || r.Contributors != 4 {
			t.Fatalf("round %d: failed=%v %q, %d contributors", r.Round, r.Failed, r.Reason, r.Contributors)
		}
	}
	if !s.SecureAggregation || !s.Privacy.DPSGD || !(s.Privacy.Epsilon > 0) || s.Privacy.Delta != 1e-5 {
		t.Fatalf("summary %+v", s)
	}
	if !strings.Contains(s.Privacy.Noise, "crypto/rand") {
		t.Fatalf("noise source %q, want crypto/rand by default", s.Privacy.Noise)
	}
	if s.FinalAccuracy == nil || *s.FinalAccuracy < 0.8 {
		t.Fatalf("final accuracy %v, want ≥ 0.8", s.FinalAccuracy)
	}
	// The largest ε reported per round never decreases.
	for i := 1; i < len(rep.Rounds); i++ {
		if rep.Rounds[i].Epsilon < rep.Rounds[i-1].Epsilon {
			t.Fatalf("ε per round %v decreases", rep.Rounds)
		}
	}
}

func TestSameSeedSameMetrics(t *testing.T) {
	c := small()
	c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 1}, DeterministicNoise: true}
	c.Heterogeneity = sim.HeterogeneityConfig{SpeedSigma: 0.5, Dropout: 0.2, Availability: 0.9}
	c.Workers = 3
	a, b := run(t, c), run(t, c)
	for i := range a.Rounds {
		x, y := a.Rounds[i], b.Rounds[i]
		x.WallSeconds, y.WallSeconds, x.ElapsedSeconds, y.ElapsedSeconds = 0, 0, 0, 0
		if *x.Accuracy != *y.Accuracy || *x.Loss != *y.Loss || x.Epsilon != y.Epsilon || x.Contributors != y.Contributors || x.VirtualSeconds != y.VirtualSeconds {
			t.Fatalf("round %d differs between runs with the same seed:\n%+v\n%+v", x.Round, x, y)
		}
	}
	if !strings.Contains(a.Summary.Privacy.Noise, "DETERMINISTIC") {
		t.Fatalf("noise source %q: a seeded run must say so", a.Summary.Privacy.Noise)
	}
}

func TestDropoutsAndStragglers(t *testing.T) {
	c := small()
	c.Rounds = 4
	c.Clients, c.ClientsPerRound, c.MinFit = 20, 10, 1
	// Half the clients are 8× slower than the deadline allows: they are stragglers.
	c.Heterogeneity = sim.HeterogeneityConfig{SpeedSigma: 2, Dropout: 0.3, ExampleTime: time.Second, Latency: time.Second}
	c.Deadlines.Fit = 40 * time.Second
	rep := run(t, c)
	var dropped, late, contributed int
	for _, r := range rep.Rounds {
		dropped += r.Dropped
		late += r.Late
		contributed += r.Contributors
		if r.Contributors+r.Dropped != r.Sampled {
			t.Fatalf("round %d: %d contributors + %d dropped ≠ %d sampled", r.Round, r.Contributors, r.Dropped, r.Sampled)
		}
	}
	if dropped == 0 || late == 0 || contributed == 0 {
		t.Fatalf("dropped %d, late %d, contributed %d: want all > 0", dropped, late, contributed)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name string
		edit func(*sim.Config)
		want string
	}{
		{"rounds", func(c *sim.Config) { c.Rounds = 0 }, "rounds = 0"},
		{"clients_per_round", func(c *sim.Config) { c.ClientsPerRound = 9 }, "clients_per_round = 9"},
		{"partition", func(c *sim.Config) { c.Partition = "zipf" }, "partition = \"zipf\""},
		{"dataset", func(c *sim.Config) { c.Dataset.Name = "cifar" }, "dataset.name = \"cifar\""},
		{"lr", func(c *sim.Config) { c.Training.LR = -1 }, "training"},
		{"availability", func(c *sim.Config) { c.Heterogeneity.Availability = 1.5 }, "heterogeneity.availability"},
		{"threshold", func(c *sim.Config) { *c = withDPAndSecAgg(*c); c.SecureAggregation.Threshold = 4 }, "secure_aggregation.threshold = 4"},
		{"robust under secagg", func(c *sim.Config) { *c = withDPAndSecAgg(*c); c.Strategy.Name = "krum" }, "strategy.name \"krum\""},
		{"transport", func(c *sim.Config) { c.Transport = "carrier-pigeon" }, "transport = \"carrier-pigeon\""},
		{"grpc heterogeneity", func(c *sim.Config) { c.Transport = "grpc"; c.Heterogeneity.Dropout = 0.1 }, "needs transport: memory"},
		{"budget without DP", func(c *sim.Config) { c.DP.BudgetEpsilon = 3 }, "dp.budget_epsilon"},
		{"sample partition", func(c *sim.Config) { c.Partition = "sample:x" }, "sample:N"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := small()
			c.Dataset.Name = "mnist"
			tc.edit(&c)
			err := c.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
	if err := sim.Default().WithDefaults().Validate(); err != nil {
		t.Fatalf("the default config is invalid: %v", err)
	}
}

func TestGRPCTransportRunsTheRealService(t *testing.T) {
	c := withDPAndSecAgg(small())
	c.Transport = sim.TransportGRPC
	c.Rounds = 2
	rep := run(t, c)
	if rep.Summary.Rounds != 2 || rep.Summary.Transport != "grpc" {
		t.Fatalf("summary %+v", rep.Summary)
	}
	for _, r := range rep.Rounds {
		if r.Failed || r.Contributors != 4 {
			t.Fatalf("round %d: failed=%v %q, %d contributors", r.Round, r.Failed, r.Reason, r.Contributors)
		}
	}
	if rep.Summary.BytesUp == 0 || rep.Summary.BytesDown == 0 {
		t.Fatalf("no traffic counted: %d up, %d down", rep.Summary.BytesUp, rep.Summary.BytesDown)
	}
	if !(rep.Summary.Privacy.Epsilon > 0) || rep.Summary.FinalAccuracy == nil || *rep.Summary.FinalAccuracy < 0.8 {
		t.Fatalf("ε %v, final accuracy %v", rep.Summary.Privacy.Epsilon, rep.Summary.FinalAccuracy)
	}
}

func TestSampledPopulationAndAvailability(t *testing.T) {
	c := small()
	c.Clients, c.ClientsPerRound, c.Partition = 1000, 10, "sample:20"
	c.Heterogeneity.Availability = 0.5
	rep := run(t, c)
	for _, r := range rep.Rounds {
		// fraction_fit 10/1000 of the ~500 available clients: about 5 are sampled.
		if r.Failed || r.Sampled < 2 || r.Sampled > 8 || r.Examples != 20*r.Sampled {
			t.Fatalf("round %+v: want 2–8 sampled clients of 20 examples each", r)
		}
	}
}

func TestLedgersOnDisk(t *testing.T) {
	c := small()
	c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1}}
	c.Ledgers = sim.LedgersDisk
	c.ResultsDir = t.TempDir()
	c.Rounds = 1
	no := false
	c.Plots = &no
	rep := run(t, c)
	ledgers, err := filepath.Glob(filepath.Join(c.ResultsDir, "clients", "*", "privacy-ledger.json"))
	if err != nil || len(ledgers) != rep.Rounds[0].Contributors {
		t.Fatalf("%d ledger files (%v), want one per contributor (%d)", len(ledgers), err, rep.Rounds[0].Contributors)
	}
	for _, f := range []string{"summary.json", "rounds.json", "rounds.csv", "config.yaml", "model.confide"} {
		if _, err := os.Stat(filepath.Join(c.ResultsDir, f)); err != nil {
			t.Fatalf("results: %v", err)
		}
	}
}

// TestSecureAggregationWithDropouts: clients that crash mid-round (committee members
// included) are noticed by their silence; the round is decrypted by the members still
// online and aggregates the others' updates.
func TestSecureAggregationWithDropouts(t *testing.T) {
	c := withDPAndSecAgg(small())
	c.Clients, c.ClientsPerRound, c.Rounds = 20, 6, 5
	c.Heterogeneity = sim.HeterogeneityConfig{Dropout: 0.2}
	rep := run(t, c)
	dropped := 0
	for _, r := range rep.Rounds {
		if r.Failed {
			t.Fatalf("round %d failed: %s", r.Round, r.Reason)
		}
		dropped += r.Dropped
		if r.Contributors+r.Dropped != r.Sampled {
			t.Fatalf("round %+v: contributors + dropped ≠ sampled", r)
		}
	}
	if dropped == 0 {
		t.Fatal("no client dropped out; the test needs some")
	}
}

// TestTargetAccuracyStopsTheRunAndPlots: the run stops at the first evaluation reaching
// the target, reports the round, and writes metrics and plots.
func TestTargetAccuracyStopsTheRunAndPlots(t *testing.T) {
	c := small()
	c.Rounds, c.TargetAccuracy = 20, 0.9
	c.ResultsDir = t.TempDir()
	var seen []int
	rep, err := sim.Run(t.Context(), c, sim.Options{Train: blobs(400, 1), Test: blobs(200, 2), OnRound: func(m sim.RoundMetrics) { seen = append(seen, m.Round) }})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.RoundsToTarget == nil || s.Rounds != *s.RoundsToTarget || s.Rounds >= 20 || *s.FinalAccuracy < 0.9 {
		t.Fatalf("rounds %d, rounds to target %v, final accuracy %v: want a stop at the first round ≥ 0.9", s.Rounds, s.RoundsToTarget, *s.FinalAccuracy)
	}
	if len(seen) != s.Rounds {
		t.Fatalf("OnRound saw rounds %v, the run had %d", seen, s.Rounds)
	}
	for _, f := range []string{"accuracy.png", "loss.png", "bytes.png", "rounds.csv", "summary.json"} {
		if fi, err := os.Stat(filepath.Join(c.ResultsDir, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("results file %s: %v", f, err)
		}
	}
}

// TestEvaluationTimeInItsRound: a round's central evaluation runs after its record; its
// time is the round's eval_seconds and part of the round's wall_seconds, and rounds without
// one report none.
func TestEvaluationTimeInItsRound(t *testing.T) {
	c := small()
	c.Rounds, c.Evaluation.Every = 4, 2
	rep := run(t, c)
	for _, r := range rep.Rounds {
		evaluated := r.Accuracy != nil
		if evaluated != (r.EvalSeconds > 0) || r.EvalSeconds > r.WallSeconds {
			t.Errorf("round %d: evaluated %v, eval_seconds %v, wall_seconds %v: want eval_seconds > 0 exactly in the evaluated rounds (2, 4), within the wall time", r.Round, evaluated, r.EvalSeconds, r.WallSeconds)
		}
	}
}
