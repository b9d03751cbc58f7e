//go:build amd64 && !purego

package linalg

import "golang.org/x/sys/cpu"

// useVecMath selects the AVX2 kernels of elementwise_amd64.s.
var useVecMath = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The kernels write f(src[i]) to dst[i] for the longest prefix of whole groups of four
// they handle and return its length.

//go:noescape
func expAVX2(dst, src []float64) int

//go:noescape
func sigmoidAVX2(dst, src []float64) int

//go:noescape
func tanhAVX2(dst, src []float64) int

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

func apply(op elementwiseOp, dst, src []float64) {
	if !useVecMath {
		scalar(op, dst, src)
		return
	}
	for len(src) > 0 {
		n := vector(op, dst, src)
		dst, src = dst[n:], src[n:]
		if len(src) == 0 {
			return
		}
		// A short tail goes through the kernel padded to four, and a group the kernel
		// refuses goes one value at a time, so that a value's result never depends on its
		// position; only the values the kernel refuses alone go to the math package.
		g := min(4, len(src))
		var buf [4]float64
		copy(buf[:], src[:g])
		if vector(op, buf[:], buf[:]) == 4 {
			copy(dst[:g], buf[:g])
		} else {
			for i, v := range src[:g] {
				one := [4]float64{v}
				if vector(op, one[:], one[:]) == 4 {
					dst[i] = one[0]
				} else {
					scalar(op, dst[i:i+1], src[i:i+1])
				}
			}
		}
		dst, src = dst[g:], src[g:]
	}
}
