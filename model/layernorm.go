package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// LayerNorm normalises every row to zero mean and unit variance and applies a learned gain
// and bias (Ba et al. 2016): y = γ ⊙ (x − μ)/√(σ² + ε) + β, with ε = 1e-5 as in PyTorch.
type LayerNorm struct {
	Dim int
	Eps float64

	affine
	rstd  []float64
	y, dx *Tensor

	in, gy *Tensor // input of the running Forward, output gradient of the running Backward
	// Method values made once: a closure passed to parallelFor on every call would be
	// allocated on every call.
	fwdRows, bwdRows func(w, lo, hi int)
}

var _ ParamLayer = (*LayerNorm)(nil)

// NewLayerNorm returns a layer norm over rows of width dim.
func NewLayerNorm(dim int) *LayerNorm {
	return &LayerNorm{Dim: dim, Eps: 1e-5, affine: affine{dim: dim}}
}

// Init sets γ = 1 and β = 0.
func (l *LayerNorm) Init(*rand.Rand) { l.affine.init() }

func (l *LayerNorm) Forward(x *Tensor, b *Batch) *Tensor {
	if x.Cols != l.Dim {
		panic("model: LayerNorm input width mismatch")
	}
	D := l.Dim
	l.xhat = ensure(l.xhat, x.Rows, D)
	l.y = ensure(l.y, x.Rows, D)
	l.rstd = growFloats(l.rstd, x.Rows)
	l.in = x
	if l.fwdRows == nil {
		l.fwdRows = l.forwardRows
	}
	parallelFor(x.Rows, 8*D, l.fwdRows)
	l.in = nil
	return l.y
}

func (l *LayerNorm) forwardRows(_, lo, hi int) {
	D := l.Dim
	gain, bias := l.g[:D], l.b[:D]
	for r := lo; r < hi; r++ {
		row := l.in.Data[r*D : (r+1)*D]
		xh, y := l.xhat.Data[r*D:(r+1)*D], l.y.Data[r*D:(r+1)*D]
		// The sums run on linalg's vector kernels (one long chain of dependent adds per row
		// would dominate): x̂ holds x − μ until it is scaled.
		mean := linalg.Sum(row) / float64(D)
		for k, v := range row {
			xh[k] = v - mean
		}
		rs := 1 / math.Sqrt(linalg.SumSq(xh)/float64(D)+l.Eps)
		l.rstd[r] = rs
		for k, c := range xh {
			h := c * rs
			xh[k] = h
			y[k] = gain[k]*h + bias[k]
		}
	}
}

// Backward: with ĝ = dy ⊙ γ, dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)).
func (l *LayerNorm) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	D := l.Dim
	l.affine.backward(dy, b)
	if !needInput {
		return nil
	}
	l.dx = ensure(l.dx, dy.Rows, D)
	l.gy = dy
	if l.bwdRows == nil {
		l.bwdRows = l.backwardRows
	}
	parallelFor(dy.Rows, 8*D, l.bwdRows)
	l.gy = nil
	return l.dx
}

func (l *LayerNorm) backwardRows(_, lo, hi int) {
	D := l.Dim
	gain := l.g[:D]
	for r := lo; r < hi; r++ {
		g, xh, dx := l.gy.Data[r*D:(r+1)*D], l.xhat.Data[r*D:(r+1)*D], l.dx.Data[r*D:(r+1)*D]
		// dx holds ĝ = dy ⊙ γ until the last pass.
		for k, v := range g {
			dx[k] = v * gain[k]
		}
		s1 := linalg.Sum(dx) / float64(D)
		s2 := linalg.Dot(dx, xh) / float64(D)
		rs := l.rstd[r]
		for k, gh := range dx {
			dx[k] = rs * (gh - s1 - xh[k]*s2)
		}
	}
}
