//go:build amd64 && !purego

package linalg

// maxArg32AVX does MaxArg32 for the first n values, n a multiple of 8 (maxarg_amd64.s).
//
//go:noescape
func maxArg32AVX(y *float32, arg *int32, x *float32, n int, base int32)

// maxArg32Fast handles the longest prefix of whole groups of 8 values and returns its
// length (0 without AVX2); the lengths were checked by the caller.
func maxArg32Fast(y []float32, arg []int32, x []float32, base int32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	maxArg32AVX(&y[0], &arg[0], &x[0], n, base)
	return n
}
