//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

// useVecMath selects the AVX2 kernels of elementwise_amd64.s.
var useVecMath = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The kernels write f(src[i]) to dst[i] for the longest prefix of whole groups (four
// float64, eight float32) they handle and return its length.

//go:noescape
func expAVX2(dst, src []float64) int

//go:noescape
func sigmoidAVX2(dst, src []float64) int

//go:noescape
func tanhAVX2(dst, src []float64) int

//go:noescape
func exp32AVX2(dst, src []float32) int

//go:noescape
func sigmoid32AVX2(dst, src []float32) int

//go:noescape
func tanh32AVX2(dst, src []float32) int

func vector(op elementwiseOp, dst, src []float64) int {
	switch op {
	case opExp:
		return expAVX2(dst, src)
	case opSigmoid:
		return sigmoidAVX2(dst, src)
	default:
		return tanhAVX2(dst, src)
	}
}

func vector32(op elementwiseOp, dst, src []float32) int {
	switch op {
	case opExp:
		return exp32AVX2(dst, src)
	case opSigmoid:
		return sigmoid32AVX2(dst, src)
	default:
		return tanh32AVX2(dst, src)
	}
}

func init() {
	if useVecMath {
		apply32Fast = vector32
	}
}

func apply(op elementwiseOp, dst, src []float64) {
	if !useVecMath {
		scalar(op, dst, src)
		return
	}
	applyVector(op, dst, src, 4, vector)
}
