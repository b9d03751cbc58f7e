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
// none): it handles the longest prefix it can and returns its length, as vector does.
var apply32Fast func(op elementwiseOp, dst, src []float32) int

// apply32 is apply for float32: the vector kernel where there is one, else the float64
// function of each value rounded to float32.
func apply32(op elementwiseOp, dst, src []float32) {
	if apply32Fast != nil {
		n := apply32Fast(op, dst, src)
		dst, src = dst[n:], src[n:]
	}
	var buf [1]float64
	for i, v := range src {
		buf[0] = float64(v)
		scalar(op, buf[:], buf[:])
		dst[i] = float32(buf[0])
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

func scalar(op elementwiseOp, dst, src []float64) {
	switch op {
	case opExp:
		for i, v := range src {
			dst[i] = math.Exp(v)
		}
	case opSigmoid:
		for i, v := range src {
			dst[i] = SigmoidScalar(v)
		}
	case opTanh:
		for i, v := range src {
			dst[i] = math.Tanh(v)
		}
	}
}
