package server_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/secagg/identitytest"
	"github.com/confide-fl/confide/server"
)

// fakeTrainer moves every parameter by Shift and reports N examples.
type fakeTrainer struct {
	Shift  float64
	N      int
	Refuse bool
	Fail   bool
	fits   int
}

func (f *fakeTrainer) Fit(_ context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	f.fits++
	if f.Refuse {
		return client.FitResult{}, fmt.Errorf("round %d: %w", cfg.Round, client.ErrBudgetExceeded)
	}
	if f.Fail {
		return client.FitResult{}, errors.New("disk on fire")
	}
	p := slices.Clone(global)
	for i := range p {
		p[i] += f.Shift
	}
	return client.FitResult{Params: p, NumExamples: f.N, Metrics: map[string]float64{"loss": 1, "accuracy": 0.5, "epsilon": 0.25 * float64(f.fits)}}, nil
}

func (f *fakeTrainer) Evaluate(_ context.Context, params []float64, _ client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{NumExamples: f.N, Loss: 0.5, Metrics: map[string]float64{"accuracy": 0.9}}, nil
}

// network is an in-memory transport: per-client task queues, clients that can be taken
// down (they neither answer nor heartbeat), and a log of everything the coordinator output.
type network struct {
	t        *testing.T
	c        *server.Coordinator
	parties  map[string]*client.Party
	trainers map[string]*fakeTrainer
	queue    map[string][]*pb.Task
	down     map[string]bool
	persist  []server.Record
	notices  []server.Notice
	answered []answered
	// hold keeps the driver's aggregation work in held instead of running it at once.
	hold bool
	held []server.Work
	// inspect, when set, sees every task the coordinator sends.
	inspect func(to string, task *pb.Task)
}

type answered struct {
	client string
	result *pb.Result
}

func tinyModel() model.Spec { return model.Spec{Type: model.TypeMLP, Input: 3, Output: 2} } // 8 parameters

// testWeightScale keeps the weights N/testWeightScale of trainersFor's clients below the
// default max_weight 1.
const testWeightScale = 1000

func baseConfig(rounds, minFit int) server.Config {
	return server.Config{
		Rounds: rounds, Model: tinyModel(), Seed: 7,
		Sampling:  server.SamplingConfig{MinFit: minFit},
		Training:  server.TrainingConfig{WeightScale: testWeightScale},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, KeySetup: time.Minute, Decrypt: time.Minute, Evaluate: time.Minute, ClientTimeout: 20 * time.Second},
	}
}

func secAggConfig(rounds, minFit, k, t int) server.Config {
	cfg := baseConfig(rounds, minFit)
	cfg.SecAgg = server.SecAggConfig{Enabled: true, CommitteeSize: k, Threshold: t, LogN: 12}
	cfg.DP.UpdateClipNorm = 5
	return cfg
}

func newNetwork(t *testing.T, cfg server.Config, opts server.Options, trainers map[string]*fakeTrainer) *network {
	t.Helper()
	return newNetworkWith(t, cfg, opts, trainers, nil)
}

// newAuthNetwork is newNetwork with authenticated secure aggregation: every client holds an
// identity of an in-memory CA, which the coordinator verifies against.
func newAuthNetwork(t *testing.T, cfg server.Config, opts server.Options, trainers map[string]*fakeTrainer) (*network, *identitytest.CA) {
	t.Helper()
	ca, err := identitytest.NewCA(42)
	if err != nil {
		t.Fatal(err)
	}
	return newNetworkWith(t, cfg, opts, trainers, ca), ca
}

