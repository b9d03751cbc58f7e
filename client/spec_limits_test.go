package client_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// A fit task whose model spec is beyond the model's limits (issue 13: it panicked with
// "makeslice: len out of range" while the client built the model to count its parameters)
// fails with a reason naming the limit; the client neither panics nor allocates the model.
func TestPartyRefusesModelSpecsBeyondTheLimits(t *testing.T) {
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(40, 1), Store: client.NewMemoryStore(), Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewParty(client.PartyConfig{ClientID: "a"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, spec string
		numParams  int64
		want       string
	}{
		{"issue-13", `{"type":"mlp","input":2147483648,"hidden":[2147483648],"output":2}`, 1 << 62,
			"input = 2147483648 exceeds the limit 1048576 (model.Limits.MaxWidth)"},
		{"parameters", `{"type":"mlp","input":1048576,"hidden":[1048576],"output":2}`, 1<<40 + 3<<20 + 2,
			"parameters, beyond the limit 268435456 (model.Limits.MaxParams)"},
		{"vocab", `{"type":"lstm","vocab":4194304,"embed":4,"hidden":[4],"output":2}`, 100,
			"vocab = 4194304 exceeds the limit 2097152 (model.Limits.MaxVocab)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &pb.Task{TaskId: "fit-r1-1", Kind: pb.TaskKind_TASK_KIND_FIT, Round: 1,
				Spec: &pb.Task_Fit{Fit: &pb.FitSpec{LocalEpochs: 1, BatchSize: 10, Optimizer: "sgd", LearningRate: 0.1,
					Model: &pb.ModelSpec{SpecJson: []byte(tc.spec), NumParams: tc.numParams}}},
				Blobs: []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(make([]float64, 4)))}}
			res, err := p.Handle(t.Context(), task)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != pb.ResultStatus_RESULT_STATUS_FAILED || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("status %v, reason %q; want FAILED naming %q", res.Status, res.Reason, tc.want)
			}
		})
	}
}
