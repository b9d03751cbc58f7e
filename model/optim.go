package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Optimizer updates a parameter vector from its gradient. Implementations keep their state
// (momentum, moments) sized to the vector on first use.
type Optimizer interface {
	Step(params, grads []float64)
	// SetLR changes the learning rate (schedules).
	SetLR(lr float64)
	LR() float64
}

// lowStepper is an Optimizer that also rounds the updated parameters into a float32 copy,
// in the pass that updates them (Model.Step).
type lowStepper interface {
	stepNarrow(params, grads []float64, low []float32)
}

var (
	_ lowStepper = (*SGD)(nil)
	_ lowStepper = (*Adam)(nil)
)

// Step applies opt to the model's parameters, opt.Step(m.Params, m.Grads). A Float32
// model's next pass otherwise starts by rounding all of Params into its float32 network
// (a pass over the weights, 10% of an MLP training step's CPU time); with SGD or Adam, Step
// writes the rounded values in the pass that updates them, and the next training or
// evaluation pass takes them as they are. That pass only: the ones after it round Params
// again. So between Step and the next pass, change Params only through the Model's methods
// (SetParams, ApplyMask, Prune, Quantize), which discard the rounded copy; code that writes
// Params directly there calls opt.Step(m.Params, m.Grads) instead.
func (m *Model) Step(opt Optimizer) {
	s, ok := opt.(lowStepper)
	n := m.low(false)
	if !ok || n == nil {
		opt.Step(m.Params, m.Grads)
		return
	}
	s.stepNarrow(m.Params, m.Grads, n.params)
	n.fresh = true
}

// drainStepper is an Optimizer that can also take its gradients from a float32 network's
// float32 ones, without forming float64 gradients (Model.TrainStep), when drains says so.
type drainStepper interface {
	drains() bool
	stepDrain(params []float64, src, low []float32)
}

var _ drainStepper = (*SGD)(nil)

// noiseStepper is a drainStepper that also adds DP-SGD's noise std·z to the gradients in
// its pass (Model.AccumulateWeightedStep), when drains says so.
type noiseStepper interface {
	drainStepper
	stepDrainNoise(params []float64, src []float32, z []float64, std float64, low []float32)
}

var _ noiseStepper = (*SGD)(nil)

// TrainStep is one training step on a batch: ZeroGrads, Backprop(in, tg, scale, rng) and
// Step(opt), with the same Params and the same returns, except that Grads is left
// unspecified. A Float32 model trained by plain SGD (no momentum) does not form float64
// gradients at all: the update reads the float32 ones where the backward pass left them
// (linalg.DescendDrain), one pass over the parameters instead of three (clearing Grads,
// adding the float32 gradients in, the update), 24 bytes moved a parameter instead of 60;
// and it leaves them there, so that the next backward pass of a network of Linear layers
// overwrites them instead of adding to zeros. Use Backprop where the gradients are
// wanted. On an error Params are unchanged.
func (m *Model) TrainStep(in *Input, tg Targets, scale float64, rng *rand.Rand, opt Optimizer) (lossSum float64, st Stats, err error) {
	s, ok := opt.(drainStepper)
	n := m.low(false)
	if !ok || n == nil || !s.drains() {
		m.ZeroGrads()
		if lossSum, st, err = m.Backprop(in, tg, scale, rng); err == nil {
			m.Step(opt)
		}
		return lossSum, st, err
	}
	if lossSum, st, err = m.backprop(in, tg, scale, rng, n); err != nil {
		return lossSum, st, err
	}
	s.stepDrain(m.Params, n.grads, n.params)
	n.fresh, n.stale = true, true
	return lossSum, st, nil
}

// OptimizerConfig selects and configures an optimizer; it is what configs and flags fill.
type OptimizerConfig struct {
	Name        string  `json:"name" yaml:"name"` // sgd, adam or adamw
	LR          float64 `json:"lr" yaml:"lr"`
	Momentum    float64 `json:"momentum,omitempty" yaml:"momentum,omitempty"`
	Nesterov    bool    `json:"nesterov,omitempty" yaml:"nesterov,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty" yaml:"weight_decay,omitempty"`
	Beta1       float64 `json:"beta1,omitempty" yaml:"beta1,omitempty"`
	Beta2       float64 `json:"beta2,omitempty" yaml:"beta2,omitempty"`
	Eps         float64 `json:"eps,omitempty" yaml:"eps,omitempty"`
}

