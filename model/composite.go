package model

import (
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// SequentialOf applies its layers in order. It is a ParamLayer whose parameter slice is the
// concatenation of its parametrised sublayers' slices, in order; every ParamLayer method
// delegates to them. Composite layers (residual branches, Transformer blocks, attention)
// are built from it.
type SequentialOf[F linalg.Float] struct {
	Layers []LayerOf[F]
	params []ParamLayerOf[F]
}

// Sequential is a float64 SequentialOf.
type Sequential = SequentialOf[float64]

var (
	_ ParamLayer            = (*Sequential)(nil)
	_ ParamLayerOf[float32] = (*SequentialOf[float32])(nil)
)

// NewSequential returns the composition of layers.
func NewSequential(layers ...Layer) *Sequential { return newSequential(layers...) }

func newSequential[F linalg.Float](layers ...LayerOf[F]) *SequentialOf[F] {
	s := &SequentialOf[F]{Layers: layers}
	for _, l := range layers {
		if p, ok := l.(ParamLayerOf[F]); ok {
			s.params = append(s.params, p)
		}
	}
	return s
}

func (s *SequentialOf[F]) NumParams() int {
	n := 0
	for _, p := range s.params {
		n += p.NumParams()
	}
	return n
}

func (s *SequentialOf[F]) Bind(params, grads []F) {
	off := 0
	for _, p := range s.params {
		k := p.NumParams()
		p.Bind(params[off:off+k:off+k], grads[off:off+k:off+k])
		off += k
	}
}

func (s *SequentialOf[F]) Init(rng *rand.Rand) {
	for _, p := range s.params {
		p.Init(rng)
	}
}

func (s *SequentialOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	for _, l := range s.Layers {
		x = l.Forward(x, b)
	}
	return x
}

func (s *SequentialOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	for i := len(s.Layers) - 1; i >= 0; i-- {
		dy = s.Layers[i].Backward(dy, b, i > 0 || needInput)
	}
	return dy
}

func (s *SequentialOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	for _, p := range s.params {
		p.AddPerExampleSqNorms(dst, b)
	}
}

func (s *SequentialOf[F]) AccumulateWeighted(w []float64, b *Batch) {
	for _, p := range s.params {
		p.AccumulateWeighted(w, b)
	}
}

// ResidualOf is y = x + Body(x) (He et al. 2016). Its parameters are the body's.
type ResidualOf[F linalg.Float] struct {
	*SequentialOf[F]
	y, dx *TensorOf[F]

	sumDst, sumA, sumB []F                 // operands of the running sum
	sumRange           func(w, lo, hi int) // method value made once (a fresh closure would be allocated per call)
}

// Residual is a float64 ResidualOf.
type Residual = ResidualOf[float64]

var (
	_ ParamLayer            = (*Residual)(nil)
	_ ParamLayerOf[float32] = (*ResidualOf[float32])(nil)
)

// NewResidual returns the residual connection around body.
func NewResidual(body ...Layer) *Residual { return newResidual(body...) }

func newResidual[F linalg.Float](body ...LayerOf[F]) *ResidualOf[F] {
	return &ResidualOf[F]{SequentialOf: newSequential(body...)}
}

func (r *ResidualOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	out := r.SequentialOf.Forward(x, b)
	r.y = ensure(r.y, x.Rows, x.Cols)
	r.sum(r.y.Data, x.Data, out.Data)
	return r.y
}

func (r *ResidualOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	d := r.SequentialOf.Backward(dy, b, needInput)
	if !needInput {
		return nil
	}
	r.dx = ensure(r.dx, dy.Rows, dy.Cols)
	r.sum(r.dx.Data, dy.Data, d.Data)
	return r.dx
}

// sum sets dst = a + b, spread over the cores (the tensors are B·T rows: megabytes).
func (r *ResidualOf[F]) sum(dst, a, b []F) {
	r.sumDst, r.sumA, r.sumB = dst, a, b
	if r.sumRange == nil {
		r.sumRange = r.sumPart
	}
	parallelFor(len(dst), 1, r.sumRange)
	r.sumDst, r.sumA, r.sumB = nil, nil, nil
}

func (r *ResidualOf[F]) sumPart(_, lo, hi int) {
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

// PoolOf reduces each example's T rows to one row, over valid positions only; an example of
// length 0 pools to zeros.
type PoolOf[F linalg.Float] struct {
	Mode  string
	T     int // rows per example of the last Forward
	y, dx *TensorOf[F]
}

// Pool is a float64 PoolOf.
type Pool = PoolOf[float64]

var (
	_ Layer            = (*Pool)(nil)
	_ LayerOf[float32] = (*PoolOf[float32])(nil)
)

func (p *PoolOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
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
			linalg.Scale(1/F(n), dst)
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

func (p *PoolOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
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
				linalg.Axpy(1/F(n), g, p.dx.Row(i*T+t))
			}
		case PoolFirst:
			copy(p.dx.Row(i*T), g)
		case PoolLast:
			copy(p.dx.Row(i*T+n-1), g)
		}
	}
	return p.dx
}
