package linalg

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// gemmFast is this platform's blocked multiply (set by an init function where the CPU has
// one), or nil. It is called with m, n, k ≥ 1 and lengths already checked.
var gemmFast func(tA, tB bool, dst, a, b []float64, m, k, n int, acc bool)

// useFast selects gemmFast over gonum; tests switch it to check both.
var useFast bool

// packFast and mulPackedFast are gemmFast's PackedB layout and product (nil with gemmFast).
var (
	packFast      func(dst, b []float64, k, n int, trans bool) []float64
	mulPackedFast func(dst, a []float64, m int, packed []float64, k, n int, acc bool)
)

// wide selects the fast backend's AVX-512 kernels, where the CPU has them (hasWide); tests
// switch it to check both kernel families. A PackedB is laid out for the tile width of its
// Pack, so wide must not change between a Pack and the products with it.
var wide, hasWide bool

// smallWork is the m·k·n up to which a multiply runs as a plain loop: below it, setting up
// the blocked kernel (packing, tile bookkeeping) costs more than it saves.
const smallWork = 512

func checkLen[T Float](name string, s []T, n int) {
	if len(s) < n {
		panic("linalg: " + name + " too short for the given dimensions")
	}
}

// MulNN sets dst = a·b, or dst += a·b when acc is true, for a m×k and b k×n.
func MulNN[T Float](dst, a, b []T, m, k, n int, acc bool) {
	checkLen("a", a, m*k)
	checkLen("b", b, k*n)
	gemmT(false, false, dst, a, b, m, k, n, acc)
}

// MulNT sets dst = a·bᵀ (or adds it when acc), for a m×k and b n×k.
func MulNT[T Float](dst, a, b []T, m, k, n int, acc bool) {
	checkLen("a", a, m*k)
	checkLen("b", b, n*k)
	gemmT(false, true, dst, a, b, m, k, n, acc)
}

// MulTN sets dst = aᵀ·b (or adds it when acc), for a k×m and b k×n.
func MulTN[T Float](dst, a, b []T, m, k, n int, acc bool) {
	checkLen("a", a, k*m)
	checkLen("b", b, k*n)
	gemmT(true, false, dst, a, b, m, k, n, acc)
}

// PackedB is a right operand op(B) (k×n) prepared once for many products with it, as a
// recurrent layer multiplies W_hh by the state of every time step: the fast backend then
// skips packing B for each product. Its zero value is empty; Pack fills it, reusing its
// storage. It holds a copy, so later changes to the source are not seen.
type PackedB[T Float] struct {
	k, n int
	data []T
	fast bool // data is in the fast backend's layout, not op(B) row-major
}

// Pack sets p to op(B) = b (b k×n) or, when trans, bᵀ (b n×k).
func (p *PackedB[T]) Pack(b []T, k, n int, trans bool) {
	checkLen("b", b, k*n)
	p.k, p.n = k, n
	if is64[T]() {
		if useFast && packFast != nil {
			d := packFast(f64s(p.data), f64s(b), k, n, trans)
			p.data, p.fast = unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(d))), len(d)), true
			return
		}
	} else if useFast32 && packFast32 != nil {
		d := packFast32(f32s(p.data), f32s(b), k, n, trans)
		p.data, p.fast = unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(d))), len(d)), true
		return
	}
	p.data, p.fast = grow(p.data, k*n), false
	if trans {
		Transpose(p.data, b, n, k)
	} else {
		copy(p.data, b[:k*n])
	}
}

// MulPacked sets dst = a·op(B) (or adds it when acc), for a m×k and op(B) in p.
func MulPacked[T Float](dst, a []T, m int, p *PackedB[T], acc bool) {
	k, n := p.k, p.n
	checkLen("a", a, m*k)
	checkLen("dst", dst, m*n)
	switch {
	case m == 0 || n == 0:
	case k == 0:
		if !acc {
			clear(dst[:m*n])
		}
	case p.fast && is64[T]():
		mulPackedFast(f64s(dst), f64s(a), m, f64s(p.data), k, n, acc)
	case p.fast:
		mulPackedFast32(f32s(dst), f32s(a), m, f32s(p.data), k, n, acc)
	default:
		gemmT(false, false, dst, a, p.data, m, k, n, acc)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// gemmT sets dst = op(A)·op(B) (or adds it when acc), where op(A) is m×k, stored as a (k×m
// when tA), and op(B) is k×n, stored as b (n×k when tB): tiny products as a plain loop,
// the others on the platform's blocked multiply of T where there is one, else gonum's.
func gemmT[T Float](tA, tB bool, dst, a, b []T, m, k, n int, acc bool) {
	checkLen("dst", dst, m*n)
	switch {
	case m == 0 || n == 0:
	case k == 0:
		if !acc {
			clear(dst[:m*n])
		}
	case m*k*n <= smallWork:
		gemmSmall(tA, tB, dst, a, b, m, k, n, acc)
	case is64[T]():
		d, x, y := f64s(dst), f64s(a), f64s(b)
		if useFast {
			gemmFast(tA, tB, d, x, y, m, k, n, acc)
		} else {
			gonumGemm(tA, tB, d, x, y, m, k, n, acc)
		}
	default:
		d, x, y := f32s(dst), f32s(a), f32s(b)
		if useFast32 && gemmFast32 != nil {
			gemmFast32(tA, tB, d, x, y, m, k, n, acc)
		} else {
			gonumGemm32(tA, tB, d, x, y, m, k, n, acc)
		}
	}
}

// gemmSmall is the loop nest for tiny products, ordered so the innermost loop runs along
// contiguous memory for every transpose form.
func gemmSmall[T Float](tA, tB bool, dst, a, b []T, m, k, n int, acc bool) {
	for i := 0; i < m; i++ {
		c := dst[i*n : i*n+n]
		if tB {
			for j := range c {
				bj := b[j*k : j*k+k]
				var s T
				if tA {
					for p, bv := range bj {
						s += a[p*m+i] * bv
					}
				} else {
					for p, av := range a[i*k : i*k+k] {
						s += av * bj[p]
					}
				}
				if acc {
					c[j] += s
				} else {
					c[j] = s
				}
			}
			continue
		}
		if !acc {
			clear(c)
		}
		for p := 0; p < k; p++ {
			av := a[i*k+p]
			if tA {
				av = a[p*m+i]
			}
			for j, bv := range b[p*n : p*n+n] {
				c[j] += av * bv
			}
		}
	}
}

func gonumGemm(tA, tB bool, dst, a, b []float64, m, k, n int, acc bool) {
	beta := 0.0
	if acc {
		beta = 1
	}
	ta, am := blas.NoTrans, blas64.General{Rows: m, Cols: k, Stride: k, Data: a}
	if tA {
		ta, am = blas.Trans, blas64.General{Rows: k, Cols: m, Stride: m, Data: a}
	}
	tb, bm := blas.NoTrans, blas64.General{Rows: k, Cols: n, Stride: n, Data: b}
	if tB {
		tb, bm = blas.Trans, blas64.General{Rows: n, Cols: k, Stride: k, Data: b}
	}
	blas64.Gemm(ta, tb, 1, am, bm, beta, blas64.General{Rows: m, Cols: n, Stride: n, Data: dst})
}

// Transpose sets dst (c×r) to the transpose of src (r×c), in cache-sized blocks.
func Transpose[T Float](dst, src []T, r, c int) {
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
