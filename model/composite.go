package model

import (
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Sequential applies its layers in order. It is a ParamLayer whose parameter slice is the
// concatenation of its parametrised sublayers' slices, in order; every ParamLayer method
// delegates to them. Composite layers (residual branches, Transformer blocks, attention)
// are built from it.
type Sequential struct {
	Layers []Layer
	params []ParamLayer
}

var _ ParamLayer = (*Sequential)(nil)

// NewSequential returns the composition of layers.
func NewSequential(layers ...Layer) *Sequential {
	s := &Sequential{Layers: layers}
	for _, l := range layers {
		if p, ok := l.(ParamLayer); ok {
			s.params = append(s.params, p)
		}
	}
	return s
}

func (s *Sequential) NumParams() int {
	n := 0
	for _, p := range s.params {
		n += p.NumParams()
	}
	return n
}

func (s *Sequential) Bind(params, grads []float64) {
	off := 0
	for _, p := range s.params {
		k := p.NumParams()
		p.Bind(params[off:off+k:off+k], grads[off:off+k:off+k])
		off += k
	}
}

func (s *Sequential) Init(rng *rand.Rand) {
	for _, p := range s.params {
		p.Init(rng)
	}
}

func (s *Sequential) Forward(x *Tensor, b *Batch) *Tensor {
	for _, l := range s.Layers {
		x = l.Forward(x, b)
	}
	return x
}

func (s *Sequential) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	for i := len(s.Layers) - 1; i >= 0; i-- {
		dy = s.Layers[i].Backward(dy, b, i > 0 || needInput)
	}
	return dy
}

func (s *Sequential) AddPerExampleSqNorms(dst []float64, b *Batch) {
	for _, p := range s.params {
		p.AddPerExampleSqNorms(dst, b)
	}
}

func (s *Sequential) AccumulateWeighted(w []float64, b *Batch) {
	for _, p := range s.params {
		p.AccumulateWeighted(w, b)
	}
}

// Residual is y = x + Body(x) (He et al. 2016). Its parameters are the body's.
type Residual struct {
	*Sequential
	y, dx *Tensor

	sumDst, sumA, sumB []float64           // operands of the running sum
	sumRange           func(w, lo, hi int) // method value made once (a fresh closure would be allocated per call)
}

var _ ParamLayer = (*Residual)(nil)

// NewResidual returns the residual connection around body.
func NewResidual(body ...Layer) *Residual { return &Residual{Sequential: NewSequential(body...)} }

func (r *Residual) Forward(x *Tensor, b *Batch) *Tensor {
	out := r.Sequential.Forward(x, b)
	r.y = ensure(r.y, x.Rows, x.Cols)
	r.sum(r.y.Data, x.Data, out.Data)
	return r.y
}

func (r *Residual) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	d := r.Sequential.Backward(dy, b, needInput)
	if !needInput {
		return nil
	}
	r.dx = ensure(r.dx, dy.Rows, dy.Cols)
	r.sum(r.dx.Data, dy.Data, d.Data)
	return r.dx
}

// sum sets dst = a + b, spread over the cores (the tensors are B·T rows: megabytes).
func (r *Residual) sum(dst, a, b []float64) {
	r.sumDst, r.sumA, r.sumB = dst, a, b
	if r.sumRange == nil {
		r.sumRange = r.sumPart
	}
	parallelFor(len(dst), 1, r.sumRange)
	r.sumDst, r.sumA, r.sumB = nil, nil, nil
}

func (r *Residual) sumPart(_, lo, hi int) {
	dst, a, b := r.sumDst[lo:hi], r.sumA[lo:hi], r.sumB[lo:hi]
	for i, v := range a {
		dst[i] = v + b[i]
	}
}

// Pooling modes reduce a sequence (B·T rows) to one row per example.
const (
	PoolMean  = "mean"  // mean over the valid positions
	PoolFirst = "first" // position 0 (a [CLS]-style token)
	PoolLast  = "last"  // the last valid position (an RNN's final state)
)

// Pool reduces each example's T rows to one row, over valid positions only; an example of
// length 0 pools to zeros.
type Pool struct {
	Mode  string
	T     int // rows per example of the last Forward
	y, dx *Tensor
}

var _ Layer = (*Pool)(nil)

func (p *Pool) Forward(x *Tensor, b *Batch) *Tensor {
	T, D := b.T, x.Cols
	p.T = T
	p.y = ensure(p.y, b.B, D)
	clear(p.y.Data)
	for i := 0; i < b.B; i++ {
		n := poolLen(b, i)
		if n == 0 {
			continue
		}
		dst := p.y.Row(i)
		switch p.Mode {
		case PoolMean:
			for t := 0; t < n; t++ {
				linalg.Add(dst, x.Row(i*T+t))
			}
			linalg.Scale(1/float64(n), dst)
		case PoolFirst:
			copy(dst, x.Row(i*T))
		case PoolLast:
			copy(dst, x.Row(i*T+n-1))
		default:
			panic("model: unknown pooling " + p.Mode)
		}
	}
	return p.y
}

func poolLen(b *Batch, i int) int {
	if b.Lengths == nil {
		return b.T
	}
	return int(b.Lengths[i])
}

func (p *Pool) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	T, D := p.T, dy.Cols
	p.dx = ensure(p.dx, b.B*T, D)
	clear(p.dx.Data)
	for i := 0; i < b.B; i++ {
		n := poolLen(b, i)
		if n == 0 {
			continue
		}
		g := dy.Row(i)
		switch p.Mode {
		case PoolMean:
			for t := 0; t < n; t++ {
				linalg.Axpy(1/float64(n), g, p.dx.Row(i*T+t))
			}
		case PoolFirst:
			copy(p.dx.Row(i*T), g)
		case PoolLast:
			copy(p.dx.Row(i*T+n-1), g)
		}
	}
	return p.dx
}
