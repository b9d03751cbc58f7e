package client_test

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

func fitTask(spec model.Spec, params []float64, fit *pb.FitSpec) *pb.Task {
	fit.Model = &pb.ModelSpec{SpecJson: spec.JSON(), NumParams: int64(len(params))}
	return &pb.Task{TaskId: "fit-r1-1", Kind: pb.TaskKind_TASK_KIND_FIT, Round: 1, Spec: &pb.Task_Fit{Fit: fit},
		Blobs: []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(params))}}
}

var blobSpec = model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{8}, Output: 2}

func zeros() []float64 {
	m, err := model.New(blobSpec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		panic(err)
	}
	return make([]float64, m.NumParams())
}

func TestBuiltInTrainerRefusesOverBudgetAndTellsTheServer(t *testing.T) {
	store := client.NewMemoryStore()
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, 1), Budget: &dp.Budget{Epsilon: 1, Delta: 1e-5}, Store: store, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewParty(client.PartyConfig{ClientID: "a"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	fit := func(sigma float64, epochs int32) *pb.Result {
		// The server's schedule: q = 0.1 (expected batch 20 of 200), 10 steps an epoch.
		res, err := p.Handle(t.Context(), fitTask(blobSpec, zeros(), &pb.FitSpec{LocalEpochs: epochs, BatchSize: 20, Optimizer: "sgd", LearningRate: 0.1,
			Dp: &pb.DPSpec{NoiseMultiplier: sigma, MaxGradNorm: 1, Delta: 1e-5, SampleRate: 0.1, Steps: 10 * epochs}}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// σ = 2, q = 0.1, 10 steps: well inside ε = 1.
	ok := fit(2, 1)
	if ok.Status != pb.ResultStatus_RESULT_STATUS_OK || !(ok.Metrics["epsilon"] > 0) {
		t.Fatalf("first task: %v %q, metrics %v", ok.Status, ok.Reason, ok.Metrics)
	}
	spent := ok.Metrics["epsilon"]
	// σ = 0.5 for 20 epochs would take ε far past 1: refused, with the reason, nothing spent.
	refused := fit(0.5, 20)
	if refused.Status != pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET || !strings.Contains(refused.Reason, "over the budget ε = 1 at δ = 1e-05") || len(refused.Blobs) != 0 {
		t.Fatalf("over-budget task: %v %q, %d blobs", refused.Status, refused.Reason, len(refused.Blobs))
	}
	// No DP at all means unbounded ε: refused too.
	if r := fit(0, 1); r.Status != pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET || !strings.Contains(r.Reason, "without DP-SGD noise") {
		t.Fatalf("task without DP-SGD: %v %q", r.Status, r.Reason)
	}
	// The ledger survives a restart with exactly what was charged.
	l, err := client.OpenLedger(store, dp.Budget{Epsilon: 1, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := l.Spent(); math.Abs(eps-spent) > 1e-12 {
		t.Fatalf("reloaded ledger ε = %v, want %v", eps, spent)
	}
}

func TestLedgerMatchesAccountant(t *testing.T) {
	store := client.NewMemoryStore()
	l, err := client.OpenLedger(store, dp.Budget{Epsilon: 100, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	steps := []accountant.Step{{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 600}, {NoiseMultiplier: 0.9, SampleRate: 0.02, Steps: 100}}
	if err := l.Charge(steps...); err != nil {
		t.Fatal(err)
	}
	want, err := accountant.Epsilon(steps, 1e-5, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Spent(); got != want.Epsilon {
		t.Fatalf("ledger ε = %v, accountant %v", got, want.Epsilon)
	}
	if snap, err := client.ReadLedger(store); err != nil || snap.Charges != 1 || len(snap.History) != 2 {
		t.Fatalf("ReadLedger: %+v, %v", snap, err)
	}
	if _, err := client.ReadLedger(client.NewMemoryStore()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadLedger of a store without a ledger: %v, want fs.ErrNotExist", err)
	}
	if err := store.Save(client.LedgerName, []byte("{garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.OpenLedger(store, dp.Budget{Epsilon: 100, Delta: 1e-5}); err == nil || !strings.Contains(err.Error(), "not a ledger file") || !strings.Contains(err.Error(), "refusing to reset it") {
		t.Fatalf("corrupted ledger: err = %v", err)
	}
}

// A client that opted in to sharing statistics still sends the server only a generic
// reason for an error of its trainer, which may hold values of its data; a TaskError keeps
// its text.
func TestPartyKeepsDataDependentErrorsToItself(t *testing.T) {
	params := zeros()
	eval := &pb.Task{TaskId: "x", Round: 1, Kind: pb.TaskKind_TASK_KIND_EVALUATE, Spec: &pb.Task_Evaluate{Evaluate: &pb.EvaluateSpec{Model: &pb.ModelSpec{SpecJson: blobSpec.JSON(), NumParams: int64(len(params))}}},
		Blobs: []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(params))}}
	for _, tc := range []struct {
		name       string
		err        error
		want, hide string
	}{
		{"data-error", errors.New("training diverged at step 17 (loss 3.25)"), "may depend on local data", "3.25"},
		{"task-error", client.TaskError(errors.New("model input 4, the data has 5 features")), "model input 4", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := client.NewParty(client.PartyConfig{ClientID: "a", ShareStatistics: true}, failingTrainer{tc.err})
			res, err := p.Handle(t.Context(), eval)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, tc.want) || (tc.hide != "" && strings.Contains(res.Reason, tc.hide)) {
				t.Fatalf("reason %q: want %q without %q", res.Reason, tc.want, tc.hide)
			}
		})
	}
	// At most one evaluation a round.
	p, _ := client.NewParty(client.PartyConfig{ClientID: "a", ShareStatistics: true, StatisticsNoiseMultiplier: 1}, evalTrainer{})
	first, _ := p.Handle(t.Context(), eval)
	second, _ := p.Handle(t.Context(), eval)
	if first.Status != pb.ResultStatus_RESULT_STATUS_OK || second.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(second.Reason, "limit per round") {
		t.Fatalf("two evaluations in a round: %v %q, then %v %q", first.Status, first.Reason, second.Status, second.Reason)
	}
}

type failingTrainer struct{ err error }

func (f failingTrainer) Fit(context.Context, []float64, client.FitConfig) (client.FitResult, error) {
	return client.FitResult{}, f.err
}
func (f failingTrainer) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{}, f.err
}

type evalTrainer struct{ fixedTrainer }

func (evalTrainer) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{NumExamples: 100, Loss: 0.5, Metrics: map[string]float64{"accuracy": 0.8}}, nil
}

// fixedTrainer trains by shifting every parameter.
// fixedTrainer moves every parameter by shift, reporting steps local steps.
type fixedTrainer struct {
	shift float64
	steps int
}

func (f fixedTrainer) Fit(_ context.Context, global []float64, _ client.FitConfig) (client.FitResult, error) {
	p := make([]float64, len(global))
	for i := range p {
		p[i] = global[i] + f.shift
	}
	return client.FitResult{Params: p, NumExamples: 10, Steps: f.steps}, nil
}

func (fixedTrainer) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{}, errors.New("no test data")
}

func TestPartyClipsUpdatesAndValidatesTasks(t *testing.T) {
	p, _ := client.NewParty(client.PartyConfig{ClientID: "a"}, fixedTrainer{shift: 1})
	params := zeros()
	res, err := p.Handle(t.Context(), fitTask(blobSpec, params, &pb.FitSpec{UpdateClipNorm: 2}))
	if err != nil || res.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Fatalf("fit: %v %v %q", err, res.GetStatus(), res.GetReason())
	}
	d, _ := blob.Find(res.Blobs, blob.Update)
	delta, _ := blob.DecodeFloats(d, len(params))
	var s float64
	for _, v := range delta {
		s += v * v
	}
	if n := math.Sqrt(s); n > 2 || n < 2-1e-9 {
		t.Fatalf("update norm %v, want clipped to 2", n)
	}
	for _, tc := range []struct {
		name string
		task *pb.Task
		want string
	}{
		{"wrong-param-count", fitTask(blobSpec, params[:3], &pb.FitSpec{}), "the task announces 3"},
		{"short-params", func() *pb.Task {
			t := fitTask(blobSpec, params, &pb.FitSpec{})
			t.Blobs = []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(params[:3]))}
			return t
		}(), "has 3 values, want"},
		{"no-spec", &pb.Task{TaskId: "x", Kind: pb.TaskKind_TASK_KIND_FIT}, "without a fit spec"},
		{"unknown-kind", &pb.Task{TaskId: "x", Kind: pb.TaskKind(42)}, "unknown to this client"},
		{"evaluate-error", &pb.Task{TaskId: "x", Kind: pb.TaskKind_TASK_KIND_EVALUATE, Spec: &pb.Task_Evaluate{Evaluate: &pb.EvaluateSpec{Model: &pb.ModelSpec{SpecJson: blobSpec.JSON(), NumParams: int64(len(params))}}},
			Blobs: []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(params))}}, "only inside the secure aggregate"},
		{"decrypt-unknown-session", &pb.Task{TaskId: "x", Kind: pb.TaskKind_TASK_KIND_DECRYPT, Spec: &pb.Task_Decrypt{Decrypt: &pb.DecryptSpec{Session: make([]byte, 16), MemberId: 1,
			Params: &pb.SecAggParams{LogN: 12, CommitteeSize: 3, Threshold: 2, MinContributions: 2}}}}, "no key-committee state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := p.Handle(t.Context(), tc.task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("status %v reason %q, want FAILED mentioning %q", res.Status, res.Reason, tc.want)
			}
		})
	}
}

