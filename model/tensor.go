package model

import "github.com/confide-fl/confide/internal/linalg"

// TensorOf is a row-major matrix of activations: Rows = B for per-example features or B·T
// for sequences (example i owns rows i·T … i·T+T−1), Cols = feature width. Its element type
// is the precision the layer math runs in (see Precision).
type TensorOf[F linalg.Float] struct {
	Data       []F
	Rows, Cols int
}

// Tensor is a float64 tensor: what the model's API takes and returns.
type Tensor = TensorOf[float64]

// Row returns row r as a slice aliasing the tensor's data.
func (t *TensorOf[F]) Row(r int) []F { return t.Data[r*t.Cols : (r+1)*t.Cols] }

// ensure returns t resized to rows×cols, reusing its storage when large enough.
func ensure[F linalg.Float](t *TensorOf[F], rows, cols int) *TensorOf[F] {
	if t == nil {
		t = &TensorOf[F]{}
	}
	n := rows * cols
	if cap(t.Data) < n {
		t.Data = make([]F, n)
	}
	t.Data = t.Data[:n]
	t.Rows, t.Cols = rows, cols
	return t
}

// growFloats returns s with length n, reusing its storage when large enough.
func growFloats(s []float64, n int) []float64 { return grow(s, n) }

// grow returns s with length n, reusing its storage when large enough.
func grow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}

// convert sets dst[i] = src[i] rounded (or widened) to dst's element type; rounding goes
// through linalg.Narrow's vector kernel.
func convert[D, S linalg.Float](dst []D, src []S) {
	if d, ok := any(dst).([]float32); ok {
		if s, ok := any(src).([]float64); ok {
			linalg.Narrow(d, s)
			return
		}
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = D(v)
	}
}
