package client_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
	"github.com/confide-fl/confide/train"
)

// synthetic returns the Synthetic(α, β) federated data set of Li et al. 2020 (FedProx,
// Sec. 5.1), which Karimireddy et al. 2020 also use: client k's labels follow its own
// softmax model W_k ~ N(u_k, 1), b_k ~ N(u_k, 1) with u_k ~ N(0, α), on inputs
// x ~ N(v_k, Σ), v_k ~ N(B_k, 1), B_k ~ N(0, β), Σ = diag(j^−1.2); 60 features, 10 classes.
func synthetic(clients int, alpha, beta float64, seed uint64) []*data.Dataset {
	const d, c = 60, 10
	r := rand.New(rand.NewPCG(seed, 11))
	out := make([]*data.Dataset, clients)
	for k := range out {
		u, bk := alpha*r.NormFloat64(), beta*r.NormFloat64()
		w := make([]float64, c*d)
		b := make([]float64, c)
		for i := range w {
			w[i] = u + r.NormFloat64()
		}
		for i := range b {
			b[i] = u + r.NormFloat64()
		}
		v := make([]float64, d)
		for j := range v {
			v[j] = bk + r.NormFloat64()
		}
		n := 40 + r.IntN(160)
		ds := &data.Dataset{Name: "synthetic", N: n, Dim: d, X: make([]float64, n*d), Y: make([]int32, n), NumClasses: c}
		for i := range n {
			x := ds.X[i*d : (i+1)*d]
			for j := range x {
				x[j] = v[j] + math.Pow(float64(j+1), -0.6)*r.NormFloat64()
			}
			best, arg := math.Inf(-1), 0
			for cl := range c {
				z := b[cl]
				for j := range x {
					z += w[cl*d+j] * x[j]
				}
				if z > best {
					best, arg = z, cl
				}
			}
			ds.Y[i] = int32(arg)
		}
		out[k] = ds
	}
	return out
}

// federate runs rounds of a plaintext federation of the clients (real ModelTrainers) in
// memory and returns the final global parameters.
func federate(t *testing.T, cfg server.Config, sets []*data.Dataset) []float64 {
	final, _ := federateSeen(t, cfg, sets)
	return final
}

// federateSeen is federate, also returning the names of the blobs of every fit result the
// server received.
func federateSeen(t *testing.T, cfg server.Config, sets []*data.Dataset) ([]float64, [][]string) {
	t.Helper()
	coord, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(sets))
	parties := map[string]*client.Party{}
	for i, ds := range sets {
		ids[i] = string(rune('a'+i/26)) + string(rune('a'+i%26))
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: ds, Seed: uint64(i) + 1})
		if err != nil {
			t.Fatal(err)
		}
		p, err := client.NewParty(client.PartyConfig{ClientID: ids[i], ShareStatistics: true, StatisticsNoiseMultiplier: 1e-9}, tr)
		if err != nil {
			t.Fatal(err)
		}
		parties[ids[i]] = p
	}
	queue := map[string][]*pb.Task{}
	var final []float64
	var seen [][]string
	var step func(server.Event)
	step = func(ev server.Event) {
		r, err := coord.Step(ev)
		if err != nil {
			t.Fatalf("step %T: %v", ev, err)
		}
		for _, rec := range r.Persist {
			if rr, ok := rec.(server.RoundRecord); ok {
				if rr.Failed {
					t.Fatalf("round %d failed: %s", rr.Round, rr.Reason)
				}
				final = rr.Params
			}
		}
		for _, e := range r.Send {
			queue[e.To] = append(queue[e.To], e.Task)
		}
		for _, v := range r.Revoke {
			queue[v.To] = slices.DeleteFunc(queue[v.To], func(t *pb.Task) bool { return t.TaskId == v.TaskID })
		}
		for _, w := range r.Work {
			step(w.Run())
		}
	}
	for _, id := range ids {
		step(server.Join{ClientID: id, CommitteeEligible: true})
	}
	for progress := true; progress; {
		progress = false
		for _, id := range ids {
			if len(queue[id]) == 0 {
				continue
			}
			task := queue[id][0]
			queue[id] = queue[id][1:]
			res, err := parties[id].Handle(t.Context(), task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind == pb.TaskKind_TASK_KIND_FIT {
				var names []string
				for _, b := range res.Blobs {
					names = append(names, b.Name)
				}
				seen = append(seen, names)
			}
			step(server.ResultIn{ClientID: id, Result: res})
			progress = true
		}
	}
	return final, seen
}

// globalLoss is the loss of params on the union of the clients' data.
func globalLoss(t *testing.T, spec model.Spec, params []float64, sets []*data.Dataset) float64 {
	t.Helper()
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Params, params)
	var loss float64
	var n int
	for _, ds := range sets {
		r, err := train.Evaluate(m, ds, 256)
		if err != nil {
			t.Fatal(err)
		}
		loss += r.Loss * float64(r.Examples)
		n += r.Examples
	}
	return loss / float64(n)
}

