package strategy

import (
	"fmt"
	"strconv"
)

// FedAvg is federated averaging (McMahan et al. 2017): the next global model is the global
// plus the weighted mean update, Σ w_i Δ_i / Σ w_i, with w_i proportional to the client's
// examples. It works on individual updates and on secure aggregates alike. Decay scales the
// step by round (constant by default).
type FedAvg struct {
	Decay LRSchedule
}

var _ Strategy = (*FedAvg)(nil)

func (*FedAvg) Name() string                                          { return NameFedAvg }
func (*FedAvg) NeedsIndividualUpdates() bool                          { return false }
func (*FedAvg) ConfigureFit(uint64, []float64) FitConfig              { return FitConfig{} }
func (*FedAvg) ConfigureEvaluate(uint64, []float64) map[string]string { return nil }

func (f *FedAvg) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	mean, err := MeanUpdate(len(global), r)
	if err != nil {
		return nil, nil, fmt.Errorf("fedavg round %d: %w", round, err)
	}
	lr := f.Decay.Factor(round)
	return applyDelta(global, mean, lr), Metrics{"update_norm": norm(mean), "server_lr": lr}, nil
}

func (*FedAvg) AggregateEvaluate(_ uint64, results []EvaluateResult, _ []Failure) (Metrics, error) {
	return weightedEvaluate(results)
}

// FedProx (Li et al. 2020) aggregates like FedAvg and sends the proximal coefficient μ to the
// clients, which add (μ/2)‖w − w_global‖² to their local objective.
type FedProx struct {
	FedAvg
	Mu float64
}

var _ Strategy = (*FedProx)(nil)

func (*FedProx) Name() string { return NameFedProx }

func (p *FedProx) ConfigureFit(uint64, []float64) FitConfig {
	return FitConfig{ProximalMu: p.Mu, Config: map[string]string{"proximal_mu": strconv.FormatFloat(p.Mu, 'g', -1, 64)}}
}

// FedAvgM is FedAvg with server momentum (Hsu et al. 2019): v ← β·v + Δ̄, x ← x + η·v,
// where Δ̄ is the weighted mean update (the negative pseudo-gradient).
type FedAvgM struct {
	LR, Momentum float64
	Decay        LRSchedule // scales LR by round
	velocity     []float64
}

var _ Strategy = (*FedAvgM)(nil)
var _ Stateful = (*FedAvgM)(nil)

func (*FedAvgM) Name() string                                          { return NameFedAvgM }
func (*FedAvgM) NeedsIndividualUpdates() bool                          { return false }
func (*FedAvgM) ConfigureFit(uint64, []float64) FitConfig              { return FitConfig{} }
func (*FedAvgM) ConfigureEvaluate(uint64, []float64) map[string]string { return nil }

func (s *FedAvgM) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	mean, err := MeanUpdate(len(global), r)
	if err != nil {
		return nil, nil, fmt.Errorf("fedavgm round %d: %w", round, err)
	}
	if len(s.velocity) != len(global) {
		s.velocity = make([]float64, len(global))
	}
	for i, d := range mean {
		s.velocity[i] = s.Momentum*s.velocity[i] + d
	}
	lr := s.LR * s.Decay.Factor(round)
	return applyDelta(global, s.velocity, lr), Metrics{"update_norm": norm(mean), "server_lr": lr}, nil
}

func (*FedAvgM) AggregateEvaluate(_ uint64, results []EvaluateResult, _ []Failure) (Metrics, error) {
	return weightedEvaluate(results)
}

func (s *FedAvgM) MarshalState() ([]byte, error) { return encodeVectors(s.velocity), nil }

func (s *FedAvgM) UnmarshalState(b []byte) error {
	v, err := decodeVectors(b, 1)
	if err != nil {
		return fmt.Errorf("fedavgm state: %w", err)
	}
	s.velocity = v[0]
	return nil
}
