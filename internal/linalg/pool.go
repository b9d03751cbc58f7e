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
	done    chan struct{} // receives once, when the last handed-off part finishes
}

type job struct {
	b    *batch
	part int
}

// The helpers are long-lived goroutines fed through one channel: starting goroutines per
// multiply costs an allocation and a scheduler round trip each time, and a training step
// issues hundreds of multiplies. A caller first reserves idle helpers and hands parts only
// to them, so a handed-off part never waits behind another caller's, and a computation that
// is already spread over the helpers (a ParallelFor whose ranges multiply matrices) runs
// its inner multiplies on its own goroutines instead of splitting them further.
var (
	jobs      = make(chan job, maxHelpers)
	helpersMu sync.Mutex
	helpers   int          // started, guarded by helpersMu
	idle      atomic.Int32 // helpers neither running nor reserved for a part
	batches   = sync.Pool{New: func() any { return &batch{done: make(chan struct{}, 1)} }}
)

// maxHelpers bounds the helper goroutines (and so the parts of one task).
const maxHelpers = 256

// reserve claims up to n idle helpers, starting helpers so that Workers − 1 exist, and
// returns how many it claimed.
func reserve(n int) int {
	if n <= 0 {
		return 0
	}
	if want := min(Workers-1, maxHelpers); want > 0 && int(idle.Load()) < n {
		startHelpers(want)
	}
	for {
		cur := idle.Load()
		k := min(int32(n), cur)
		if k <= 0 {
			return 0
		}
		if idle.CompareAndSwap(cur, cur-k) {
			return int(k)
		}
	}
}

func startHelpers(n int) {
	helpersMu.Lock()
	defer helpersMu.Unlock()
	for ; helpers < n; helpers++ {
		idle.Add(1)
		go func() {
			for j := range jobs {
				j.b.t.runPart(j.part)
				idle.Add(1)
				if j.b.pending.Add(-1) == 0 {
					j.b.done <- struct{}{}
				}
			}
		}()
	}
}

// unreserve returns n reserved helpers unused.
func unreserve(n int) {
	if n > 0 {
		idle.Add(int32(n))
	}
}

// workersFor returns the number of parts a task that could use up to want parts should be
// split into now: 1 plus the helpers reserved for it, which the caller must hand exactly
// that many parts to through run (or return with unreserve).
func workersFor(want int) int { return 1 + reserve(want-1) }

// run runs t's parts 0…parts−1, where parts came from workersFor: parts 1… on the reserved
// helpers, part 0 on the calling goroutine, and returns when all are done.
func run(parts int, t task) {
	if parts <= 1 {
		t.runPart(0)
		return
	}
	b := batches.Get().(*batch)
	b.t = t
	b.pending.Store(int32(parts - 1))
	for p := 1; p < parts; p++ {
		jobs <- job{b, p}
	}
	t.runPart(0)
	<-b.done
	b.t = nil
	batches.Put(b)
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
	if w > 1 && n*perItem >= MinParallelFor {
		w = workersFor(w)
	}
	if w <= 1 {
		f(0, 0, n)
		return
	}
	step := (n + w - 1) / w
	parts := (n + step - 1) / step
	unreserve(w - parts)
	r := rangeTasks.Get().(*rangeTask)
	r.f, r.n, r.step = f, n, step
	run(parts, r)
	r.f = nil
	rangeTasks.Put(r)
}

// MinParallelFor is the work below which ParallelFor runs on the calling goroutine: handing
// a range to a helper costs about a microsecond or more.
const MinParallelFor = 1 << 15
