package linalg

import (
	"sync"

	"github.com/viterin/vek"
	"github.com/viterin/vek/vek32"
	"golang.org/x/sys/cpu"
)

// useVek selects vek's AVX2 vector routines (which otherwise fall back to plain Go loops).
var useVek = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Dot returns x·y.
func Dot[T Float](x, y []T) T {
	if useVek && len(x) >= 16 {
		if is64[T]() {
			return T(vek.Dot(f64s(x), f64s(y[:len(x)])))
		}
		return T(vek32.Dot(f32s(x), f32s(y[:len(x)])))
	}
	var s T
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// Axpy sets y += alpha·x.
func Axpy[T Float](alpha T, x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// AxpyClear sets y += alpha·x and then x = 0, split across the workers: how DP-SGD adds
// noise drawn into x and drops it once used.
func AxpyClear(alpha float64, x, y []float64) {
	ParallelFor(len(x), 1, func(_, lo, hi int) {
		Axpy(alpha, x[lo:hi], y[lo:hi])
		clear(x[lo:hi])
	})
}

// Add sets dst += src.
func Add[T Float](dst, src []T) {
	if useVek && len(src) >= 16 {
		if is64[T]() {
			vek.Add_Inplace(f64s(dst[:len(src)]), f64s(src))
		} else {
			vek32.Add_Inplace(f32s(dst[:len(src)]), f32s(src))
		}
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// Scale sets x *= alpha.
func Scale[T Float](alpha T, x []T) {
	for i := range x {
		x[i] *= alpha
	}
}

// ScaleTo sets dst = alpha·x.
func ScaleTo[T Float](dst []T, alpha T, x []T) {
	if useVek && len(x) >= 16 {
		if is64[T]() {
			vek.MulNumber_Into(f64s(dst[:len(x)]), f64s(x), float64(alpha))
		} else {
			vek32.MulNumber_Into(f32s(dst[:len(x)]), f32s(x), float32(alpha))
		}
		return
	}
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = alpha * v
	}
}

// Sum returns Σ x_i.
func Sum[T Float](x []T) T {
	if useVek && len(x) >= 16 {
		if is64[T]() {
			return T(vek.Sum(f64s(x)))
		}
		return T(vek32.Sum(f32s(x)))
	}
	var s T
	for _, v := range x {
		s += v
	}
	return s
}

// SumSq returns Σ x_i².
func SumSq[T Float](x []T) T { return Dot(x, x) }

// AddRowVector adds the length-n vector v to every row of the m×n matrix dst, spread over
// the workers by rows when large.
func AddRowVector[T Float](dst []T, m, n int, v []T) {
	rowsOp(opAddRow, dst, v, m, n, nil)
}

// ScaleRows sets row i of the m×n matrix dst to w[i] times row i of src, spread over the
// workers by rows when large.
func ScaleRows[T Float](dst, src []T, m, n int, w []T) {
	rowsOp(opScaleRows, dst, src, m, n, w[:m])
}

// SumRows adds the column sums of the m×n matrix src to dst (length n), spread over the
// workers by columns when large: each column is still summed by one goroutine, top to
// bottom, so the result does not depend on the split.
func SumRows[T Float](dst []T, src []T, m, n int) {
	rowsOp(opSumRows, dst, src, m, n, nil)
}

const (
	opAddRow = iota
	opSumRows
	opScaleRows
)

// rowsTask is AddRowVector, SumRows or ScaleRows over rows (AddRowVector, ScaleRows) or
// column stripes (SumRows) [c·step, (c+1)·step).
type rowsTask[T Float] struct {
	op         int
	dst, src   []T
	w          []T // ScaleRows' row weights
	m, n, step int
}

var (
	rowsTasks64 = sync.Pool{New: func() any { return new(rowsTask[float64]) }}
	rowsTasks32 = sync.Pool{New: func() any { return new(rowsTask[float32]) }}
)

func rowsPool[T Float]() *sync.Pool { return byType[T](&rowsTasks64, &rowsTasks32) }

func rowsOp[T Float](op int, dst, src []T, m, n int, w []T) {
	t := rowsPool[T]().Get().(*rowsTask[T])
	*t = rowsTask[T]{op: op, dst: dst, src: src, w: w, m: m, n: n, step: max(m, n)}
	// Columns are split in stripes of at least 8 (a cache line), rows in any number.
	units, minUnit := m, 1
	if op == opSumRows {
		units, minUnit = n, 8
	}
	h := 0
	if m*n >= MinParallelFor && units >= 2*minUnit {
		h = reserve(min(Workers, units/minUnit) - 1)
	}
	if h == 0 {
		t.runChunk(0, 0)
		t.release()
		return
	}
	t.step = (units + h) / (h + 1)
	if op == opSumRows {
		t.step = (t.step + 7) &^ 7
	}
	chunks := (units + t.step - 1) / t.step
	unreserve(h - min(h, chunks-1))
	run(min(h, chunks-1), chunks, t)
}

func (t *rowsTask[T]) runChunk(_, c int) {
	n := t.n
	lo := c * t.step
	switch t.op {
	case opAddRow:
		v := t.src[:n]
		for i := lo; i < min(lo+t.step, t.m); i++ {
			Add(t.dst[i*n:i*n+n], v)
		}
		return
	case opScaleRows:
		for i := lo; i < min(lo+t.step, t.m); i++ {
			ScaleTo(t.dst[i*n:i*n+n], t.w[i], t.src[i*n:i*n+n])
		}
		return
	}
	hi := min(lo+t.step, n)
	d := t.dst[lo:hi]
	for i := 0; i < t.m; i++ {
		Add(d, t.src[i*n+lo:i*n+hi])
	}
}

func (t *rowsTask[T]) release() {
	*t = rowsTask[T]{}
	rowsPool[T]().Put(t)
}
