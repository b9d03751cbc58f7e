package model

// Tensor is a row-major matrix of activations: Rows = B for per-example features or B·T for
// sequences (example i owns rows i·T … i·T+T−1), Cols = feature width.
type Tensor struct {
	Data       []float64
	Rows, Cols int
}

// Row returns row r as a slice aliasing the tensor's data.
func (t *Tensor) Row(r int) []float64 { return t.Data[r*t.Cols : (r+1)*t.Cols] }

// ensure returns t resized to rows×cols, reusing its storage when large enough.
func ensure(t *Tensor, rows, cols int) *Tensor {
	if t == nil {
		t = &Tensor{}
	}
	n := rows * cols
	if cap(t.Data) < n {
		t.Data = make([]float64, n)
	}
	t.Data = t.Data[:n]
	t.Rows, t.Cols = rows, cols
	return t
}

// growFloats returns s with length n, reusing its storage when large enough.
func growFloats(s []float64, n int) []float64 { return grow(s, n) }

// grow returns s with length n, reusing its storage when large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
