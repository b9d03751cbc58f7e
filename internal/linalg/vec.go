package linalg

import (
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

// AddRowVector adds the length-n vector v to every row of the m×n matrix dst.
func AddRowVector(dst []float64, m, n int, v []float64) {
	v = v[:n]
	for i := 0; i < m; i++ {
		Add(dst[i*n:i*n+n], v)
	}
}

// SumRows adds the column sums of the m×n matrix src to dst (length n).
func SumRows(dst []float64, src []float64, m, n int) {
	for i := 0; i < m; i++ {
		Add(dst[:n], src[i*n:i*n+n])
	}
}
