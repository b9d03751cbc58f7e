package model

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/internal/linalg"
)

// Activation names accepted in specs.
const (
	ActReLU    = "relu"
	ActGELU    = "gelu"
	ActTanh    = "tanh"
	ActSigmoid = "sigmoid"
)

// ActivationOf is an elementwise nonlinearity. It has no parameters. The scalar forms (f,
// df; GELU's) compute in float64 whatever F is.
type ActivationOf[F linalg.Float] struct {
	Name string
	f    func(x float64) float64
	// df returns f'(x) given the input x and the output y = f(x).
	df   func(x, y float64) float64
	x, y *TensorOf[F]
	dx   *TensorOf[F]
	dy   *TensorOf[F] // output gradient of the running Backward

	// Method values made once: a closure passed to parallelFor on every call would be
	// allocated on every call.
	fwdRange, bwdRange func(w, lo, hi int)
}

// Activation is a float64 ActivationOf.
type Activation = ActivationOf[float64]

var (
	_ Layer            = (*Activation)(nil)
	_ LayerOf[float32] = (*ActivationOf[float32])(nil)
)

// NewActivation returns the named activation, or an error naming the valid ones.
func NewActivation(name string) (*Activation, error) { return newActivation[float64](name) }

func newActivation[F linalg.Float](name string) (*ActivationOf[F], error) {
	a := &ActivationOf[F]{Name: name}
	switch name {
	case ActReLU:
		a.f = func(x float64) float64 { return max(x, 0) }
		a.df = func(x, _ float64) float64 {
			if x > 0 {
				return 1
			}
			return 0
		}
	case ActGELU:
		// Exact GELU, x·Φ(x) (Hendrycks & Gimpel 2016); f'(x) = Φ(x) + x·φ(x).
		a.f = func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
		a.df = func(x, _ float64) float64 {
			return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
		}
	case ActTanh:
		a.f = math.Tanh
		a.df = func(_, y float64) float64 { return 1 - y*y }
	case ActSigmoid:
		a.f = sigmoid
		a.df = func(_, y float64) float64 { return y * (1 - y) }
	default:
		return nil, fmt.Errorf("unknown activation %q (use relu, gelu, tanh or sigmoid)", name)
	}
	return a, nil
}

func sigmoid(x float64) float64 { return linalg.SigmoidScalar(x) }

// elementCost is the work (in multiply-adds) per element that parallelFor weighs: the
// vector kernels and ReLU are cheap, GELU's scalar erf and exp are not.
func (a *ActivationOf[F]) elementCost() int {
	switch a.Name {
	case ActReLU:
		return 1
	case ActTanh, ActSigmoid:
		return 4
	}
	return 20
}

func (a *ActivationOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	a.x = x
	a.y = ensure(a.y, x.Rows, x.Cols)
	if a.fwdRange == nil {
		a.fwdRange = a.forwardRange
	}
	parallelFor(len(x.Data), a.elementCost(), a.fwdRange)
	return a.y
}

func (a *ActivationOf[F]) forwardRange(_, lo, hi int) {
	x, y := a.x.Data[lo:hi], a.y.Data[lo:hi]
	switch a.Name {
	case ActReLU:
		if x32, ok := any(x).([]float32); ok {
			linalg.ReLU32(any(y).([]float32), x32)
			return
		}
		for i, v := range x {
			y[i] = max(v, 0)
		}
	case ActTanh:
		linalg.Tanh(y, x)
	case ActSigmoid:
		linalg.Sigmoid(y, x)
	default:
		for i, v := range x {
			y[i] = F(a.f(float64(v)))
		}
	}
}

func (a *ActivationOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	a.dx = ensure(a.dx, dy.Rows, dy.Cols)
	a.dy = dy
	if a.bwdRange == nil {
		a.bwdRange = a.backwardRange
	}
	parallelFor(len(dy.Data), a.elementCost(), a.bwdRange)
	a.dy = nil
	return a.dx
}

func (a *ActivationOf[F]) backwardRange(_, lo, hi int) {
	dx, g, y := a.dx.Data[lo:hi], a.dy.Data[lo:hi], a.y.Data[lo:hi]
	if a.Name == ActReLU {
		reluBackward(dx, g, y)
		return
	}
	y = y[:len(g)]
	// tanh's and sigmoid's df written out: an indirect call per value cost more than the
	// arithmetic. Same float64 operations, so the same values.
	switch a.Name {
	case ActTanh:
		for i, gv := range g {
			v := float64(y[i])
			dx[i] = gv * F(1-v*v)
		}
		return
	case ActSigmoid:
		for i, gv := range g {
			v := float64(y[i])
			dx[i] = gv * F(v*(1-v))
		}
		return
	}
	x := a.x.Data[lo:hi]
	for i, gv := range g {
		dx[i] = gv * F(a.df(float64(x[i]), float64(y[i])))
	}
}

// reluBackward sets dx = dy where y = max(x, 0) is nonzero, else 0, selected by a bit mask:
// a branch on the sign of the activations is mispredicted about half the time.
func reluBackward[F linalg.Float](dx, dy, y []F) {
	switch dx := any(dx).(type) {
	case []float64:
		dy, y := any(dy).([]float64), any(y).([]float64)
		for i, v := range y {
			b := math.Float64bits(v)
			mask := uint64(int64(b|-b) >> 63) // all ones iff y ≠ 0 (y = max(x, 0) is never negative)
			dx[i] = math.Float64frombits(math.Float64bits(dy[i]) & mask)
		}
	case []float32:
		linalg.ReLUGrad32(dx, any(dy).([]float32), any(y).([]float32))
	}
}

// DropoutOf zeroes each activation with probability P during training and scales the rest
// by 1/(1−P) (inverted dropout), so evaluation is the identity. It draws the same numbers
// from Batch.Rand in every precision.
type DropoutOf[F linalg.Float] struct {
	P    float64
	mask []F
	y    *TensorOf[F]
	dx   *TensorOf[F]
	on   bool
}

// Dropout is a float64 DropoutOf.
type Dropout = DropoutOf[float64]

var (
	_ Layer            = (*Dropout)(nil)
	_ LayerOf[float32] = (*DropoutOf[float32])(nil)
)

func (d *DropoutOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	d.on = b.Train && d.P > 0
	if !d.on {
		return x
	}
	d.y = ensure(d.y, x.Rows, x.Cols)
	d.mask = grow(d.mask, len(x.Data))
	keep := F(1 / (1 - d.P))
	for i, v := range x.Data {
		if b.Rand.Float64() < d.P {
			d.mask[i] = 0
		} else {
			d.mask[i] = keep
		}
		d.y.Data[i] = v * d.mask[i]
	}
	return d.y
}

func (d *DropoutOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	if !d.on {
		return dy
	}
	d.dx = ensure(d.dx, dy.Rows, dy.Cols)
	for i, g := range dy.Data {
		d.dx.Data[i] = g * d.mask[i]
	}
	return d.dx
}
