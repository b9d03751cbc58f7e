package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Workers is the number of goroutines a large multiply (or a ParallelFor) may run on at
// once. Callers that already run one computation per core set it to 1.
var Workers = runtime.GOMAXPROCS(0)

// task is work split into numbered chunks that may run concurrently and in any order.
type task interface {
	// runChunk runs chunk c on participant w (0 is the caller; chunks of one participant
	// run one after another, so w can select per-worker scratch).
	runChunk(w, c int)
	// release is called once no participant holds the task any more.
	release()
}

// batch hands out the chunks of one task. Participants claim chunks until none are left,
// so one that starts late (a helper still waking up, or descheduled on a busy machine)
// takes fewer, and the caller never waits for a helper that has not claimed anything.
type batch struct {
	t      task
	chunks int32
	next   atomic.Int32  // next chunk to claim
	left   atomic.Int32  // chunks not finished
	refs   atomic.Int32  // participants still holding the batch
	done   chan struct{} // receives once, when the last chunk finishes
}

func (b *batch) participate(w int) {
	c := b.next.Add(1) - 1
	if c >= b.chunks && w > 0 {
		idle.Add(1)
	}
	for c < b.chunks {
		b.t.runChunk(w, int(c))
		next := b.next.Add(1) - 1
		if next >= b.chunks && w > 0 {
			// A helper is idle again before it reports the last chunk done: the caller,
			// which may go on to its next multiply the moment that chunk is reported, then
			// finds it free (its job waits in the channel until this call returns).
			idle.Add(1)
		}
		if b.left.Add(-1) == 0 {
			b.done <- struct{}{}
		}
		c = next
	}
}

func (b *batch) drop() {
	if b.refs.Add(-1) == 0 {
		b.t.release()
		b.t = nil
		batches.Put(b)
	}
}

type job struct {
	b *batch
	w int
}

// The helpers are long-lived goroutines fed through one channel: starting goroutines per
// multiply costs an allocation and a scheduler round trip each time, and a training step
// issues hundreds of multiplies. A caller first reserves idle helpers and hands jobs only
// to them, so a job never waits behind another caller's, and a computation that is already
// spread over the helpers (a ParallelFor whose ranges multiply matrices) runs its inner
// multiplies on its own goroutines instead of splitting them further.
var (
	jobs      = make(chan job, maxHelpers)
	helpersMu sync.Mutex
	helpers   int          // started, guarded by helpersMu
	idle      atomic.Int32 // helpers neither running nor reserved for a job
	batches   = sync.Pool{New: func() any { return &batch{done: make(chan struct{}, 1)} }}
)

// maxHelpers bounds the helper goroutines.
const maxHelpers = 256

// reserve claims up to n idle helpers, starting helpers so that Workers − 1 exist, and
// returns how many it claimed. The caller hands each a job through run or unreserves it.
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

// unreserve returns n reserved helpers unused.
func unreserve(n int) {
	if n > 0 {
		idle.Add(int32(n))
	}
}

func startHelpers(n int) {
	helpersMu.Lock()
	defer helpersMu.Unlock()
	for ; helpers < n; helpers++ {
		idle.Add(1)
		go func() {
			for {
				j := nextJob()
				if j.b == nil {
					return // stopHelpers
				}
				j.b.participate(j.w)
				j.b.drop()
			}
		}()
	}
}

// spinWait is how long a helper that has finished a job keeps polling for the next one
// before it blocks. A blocked helper is woken through the scheduler, and on a virtual
// machine the thread under it takes tens of microseconds to run again: longer than many of
// a training step's multiplies, which the caller then finishes alone. A training step issues
// its multiplies microseconds apart, so a helper that polls a little while is there for the
// next one (as OpenMP's threads spin before they sleep, GOMP_SPINCOUNT).
var spinWait = 500 * time.Microsecond

// nextJob returns the next job for a helper: polled for up to spinWait, doing idle work
// (idle.go) between polls, then blocking. The poll does not yield to the scheduler
// (runtime.Gosched would queue the helper behind the caller's goroutine, and the two could
// end up sharing one processor while the other one's thread goes to sleep).
func nextJob() job {
	if j, ok := poll(jobs, idleSlice); ok {
		return j
	}
	return <-jobs
}

