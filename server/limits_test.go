package server_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

func rejectCode(err error) server.RejectCode {
	var rej *server.RejectError
	if errors.As(err, &rej) {
		return rej.Code
	}
	return 0
}

// ResultLimit refuses results for tasks that are not the caller's outstanding ones, and
// bounds the others by what their task can produce, before any data is read.
func TestResultLimitPerTask(t *testing.T) {
	n := newNetwork(t, baseConfig(1, 2), server.Options{}, trainersFor("a", "b"))
	taskA, taskB := n.queue["a"][0], n.queue["b"][0]
	limit, err := n.c.ResultLimit("a", taskA.TaskId)
	if err != nil || limit != 8*8 {
		t.Fatalf("plaintext fit limit = %d, %v; want 64 (8 float64 values)", limit, err)
	}
	for _, tc := range []struct {
		name, client, task string
		code               server.RejectCode
	}{
		{"unknown-task", "a", "fit-r1-999", server.RejectUnknownTask},
		{"other-client's-task", "a", taskB.TaskId, server.RejectWrongClient},
		{"unknown-client", "z", taskA.TaskId, server.RejectUnknownClient},
		{"no-task", "a", "", server.RejectInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := n.c.ResultLimit(tc.client, tc.task); rejectCode(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
		})
	}
	n.run()
	if _, err := n.c.ResultLimit("a", taskA.TaskId); rejectCode(err) != server.RejectDuplicate {
		t.Fatalf("answered task: err = %v, want duplicate", err)
	}
}

// Under secure aggregation every kind of task is bounded by the exact size of its message.
func TestResultLimitUnderSecureAggregation(t *testing.T) {
	cfg := secAggConfig(1, 3, 3, 2)
	n := newNetwork(t, cfg, server.Options{}, trainersFor("a", "b", "c"))
	p, err := secagg.NewParameters(secagg.ParametersLiteral{LogN: 12, ClipBound: 5, MaxContributors: n.c.Config().SecAgg.MaxContributors})
	if err != nil {
		t.Fatal(err)
	}
	checked := map[pb.TaskKind]bool{}
	for round := 0; round < 20 && !n.c.Finished(); round++ {
		for _, id := range []string{"a", "b", "c"} {
			if len(n.queue[id]) == 0 {
				continue
			}
			task := n.queue[id][0]
			n.queue[id] = n.queue[id][1:]
			limit, err := n.c.ResultLimit(id, task.TaskId)
			if err != nil {
				t.Fatal(err)
			}
			res, err := n.parties[id].Handle(t.Context(), task)
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			for _, b := range res.Blobs {
				size += b.Size
			}
			if size > limit {
				t.Fatalf("%v task %s: result of %d bytes exceeds its limit %d", task.Kind, task.TaskId, size, limit)
			}
			want := map[pb.TaskKind]int64{
				pb.TaskKind_TASK_KIND_FIT:     int64(p.SignedUpdateBytes(8, len(id), len(task.TaskId), 0) - secagg.MaxSignatureBytes),
				pb.TaskKind_TASK_KIND_DECRYPT: int64(p.DecryptionShareBytes(8, 2)),
			}[task.Kind]
			if task.Kind == pb.TaskKind_TASK_KIND_KEY_SETUP {
				want = map[pb.KeySetupStage]int64{
					pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE: int64(p.AnnouncementBytes()),
					pb.KeySetupStage_KEY_SETUP_STAGE_DEAL:     int64(p.DealingBytes(3)),
				}[task.GetKeySetup().GetStage()]
			}
			if size != limit || limit != want {
				t.Fatalf("%v task %s: result of %d bytes, limit %d, want both %d", task.Kind, task.TaskId, size, limit, want)
			}
			checked[task.Kind] = true
			n.mustStep(server.ResultIn{ClientID: id, Result: res})
		}
	}
	if !n.c.Finished() || len(checked) != 3 {
		t.Fatalf("finished %v, checked %v", n.c.Finished(), checked)
	}
}

// Plaintext updates get the weights clients use under secure aggregation,
// min(examples / weight_scale, max_weight), so both modes compute the same model.
func TestPlaintextWeightsAreCappedLikeSecureAggregation(t *testing.T) {
	trs := trainersFor("a", "b", "c", "d") // 50, 100, 150, 200 examples
	cfg := baseConfig(1, 4)
	cfg.Training.WeightScale = 100 // weights 0.5, 1, 1.5, 2 → capped at max_weight 1
	n := newNetwork(t, cfg, server.Options{}, trs)
	initial := n.c.Global()
	n.run()
	var s, w float64
	for _, id := range []string{"a", "b", "c", "d"} {
		wi := min(float64(trs[id].N)/100, 1)
		s += wi * trs[id].Shift
		w += wi
	}
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || rounds[0].Failed {
		t.Fatalf("rounds %+v", rounds)
	}
	wantShift(t, initial, rounds[0].Params, s/w, 1e-12)
}

// A NaN or infinite metric is refused like any malformed result.
func TestNonFiniteMetricsAreRefused(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		t.Run(strings.ToLower(fmtFloat(v)), func(t *testing.T) {
			n := newNetwork(t, baseConfig(1, 2), server.Options{}, trainersFor("a", "b"))
			task := n.queue["a"][0]
			res := &pb.Result{TaskId: task.TaskId, Kind: task.Kind, Round: task.Round, Status: pb.ResultStatus_RESULT_STATUS_OK, NumExamples: 10,
				Metrics: map[string]float64{"accuracy": v}, Blobs: []*pb.Blob{blob.New(blob.Update, blob.EncodeFloats(make([]float64, 8)))}}
			err := n.step(server.ResultIn{ClientID: "a", Result: res})
			if rejectCode(err) != server.RejectInvalid || !strings.Contains(err.Error(), `metric "accuracy"`) {
				t.Fatalf("err = %v, want an invalid-result rejection naming the metric", err)
			}
		})
	}
}

func fmtFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v > 0:
		return "+Inf"
	}
	return "-Inf"
}
