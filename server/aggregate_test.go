package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// Encrypted uploads are added, and decryption shares combined, by the driver, not inside
// Step: the fit phase waits for every Aggregated answer, even past its deadline, and counts
// the client only then; the decryption waits for its Combined answer.
func TestAggregationIsDriverWork(t *testing.T) {
	ids := []string{"a", "b", "c"}
	n := newNetwork(t, secAggConfig(1, 3, 3, 2), server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool { return len(noticesOf[server.RoundStarted](n)) > 0 })
	n.hold = true
	n.runUntil(func() bool { return len(n.held) == len(ids) })
	if len(n.held) != len(ids) {
		t.Fatalf("%d uploads to add, want %d", len(n.held), len(ids))
	}
	for i, h := range n.held {
		w, ok := h.(server.AggregationWork)
		if !ok || w.ClientID != ids[i] || w.Round != 1 || !strings.Contains(w.TaskID, "fit-r1") {
			t.Fatalf("work %d: %+v", i, h)
		}
	}
	// Past the fit deadline with every upload still being added: the round neither
	// finishes nor fails, and no decryption starts.
	n.tick(2 * time.Minute)
	if f := noticesOf[server.RoundFinished](n); len(f) > 0 {
		t.Fatalf("round ended before its uploads were added: %+v", f)
	}
	for id, q := range n.queue {
		for _, task := range q {
			if task.Kind == pb.TaskKind_TASK_KIND_DECRYPT {
				t.Fatalf("decryption asked of %s before the uploads were added", id)
			}
		}
	}
	held := n.held
	n.held = nil
	for _, w := range held {
		n.mustStep(w.Run())
	}
	// The committee's shares: combining them is driver work too, and the decryption
	// deadline passing while it runs does not fail the round.
	n.run()
	if len(n.held) != 1 {
		t.Fatalf("%d computations after the decryption shares, want one", len(n.held))
	}
	if w, ok := n.held[0].(server.CombineWork); !ok || w.Round != 1 || w.Evaluation {
		t.Fatalf("after the shares: %#v, want the round's CombineWork", n.held[0])
	}
	n.tick(2 * time.Minute)
	if f := noticesOf[server.RoundFinished](n); len(f) > 0 {
		t.Fatalf("round ended before its shares were combined: %+v", f)
	}
	combine := n.held[0]
	n.hold, n.held = false, nil
	n.mustStep(combine.Run())
	n.run()
	f := noticesOf[server.RoundFinished](n)
	if len(f) != 1 || f[0].Failed || f[0].Contributors != len(ids) {
		t.Fatalf("round: %+v, want finished with %d contributors", f, len(ids))
	}
	// Answers for work of a phase that is over are refused as late.
	for _, w := range []server.Work{held[0], combine} {
		var rej *server.RejectError
		if err := n.step(w.Run()); !errors.As(err, &rej) || rej.Code != server.RejectLate {
			t.Fatalf("stale answer to %T: %v, want a late refusal", w, err)
		}
	}
}

// An upload the aggregate refuses (here: not a ciphertext) fails its client's task once
// the driver has tried to add it; the others still make the round.
func TestAggregationRefusalIsAFailure(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	n := newNetwork(t, secAggConfig(1, 3, 3, 2), server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool { return len(noticesOf[server.RoundStarted](n)) > 0 })
	task := n.queue["d"][0]
	n.queue["d"] = n.queue["d"][1:]
	res := &pb.Result{TaskId: task.TaskId, Kind: task.Kind, Round: task.Round, Status: pb.ResultStatus_RESULT_STATUS_OK,
		Blobs: []*pb.Blob{blob.New(blob.EncryptedUpdate, []byte("not a ciphertext"))}}
	n.mustStep(server.ResultIn{ClientID: "d", Result: res}) // accepted for adding
	n.run()
	f := noticesOf[server.RoundFinished](n)
	if len(f) != 1 || f[0].Failed || f[0].Contributors != 3 {
		t.Fatalf("round: %+v, want finished with 3 contributors", f)
	}
	var found bool
	for _, fl := range f[0].Failures {
		found = found || (fl.ClientID == "d" && strings.HasPrefix(fl.Reason, "encrypted update refused"))
	}
	if !found {
		t.Fatalf("failures %+v: want d's upload refused", f[0].Failures)
	}
}

// An encrypted upload altered after it was signed, or naming another client, is refused by
// the driver's work (secagg.Aggregator.AddBinary) and leaves the aggregate as it was: the
// round finishes with the other clients' sum, which decrypts (a sum that the refused upload
// had touched, even in one chunk, would decrypt to a wrong count and fail the round).
func TestTamperedEncryptedUploadLeavesTheSum(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(data []byte)
	}{
		// The low byte of a coefficient of the last chunk's c1: caught by the commitment
		// (or, if it leaves the coefficient at Q, by the decoder).
		{"ciphertext", func(d []byte) { d[len(d)-8*5] ^= 1 }},
		// The client id (the header after magic, session, round, purpose and its length).
		{"client", func(d []byte) { d[4+16+8+1+2] = 'e' }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := []string{"a", "b", "c", "d"}
			n, _ := newAuthNetwork(t, secAggConfig(1, 3, 3, 2), server.Options{}, trainersFor(ids...)) // every client sampled (fraction_fit 1), 3 results needed
			n.runUntil(func() bool { return len(noticesOf[server.RoundStarted](n)) > 0 })
			task := n.queue["a"][0]
			if task.Kind != pb.TaskKind_TASK_KIND_FIT {
				t.Fatalf("a's next task is %v, want its fit task", task.Kind)
			}
			n.queue["a"] = n.queue["a"][1:]
			res, err := n.parties["a"].Handle(t.Context(), task)
			if err != nil {
				t.Fatal(err)
			}
			data, err := blob.Find(res.Blobs, blob.EncryptedUpdate)
			if err != nil {
				t.Fatal(err)
			}
			data = append([]byte(nil), data...)
			tc.tweak(data)
			res.Blobs = []*pb.Blob{blob.New(blob.EncryptedUpdate, data)}
			n.mustStep(server.ResultIn{ClientID: "a", Result: res})
			n.run()
			f := noticesOf[server.RoundFinished](n)
			if len(f) != 1 || f[0].Failed || f[0].Contributors != 3 {
				t.Fatalf("round: %+v, want finished with 3 contributors", f)
			}
			if len(f[0].Failures) != 1 || f[0].Failures[0].ClientID != "a" || !strings.Contains(f[0].Failures[0].Reason, "encrypted update refused") {
				t.Fatalf("failures %+v, want a's encrypted update refused", f[0].Failures)
			}
			t.Log(f[0].Failures[0].Reason)
		})
	}
}
