package linalg

import (
	"runtime"
	"sync"

	"github.com/viterin/vek"
	"golang.org/x/sys/cpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// useVek selects the AVX2 kernel of vek. It is a variable so tests can compare backends.
var useVek = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Workers is the number of goroutines a large multiply is split across.
var Workers = runtime.GOMAXPROCS(0)

// minParallelWork is the m·k·n below which a multiply runs on the calling goroutine.
const minParallelWork = 1 << 17

var scratchPool = sync.Pool{New: func() any { s := make([]float64, 0, 1<<16); return &s }}

func getScratch(n int) *[]float64 {
	p := scratchPool.Get().(*[]float64)
	if cap(*p) < n {
		*p = make([]float64, n)
	}
	*p = (*p)[:n]
	return p
}

func checkLen(name string, s []float64, n int) {
	if len(s) < n {
		panic("linalg: " + name + " too short for the given dimensions")
	}
}

// MulNN sets dst = a·b, or dst += a·b when acc is true, for a m×k and b k×n.
func MulNN(dst, a, b []float64, m, k, n int, acc bool) {
	checkLen("a", a, m*k)
	checkLen("b", b, k*n)
	checkLen("dst", dst, m*n)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !acc {
			clear(dst[:m*n])
		}
		return
	}
	if !useVek {
		gonumGemm(blas.NoTrans, blas.NoTrans, dst, a, b, m, k, n, acc)
		return
	}
	parallelRows(m, k*n, func(r0, r1 int) {
		rows := r1 - r0
		d := dst[r0*n : r1*n]
		x := a[r0*k : r1*k]
		if !acc {
			mulInto(d, x, b[:k*n], rows, k, n)
			return
		}
		tmp := getScratch(rows * n)
		mulInto(*tmp, x, b[:k*n], rows, k, n)
		addTo(d, *tmp)
		scratchPool.Put(tmp)
	})
}

// MulNT sets dst = a·bᵀ (or adds it when acc), for a m×k and b n×k.
func MulNT(dst, a, b []float64, m, k, n int, acc bool) {
	checkLen("a", a, m*k)
	checkLen("b", b, n*k)
	checkLen("dst", dst, m*n)
	if !useVek {
		if m == 0 || n == 0 {
			return
		}
		if k == 0 {
			if !acc {
				clear(dst[:m*n])
			}
			return
		}
		gonumGemm(blas.NoTrans, blas.Trans, dst, a, b, m, k, n, acc)
		return
	}
	bt := getScratch(k * n)
	Transpose(*bt, b, n, k)
	MulNN(dst, a, *bt, m, k, n, acc)
	scratchPool.Put(bt)
}

// MulTN sets dst = aᵀ·b (or adds it when acc), for a k×m and b k×n.
func MulTN(dst, a, b []float64, m, k, n int, acc bool) {
	checkLen("a", a, k*m)
	checkLen("b", b, k*n)
	checkLen("dst", dst, m*n)
	if !useVek {
		if m == 0 || n == 0 {
			return
		}
		if k == 0 {
			if !acc {
				clear(dst[:m*n])
			}
			return
		}
		gonumGemm(blas.Trans, blas.NoTrans, dst, a, b, m, k, n, acc)
		return
	}
	at := getScratch(m * k)
	Transpose(*at, a, k, m)
	MulNN(dst, *at, b, m, k, n, acc)
	scratchPool.Put(at)
}

// mulInto sets d = x·y with vek's AVX2 kernel (which zeroes d first).
func mulInto(d, x, y []float64, m, k, n int) {
	vek.MatMul_Into(d[:m*n], x[:m*k], y[:k*n], k)
}

// parallelRows runs f over [0,m) split into contiguous row ranges, one per worker, when the
// work (m × perRow) is large enough to pay for the goroutines.
func parallelRows(m, perRow int, f func(r0, r1 int)) {
	w := Workers
	if w <= 1 || m < 2*w || m*perRow < minParallelWork {
		f(0, m)
		return
	}
	var wg sync.WaitGroup
	step := (m + w - 1) / w
	for r0 := step; r0 < m; r0 += step {
		r1 := min(r0+step, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(r0, r1)
		}()
	}
	f(0, min(step, m))
	wg.Wait()
}

func addTo(dst, src []float64) {
	vek.Add_Inplace(dst[:len(src)], src)
}

func gonumGemm(ta, tb blas.Transpose, dst, a, b []float64, m, k, n int, acc bool) {
	beta := 0.0
	if acc {
		beta = 1
	}
	am := blas64.General{Rows: m, Cols: k, Stride: k, Data: a}
	if ta == blas.Trans {
		am = blas64.General{Rows: k, Cols: m, Stride: m, Data: a}
	}
	bm := blas64.General{Rows: k, Cols: n, Stride: n, Data: b}
	if tb == blas.Trans {
		bm = blas64.General{Rows: n, Cols: k, Stride: k, Data: b}
	}
	blas64.Gemm(ta, tb, 1, am, bm, beta, blas64.General{Rows: m, Cols: n, Stride: n, Data: dst})
}

// Transpose sets dst (c×r) to the transpose of src (r×c), in cache-sized blocks.
func Transpose(dst, src []float64, r, c int) {
	checkLen("src", src, r*c)
	checkLen("dst", dst, r*c)
	const bs = 32
	for i0 := 0; i0 < r; i0 += bs {
		i1 := min(i0+bs, r)
		for j0 := 0; j0 < c; j0 += bs {
			j1 := min(j0+bs, c)
			for i := i0; i < i1; i++ {
				row := src[i*c : i*c+c]
				for j := j0; j < j1; j++ {
					dst[j*r+i] = row[j]
				}
			}
		}
	}
}
