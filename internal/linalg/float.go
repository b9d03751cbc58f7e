package linalg

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Float is the element type of the kernels: float64, or float32 for the faster training
// path. Every exported kernel is generic over it; the float64 and float32 instantiations
// each run their own backend (see the package comment).
type Float interface{ float32 | float64 }

// is64 reports whether T is float64.
func is64[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 8
}

// f64s and f32s view a []T as the concrete slice type it is (the caller has checked is64).
func f64s[T Float](s []T) []float64 {
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

func f32s[T Float](s []T) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// The float32 backend. gemmFast32, packFast32 and mulPackedFast32 are this platform's
// blocked float32 multiply and its PackedB layout (set by an init function where the CPU
// has one), or nil; useFast32 selects them over gonum (tests switch it to check both).
var (
	gemmFast32      func(tA, tB bool, dst, a, b []float32, m, k, n int, acc bool)
	packFast32      func(dst, b []float32, k, n int, trans bool) []float32
	mulPackedFast32 func(dst, a []float32, m int, packed []float32, k, n int, acc bool)
	useFast32       bool
)

func gonumGemm32(tA, tB bool, dst, a, b []float32, m, k, n int, acc bool) {
	var beta float32
	if acc {
		beta = 1
	}
	ta, am := blas.NoTrans, blas32.General{Rows: m, Cols: k, Stride: k, Data: a}
	if tA {
		ta, am = blas.Trans, blas32.General{Rows: k, Cols: m, Stride: m, Data: a}
	}
	tb, bm := blas.NoTrans, blas32.General{Rows: k, Cols: n, Stride: n, Data: b}
	if tB {
		tb, bm = blas.Trans, blas32.General{Rows: n, Cols: k, Stride: k, Data: b}
	}
	blas32.Gemm(ta, tb, 1, am, bm, beta, blas32.General{Rows: m, Cols: n, Stride: n, Data: dst})
}

// byType returns v64 when T is float64 and v32 when it is float32: per-type tables and
// pools for code generic over T.
func byType[T Float, V any](v64, v32 V) V {
	if is64[T]() {
		return v64
	}
	return v32
}
