package server

import (
	"fmt"
	"testing"

	"golang.org/x/sync/semaphore"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// TestQueuedUploadKeepsItsBudget: a received upload's share of MaxUploadBytes is released
// by its PushResult when the coordinator queued no work for it, and otherwise only once the
// work that adds it has run, whichever of the two finishes first, so uploads waiting in
// the work queue count against the budget.
func TestQueuedUploadKeepsItsBudget(t *testing.T) {
	for _, tc := range []struct {
		queued, workFirst bool
	}{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("queued=%v_workFirst=%v", tc.queued, tc.workFirst), func(t *testing.T) {
			s := &Service{uploadBytes: semaphore.NewWeighted(100), held: map[*pb.Blob]*uploadShare{}, work: newWorkQueue[Work]()}
			if !s.uploadBytes.TryAcquire(64) {
				t.Fatal("empty budget")
			}
			b := &pb.Blob{Name: "encrypted_update"}
			h := &uploadShare{weight: 64, key: b}
			s.held[b] = h
			w := AggregationWork{blobs: []*pb.Blob{b}}
			if tc.queued {
				if err := s.queueWork([]Work{w}); err != nil {
					t.Fatal(err)
				}
			}
			free := func() bool {
				if !s.uploadBytes.TryAcquire(100) {
					return false
				}
				s.uploadBytes.Release(100)
				return true
			}
			if tc.workFirst {
				s.workDone(w)
				s.releaseUpload(h)
			} else {
				s.releaseUpload(h)
				if free() == tc.queued {
					t.Fatalf("after PushResult returned: budget free %v, want %v (upload queued %v)", !tc.queued, tc.queued, tc.queued)
				}
				s.workDone(w)
			}
			if !free() {
				t.Fatal("the upload's share was not released after its work ran")
			}
			if len(s.held) != 0 {
				t.Fatalf("%d shares still recorded", len(s.held))
			}
		})
	}
}
