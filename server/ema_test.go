package server_test

import (
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
)

// averager replays global models into a strategy.EMA (whose arithmetic its own tests check
// against the closed form): FedAvg steps from the previous model to the next.
type averager struct {
	ema  strategy.Strategy
	prev []float64
}

func (a *averager) add(t *testing.T, x []float64) []float64 {
	t.Helper()
	d := make([]float64, len(x))
	for i := range x {
		d[i] = x[i] - a.prev[i]
	}
	if _, _, err := a.ema.AggregateFit(1, a.prev, strategy.FitResults{Sum: &strategy.WeightedSum{Sum: d, TotalWeight: 1, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	a.prev = x
	return a.ema.(strategy.Averaging).Released()
}

func closeTo(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

// With strategy.ema_decay the server releases the average of the global models: the
// central evaluation (headline metrics), the federated evaluation, the checkpoints and
// Released are the average, while the fit tasks carry the global iterate and the round
// records keep it for a restart; the iterate's central figures come as iterate_*.
func TestEMAReleasesTheAverageWhileClientsTrainFromTheIterate(t *testing.T) {
	const beta = 0.5
	ids := []string{"a", "b", "c"}
	cfg := baseConfig(4, 3)
	cfg.Strategy = strategy.Config{Name: strategy.NameFedAvgM, Momentum: new(0.5), EMADecay: beta}
	cfg.Sampling.FractionEvaluate = 1
	evaluated := map[uint64][][]float64{} // round → the models evaluated centrally, in order
	central := func(round uint64, params []float64) (map[string]float64, error) {
		evaluated[round] = append(evaluated[round], slices.Clone(params))
		return map[string]float64{"accuracy": float64(len(evaluated[round])), "loss": params[0]}, nil
	}
	n := newNetwork(t, cfg, server.Options{Central: central}, trainersFor(ids...))
	fitParams := map[uint64][]float64{}  // round → the model its fit tasks carried
	evalParams := map[uint64][]float64{} // round → the model its federated evaluation carried
	n.inspect = func(_ string, task *pb.Task) {
		b, err := blob.Find(task.Blobs, blob.Params)
		if err != nil {
			return
		}
		p, err := blob.DecodeFloats(b, 8)
		if err != nil {
			t.Fatal(err)
		}
		switch task.Kind {
		case pb.TaskKind_TASK_KIND_FIT:
			fitParams[task.Round] = p
		case pb.TaskKind_TASK_KIND_EVALUATE:
			evalParams[task.Round] = p
		}
	}
	n.run()
	if !n.c.Finished() {
		t.Fatalf("federation not finished (phase %s)", n.c.Phase())
	}
	rounds := recordsOf[server.RoundRecord](n)
	evals := map[uint64]server.EvaluationRecord{}
	for _, e := range recordsOf[server.EvaluationRecord](n) {
		evals[e.Round] = e
	}
	avg := &averager{ema: strategy.WithEMA(&strategy.FedAvg{}, beta), prev: make([]float64, len(rounds[0].Params))}
	for _, rr := range rounds {
		want := avg.add(t, rr.Params)
		if !closeTo(rr.Released, want, 1e-12) {
			t.Fatalf("round %d: released %v, want the average %v", rr.Round, rr.Released, want)
		}
		if rr.Round > 1 && closeTo(rr.Released, rr.Params, 1e-9) {
			t.Fatalf("round %d: the released model is the iterate", rr.Round)
		}
		// Central evaluation: the average first, then the iterate.
		if got := evaluated[rr.Round]; len(got) != 2 || !slices.Equal(got[0], rr.Released) || !slices.Equal(got[1], rr.Params) {
			t.Fatalf("round %d: central evaluations of %v, want the average %v then the iterate %v", rr.Round, got, rr.Released, rr.Params)
		}
		m := evals[rr.Round].Metrics
		if m["accuracy"] != 1 || m["iterate_accuracy"] != 2 || m["loss"] != rr.Released[0] || m["iterate_loss"] != rr.Params[0] {
			t.Fatalf("round %d: central metrics %v", rr.Round, m)
		}
		if !slices.Equal(evalParams[rr.Round], rr.Released) {
			t.Fatalf("round %d: federated evaluation of %v, want the average %v", rr.Round, evalParams[rr.Round], rr.Released)
		}
		if next, ok := fitParams[rr.Round+1]; ok && !slices.Equal(next, rr.Params) {
			t.Fatalf("round %d: the clients trained from %v, want the iterate %v", rr.Round+1, next, rr.Params)
		}
	}
	// Round 1's tasks went out as the clients joined, before inspect was set.
	if got := slices.Sorted(maps.Keys(fitParams)); !slices.Equal(got, []uint64{2, 3, 4}) || len(rounds) != 4 {
		t.Fatalf("fit tasks of rounds %v seen, %d round records; want rounds 2–4 of 4", got, len(rounds))
	}
	last := rounds[len(rounds)-1]
	if !slices.Equal(n.c.Released(), last.Released) || !slices.Equal(n.c.Global(), last.Params) {
		t.Fatalf("Released %v / Global %v, want the last average %v / iterate %v", n.c.Released(), n.c.Global(), last.Released, last.Params)
	}
	// The checkpoint files hold the average.
	cs, err := server.NewCheckpointStore(t.TempDir(), tinyModel())
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Append(n.persist); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(filepath.Join(cs.Dir, "latest.confide"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Params; !closeTo(got, last.Released, 1e-6) {
		t.Fatalf("latest.confide holds %v, want the average %v", got, last.Released)
	}
}

// Without ema_decay nothing changes: the released model is the global model and the
// iterate is not evaluated twice.
func TestWithoutEMAReleasedIsTheGlobalModel(t *testing.T) {
	cfg := baseConfig(2, 2)
	calls := 0
	central := func(uint64, []float64) (map[string]float64, error) {
		calls++
		return map[string]float64{"accuracy": 0.5}, nil
	}
	n := newNetwork(t, cfg, server.Options{Central: central}, trainersFor("a", "b"))
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	for _, rr := range rounds {
		if rr.Released != nil {
			t.Fatalf("round %d: released %v without ema_decay", rr.Round, rr.Released)
		}
	}
	if calls != 3 || !slices.Equal(n.c.Released(), n.c.Global()) {
		t.Fatalf("%d central evaluations (want 3: rounds 0, 1, 2); released %v, global %v", calls, n.c.Released(), n.c.Global())
	}
	for _, e := range recordsOf[server.EvaluationRecord](n) {
		if _, ok := e.Metrics["iterate_accuracy"]; ok {
			t.Fatalf("round %d: iterate_accuracy without ema_decay", e.Round)
		}
	}
}

// A server killed mid-round and restarted with its store resumes the average with
// FedAvgM's momentum: the released model and the iterate after the last round equal an
// uninterrupted run's, bit for bit (no secure aggregation, no noise, fixed seeds).
func TestEMAResumesAfterARestart(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	cfg := baseConfig(6, 2)
	cfg.Sampling.NumFit = 3
	cfg.Sampling.MinAvailable = len(ids)
	cfg.Strategy = strategy.Config{Name: strategy.NameFedAvgM, Momentum: new(0.9), EMADecay: 0.8}

	clean := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	clean.run()
	want := recordsOf[server.RoundRecord](clean)[5]

	dir := t.TempDir()
	n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool { return len(noticesOf[server.RoundStarted](n)) == 4 })
	n.persistTo(t, dir)
	n.restart(t, cfg, dir)
	if got := n.c.Released(); !slices.Equal(got, recordsOf[server.RoundRecord](clean)[2].Released) {
		t.Fatalf("restarted after round 3: released %v, want round 3's average %v", got, recordsOf[server.RoundRecord](clean)[2].Released)
	}
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	got := rounds[len(rounds)-1]
	if got.Round != 6 || !slices.Equal(got.Params, want.Params) || !slices.Equal(got.Released, want.Released) || !slices.Equal(n.c.Released(), want.Released) {
		t.Fatalf("round %d after resuming: iterate %v average %v; uninterrupted %v %v", got.Round, got.Params, got.Released, want.Params, want.Released)
	}
}
