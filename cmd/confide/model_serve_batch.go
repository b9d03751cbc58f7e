package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// batcher runs the inputs of concurrent requests through one model in shared batches
// (dynamic batching, as TensorFlow Serving and Triton do): the goroutine that owns the
// model takes the first waiting request and, while more requests are on their way (queued,
// or announced: arrived at the server and still being decoded), keeps collecting until the
// batch holds maxBatch inputs or maxWait has passed since it started; then one forward
// pass (or a few, for more than maxBatch inputs) serves them all. A lone request does not
// wait: with no other request in flight, its batch runs at once.
type batcher struct {
	maxBatch int
	maxWait  time.Duration
	// run computes the outputs of inputs; only the batcher's goroutine calls it.
	run     func(inputs []predictInput) ([][]float64, error)
	observe func(examples int, d time.Duration) // after every forward pass (metrics)

	jobs     chan *batchJob
	inFlight atomic.Int64 // submitted and not yet taken into a batch
	coming   atomic.Int64 // announced and not yet submitted
	stop     chan struct{}
	stopped  chan struct{}
}

// batchJob is one request's inputs and, once done is closed, their outputs.
type batchJob struct {
	inputs []predictInput
	out    [][]float64
	err    error
	done   chan struct{}
}

// errStopped is returned to requests submitted after the batcher stopped.
var errStopped = errors.New("the model server is shutting down")

func newBatcher(maxBatch int, maxWait time.Duration, run func([]predictInput) ([][]float64, error), observe func(int, time.Duration)) *batcher {
	b := &batcher{maxBatch: maxBatch, maxWait: maxWait, run: run, observe: observe,
		jobs: make(chan *batchJob, 1024), stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.loop()
	return b
}

// ticket is an announced request: release it when the request will not be submitted
// (submit releases it too; releasing twice is harmless).
type ticket struct {
	b    *batcher
	done atomic.Bool
}

func (t *ticket) release() {
	if t != nil && t.done.CompareAndSwap(false, true) {
		t.b.coming.Add(-1)
	}
}

// announce tells the batcher a request has arrived and will probably be submitted soon,
// so a batch being collected waits for it (up to maxWait).
func (b *batcher) announce() *ticket {
	b.coming.Add(1)
	return &ticket{b: b}
}

// waiting reports whether requests are on their way to the batch being collected.
func (b *batcher) waiting() bool { return b.inFlight.Load()+b.coming.Load() > 0 }

// submit queues inputs and waits for their outputs (or ctx's end: the outputs are then
// dropped when they come). t, when not nil, is the request's announcement.
func (b *batcher) submit(ctx context.Context, t *ticket, inputs []predictInput) ([][]float64, error) {
	j := &batchJob{inputs: inputs, done: make(chan struct{})}
	b.inFlight.Add(1)
	t.release()
	select {
	case b.jobs <- j:
	case <-b.stop:
		b.inFlight.Add(-1)
		return nil, errStopped
	case <-ctx.Done():
		b.inFlight.Add(-1)
		return nil, ctx.Err()
	}
	select {
	case <-j.done:
		return j.out, j.err
	case <-b.stopped:
		select {
		case <-j.done:
			return j.out, j.err
		default: // queued after the last drain
			return nil, errStopped
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the batcher after the batch it is running; requests still queued get
// errStopped. Callers stop sending requests first (the HTTP and gRPC servers drain).
func (b *batcher) close() {
	close(b.stop)
	<-b.stopped
}

func (b *batcher) loop() {
	defer close(b.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *batchJob
		select {
		case first = <-b.jobs:
		case <-b.stop:
			b.drain()
			return
		}
		jobs := []*batchJob{first}
		b.inFlight.Add(-1)
		n := len(first.inputs)
		if n < b.maxBatch && b.waiting() {
			timer.Reset(b.maxWait)
		collect:
			for n < b.maxBatch && b.waiting() {
				select {
				case j := <-b.jobs:
					b.inFlight.Add(-1)
					jobs = append(jobs, j)
					n += len(j.inputs)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		b.execute(jobs, n)
	}
}

// execute runs the jobs' inputs in forward passes of at most maxBatch and hands each job
// its outputs.
func (b *batcher) execute(jobs []*batchJob, n int) {
	all := make([]predictInput, 0, n)
	for _, j := range jobs {
		all = append(all, j.inputs...)
	}
	out := make([][]float64, 0, n)
	var err error
	for lo := 0; lo < len(all) && err == nil; lo += b.maxBatch {
		chunk := all[lo:min(lo+b.maxBatch, len(all))]
		start := time.Now()
		var o [][]float64
		if o, err = b.run(chunk); err == nil {
			out = append(out, o...)
		}
		if b.observe != nil {
			b.observe(len(chunk), time.Since(start))
		}
	}
	off := 0
	for _, j := range jobs {
		if err != nil {
			j.err = err
		} else {
			j.out = out[off : off+len(j.inputs)]
		}
		off += len(j.inputs)
		close(j.done)
	}
}

// drain fails the requests left in the queue.
func (b *batcher) drain() {
	for {
		select {
		case j := <-b.jobs:
			b.inFlight.Add(-1)
			j.err = errStopped
			close(j.done)
		default:
			return
		}
	}
}
