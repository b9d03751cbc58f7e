package client_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// scriptedTransport hands out its tasks once each, then reports the federation finished;
// Push answers with pushErrs in turn (nil once they run out).
type scriptedTransport struct {
	mu       sync.Mutex
	tasks    []*pb.Task
	pushErrs []error
	pushed   []*pb.Result
	joins    int
}

func (s *scriptedTransport) Join(context.Context, *pb.JoinRequest) (*pb.JoinResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joins++
	return &pb.JoinResponse{HeartbeatIntervalMs: 60000}, nil
}

func (s *scriptedTransport) Pull(context.Context, time.Duration) (*pb.Task, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) == 0 {
		return nil, true, nil
	}
	t := s.tasks[0]
	s.tasks = s.tasks[1:]
	return t, false, nil
}

func (s *scriptedTransport) Push(_ context.Context, res *pb.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushed = append(s.pushed, res)
	if len(s.pushErrs) == 0 {
		return nil
	}
	err := s.pushErrs[0]
	s.pushErrs = s.pushErrs[1:]
	return err
}

func (s *scriptedTransport) Heartbeat(context.Context) error { return nil }
func (s *scriptedTransport) Leave(context.Context) error     { return nil }

// countingTrainer counts the trainings (each one is charged to a privacy ledger).
type countingTrainer struct {
	fixedTrainer
	mu   sync.Mutex
	fits int
}

func (c *countingTrainer) Fit(ctx context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	c.mu.Lock()
	c.fits++
	c.mu.Unlock()
	return c.fixedTrainer.Fit(ctx, global, cfg)
}

func runScripted(t *testing.T, tr *scriptedTransport, trainer client.Trainer, cfg client.Config) error {
	t.Helper()
	cfg.Name = "a"
	cfg.Logger = quietLogger()
	cfg.BackoffMin, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return client.RunWith(ctx, cfg, tr, trainer)
}

// A result whose push fails in transit is pushed again, the same result, not dropped: its
// training was already charged to the privacy ledger.
func TestRunRetriesAFailedPushWithTheSameResult(t *testing.T) {
	tr := &scriptedTransport{
		tasks:    []*pb.Task{fitTask(blobSpec, zeros(), &pb.FitSpec{})},
		pushErrs: []error{status.Error(codes.Unavailable, "connection reset"), status.Error(codes.Unauthenticated, "session expired"), status.Error(codes.ResourceExhausted, "64 uploads in progress")},
	}
	trainer := &countingTrainer{fixedTrainer: fixedTrainer{shift: 0.1}}
	if err := runScripted(t, tr, trainer, client.Config{}); err != nil {
		t.Fatal(err)
	}
	if len(tr.pushed) != 4 || trainer.fits != 1 {
		t.Fatalf("%d pushes after %d trainings, want 4 pushes of one training", len(tr.pushed), trainer.fits)
	}
	for _, r := range tr.pushed[1:] {
		if r != tr.pushed[0] {
			t.Fatal("a retry pushed a different result")
		}
	}
	if tr.joins != 2 {
		t.Fatalf("%d joins, want 2 (the lost session is joined again)", tr.joins)
	}
}

// When the server answers that the task is gone or the result is refused, the client does
// not push it again and goes on.
func TestRunStopsPushingWhenTheServerSaysTheTaskIsGone(t *testing.T) {
	for _, code := range []codes.Code{codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound, codes.InvalidArgument, codes.PermissionDenied} {
		t.Run(code.String(), func(t *testing.T) {
			tr := &scriptedTransport{
				tasks:    []*pb.Task{fitTask(blobSpec, zeros(), &pb.FitSpec{}), fitTask(blobSpec, zeros(), &pb.FitSpec{})},
				pushErrs: []error{status.Error(code, "task expired")},
			}
			if err := runScripted(t, tr, fixedTrainer{}, client.Config{}); err != nil {
				t.Fatal(err)
			}
			if len(tr.pushed) != 2 {
				t.Fatalf("%d pushes, want one per task", len(tr.pushed))
			}
		})
	}
}

// failingStore cannot save anything: the client's own state is lost.
type failingStore struct{ client.MemoryStore }

func (*failingStore) Save(string, []byte) error { return errors.New("disk full") }

