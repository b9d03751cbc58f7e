package server_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
)

// wantShift checks that every parameter moved by shift from the initial model.
func wantShift(t *testing.T, initial, got []float64, shift, tol float64) {
	t.Helper()
	for i := range got {
		if d := got[i] - initial[i]; math.Abs(d-shift) > tol {
			t.Fatalf("parameter %d moved by %.6g, want %.6g (±%g)", i, d, shift, tol)
		}
	}
}

func weightedShift(trs map[string]*fakeTrainer, ids ...string) float64 {
	var s, w float64
	for _, id := range ids {
		tr := trs[id]
		s += float64(tr.N) * tr.Shift
		w += float64(tr.N)
	}
	return s / w
}

func TestPlainFedAvgRoundsAreWeightedMeans(t *testing.T) {
	trs := trainersFor("a", "b", "c", "d")
	n := newNetwork(t, baseConfig(3, 4), server.Options{}, trs)
	initial := n.c.Global()
	n.run()
	if !n.c.Finished() {
		t.Fatalf("not finished: phase %s, round %d", n.c.Phase(), n.c.Round())
	}
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 3 {
		t.Fatalf("%d round records, want 3", len(rounds))
	}
	step := weightedShift(trs, "a", "b", "c", "d")
	for i, rec := range rounds {
		if rec.Failed {
			t.Fatalf("round %d failed: %s", rec.Round, rec.Reason)
		}
		wantShift(t, initial, rec.Params, float64(i+1)*step, 1e-12)
	}
	if got := len(noticesOf[server.Finished](n)); got != 1 {
		t.Fatalf("%d Finished notices", got)
	}
	if eps := recordsOf[server.PrivacyRecord](n); len(eps) != 12 {
		t.Fatalf("%d privacy records, want one per fit result (12)", len(eps))
	}
}

func TestSamplingFractionAndMinimums(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		clients                   int
		fraction                  float64
		minFit, minAvail, sampled int
	}{
		{"fraction-0.3-of-10", 10, 0.3, 2, 0, 3},
		{"min-fit-wins", 10, 0.1, 4, 0, 4},
		{"all", 5, 1, 2, 0, 5},
		{"too-few-available", 3, 1, 2, 4, 0},
		{"count-5-of-10", 10, -5, 2, 0, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]string, tc.clients)
			for i := range ids {
				ids[i] = string(rune('a' + i))
			}
			cfg := baseConfig(1, tc.minFit)
			if tc.fraction < 0 {
				cfg.Sampling.NumFit = int(-tc.fraction) // negative fraction: a count
			} else {
				cfg.Sampling.FractionFit = tc.fraction
			}
			cfg.Sampling.MinAvailable = tc.minAvail
			n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
			started := noticesOf[server.RoundStarted](n)
			if tc.sampled == 0 {
				if len(started) != 0 {
					t.Fatalf("round started with %d of min_available %d clients", tc.clients, tc.minAvail)
				}
				return
			}
			if len(started) != 1 || len(started[0].Clients) != tc.sampled {
				t.Fatalf("started %+v, want one round of %d clients", started, tc.sampled)
			}
		})
	}
}

func TestSamplingIsDeterministicForASeed(t *testing.T) {
	pick := func() []string {
		cfg := baseConfig(1, 2)
		cfg.Sampling.FractionFit = 0.3
		n := newNetwork(t, cfg, server.Options{}, trainersFor("a", "b", "c", "d", "e", "f", "g", "h"))
		return noticesOf[server.RoundStarted](n)[0].Clients
	}
	a, b := pick(), pick()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("same seed sampled %v then %v", a, b)
	}
}

func TestFitDeadlineDropsStragglerAndRefusesItsLateResult(t *testing.T) {
	trs := trainersFor("a", "b", "c", "d")
	n := newNetwork(t, baseConfig(1, 3), server.Options{}, trs)
	initial := n.c.Global()
	n.down["d"] = true
	late := n.queue["d"][0]
	n.run()
	if n.c.Round() != 0 {
		t.Fatal("round finished before the deadline while a client was still training")
	}
	n.tick(30 * time.Second)
	n.tick(31 * time.Second) // past the 1m fit deadline
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || rounds[0].Failed {
		t.Fatalf("round records %+v, want one successful round", rounds)
	}
	wantShift(t, initial, rounds[0].Params, weightedShift(trs, "a", "b", "c"), 1e-12)
	fin := noticesOf[server.RoundFinished](n)
	if len(fin[0].Failures) != 1 || fin[0].Failures[0].ClientID != "d" || fin[0].Failures[0].Kind != strategy.FailureTimeout {
		t.Fatalf("failures %+v, want d timed out", fin[0].Failures)
	}
	if len(n.queue["d"]) != 0 {
		t.Fatal("the straggler's task was not revoked")
	}
	res, _ := n.parties["d"].Handle(t.Context(), late)
	err := n.step(server.ResultIn{ClientID: "d", Result: res})
	var rej *server.RejectError
	if !errors.As(err, &rej) || rej.Code != server.RejectLate {
		t.Fatalf("late result: err = %v, want RejectLate", err)
	}
}