// poll receives from c for up to spinWait without blocking, with more than one processor
// only (so that it never keeps the goroutine it waits for from running), calling between
// receives work (if not nil) for a slice of idle work, and reports whether it received.
func poll[T any](c <-chan T, work func() bool) (T, bool) {
	select {
	case v := <-c:
		return v, true
	default:
	}
	var zero T
	if spinWait <= 0 || runtime.GOMAXPROCS(0) < 2 {
		return zero, false
	}
	deadline := time.Now().Add(spinWait)
	for i := 0; ; i++ {
		select {
		case v := <-c:
			return v, true
		default:
		}
		if work != nil && work() {
			i |= 63 // a slice takes long enough to check the clock after it
		}
		if i%64 == 63 && time.Now().After(deadline) {
			return zero, false
		}
	}
}

// run runs t's chunks 0…chunks−1 on the calling goroutine and on h reserved helpers
// (h < chunks), and returns when all chunks are done.
func run(h, chunks int, t task) {
	if h == 0 {
		for c := 0; c < chunks; c++ {
			t.runChunk(0, c)
		}
		t.release()
		return
	}
	b := batches.Get().(*batch)
	b.t = t
	b.chunks = int32(chunks)
	b.next.Store(0)
	b.left.Store(int32(chunks))
	b.refs.Store(int32(1 + h))
	for w := 1; w <= h; w++ {
		jobs <- job{b, w}
	}
	b.participate(0)
	waitDone(b)
	b.drop()
}

// waitDone returns once b's last chunk is done. The caller polls for it first: a blocked
// caller is woken on the helper's processor and has to be taken back by its own, whose
// thread may have gone to sleep meanwhile.
func waitDone(b *batch) {
	if _, ok := poll(b.done, nil); !ok {
		<-b.done
	}
}

// rangeTask splits [0, n) into contiguous ranges of step items.
type rangeTask struct {
	f       func(w, lo, hi int)
	n, step int
}

func (r *rangeTask) runChunk(w, c int) {
	lo := c * r.step
	r.f(w, lo, min(lo+r.step, r.n))
}

func (r *rangeTask) release() {
	*r = rangeTask{}
	rangeTasks.Put(r)
}

var rangeTasks = sync.Pool{New: func() any { return new(rangeTask) }}

// ParallelFor runs f over contiguous ranges covering [0, n) once, concurrently on up to
// Workers goroutines when the total work (n × perItem, roughly multiply-adds) reaches
// MinParallelFor; otherwise f(0, 0, n) runs on the calling goroutine. The ranges are about
// four per goroutine, handed out as goroutines become free; w, in [0, Workers), identifies
// the goroutine, whose calls run one after another, so f can use per-worker scratch.
func ParallelFor(n, perItem int, f func(w, lo, hi int)) {
	ParallelForChunks(n, perItem, 0, f)
}

// ParallelForChunks is ParallelFor with ranges of at least minItems items (as many as
// there can be goroutines when minItems ≤ 0 is replaced by the default): for work whose
// efficiency grows with the range, such as one matrix multiply per range.
func ParallelForChunks(n, perItem, minItems int, f func(w, lo, hi int)) {
	h, step, chunks := split(n, perItem, minItems)
	if h == 0 {
		f(0, 0, n)
		return
	}
	r := rangeTasks.Get().(*rangeTask)
	r.f, r.n, r.step = f, n, step
	run(h, chunks, r)
}

// split decides how ParallelForChunks divides n items: h reserved helpers (0: run all on
// the calling goroutine) and chunks ranges of step items.
func split(n, perItem, minItems int) (h, step, chunks int) {
	if w := min(Workers, n); w > 1 && n*perItem >= MinParallelFor {
		h = reserve(w - 1)
	}
	if h == 0 {
		return 0, n, 1
	}
	step = (n + 4*(h+1) - 1) / (4 * (h + 1))
	if minItems > 0 {
		step = max(step, minItems)
	}
	chunks = (n + step - 1) / step
	if chunks <= 1 {
		unreserve(h)
		return 0, n, 1
	}
	unreserve(h - min(h, chunks-1))
	return min(h, chunks-1), step, chunks
}

// MinParallelFor is the work below which ParallelFor runs on the calling goroutine: waking a
// helper takes 5–10 µs (see minParallelGemm), so regions shorter than a few tens of
// microseconds gain nothing.
const MinParallelFor = 1 << 17