func newNetworkWith(t *testing.T, cfg server.Config, opts server.Options, trainers map[string]*fakeTrainer, ca *identitytest.CA) *network {
	t.Helper()
	var verifier *secagg.Verifier
	if ca != nil {
		v, err := secagg.NewVerifier([]*x509.Certificate{ca.Certificate()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		verifier, opts.Verifier = v, v
	}
	if cfg.Sampling.MinAvailable == 0 {
		cfg.Sampling.MinAvailable = len(trainers) // start once everyone joined
	}
	c, err := server.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	n := &network{t: t, c: c, parties: map[string]*client.Party{}, trainers: trainers, queue: map[string][]*pb.Task{}, down: map[string]bool{}}
	for i, id := range slices.Sorted(mapKeys(trainers)) {
		// Seeded noise keeps user-level DP's distributed noise reproducible in tests.
		// Clients opt in to sharing statistics without secure aggregation, with negligible
		// noise, so that plaintext tests can check exact example-weighted means.
		pc := client.PartyConfig{ClientID: id, Noise: dp.NewDeterministicNoise(uint64(i + 1)), ShareStatistics: true, StatisticsNoiseMultiplier: 1e-9}
		if ca != nil {
			ident, err := ca.Issue(id)
			if err != nil {
				t.Fatal(err)
			}
			if pc.Signer, err = secagg.NewSigner(ident.Certificate, ident.Key); err != nil {
				t.Fatal(err)
			}
			pc.Verifier = verifier
		}
		p, err := client.NewParty(pc, trainers[id])
		if err != nil {
			t.Fatal(err)
		}
		n.parties[id] = p
		n.mustStep(server.Join{ClientID: id, CommitteeEligible: true})
	}
	return n
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (n *network) step(ev server.Event) error {
	r, err := n.c.Step(ev)
	n.persist = append(n.persist, r.Persist...)
	n.notices = append(n.notices, r.Notices...)
	// Central evaluations are the driver's work, answered with Evaluated events.
	for _, req := range r.Evaluate {
		if serr := n.step(req.Run(n.c.CentralEvaluator(), n.c.IterateEvaluator())); serr != nil {
			return serr
		}
	}
	for _, e := range r.Send {
		if n.inspect != nil {
			n.inspect(e.To, e.Task)
		}
		n.queue[e.To] = append(n.queue[e.To], e.Task)
	}
	for _, v := range r.Revoke {
		n.queue[v.To] = slices.DeleteFunc(n.queue[v.To], func(t *pb.Task) bool { return t.TaskId == v.TaskID })
	}
	// Encrypted uploads are added by the driver too, answered with Aggregated events.
	for _, w := range r.Work {
		if n.hold {
			n.held = append(n.held, w)
			continue
		}
		if serr := n.step(w.Run()); serr != nil {
			return serr
		}
	}
	return err
}

func (n *network) mustStep(ev server.Event) {
	n.t.Helper()
	if err := n.step(ev); err != nil {
		n.t.Fatalf("step %T: %v", ev, err)
	}
}

// runUntil delivers queued tasks like run, stopping as soon as done reports true.
func (n *network) runUntil(done func() bool) {
	n.t.Helper()
	for progress := true; progress && !done(); {
		progress = false
		for _, id := range slices.Sorted(mapKeys(n.parties)) {
			if n.down[id] || len(n.queue[id]) == 0 || done() {
				continue
			}
			task := n.queue[id][0]
			n.queue[id] = n.queue[id][1:]
			res, err := n.parties[id].Handle(context.Background(), task)
			if err != nil {
				n.t.Fatalf("client %s: %v", id, err)
			}
			n.answered = append(n.answered, answered{id, res})
			n.mustStep(server.ResultIn{ClientID: id, Result: res})
			progress = true
		}
	}
}

// runOne delivers one queued task (the first client in order that has one).
func (n *network) runOne() {
	n.t.Helper()
	for _, id := range slices.Sorted(mapKeys(n.parties)) {
		if n.down[id] || len(n.queue[id]) == 0 {
			continue
		}
		task := n.queue[id][0]
		n.queue[id] = n.queue[id][1:]
		res, err := n.parties[id].Handle(context.Background(), task)
		if err != nil {
			n.t.Fatalf("client %s: %v", id, err)
		}
		n.answered = append(n.answered, answered{id, res})
		n.mustStep(server.ResultIn{ClientID: id, Result: res})
		return
	}
}

// run delivers queued tasks to the clients that are up, in client order, until none is left.
func (n *network) run() {
	n.t.Helper()
	for progress := true; progress; {
		progress = false
		for _, id := range slices.Sorted(mapKeys(n.parties)) {
			if n.down[id] || len(n.queue[id]) == 0 {
				continue
			}
			task := n.queue[id][0]
			n.queue[id] = n.queue[id][1:]
			res, err := n.parties[id].Handle(context.Background(), task)
			if err != nil {
				n.t.Fatalf("client %s: %v", id, err)
			}
			n.answered = append(n.answered, answered{id, res})
			n.mustStep(server.ResultIn{ClientID: id, Result: res})
			progress = true
		}
	}
}

// tick advances time in steps of 5s; clients that are up heartbeat before every step.
func (n *network) tick(d time.Duration) {
	n.t.Helper()
	for d > 0 {
		for _, id := range slices.Sorted(mapKeys(n.parties)) {
			if !n.down[id] {
				n.mustStep(server.Heartbeat{ClientID: id})
			}
		}
		step := min(d, 5*time.Second)
		n.mustStep(server.Tick{Elapsed: step})
		d -= step
	}
}

func noticesOf[T server.Notice](n *network) []T {
	var out []T
	for _, x := range n.notices {
		if v, ok := x.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func recordsOf[T server.Record](n *network) []T {
	var out []T
	for _, x := range n.persist {
		if v, ok := x.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func trainersFor(ids ...string) map[string]*fakeTrainer {
	m := map[string]*fakeTrainer{}
	for i, id := range ids {
		m[id] = &fakeTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)}
	}
	return m
}