func TestRoundFailsBelowMinFitAndKeepsTheModel(t *testing.T) {
	trs := trainersFor("a", "b", "c", "d")
	trs["c"].Refuse = true
	trs["d"].Fail = true
	n := newNetwork(t, baseConfig(1, 3), server.Options{}, trs)
	initial := n.c.Global()
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || !rounds[0].Failed || !strings.Contains(rounds[0].Reason, "min_fit is 3") {
		t.Fatalf("round records %+v, want a failed round naming min_fit", rounds)
	}
	wantShift(t, initial, n.c.Global(), 0, 0)
	kinds := map[string]strategy.FailureKind{}
	for _, f := range noticesOf[server.RoundFinished](n)[0].Failures {
		kinds[f.ClientID] = f.Kind
	}
	if kinds["c"] != strategy.FailureRefused || kinds["d"] != strategy.FailureError {
		t.Fatalf("failure kinds %v, want c refused and d error", kinds)
	}
}

func TestResultsAreValidated(t *testing.T) {
	type tamper func(n *network, res *pb.Result) (client string)
	setUpdate := func(v []float64) tamper {
		return func(n *network, res *pb.Result) string {
			res.Blobs = []*pb.Blob{blob.New(blob.Update, blob.EncodeFloats(v))}
			return "a"
		}
	}
	nan := make([]float64, 8)
	nan[3] = math.NaN()
	huge := make([]float64, 8)
	huge[0] = 100
	for _, tc := range []struct {
		name  string
		clip  float64
		tweak tamper
		code  server.RejectCode // 0: accepted, then refused by the driver's work
		msg   string
	}{
		{"unknown-client", 0, func(*network, *pb.Result) string { return "mallory" }, server.RejectUnknownClient, "has not joined"},
		{"wrong-client", 0, func(*network, *pb.Result) string { return "b" }, server.RejectWrongClient, "another client"},
		{"unknown-task", 0, func(_ *network, r *pb.Result) string { r.TaskId = "fit-r9-99"; return "a" }, server.RejectUnknownTask, "never issued"},
		{"wrong-round", 0, func(_ *network, r *pb.Result) string { r.Round = 5; return "a" }, server.RejectInvalid, "round 5"},
		{"short-update", 0, setUpdate([]float64{1, 2}), 0, "has 2 values, want 8"},
		{"non-finite", 0, setUpdate(nan), 0, "value 3 is NaN"},
		{"over-clip", 1, setUpdate(huge), 0, "exceeds dp.update_clip_norm"},
		{"corrupted", 0, func(_ *network, r *pb.Result) string {
			r.Blobs[0].Data = append([]byte{}, r.Blobs[0].Data...)
			r.Blobs[0].Data[0] ^= 1
			return "a"
		}, 0, "SHA-256"},
		{"missing-blob", 0, func(_ *network, r *pb.Result) string { r.Blobs = nil; return "a" }, server.RejectInvalid, `blob "update" missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(1, 2)
			cfg.DP.UpdateClipNorm = tc.clip
			n := newNetwork(t, cfg, server.Options{}, trainersFor("a", "b", "c"))
			task := n.queue["a"][0]
			res, err := n.parties["a"].Handle(t.Context(), task)
			if err != nil {
				t.Fatal(err)
			}
			from := tc.tweak(n, res)
			err = n.step(server.ResultIn{ClientID: from, Result: res})
			if tc.code == 0 {
				// Verified and decoded by the driver (PlainUpdateWork): the client's task fails.
				if err != nil {
					t.Fatalf("err = %v, want the result taken for checking", err)
				}
				n.queue["a"] = n.queue["a"][1:]
				n.run()
				f := noticesOf[server.RoundFinished](n)
				if len(f) != 1 || len(f[0].Failures) != 1 || f[0].Failures[0].ClientID != "a" || f[0].Failures[0].Kind != strategy.FailureRejected || !strings.Contains(f[0].Failures[0].Reason, tc.msg) {
					t.Fatalf("round: %+v, want a's update refused mentioning %q", f, tc.msg)
				}
				return
			}
			var rej *server.RejectError
			if !errors.As(err, &rej) || rej.Code != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want code %v mentioning %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestDuplicateResultIsRefused(t *testing.T) {
	n := newNetwork(t, baseConfig(2, 2), server.Options{}, trainersFor("a", "b", "c"))
	task := n.queue["a"][0]
	res, _ := n.parties["a"].Handle(t.Context(), task)
	n.mustStep(server.ResultIn{ClientID: "a", Result: res})
	err := n.step(server.ResultIn{ClientID: "a", Result: res})
	var rej *server.RejectError
	if !errors.As(err, &rej) || rej.Code != server.RejectDuplicate {
		t.Fatalf("replayed result: err = %v, want RejectDuplicate", err)
	}
}

func TestLeavingClientFailsItsTaskAtOnce(t *testing.T) {
	n := newNetwork(t, baseConfig(1, 2), server.Options{}, trainersFor("a", "b", "c"))
	n.down["c"] = true
	n.run()
	n.mustStep(server.Leave{ClientID: "c"})
	if rounds := recordsOf[server.RoundRecord](n); len(rounds) != 1 || rounds[0].Failed {
		t.Fatalf("round records %+v, want the round finished without c", rounds)
	}
	if err := n.step(server.Heartbeat{ClientID: "c"}); err == nil {
		t.Fatal("heartbeat of a client that left was accepted")
	}
}

func TestSilentClientGoesOffline(t *testing.T) {
	n := newNetwork(t, baseConfig(1, 2), server.Options{}, trainersFor("a", "b", "c"))
	n.down["c"] = true
	n.tick(15 * time.Second)
	n.tick(15 * time.Second)
	off := noticesOf[server.ClientOffline](n)
	if len(off) != 1 || off[0].ClientID != "c" {
		t.Fatalf("offline notices %+v, want c", off)
	}
	if n.c.Online() != 2 {
		t.Fatalf("online = %d, want 2", n.c.Online())
	}
}

func TestCentralAndFederatedEvaluation(t *testing.T) {
	cfg := baseConfig(2, 2)
	cfg.Sampling.FractionEvaluate = 1
	calls := 0
	central := func(round uint64, params []float64) (map[string]float64, error) {
		calls++
		return map[string]float64{"accuracy": 0.5 + 0.1*float64(round)}, nil
	}
	n := newNetwork(t, cfg, server.Options{Central: central}, trainersFor("a", "b", "c"))
	n.run()
	var cent, fed []server.EvaluationFinished
	for _, e := range noticesOf[server.EvaluationFinished](n) {
		if e.Central != nil {
			cent = append(cent, e)
		}
		if e.Federated != nil {
			fed = append(fed, e)
		}
	}
	if len(cent) != 3 || calls != 3 || len(fed) != 2 {
		t.Fatalf("%d central and %d federated evaluation notices, %d central calls; want 3 central (rounds 0, 1, 2) and 2 federated", len(cent), len(fed), calls)
	}
	for i, e := range cent {
		if e.Round != uint64(i) || math.Abs(e.Central["accuracy"]-(0.5+0.1*float64(i))) > 1e-12 {
			t.Fatalf("central evaluation %d: %+v", i, e)
		}
	}
	for i, e := range fed {
		// The clients share noised statistics (with negligible noise in the harness).
		if e.Round != uint64(i+1) || math.Abs(e.Federated["accuracy"]-0.9) > 1e-6 || e.Evaluations != 3 {
			t.Fatalf("round %d federated evaluation %+v", i+1, e)
		}
	}
	evals := recordsOf[server.EvaluationRecord](n)
	if len(evals) != 3 || math.Abs(evals[2].Metrics["accuracy"]-0.7) > 1e-12 || evals[2].Round != 2 {
		t.Fatalf("evaluation records %+v, want rounds 0-2 with round 2 at 0.7", evals)
	}
}

func TestConfigRefusesRobustStrategyWithSecureAggregation(t *testing.T) {
	cfg := secAggConfig(1, 4, 4, 3)
	cfg.Strategy.Name = strategy.NameKrum
	_, err := server.New(cfg, server.Options{})
	if err == nil || !strings.Contains(err.Error(), "secure aggregation lets the server see only their sum") {
		t.Fatalf("err = %v", err)
	}
}

// Krum with f Byzantine clients needs rounds of more than 2f + 2 updates.
func TestConfigRefusesKrumWithTooFewClients(t *testing.T) {
	cfg := baseConfig(1, 4)
	cfg.Strategy = strategy.Config{Name: strategy.NameKrum, Byzantine: 1}
	if _, err := server.New(cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "sampling.min_fit = 4 with strategy.byzantine = 1") {
		t.Fatalf("err = %v", err)
	}
	cfg.Sampling.MinFit = 5
	if _, err := server.New(cfg, server.Options{}); err != nil {
		t.Fatalf("min_fit 5, f 1: %v", err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*server.Config)
		want string
	}{
		{"rounds", func(c *server.Config) { c.Rounds = 0 }, "rounds = 0"},
		{"committee-too-big", func(c *server.Config) { c.SecAgg.CommitteeSize = 5 }, "committee_size = 5 exceeds sampling.min_available = 4"},
		{"threshold", func(c *server.Config) { c.SecAgg.Threshold = 5 }, "secure_aggregation.threshold 5: must be 2…secure_aggregation.committee_size (4)"},
		{"threshold-1", func(c *server.Config) { c.SecAgg.Threshold = 1 }, "secure_aggregation.threshold 1: must be 2…"},
		// Two disjoint sets {1, 2} and {3, 4} could open a round's sum with and without a client.
		{"threshold-half", func(c *server.Config) { c.SecAgg.Threshold = 2 }, "secure_aggregation.threshold 2: must exceed half of secure_aggregation.committee_size 4 (at least 3)"},
		{"min-contributions", func(c *server.Config) { c.SecAgg.MinContributions = 5 }, "sampling.min_fit = 4 is below secure_aggregation.min_contributions = 5"},
		{"min-contributions-1", func(c *server.Config) { c.SecAgg.MinContributions = 1 }, "secure_aggregation.min_contributions 1: must be 2…"},
		// min_fit 1 used to default m to min(2, min_fit) = 1: the server could decrypt one
		// client's update.
		{"min-fit-1", func(c *server.Config) { c.Sampling.MinFit, c.Sampling.MinAvailable = 1, 4 }, "sampling.min_fit = 1 is below secure_aggregation.min_contributions = 2"},
		{"clip-key", func(c *server.Config) { c.SecAgg.MaxContributors = 100000 }, "secure_aggregation.max_contributors 100000 × per-client bound"},
		{"deadline", func(c *server.Config) { c.Deadlines.Fit = -time.Second }, "deadlines.fit"},
		{"clip", func(c *server.Config) { c.DP.UpdateClipNorm = -1 }, "dp.update_clip_norm = -1"},
		{"overflow", func(c *server.Config) { c.SecAgg.MaxContributors = 100000 }, "overflow budget exceeded"},
		{"strategy", func(c *server.Config) { c.Strategy.Name = "fedsgd" }, `strategy.name "fedsgd" unknown`},
		{"fraction", func(c *server.Config) { c.Sampling.FractionFit = 2 }, "sampling.fraction_fit = 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secAggConfig(1, 4, 4, 3)
			tc.edit(&cfg)
			_, err := server.New(cfg, server.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// A client whose connection closed is offline at once: its fit task fails now, and the
// round goes on without waiting for the client timeout.
func TestDisconnectedClientDropsOutAtOnce(t *testing.T) {
	cfg := baseConfig(1, 2)
	n := newNetwork(t, cfg, server.Options{}, trainersFor("a", "b", "c"))
	n.down["c"] = true
	n.run() // a and b answer; c's task is outstanding
	if got := recordsOf[server.RoundRecord](n); len(got) != 0 {
		t.Fatalf("the round finished before c dropped: %+v", got)
	}
	n.mustStep(server.Disconnected{ClientID: "c"})
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || rounds[0].Failed || len(rounds[0].Contributors) != 2 || n.c.Online() != 2 {
		t.Fatalf("rounds %+v, online %d: want the round done with a and b, c offline", rounds, n.c.Online())
	}
	if off := noticesOf[server.ClientOffline](n); len(off) != 1 || off[0].ClientID != "c" {
		t.Fatalf("offline notices %+v", off)
	}
}
