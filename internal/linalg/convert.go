package linalg

import "sync"

// Narrow sets dst[i] = float32(src[i]), rounded to nearest (ties to even) as Go's
// conversion rounds; dst must be at least as long as src. It is how a float32 network
// takes its float64 master weights (AVX2's VCVTPD2PS four values at a time where the
// platform has it: the scalar loop converts one value a cycle at best). Long vectors are
// split across the workers: the pass is bound by memory bandwidth, which each core adds
// to, and a training step that ran it on one core left the others waiting.
func Narrow(dst []float32, src []float64) {
	dst = dst[:len(src)]
	if convertInParallel(dst, src, false) {
		return
	}
	narrow(dst, src)
}

func narrow(dst []float32, src []float64) {
	n := narrowFast(dst, src)
	for i, v := range src[n:] {
		dst[n+i] = float32(v)
	}
}

// Drain adds float64(src[i]) to dst[i] (exact: every float32 is a float64) and sets src[i]
// to zero, in one pass; dst must be at least as long as src. It is how a float32 network's
// gradients move to the float64 ones, leaving its own zeroed for the next pass. Long vectors
// are split across the workers, as in Narrow.
func Drain(dst []float64, src []float32) {
	dst = dst[:len(src)]
	if convertInParallel(src, dst, true) {
		return
	}
	drain(dst, src)
}

func drain(dst []float64, src []float32) {
	n := drainFast(dst, src)
	for i, v := range src[n:] {
		dst[n+i] += float64(v)
	}
	clear(src[n:])
}

// convertTask is a Narrow or a Drain split into ranges of step values.
type convertTask struct {
	f32   []float32
	f64   []float64
	drain bool
	step  int
}

var convertTasks = sync.Pool{New: func() any { return new(convertTask) }}

func (t *convertTask) runChunk(_, c int) {
	lo := c * t.step
	hi := min(lo+t.step, len(t.f64))
	if t.drain {
		drain(t.f64[lo:hi], t.f32[lo:hi])
	} else {
		narrow(t.f32[lo:hi], t.f64[lo:hi])
	}
}

func (t *convertTask) release() {
	*t = convertTask{}
	convertTasks.Put(t)
}

// convertInParallel runs a Narrow (drain false) or Drain of equally long f32 and f64 on
// the workers when it is long enough to pay, and reports whether it did. The ranges are
// whole groups of 16 values, as the vector kernels take them. A value converted counts as
// four multiply-adds toward MinParallelFor (it moves 12 or 24 bytes): from 32,768 values,
// so the input of the MLP's float32 step at batch 64 (50,176 values, 10 µs on one core,
// run while the other waited) is split too.
func convertInParallel(f32 []float32, f64 []float64, drain bool) bool {
	h, groups, chunks := split((len(f64)+15)/16, 64, 0)
	if h == 0 {
		return false
	}
	t := convertTasks.Get().(*convertTask)
	*t = convertTask{f32: f32, f64: f64, drain: drain, step: 16 * groups}
	run(h, chunks, t)
	return true
}
