package strategy

import (
	"fmt"
	"math"
)

// Optimizer selects the second-moment rule of an Adaptive strategy.
type Optimizer int

// The adaptive server optimizers of Reddi et al. 2021.
const (
	Adagrad Optimizer = iota + 1
	Adam
	Yogi
)

// Adaptive is FedAdagrad, FedAdam or FedYogi (Reddi et al. 2021, "Adaptive Federated
// Optimization", Algorithm 2) with the weighted mean update Δ̄ as the negative
// pseudo-gradient:
//
//	m ← β1·m + (1−β1)·Δ̄
//	v ← v + Δ̄²                         (Adagrad)
//	v ← β2·v + (1−β2)·Δ̄²               (Adam)
//	v ← v − (1−β2)·Δ̄²·sign(v − Δ̄²)     (Yogi)
//	x ← x + η·m / (√v + τ)
type Adaptive struct {
	Opt                   Optimizer
	LR, Beta1, Beta2, Tau float64
	Decay                 LRSchedule // scales LR by round
	m, v                  []float64
}

var _ Strategy = (*Adaptive)(nil)
var _ Stateful = (*Adaptive)(nil)

// NewAdaptive returns an adaptive strategy.
func NewAdaptive(opt Optimizer, lr, beta1, beta2, tau float64) *Adaptive {
	return &Adaptive{Opt: opt, LR: lr, Beta1: beta1, Beta2: beta2, Tau: tau}
}

func (a *Adaptive) Name() string {
	switch a.Opt {
	case Adagrad:
		return NameFedAdagrad
	case Adam:
		return NameFedAdam
	case Yogi:
		return NameFedYogi
	}
	return fmt.Sprintf("adaptive(%d)", int(a.Opt))
}

func (*Adaptive) NeedsIndividualUpdates() bool                          { return false }
func (*Adaptive) ConfigureFit(uint64, []float64) FitConfig              { return FitConfig{} }
func (*Adaptive) ConfigureEvaluate(uint64, []float64) map[string]string { return nil }

func (a *Adaptive) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	d, err := MeanUpdate(len(global), r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s round %d: %w", a.Name(), round, err)
	}
	if len(a.m) != len(global) {
		a.m = make([]float64, len(global))
		a.v = make([]float64, len(global))
	}
	lr := a.LR * a.Decay.Factor(round)
	out := make([]float64, len(global))
	for i, g := range d {
		a.m[i] = a.Beta1*a.m[i] + (1-a.Beta1)*g
		g2 := g * g
		switch a.Opt {
		case Adagrad:
			a.v[i] += g2
		case Adam:
			a.v[i] = a.Beta2*a.v[i] + (1-a.Beta2)*g2
		case Yogi:
			a.v[i] -= (1 - a.Beta2) * g2 * sign(a.v[i]-g2)
		}
		out[i] = global[i] + lr*a.m[i]/(math.Sqrt(a.v[i])+a.Tau)
	}
	return out, Metrics{"update_norm": norm(d), "server_lr": lr}, nil
}

func (*Adaptive) AggregateEvaluate(_ uint64, results []EvaluateResult, _ []Failure) (Metrics, error) {
	return weightedEvaluate(results)
}

func (a *Adaptive) MarshalState() ([]byte, error) { return encodeVectors(a.m, a.v), nil }

func (a *Adaptive) UnmarshalState(b []byte) error {
	v, err := decodeVectors(b, 2)
	if err != nil {
		return fmt.Errorf("%s state: %w", a.Name(), err)
	}
	if len(v[0]) != len(v[1]) {
		return fmt.Errorf("%s state: moments of different lengths %d and %d", a.Name(), len(v[0]), len(v[1]))
	}
	a.m, a.v = v[0], v[1]
	return nil
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