// A task whose state cannot be saved stops the client with the error: nothing may be sent
// (a key share that is not on disk must not be announced), and it is not "the server
// refused".
func TestRunStopsOnLocalFatalErrors(t *testing.T) {
	announce := &pb.Task{TaskId: "key-r1-1", Kind: pb.TaskKind_TASK_KIND_KEY_SETUP, Round: 1, Spec: &pb.Task_KeySetup{KeySetup: &pb.KeySetupSpec{
		Stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, Session: make([]byte, 16), MemberId: 1,
		Params: &pb.SecAggParams{LogN: 12, CommitteeSize: 3, Threshold: 2, MinContributions: 2}}}}
	tr := &scriptedTransport{tasks: []*pb.Task{announce}}
	err := runScripted(t, tr, fixedTrainer{}, client.Config{Store: &failingStore{*client.NewMemoryStore()}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("RunWith = %v, want the store's error", err)
	}
	if len(tr.pushed) != 0 {
		t.Fatalf("%d results pushed after the state could not be saved", len(tr.pushed))
	}
}

// A client that requires secure aggregation refuses a plaintext fit task before training,
// with a reason the server records among the round's failures.
func TestPartyRequiringSecureAggregationRefusesPlaintextRounds(t *testing.T) {
	trainer := &countingTrainer{}
	p, err := client.NewParty(client.PartyConfig{ClientID: "a", RequireSecureAggregation: true}, trainer)
	if err != nil {
		t.Fatal(err)
	}
	coord, err := server.New(server.Config{Rounds: 1, Model: blobSpec, Seed: 1, Sampling: server.SamplingConfig{MinFit: 1}}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := coord.Step(server.Join{ClientID: "a"})
	if err != nil || len(r.Send) != 1 {
		t.Fatalf("join: %v, %d tasks", err, len(r.Send))
	}
	res, err := p.Handle(t.Context(), r.Send[0].Task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, "requires secure aggregation") || len(res.Blobs) != 0 || trainer.fits != 0 {
		t.Fatalf("plaintext task: %v %q, %d blobs, %d trainings", res.Status, res.Reason, len(res.Blobs), trainer.fits)
	}
	r, err = coord.Step(server.ResultIn{ClientID: "a", Result: res})
	if err != nil {
		t.Fatal(err)
	}
	var recorded bool
	for _, n := range r.Notices {
		if f, ok := n.(server.RoundFinished); ok && len(f.Failures) == 1 && strings.Contains(f.Failures[0].Reason, "requires secure aggregation") {
			recorded = true
		}
	}
	if !recorded {
		t.Fatalf("the round's failures do not record the refusal: %+v", r.Notices)
	}
	// Without the option the same task trains and sends its update.
	open, _ := client.NewParty(client.PartyConfig{ClientID: "a"}, trainer)
	task := fitTask(blobSpec, zeros(), &pb.FitSpec{})
	if res, _ := open.Handle(t.Context(), task); res.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Fatalf("without require-secure-aggregation: %v %q", res.Status, res.Reason)
	}
	if _, err := blob.Find(task.Blobs, blob.Params); err != nil {
		t.Fatal(err)
	}
}

// Members refuse committees weaker than t = 2 and m = 2 unless configured stricter, and
// committees whose decrypting sets need not overlap (2t ≤ K), and a configuration below
// those floors is an error.
func TestPartyFloorsOnTheCommittee(t *testing.T) {
	keyTask := func(k, t, m int32) *pb.Task {
		return &pb.Task{TaskId: "k", Kind: pb.TaskKind_TASK_KIND_KEY_SETUP, Spec: &pb.Task_KeySetup{KeySetup: &pb.KeySetupSpec{
			Stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, Session: make([]byte, 16), MemberId: 1,
			Params: &pb.SecAggParams{LogN: 12, CommitteeSize: k, Threshold: t, MinContributions: m}}}}
	}
	for _, tc := range []struct {
		name     string
		cfg      client.PartyConfig
		k, t, m  int32
		wantFail string
	}{
		{"default-refuses-t1", client.PartyConfig{}, 3, 1, 2, "secure_aggregation.threshold 1 is below this client's minimum 2"},
		{"default-refuses-m1", client.PartyConfig{}, 3, 2, 1, "secure_aggregation.min_contributions 1 is below this client's minimum 2"},
		{"default-accepts-2-2", client.PartyConfig{}, 3, 2, 2, ""},
		{"stricter-m", client.PartyConfig{MinContributions: 5}, 3, 3, 4, "min_contributions 4 is below this client's minimum 5"},
		{"refuses-disjoint-sets", client.PartyConfig{}, 4, 2, 2, "secure_aggregation.threshold 2: must exceed half of secure_aggregation.committee_size 4 (at least 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ClientID = "a"
			p, err := client.NewParty(tc.cfg, fixedTrainer{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Handle(t.Context(), keyTask(tc.k, tc.t, tc.m))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantFail == "" && res.Status != pb.ResultStatus_RESULT_STATUS_OK:
				t.Fatalf("refused: %q", res.Reason)
			case tc.wantFail != "" && (res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, tc.wantFail)):
				t.Fatalf("%v %q, want FAILED mentioning %q", res.Status, res.Reason, tc.wantFail)
			}
		})
	}
	for _, cfg := range []client.PartyConfig{{MinThreshold: 1}, {MinContributions: 1}, {MinContributions: -3}} {
		cfg.ClientID = "a"
		if _, err := client.NewParty(cfg, fixedTrainer{}); err == nil || !strings.Contains(err.Error(), "must be ≥ 2") {
			t.Errorf("%+v: err = %v, want a refusal of floors below 2", cfg, err)
		}
	}
}

// secagg's complaints about what a task carries name the server's config keys.
func TestPartyNamesTheServersKeys(t *testing.T) {
	p, _ := client.NewParty(client.PartyConfig{ClientID: "a"}, fixedTrainer{})
	res, err := p.Handle(t.Context(), &pb.Task{TaskId: "k", Kind: pb.TaskKind_TASK_KIND_KEY_SETUP, Spec: &pb.Task_KeySetup{KeySetup: &pb.KeySetupSpec{
		Stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, Session: make([]byte, 16), MemberId: 1,
		Params: &pb.SecAggParams{LogN: 12, CommitteeSize: 3, Threshold: 2, MinContributions: 2, ClipBound: -1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Reason, "dp.update_clip_norm") || strings.Contains(res.Reason, "ClipBound") {
		t.Fatalf("reason %q, want the server's key dp.update_clip_norm", res.Reason)
	}
}
