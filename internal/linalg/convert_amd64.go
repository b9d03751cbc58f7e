//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

var hasAVX = cpu.X86.HasAVX

// narrowAVX and drainAVX convert the first n values, n a multiple of 16
// (convert_amd64.s).
//
//go:noescape
func narrowAVX(dst *float32, src *float64, n int)

//go:noescape
func drainAVX(dst *float64, src *float32, n int)

// narrowFast and drainFast handle the longest prefix of whole groups of 16 values and
// return its length (0 without AVX); the lengths were checked by the caller.
func narrowFast(dst []float32, src []float64) int {
	n := len(src) &^ 15
	if !hasAVX || n == 0 {
		return 0
	}
	narrowAVX(&dst[0], &src[0], n)
	return n
}

func drainFast(dst []float64, src []float32) int {
	n := len(src) &^ 15
	if !hasAVX || n == 0 {
		return 0
	}
	drainAVX(&dst[0], &src[0], n)
	return n
}
