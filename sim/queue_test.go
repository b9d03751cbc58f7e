package sim

import (
	"container/heap"
	"runtime"
	"testing"
	"weak"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// TestQueuesLetPoppedJobsGo (issue 20 item 3): once the event loop has popped a task's
// result event and the pool its job, neither queue keeps the job alive — its task with the
// global model's blob and its result with the client's upload. container/heap's Pop leaves
// the popped element in the slice's backing array beyond its length, so without clearing
// it a round's every upload stayed in memory until later pushes overwrote the slots: the
// sim grew by an upload per client of the round (TestSimMemoryPerClient measures it).
func TestQueuesLetPoppedJobsGo(t *testing.T) {
	const n = 8
	var events eventQueue
	var pending pendingJobs
	var results []weak.Pointer[pb.Result]
	for i := range n {
		j := &job{task: &pb.Task{TaskId: "t"}, res: &pb.Result{Blobs: []*pb.Blob{{Data: make([]byte, 1<<16)}}}, done: make(chan struct{})}
		results = append(results, weak.Make(j.res))
		heap.Push(&events, event{at: 1, seq: uint64(i + 1), kind: evResult, job: j})
		heap.Push(&pending, pendingJob{due: 1, seq: uint64(i + 1), f: func(*worker) { _ = j }})
	}
	for events.Len() > 0 {
		heap.Pop(&events)
		heap.Pop(&pending)
	}
	runtime.GC()
	for i, r := range results {
		if r.Value() != nil {
			t.Fatalf("result %d is still reachable after its event and job were popped", i)
		}
	}
	// The queues themselves are still in use (the run goes on).
	runtime.KeepAlive(events)
	runtime.KeepAlive(pending)
}
