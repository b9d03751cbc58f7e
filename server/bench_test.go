package server_test

import (
	"fmt"
	"testing"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// BenchmarkCoordinatorRound measures the coordinator's own cost of a plaintext round with
// 1000 clients (sampling, task creation, result validation, FedAvg of an 8-value model): the
// overhead the simulator pays per round besides training.
func BenchmarkCoordinatorRound(b *testing.B) {
	const clients = 1000
	cfg := baseConfig(1<<30, clients)
	c, err := server.New(cfg, server.Options{})
	if err != nil {
		b.Fatal(err)
	}
	update := blob.New(blob.Update, blob.EncodeFloats(make([]float64, 8)))
	var queue []server.Envelope
	apply := func(r server.Ready) { queue = append(queue, r.Send...) }
	for i := 0; i < clients; i++ {
		r, err := c.Step(server.Join{ClientID: fmt.Sprintf("c%04d", i)})
		if err != nil {
			b.Fatal(err)
		}
		apply(r)
	}
	for b.Loop() {
		tasks := queue
		queue = nil
		for _, e := range tasks {
			res := &pb.Result{TaskId: e.Task.TaskId, Kind: e.Task.Kind, Round: e.Task.Round, Status: pb.ResultStatus_RESULT_STATUS_OK, NumExamples: 100, Blobs: []*pb.Blob{update}}
			r, err := c.Step(server.ResultIn{ClientID: e.To, Result: res})
			if err != nil {
				b.Fatal(err)
			}
			apply(r)
		}
	}
}
