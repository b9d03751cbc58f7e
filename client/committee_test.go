package client_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// TestPartyRefusesCommitteesWithDisjointSets: a member refuses a second aggregate only of
// a round it decrypted itself, so under a committee with 2t ≤ K a hostile server could
// have two disjoint sets of t members open a round's sum with and without this client's
// upload. Whatever the task (a fit with or without DP, an evaluation, the key setup, a
// decryption), the client refuses such a committee before it trains, encrypts or deals,
// naming the server's keys; the same tasks under K = 3, t = 2 get past that check.
func TestPartyRefusesCommitteesWithDisjointSets(t *testing.T) {
	params := func(k, th int32) *pb.SecAggParams {
		return &pb.SecAggParams{LogN: 12, ClipBound: 10, MaxWeight: 1, MaxContributors: 100, CommitteeSize: k, Threshold: th, MinContributions: 2}
	}
	session := make([]byte, 16)
	tasks := map[string]func(sp *pb.SecAggParams) *pb.Task{
		"fit": func(sp *pb.SecAggParams) *pb.Task {
			return fitTask(blobSpec, zeros(), &pb.FitSpec{Optimizer: "sgd", LearningRate: 0.1, UpdateClipNorm: 10, MaxWeight: 1,
				Secagg: &pb.SecAggSpec{Session: session, Params: sp}})
		},
		"fit with dp.distributed": func(sp *pb.SecAggParams) *pb.Task {
			return fitTask(blobSpec, zeros(), &pb.FitSpec{Optimizer: "sgd", LearningRate: 1, WeightScale: 40, UpdateClipNorm: 10, MaxWeight: 1,
				Dp:     &pb.DPSpec{NoiseMultiplier: 4, MaxGradNorm: 1, SampleRate: 1, Steps: 1, Distributed: true},
				Secagg: &pb.SecAggSpec{Session: session, Params: sp}})
		},
		"evaluate": func(sp *pb.SecAggParams) *pb.Task {
			return &pb.Task{TaskId: "e", Kind: pb.TaskKind_TASK_KIND_EVALUATE, Round: 1, Spec: &pb.Task_Evaluate{Evaluate: &pb.EvaluateSpec{
				Model: &pb.ModelSpec{SpecJson: blobSpec.JSON(), NumParams: int64(len(zeros()))}, WeightScale: 1,
				Statistics: &pb.StatisticsSpec{LossCap: 10}, Secagg: &pb.SecAggSpec{Session: session, Params: sp}}},
				Blobs: []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(zeros()))}}
		},
		"key setup": func(sp *pb.SecAggParams) *pb.Task {
			return &pb.Task{TaskId: "k", Kind: pb.TaskKind_TASK_KIND_KEY_SETUP, Spec: &pb.Task_KeySetup{KeySetup: &pb.KeySetupSpec{
				Stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, Session: session, MemberId: 1, Params: sp}}}
		},
		"decrypt": func(sp *pb.SecAggParams) *pb.Task {
			return &pb.Task{TaskId: "d", Kind: pb.TaskKind_TASK_KIND_DECRYPT, Spec: &pb.Task_Decrypt{Decrypt: &pb.DecryptSpec{Session: session, MemberId: 1, Params: sp}}}
		},
	}
	const refusal = "secure_aggregation.threshold 2: must exceed half of secure_aggregation.committee_size 4 (at least 3)"
	for name, task := range tasks {
		t.Run(name, func(t *testing.T) {
			tr := &countingTrainer{}
			p, err := client.NewParty(client.PartyConfig{ClientID: "c1"}, tr)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Handle(t.Context(), task(params(4, 2)))
			if err != nil {
				t.Fatal(err)
			}
			if res.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(res.Reason, refusal) || tr.fits != 0 || len(res.GetBlobs()) != 0 {
				t.Fatalf("K = 4, t = 2: %v %q after %d trainings, want a refusal naming %q", res.Status, res.Reason, tr.fits, refusal)
			}
			// K = 3, t = 2 passes the committee check (and fails later, for want of a key or
			// a member state, on a reason of its own).
			if res, err = p.Handle(t.Context(), task(params(3, 2))); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(res.Reason, "must exceed half") {
				t.Fatalf("K = 3, t = 2 refused as a committee of disjoint sets: %q", res.Reason)
			}
		})
	}
}
