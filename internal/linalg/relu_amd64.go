//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

// relu32AVX and reluGrad32AVX handle the first n values, n a multiple of 16
// (relu_amd64.s).
//
//go:noescape
func relu32AVX(dst, src *float32, n int)

//go:noescape
func reluGrad32AVX(dx, dy, y *float32, n int)

// relu32Fast and reluGrad32Fast handle the longest prefix of whole groups of 16 values and
// return its length (0 without AVX2); the lengths were checked by the caller.
func relu32Fast(dst, src []float32) int {
	n := len(src) &^ 15
	if !hasAVX2 || n == 0 {
		return 0
	}
	relu32AVX(&dst[0], &src[0], n)
	return n
}

func reluGrad32Fast(dx, dy, y []float32) int {
	n := len(y) &^ 15
	if !hasAVX2 || n == 0 {
		return 0
	}
	reluGrad32AVX(&dx[0], &dy[0], &y[0], n)
	return n
}