// NewOptimizer validates c and returns the optimizer it describes.
func NewOptimizer(c OptimizerConfig) (Optimizer, error) {
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return nil, fmt.Errorf("optimizer: lr = %v: must be a positive number", c.LR)
	}
	if c.WeightDecay < 0 {
		return nil, fmt.Errorf("optimizer: weight_decay = %v: must be ≥ 0", c.WeightDecay)
	}
	switch c.Name {
	case "", "sgd":
		if c.Momentum < 0 || c.Momentum >= 1 {
			return nil, fmt.Errorf("optimizer: momentum = %v: must be in [0, 1)", c.Momentum)
		}
		return &SGD{Rate: c.LR, Momentum: c.Momentum, Nesterov: c.Nesterov, WeightDecay: c.WeightDecay}, nil
	case "adam", "adamw":
		a := &Adam{Rate: c.LR, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay, Decoupled: c.Name == "adamw"}
		if a.Beta1 == 0 {
			a.Beta1 = 0.9
		}
		if a.Beta2 == 0 {
			a.Beta2 = 0.999
		}
		if a.Eps == 0 {
			a.Eps = 1e-8
		}
		if a.Beta1 < 0 || a.Beta1 >= 1 || a.Beta2 < 0 || a.Beta2 >= 1 {
			return nil, fmt.Errorf("optimizer: beta1 = %v, beta2 = %v: both must be in [0, 1)", a.Beta1, a.Beta2)
		}
		return a, nil
	}
	return nil, fmt.Errorf("optimizer: name %q unknown (use sgd, adam or adamw)", c.Name)
}

// SGD is stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay,
// with PyTorch's conventions: g ← g + λθ; v ← μv + g; θ ← θ − η·v (or η·(g + μv) for Nesterov).
type SGD struct {
	Rate, Momentum, WeightDecay float64
	Nesterov                    bool
	vel                         []float64

	params, grads []float64 // operands of the running Step
	low           []float32 // with stepNarrow, where the updated params are rounded to
	src           []float32 // with stepDrain, the float32 gradients (grads is nil)
	z             []float64 // with stepDrainNoise, standard normal draws to add ×std, zeroed
	std           float64
	update        func(w, lo, hi int) // method value made once (a fresh closure would be allocated per Step)
}

func (s *SGD) SetLR(lr float64) { s.Rate = lr }
func (s *SGD) LR() float64      { return s.Rate }

// Step updates params in chunks spread over the cores: the update streams the parameter,
// gradient (and velocity) vectors through memory once, which for models of a few hundred
// thousand parameters no longer fit in a core's cache.
func (s *SGD) Step(params, grads []float64) { s.step(params, grads, len(grads)) }

// step updates params[:n] from grads, or from src when stepDrain set it (grads nil).
func (s *SGD) step(params, grads []float64, n int) {
	if s.Momentum != 0 && len(s.vel) != len(params) {
		s.vel = make([]float64, len(params))
	}
	s.params, s.grads = params[:n], grads
	if s.update == nil {
		s.update = s.updateRange
	}
	linalg.ParallelFor(n, 1, s.update)
	s.params, s.grads = nil, nil
}

// stepNarrow is Step that also sets low to the updated params rounded to float32.
func (s *SGD) stepNarrow(params, grads []float64, low []float32) {
	s.low = low[:len(grads)]
	s.step(params, grads, len(grads))
	s.low = nil
}

func (s *SGD) drains() bool { return s.Momentum == 0 }

// stepDrain is stepNarrow taking the gradients from src (linalg.DescendDrain); only
// without momentum (drains).
func (s *SGD) stepDrain(params []float64, src, low []float32) {
	s.src, s.low = src[:len(params)], low[:len(params)]
	s.step(params, nil, len(params))
	s.src, s.low = nil, nil
}

