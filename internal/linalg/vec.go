package linalg

import (
	"sync"

	"github.com/viterin/vek"
	"golang.org/x/sys/cpu"
)

// useVek selects vek's AVX2 vector routines (which otherwise fall back to plain Go loops).
var useVek = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Dot returns x·y.
func Dot(x, y []float64) float64 {
	if useVek && len(x) >= 16 {
		return vek.Dot(x, y[:len(x)])
	}
	s := 0.0
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// Axpy sets y += alpha·x.
func Axpy(alpha float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Add sets dst += src.
func Add(dst, src []float64) {
	if useVek && len(src) >= 16 {
		vek.Add_Inplace(dst[:len(src)], src)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// Scale sets x *= alpha.
func Scale(alpha float64, x []float64) {
	for i := range x {
		x[i] *= alpha
	}
}

// Sum returns Σ x_i.
func Sum(x []float64) float64 {
	if useVek && len(x) >= 16 {
		return vek.Sum(x)
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

// SumSq returns Σ x_i².
func SumSq(x []float64) float64 { return Dot(x, x) }

// AddRowVector adds the length-n vector v to every row of the m×n matrix dst, spread over
// the workers by rows when large.
func AddRowVector(dst []float64, m, n int, v []float64) {
	rowsOp(opAddRow, dst, v, m, n)
}

// SumRows adds the column sums of the m×n matrix src to dst (length n), spread over the
// workers by columns when large: each column is still summed by one goroutine, top to
// bottom, so the result does not depend on the split.
func SumRows(dst []float64, src []float64, m, n int) {
	rowsOp(opSumRows, dst, src, m, n)
}

const (
	opAddRow = iota
	opSumRows
)

// rowsTask is AddRowVector or SumRows over rows (AddRowVector) or column stripes (SumRows)
// [c·step, (c+1)·step).
type rowsTask struct {
	op         int
	dst, src   []float64
	m, n, step int
}

var rowsTasks = sync.Pool{New: func() any { return new(rowsTask) }}

func rowsOp(op int, dst, src []float64, m, n int) {
	t := rowsTasks.Get().(*rowsTask)
	*t = rowsTask{op: op, dst: dst, src: src, m: m, n: n, step: max(m, n)}
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

func (t *rowsTask) runChunk(_, c int) {
	n := t.n
	lo := c * t.step
	if t.op == opAddRow {
		v := t.src[:n]
		for i := lo; i < min(lo+t.step, t.m); i++ {
			Add(t.dst[i*n:i*n+n], v)
		}
		return
	}
	hi := min(lo+t.step, n)
	d := t.dst[lo:hi]
	for i := 0; i < t.m; i++ {
		Add(d, t.src[i*n+lo:i*n+hi])
	}
}

func (t *rowsTask) release() {
	*t = rowsTask{}
	rowsTasks.Put(t)
}