// SCAFFOLD converges where FedAvg drifts: on Synthetic(1, 1) with many local steps, the
// same rounds leave SCAFFOLD's global model with a clearly lower loss on the union of the
// clients' data (Karimireddy et al. 2020, Sec. 7).
func TestScaffoldBeatsFedAvgOnSynthetic(t *testing.T) {
	sets := synthetic(20, 1, 1, 3)
	spec := model.Spec{Type: model.TypeMLP, Input: 60, Output: 10}
	cfg := func(name string) server.Config {
		return server.Config{
			Rounds: 15, Model: spec, Seed: 5,
			Sampling:  server.SamplingConfig{FractionFit: 1, MinFit: len(sets), MinAvailable: len(sets)},
			Training:  server.TrainingConfig{Epochs: 5, BatchSize: 10, LR: 0.01},
			Strategy:  strategy.Config{Name: name},
			Deadlines: server.DeadlineConfig{Fit: time.Minute},
		}
	}
	fedavg := globalLoss(t, spec, federate(t, cfg(strategy.NameFedAvg), sets), sets)
	scaffold := globalLoss(t, spec, federate(t, cfg(strategy.NameScaffold), sets), sets)
	t.Logf("global training loss after 15 rounds: fedavg %.4f, scaffold %.4f", fedavg, scaffold)
	if !(scaffold < 0.9*fedavg) {
		t.Fatalf("scaffold %.4f is not clearly below fedavg %.4f", scaffold, fedavg)
	}
}

// SCAFFOLD under secure aggregation: the control-variate deltas travel inside the
// encrypted update (the server receives nothing else from a fit), and the model equals
// plaintext SCAFFOLD's within the secure-aggregation decoding error.
func TestScaffoldUnderSecureAggregation(t *testing.T) {
	sets := synthetic(6, 1, 1, 7)
	spec := model.Spec{Type: model.TypeMLP, Input: 60, Output: 10}
	cfg := server.Config{
		Rounds: 3, Model: spec, Seed: 5,
		Sampling:  server.SamplingConfig{FractionFit: 1, MinFit: len(sets), MinAvailable: len(sets)},
		Training:  server.TrainingConfig{Epochs: 2, BatchSize: 10, LR: 0.01},
		Strategy:  strategy.Config{Name: strategy.NameScaffold, ControlClipNorm: 50},
		DP:        server.DPConfig{UpdateClipNorm: 5},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, KeySetup: time.Minute, Decrypt: time.Minute},
	}
	plain := federate(t, cfg, sets)
	cfg.SecAgg = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12, MinContributions: 2}
	secure, seen := federateSeen(t, cfg, sets)
	if len(seen) != 3*len(sets) {
		t.Fatalf("%d fit results, want %d", len(seen), 3*len(sets))
	}
	for _, names := range seen {
		if !slices.Equal(names, []string{"encrypted_update"}) {
			t.Fatalf("a fit result carried %v: the server must receive only the encrypted update", names)
		}
	}
	var worst float64
	for i := range plain {
		worst = max(worst, math.Abs(plain[i]-secure[i]))
	}
	t.Logf("largest difference between plaintext and secure-aggregation SCAFFOLD after 3 rounds: %.3g", worst)
	if worst > 5e-4 { // 3.8e-5…4.9e-5 in 10 runs
		t.Fatalf("secure-aggregation SCAFFOLD differs from plaintext by %.3g", worst)
	}
}

// A client's control variate lives in its Store (its state directory for `confide
// client`): it survives a restart (a new Party over the same Store continues from it) and
// starts from zero for a model of another shape.
func TestScaffoldControlVariateState(t *testing.T) {
	sets := synthetic(1, 1, 1, 9)
	store := client.NewMemoryStore()
	spec := model.Spec{Type: model.TypeMLP, Input: 60, Output: 10}
	dim, _ := spec.NumParams()
	round := uint64(0)
	task := func(s model.Spec, d int) *pb.Task {
		round++
		tk := fitTask(s, make([]float64, d), &pb.FitSpec{LocalEpochs: 1, BatchSize: 10, LearningRate: 0.01, Scaffold: &pb.ScaffoldSpec{}})
		tk.Blobs = append(tk.Blobs, blob.New(blob.Control, blob.EncodeFloats(make([]float64, d))))
		tk.Round = round // a new task each time (the same one would be answered from the made update)
		return tk
	}
	run := func(s model.Spec, d int) []float64 {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: sets[0], Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		p, err := client.NewParty(client.PartyConfig{ClientID: "a", Store: store}, tr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Handle(t.Context(), task(s, d))
		if err != nil || res.Status != pb.ResultStatus_RESULT_STATUS_OK {
			t.Fatalf("fit: %v %v %q", err, res.GetStatus(), res.GetReason())
		}
		b, err := blob.Find(res.Blobs, blob.Update)
		if err != nil {
			t.Fatal(err)
		}
		v, err := blob.DecodeFloats(b, 2*d)
		if err != nil {
			t.Fatal(err)
		}
		return v[d:] // Δc_i
	}
	first := run(spec, dim)
	// With c = 0 and c_i = 0 at first, Δc_1 = (x − y)/(Kη) ≠ 0; the next task (same global
	// model, c = 0) is corrected by −c_1 = −Δc_1, so its Δc differs.
	second := run(spec, dim)
	if slices.Equal(first, second) || norm(first) == 0 {
		t.Fatal("the control variate did not carry over to the next task")
	}
	// Another model: c_i starts from zero again, so Δc equals a fresh client's.
	other := model.Spec{Type: model.TypeMLP, Input: 60, Hidden: []int{4}, Output: 10}
	od, _ := other.NumParams()
	a := run(other, od)
	store = client.NewMemoryStore()
	b := run(other, od)
	if !slices.Equal(a, b) {
		t.Fatal("a model of another shape did not start from a zero control variate")
	}
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
