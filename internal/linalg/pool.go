package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers is the number of parts a large multiply (or a ParallelFor) is split into. Callers
// that already run one computation per core set it to 1.
var Workers = runtime.GOMAXPROCS(0)

// task is work split into numbered parts that may run concurrently.
type task interface{ runPart(part int) }

// batch tracks the parts of one task handed to the helpers.
type batch struct {
	t       task
	pending atomic.Int32
	done    chan struct{} // receives once, when the last part finishes
}

type job struct {
	b    *batch
	part int
}

func (j job) run() {
	j.b.t.runPart(j.part)
	if j.b.pending.Add(-1) == 0 {
		j.b.done <- struct{}{}
	}
}

// The helpers are long-lived goroutines fed through one channel: starting goroutines per
// multiply costs an allocation and a scheduler round trip each time, and a training step
// issues hundreds of multiplies.
var (
	jobs      = make(chan job, 64)
	helpersMu sync.Mutex
	helpers   atomic.Int32
	batches   = sync.Pool{New: func() any { return &batch{done: make(chan struct{}, 1)} }}
)

func ensureHelpers(n int) {
	if int(helpers.Load()) >= n {
		return
	}
	helpersMu.Lock()
	defer helpersMu.Unlock()
	for int(helpers.Load()) < n {
		helpers.Add(1)
		go func() {
			for j := range jobs {
				j.run()
			}
		}()
	}
}

// parallel runs t's parts 0…parts−1, part 0 on the calling goroutine, and returns when all
// are done. A caller waiting for its parts runs queued parts itself (its own or another
// caller's), so parallel may be called from inside a part without deadlocking, and parts
// never wait for a free helper: when the queue is full they run inline.
func parallel(parts int, t task) {
	if parts <= 1 {
		t.runPart(0)
		return
	}
	ensureHelpers(parts - 1)
	b := batches.Get().(*batch)
	b.t = t
	b.pending.Store(int32(parts))
	for p := 1; p < parts; p++ {
		select {
		case jobs <- job{b, p}:
		default:
			job{b, p}.run()
		}
	}
	job{b, 0}.run()
	for {
		select {
		case <-b.done:
			b.t = nil
			batches.Put(b)
			return
		case j := <-jobs:
			j.run()
		}
	}
}

// rangeTask splits [0, n) into contiguous ranges, one per part.
type rangeTask struct {
	f       func(w, lo, hi int)
	n, step int
}

func (r *rangeTask) runPart(p int) {
	lo := p * r.step
	r.f(p, lo, min(lo+r.step, r.n))
}

var rangeTasks = sync.Pool{New: func() any { return new(rangeTask) }}

// ParallelFor runs f over [0, n) split into at most Workers contiguous ranges, concurrently,
// when the total work (n × perItem, roughly multiply-adds) reaches MinParallelFor;
// otherwise f(0, 0, n) runs on the calling goroutine. w is the range's index in
// [0, Workers), so f can use per-worker scratch buffers.
func ParallelFor(n, perItem int, f func(w, lo, hi int)) {
	w := min(Workers, n)
	if w <= 1 || n*perItem < MinParallelFor {
		f(0, 0, n)
		return
	}
	step := (n + w - 1) / w
	parts := (n + step - 1) / step
	r := rangeTasks.Get().(*rangeTask)
	r.f, r.n, r.step = f, n, step
	parallel(parts, r)
	r.f = nil
	rangeTasks.Put(r)
}

// MinParallelFor is the work below which ParallelFor runs on the calling goroutine: handing
// a range to a helper costs about a microsecond or more.
const MinParallelFor = 1 << 15