// stepDrainNoise is stepDrain adding std·z to the gradients and zeroing z
// (linalg.DescendDrainNoise); only without momentum (drains).
func (s *SGD) stepDrainNoise(params []float64, src []float32, z []float64, std float64, low []float32) {
	s.z, s.std = z[:len(params)], std
	s.stepDrain(params, src, low)
	s.z = nil
}

func (s *SGD) updateRange(_, lo, hi int) {
	lr, wd, mu := s.Rate, s.WeightDecay, s.Momentum
	p := s.params[lo:hi]
	switch {
	case mu == 0 && s.src != nil && s.z != nil:
		linalg.DescendDrainNoise(p, s.src[lo:hi], s.z[lo:hi], s.std, s.low[lo:hi], lr, wd)
		return
	case mu == 0 && s.src != nil:
		linalg.DescendDrain(p, s.src[lo:hi], s.low[lo:hi], lr, wd)
		return
	case mu == 0 && s.low != nil:
		linalg.DescendNarrow(p, s.grads[lo:hi], s.low[lo:hi], lr, wd)
		return
	case mu == 0:
		linalg.Descend(p, s.grads[lo:hi], lr, wd)
		return
	}
	g := s.grads[lo:hi]
	defer narrowRange(s.low, lo, hi, p)
	vel := s.vel[lo:hi]
	for i, v := range g {
		v += wd * p[i]
		u := mu*vel[i] + v
		vel[i] = u
		if s.Nesterov {
			v += mu * u
		} else {
			v = u
		}
		p[i] -= lr * v
	}
}

// Adam is Kingma & Ba 2015 with bias correction. With Decoupled it is AdamW (Loshchilov &
// Hutter 2019): θ ← θ − ηλθ before the Adam step; otherwise weight decay is L2 added to g.
type Adam struct {
	Rate, Beta1, Beta2, Eps, WeightDecay float64
	Decoupled                            bool
	m, v                                 []float64
	t                                    int

	params, grads []float64           // operands of the running Step
	low           []float32           // with stepNarrow, where the updated params are rounded to
	c1, c2        float64             // bias corrections of the running Step
	update        func(w, lo, hi int) // method value made once (a fresh closure would be allocated per Step)
}

func (a *Adam) SetLR(lr float64) { a.Rate = lr }
func (a *Adam) LR() float64      { return a.Rate }

func (a *Adam) Step(params, grads []float64) {
	if len(a.m) != len(params) {
		a.m = make([]float64, len(params))
		a.v = make([]float64, len(params))
		a.t = 0
	}
	a.t++
	a.c1 = 1 - math.Pow(a.Beta1, float64(a.t))
	a.c2 = 1 - math.Pow(a.Beta2, float64(a.t))
	a.params, a.grads = params[:len(grads)], grads
	if a.update == nil {
		a.update = a.updateRange
	}
	linalg.ParallelFor(len(grads), 4, a.update)
	a.params, a.grads = nil, nil
}

// stepNarrow is Step that also sets low to the updated params rounded to float32.
func (a *Adam) stepNarrow(params, grads []float64, low []float32) {
	a.low = low[:len(grads)]
	a.Step(params, grads)
	a.low = nil
}

func (a *Adam) updateRange(_, lo, hi int) {
	lr, wd, b1, b2, eps, c1, c2 := a.Rate, a.WeightDecay, a.Beta1, a.Beta2, a.Eps, a.c1, a.c2
	p, gs, m, v := a.params[lo:hi], a.grads[lo:hi], a.m[lo:hi], a.v[lo:hi]
	defer narrowRange(a.low, lo, hi, p)
	for i, g := range gs {
		if a.Decoupled {
			p[i] -= lr * wd * p[i]
		} else {
			g += wd * p[i]
		}
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		p[i] -= lr * (m[i] / c1) / (math.Sqrt(v[i]/c2) + eps)
	}
}

// narrowRange rounds the updated params p, the range [lo, hi) of a Step, into low[lo:hi]
// while they are still in cache; nothing when low is nil (Step, not stepNarrow).
func narrowRange(low []float32, lo, hi int, p []float64) {
	if low != nil {
		linalg.Narrow(low[lo:hi], p)
	}
}