func TestPartyRefusesWeakCommittee(t *testing.T) {
	p, _ := client.NewParty(client.PartyConfig{ClientID: "a", MinThreshold: 4}, fixedTrainer{})
	res, err := p.Handle(t.Context(), &pb.Task{TaskId: "k", Kind: pb.TaskKind_TASK_KIND_KEY_SETUP, Spec: &pb.Task_KeySetup{KeySetup: &pb.KeySetupSpec{
		Stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, Session: make([]byte, 16), MemberId: 1,
		Params: &pb.SecAggParams{LogN: 12, CommitteeSize: 5, Threshold: 3, MinContributions: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, "below this client's minimum 4") {
		t.Fatalf("weak committee: %v %q", res.Status, res.Reason)
	}
}

func TestProximalTermPullsTowardsGlobal(t *testing.T) {
	run := func(mu float64) float64 {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, 1), Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		global := zeros()
		for i := range global {
			global[i] = 0.1
		}
		r, err := tr.Fit(t.Context(), global, client.FitConfig{Model: blobSpec, Epochs: 3, BatchSize: 20, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.2}, ProximalMu: mu})
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for i, v := range r.Params {
			s += (v - global[i]) * (v - global[i])
		}
		return math.Sqrt(s)
	}
	free, prox := run(0), run(5)
	if !(prox < 0.8*free) {
		t.Fatalf("‖w − w_global‖ = %v with μ = 5, %v without: the proximal term should shrink it", prox, free)
	}
}

func TestDirStoreRoundTripAndMissing(t *testing.T) {
	s, err := client.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("member-00"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing state: err = %v, want fs.ErrNotExist", err)
	}
	if err := s.Save("../escape", nil); err == nil {
		t.Fatal("path-like name accepted")
	}
	if err := s.Save("member-00", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Load("member-00"); err != nil || string(b) != "x" {
		t.Fatalf("Load = %q, %v", b, err)
	}
}

// TestPartyUserLevelDP: under user-level DP the party appends the clip indicator of the
// update's norm before clipping and adds its distributed noise share after clipping.
func TestPartyUserLevelDP(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 50, Output: 40} // 2040 parameters
	params := make([]float64, 50*40+40)
	fit := func(shift float64, fs *pb.FitSpec) (*pb.Result, []float64) {
		t.Helper()
		p, _ := client.NewParty(client.PartyConfig{ClientID: "a", Noise: dp.NewDeterministicNoise(7)}, fixedTrainer{shift: shift})
		res, err := p.Handle(t.Context(), fitTask(spec, params, fs))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != pb.ResultStatus_RESULT_STATUS_OK {
			return res, nil
		}
		d, _ := blob.Find(res.Blobs, blob.Update)
		v, err := blob.DecodeFloats(d, len(params)+1)
		if err != nil {
			t.Fatal(err)
		}
		return res, v
	}
	// Norm 2·√2040 > S = 1: clipped to 1, centred indicator −½, no noise asked.
	_, v := fit(2, &pb.FitSpec{UpdateClipNorm: 1, UserLevelDp: &pb.UserLevelDPSpec{ClipIndicator: true}})
	if n := dp.L2Norm(v[:len(params)]); math.Abs(n-1) > 1e-9 || v[len(params)] != -0.5 {
		t.Fatalf("clipped norm %v and indicator %v, want 1 and −½", n, v[len(params)])
	}
	// A zero update under the clip: indicator +½, and the noise shares are all that is sent.
	_, v = fit(0, &pb.FitSpec{UpdateClipNorm: 1, UserLevelDp: &pb.UserLevelDPSpec{NoiseStd: 0.3, ClipIndicator: true, ClipIndicatorNoiseStd: 1e-3}})
	if std := dp.L2Norm(v[:len(params)]) / math.Sqrt(float64(len(params))); math.Abs(std-0.3)/0.3 > 0.05 {
		t.Fatalf("noise std %v, want 0.3 (±5%%)", std)
	}
	if ind := v[len(params)]; ind == 0.5 || math.Abs(ind-0.5) > 0.01 {
		t.Fatalf("indicator %v, want ½ plus a little noise", ind)
	}
	for _, tc := range []struct {
		name string
		fs   *pb.FitSpec
		want string
	}{
		{"no-clip", &pb.FitSpec{UserLevelDp: &pb.UserLevelDPSpec{NoiseStd: 1}}, "needs a positive clip norm"},
		{"negative-noise", &pb.FitSpec{UpdateClipNorm: 1, UserLevelDp: &pb.UserLevelDPSpec{NoiseStd: -1}}, "noise_std -1"},
		{"indicator-noise-without-indicator", &pb.FitSpec{UpdateClipNorm: 1, UserLevelDp: &pb.UserLevelDPSpec{ClipIndicatorNoiseStd: 1}}, "without clip_indicator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := fit(0, tc.fs)
			if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("status %v reason %q, want FAILED mentioning %q", res.Status, res.Reason, tc.want)
			}
		})
	}
}

