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
func Exp(dst, src []float64) { apply(opExp, dst[:len(src)], src) }

// Sigmoid sets dst[i] = 1/(1 + e^−src[i]).
func Sigmoid(dst, src []float64) { apply(opSigmoid, dst[:len(src)], src) }

// Tanh sets dst[i] = tanh(src[i]).
func Tanh(dst, src []float64) { apply(opTanh, dst[:len(src)], src) }

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
