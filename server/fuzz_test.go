package server_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// FuzzResultIn feeds arbitrary Result messages, as a client could push them, to a
// coordinator in each phase of a secure-aggregation round (key setup, fit, decryption):
// whatever arrives, Step returns an error or accepts it, and never panics.
func FuzzResultIn(f *testing.F) {
	ids := []string{"a", "b", "c"}
	// Seeds: the results honest clients pushed in one round, by phase.
	cfg := secAggConfig(1, 3, 3, 2)
	n := newNetwork(&testing.T{}, cfg, server.Options{}, trainersFor(ids...))
	n.run()
	for _, a := range n.answered {
		b, err := proto.Marshal(a.result)
		if err == nil {
			f.Add(b, uint8(0))
		}
	}
	f.Add([]byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, phase uint8) {
		var res pb.Result
		if proto.Unmarshal(data, &res) != nil {
			return
		}
		n := newNetwork(t, secAggConfig(1, 3, 3, 2), server.Options{}, trainersFor(ids...))
		// Advance to a phase: 0 key setup, 1 fit, 2 decryption.
		for steps := 0; steps < int(phase%3)*6 && len(n.queue["a"])+len(n.queue["b"])+len(n.queue["c"]) > 0; steps++ {
			n.runOne()
		}
		// Aim the fuzzed result at one of the outstanding tasks, or none.
		for _, id := range ids {
			if q := n.queue[id]; len(q) > 0 && len(data)%2 == 0 {
				res.TaskId, res.Kind, res.Round = q[0].TaskId, q[0].Kind, q[0].Round
				if len(res.Blobs) == 0 && len(data) > 8 {
					res.Blobs = []*pb.Blob{blob.New(blob.EncryptedUpdate, data)}
				}
				_ = n.step(server.ResultIn{ClientID: id, Result: &res})
				return
			}
		}
		_ = n.step(server.ResultIn{ClientID: "a", Result: &res})
	})
}
