package linalg

import "math"

// Elementwise functions, vectorised where the platform allows (elementwise_amd64.go). They
// write f(src[i]) to dst[i]; dst must be at least as long as src and may be src itself (but
// must not overlap it otherwise). The vector versions agree with the math package within a
// few units in the last place (tested); special values (±Inf, NaN, arguments whose result
// underflows or overflows) go through the math package.

type elementwiseOp int

const (
	opExp elementwiseOp = iota
	opSigmoid
	opTanh
)

// Exp sets dst[i] = e^src[i].
func Exp[T Float](dst, src []T) { applyT(opExp, dst[:len(src)], src) }

// Sigmoid sets dst[i] = 1/(1 + e^−src[i]).
func Sigmoid[T Float](dst, src []T) { applyT(opSigmoid, dst[:len(src)], src) }

// Tanh sets dst[i] = tanh(src[i]).
func Tanh[T Float](dst, src []T) { applyT(opTanh, dst[:len(src)], src) }

// applyT dispatches an elementwise function to the float64 or float32 implementation.
func applyT[T Float](op elementwiseOp, dst, src []T) {
	if is64[T]() {
		apply(op, f64s(dst), f64s(src))
	} else {
		apply32(op, f32s(dst), f32s(src))
	}
}

// apply32Fast is this platform's vectorised float32 elementwise kernel (nil where there is
// none): eight values at a time, it handles the longest prefix it can and returns its
// length, as vector does.
var apply32Fast func(op elementwiseOp, dst, src []float32) int

// apply32 is apply for float32: the vector kernel where there is one, else the float64
// function of each value rounded to float32.
func apply32(op elementwiseOp, dst, src []float32) {
	if apply32Fast == nil {
		scalar(op, dst, src)
		return
	}
	applyVector(op, dst, src, 8, apply32Fast)
}

// applyVector runs kernel, which handles the longest prefix of whole groups of lanes (≤ 8)
// values it can and returns its length, over src. A short tail goes through the kernel
// padded to a group, and a group the kernel refuses goes one value at a time, so that a
// value's result never depends on its position; only the values the kernel refuses alone go
// to the math package.
func applyVector[T Float](op elementwiseOp, dst, src []T, lanes int, kernel func(op elementwiseOp, dst, src []T) int) {
	for len(src) > 0 {
		n := kernel(op, dst, src)
		dst, src = dst[n:], src[n:]
		if len(src) == 0 {
			return
		}
		g := min(lanes, len(src))
		var buf [8]T
		copy(buf[:], src[:g])
		if kernel(op, buf[:lanes], buf[:lanes]) == lanes {
			copy(dst[:g], buf[:g])
		} else {
			for i, v := range src[:g] {
				one := [8]T{v}
				if kernel(op, one[:lanes], one[:lanes]) == lanes {
					dst[i] = one[0]
				} else {
					scalar(op, dst[i:i+1], src[i:i+1])
				}
			}
		}
		dst, src = dst[g:], src[g:]
	}
}

// SigmoidScalar is the logistic function 1/(1 + e^−x), without overflow for large |x|.
func SigmoidScalar(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// scalar applies the math package's function in float64 (for float32, rounding each result
// once to float32).
func scalar[T Float](op elementwiseOp, dst, src []T) {
	switch op {
	case opExp:
		for i, v := range src {
			dst[i] = T(math.Exp(float64(v)))
		}
	case opSigmoid:
		for i, v := range src {
			dst[i] = T(SigmoidScalar(float64(v)))
		}
	case opTanh:
		for i, v := range src {
			dst[i] = T(math.Tanh(float64(v)))
		}
	}
}