// The client's floors hold whatever the server asks: a fit task without DP-SGD noise, or
// with less than --min-noise-multiplier, is refused before training with a reason the
// server records; a task without a DP-SGD schedule is refused; a client that accepts no-DP
// tasks (floor 0) trains.
func TestPartyRefusesTasksBelowItsFloors(t *testing.T) {
	fit := func(p *client.Party, dpSpec *pb.DPSpec) *pb.Result {
		res, err := p.Handle(t.Context(), fitTask(blobSpec, zeros(), &pb.FitSpec{LocalEpochs: 1, BatchSize: 10, Optimizer: "sgd", LearningRate: 0.1, Dp: dpSpec}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	tr := &countingTrainer{}
	strict, _ := client.NewParty(client.PartyConfig{ClientID: "a", MinNoiseMultiplier: 0.5}, tr)
	for _, tc := range []struct {
		name string
		dp   *pb.DPSpec
		want string
	}{
		{"no-dp", &pb.DPSpec{}, "trains without DP-SGD (noise multiplier 0)"},
		{"weak-dp", &pb.DPSpec{NoiseMultiplier: 0.3, MaxGradNorm: 1, SampleRate: 0.1, Steps: 10}, "noise multiplier 0.3 is below this client's minimum 0.5"},
	} {
		if r := fit(strict, tc.dp); r.Status != pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET || !strings.Contains(r.Reason, tc.want) || !strings.Contains(r.Reason, "min-noise-multiplier") {
			t.Errorf("%s: %v %q, want a refusal naming %q and the flag", tc.name, r.Status, r.Reason, tc.want)
		}
	}
	if r := fit(strict, &pb.DPSpec{NoiseMultiplier: 1, MaxGradNorm: 1}); r.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(r.Reason, "schedule") {
		t.Errorf("a DP task without a schedule: %v %q", r.Status, r.Reason)
	}
	if tr.fits != 0 {
		t.Fatalf("%d trainings for refused tasks", tr.fits)
	}
	if r := fit(strict, &pb.DPSpec{NoiseMultiplier: 1, MaxGradNorm: 1, SampleRate: 0.1, Steps: 10}); r.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Errorf("a task above the floor: %v %q", r.Status, r.Reason)
	}
	noDP, _ := client.NewParty(client.PartyConfig{ClientID: "a"}, tr)
	if r := fit(noDP, &pb.DPSpec{}); r.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Errorf("a no-DP client and a task without DP-SGD: %v %q", r.Status, r.Reason)
	}
}

// A fit task whose deadline has passed is dropped before the ledger pays for anything: the
// server would refuse the result.
func TestPartyDropsLateFitTasksUncharged(t *testing.T) {
	store := client.NewMemoryStore()
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, 1), Budget: &dp.Budget{Epsilon: 10, Delta: 1e-5}, Store: store, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	p, err := client.NewParty(client.PartyConfig{ClientID: "a"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	task := fitTask(blobSpec, zeros(), &pb.FitSpec{LocalEpochs: 1, BatchSize: 20, Optimizer: "sgd", LearningRate: 0.1,
		Dp: &pb.DPSpec{NoiseMultiplier: 1, MaxGradNorm: 1, Delta: 1e-5, SampleRate: 0.1, Steps: 10}})
	task.DeadlineUnixMs = time.Now().Add(-time.Second).UnixMilli()
	res, err := p.Handle(t.Context(), task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, "deadline exceeded") || len(res.Blobs) != 0 {
		t.Fatalf("late task: %v %q, %d blobs", res.Status, res.Reason, len(res.Blobs))
	}
	if eps, _ := tr.Ledger().Spent(); eps != 0 {
		t.Fatalf("the ledger paid ε = %v for a dropped update", eps)
	}
	// The same task in time trains and pays.
	task.DeadlineUnixMs = time.Now().Add(time.Minute).UnixMilli()
	if res, _ := p.Handle(t.Context(), task); res.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Fatalf("task in time: %v %q", res.Status, res.Reason)
	}
	if eps, _ := tr.Ledger().Spent(); !(eps > 0) {
		t.Fatal("the ledger did not pay for the delivered update")
	}
}

// TestSharedCountStaysPositive: a client that shares its noised example count sends at
// least 1, however far the noise pulls a small count below zero (the server refuses a
// negative count, which dropped about one small client in seven a round).
func TestSharedCountStaysPositive(t *testing.T) {
	low := false
	for seed := range uint64(40) {
		p, err := client.NewParty(client.PartyConfig{ClientID: "a", ShareStatistics: true, StatisticsNoiseMultiplier: 50, Noise: dp.NewDeterministicNoise(seed)}, fixedTrainer{shift: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Handle(t.Context(), fitTask(blobSpec, zeros(), &pb.FitSpec{LocalEpochs: 1, BatchSize: 10, Optimizer: "sgd", LearningRate: 0.1}))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != pb.ResultStatus_RESULT_STATUS_OK || res.NumExamples < 1 {
			t.Fatalf("seed %d: status %v %q, count %d; want OK and a count ≥ 1", seed, res.Status, res.Reason, res.NumExamples)
		}
		low = low || res.NumExamples == 1
	}
	if !low {
		t.Fatal("no draw clamped to 1 in 40 with noise 50 around 10 examples: the test does not exercise the clamp")
	}
}
