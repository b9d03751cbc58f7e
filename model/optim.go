package model

import (
	"fmt"
	"math"
)

// Optimizer updates a parameter vector from its gradient. Implementations keep their state
// (momentum, moments) sized to the vector on first use.
type Optimizer interface {
	Step(params, grads []float64)
	// SetLR changes the learning rate (schedules).
	SetLR(lr float64)
	LR() float64
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
}

func (s *SGD) SetLR(lr float64) { s.Rate = lr }
func (s *SGD) LR() float64      { return s.Rate }

func (s *SGD) Step(params, grads []float64) {
	if s.Momentum == 0 {
		for i, g := range grads {
			params[i] -= s.Rate * (g + s.WeightDecay*params[i])
		}
		return
	}
	if len(s.vel) != len(params) {
		s.vel = make([]float64, len(params))
	}
	for i, g := range grads {
		g += s.WeightDecay * params[i]
		v := s.Momentum*s.vel[i] + g
		s.vel[i] = v
		if s.Nesterov {
			g += s.Momentum * v
		} else {
			g = v
		}
		params[i] -= s.Rate * g
	}
}

// Adam is Kingma & Ba 2015 with bias correction. With Decoupled it is AdamW (Loshchilov &
// Hutter 2019): θ ← θ − ηλθ before the Adam step; otherwise weight decay is L2 added to g.
type Adam struct {
	Rate, Beta1, Beta2, Eps, WeightDecay float64
	Decoupled                            bool
	m, v                                 []float64
	t                                    int
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
	c1 := 1 - math.Pow(a.Beta1, float64(a.t))
	c2 := 1 - math.Pow(a.Beta2, float64(a.t))
	for i, g := range grads {
		if a.Decoupled {
			params[i] -= a.Rate * a.WeightDecay * params[i]
		} else {
			g += a.WeightDecay * params[i]
		}
		a.m[i] = a.Beta1*a.m[i] + (1-a.Beta1)*g
		a.v[i] = a.Beta2*a.v[i] + (1-a.Beta2)*g*g
		params[i] -= a.Rate * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + a.Eps)
	}
}
