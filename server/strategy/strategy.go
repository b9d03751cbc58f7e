package strategy

import (
	"errors"
	"fmt"
	"math"
)

// ErrNeedsIndividualUpdates is returned by robust strategies handed only an aggregate.
var ErrNeedsIndividualUpdates = errors.New("strategy: needs individual client updates, which secure aggregation hides")

// ClientUpdate is one client's plaintext update (secure aggregation off).
type ClientUpdate struct {
	ClientID string
	// Delta is local − global parameters, after the client's clipping.
	Delta []float64
	// Weight is the aggregation weight (proportional to the client's examples).
	Weight      float64
	NumExamples int
	Metrics     map[string]float64
}

// WeightedSum is a decrypted secure aggregate: Σ w_i Δ_i, Σ w_i and the number of updates.
type WeightedSum struct {
	Sum         []float64
	TotalWeight float64
	Count       int
}

// FailureKind says why a sampled client contributed nothing.
type FailureKind int

const (
	// FailureTimeout: no result before the deadline (the client dropped out).
	FailureTimeout FailureKind = iota + 1
	// FailureRefused: the client refused, e.g. its privacy budget would be exceeded.
	FailureRefused
	// FailureError: the client reported an error.
	FailureError
	// FailureRejected: the server rejected the client's result (malformed, out of bounds).
	FailureRejected
)

func (k FailureKind) String() string {
	switch k {
	case FailureTimeout:
		return "timeout"
	case FailureRefused:
		return "refused"
	case FailureError:
		return "error"
	case FailureRejected:
		return "rejected"
	}
	return fmt.Sprintf("FailureKind(%d)", int(k))
}

// Failure is a sampled client that contributed nothing to a round.
type Failure struct {
	ClientID string
	Kind     FailureKind
	Reason   string
}

// FitResults is what a round's fit phase produced: exactly one of Updates and Sum is set
// when at least one client contributed.
type FitResults struct {
	Updates  []ClientUpdate
	Sum      *WeightedSum
	Failures []Failure
}

// Count returns the number of contributions.
func (r FitResults) Count() int {
	if r.Sum != nil {
		return r.Sum.Count
	}
	return len(r.Updates)
}

// FitConfig is what the strategy adds to every fit task of a round.
type FitConfig struct {
	// ProximalMu is FedProx's μ (0: plain local training).
	ProximalMu float64
	// Config is free-form (Flower's config dict).
	Config map[string]string
}

// EvaluateResult is one client's federated evaluation.
type EvaluateResult struct {
	ClientID    string
	NumExamples int
	Loss        float64
	Metrics     map[string]float64
}

// Metrics are named aggregate values of a round.
type Metrics map[string]float64

// Strategy configures and aggregates the rounds (Flower's Strategy, without the I/O).
type Strategy interface {
	// Name is the strategy's config name (fedavg, fedadam, …).
	Name() string
	// ConfigureFit returns the settings every fit task of the round carries.
	ConfigureFit(round uint64, global []float64) FitConfig
	// AggregateFit returns the next global parameters (a new vector) and metrics.
	AggregateFit(round uint64, global []float64, results FitResults) ([]float64, Metrics, error)
	// ConfigureEvaluate returns the settings of the round's evaluate tasks.
	ConfigureEvaluate(round uint64, global []float64) map[string]string
	// AggregateEvaluate combines the clients' evaluations.
	AggregateEvaluate(round uint64, results []EvaluateResult, failures []Failure) (Metrics, error)
	// NeedsIndividualUpdates reports whether AggregateFit needs FitResults.Updates.
	NeedsIndividualUpdates() bool
}

// Stateful is implemented by strategies with server-side state across rounds.
type Stateful interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// MeanUpdate returns Σ w_i Δ_i / Σ w_i from either form of results, checking lengths and
// finiteness.
func MeanUpdate(dim int, r FitResults) ([]float64, error) {
	if r.Sum != nil {
		if len(r.Sum.Sum) != dim {
			return nil, fmt.Errorf("strategy: aggregate has %d values, model has %d", len(r.Sum.Sum), dim)
		}
		if !(r.Sum.TotalWeight > 0) || math.IsInf(r.Sum.TotalWeight, 0) {
			return nil, fmt.Errorf("strategy: aggregate total weight %g: must be positive", r.Sum.TotalWeight)
		}
		out := make([]float64, dim)
		for i, v := range r.Sum.Sum {
			out[i] = v / r.Sum.TotalWeight
		}
		return out, checkFinite(out, "mean update")
	}
	if len(r.Updates) == 0 {
		return nil, fmt.Errorf("strategy: no updates to aggregate")
	}
	out := make([]float64, dim)
	var total float64
	for _, u := range r.Updates {
		if err := checkUpdate(dim, u); err != nil {
			return nil, err
		}
		for i, v := range u.Delta {
			out[i] += u.Weight * v
		}
		total += u.Weight
	}
	for i := range out {
		out[i] /= total
	}
	return out, checkFinite(out, "mean update")
}

func checkUpdate(dim int, u ClientUpdate) error {
	if len(u.Delta) != dim {
		return fmt.Errorf("strategy: update of client %q has %d values, model has %d", u.ClientID, len(u.Delta), dim)
	}
	if !(u.Weight > 0) || math.IsInf(u.Weight, 0) {
		return fmt.Errorf("strategy: update of client %q has weight %g: must be positive", u.ClientID, u.Weight)
	}
	return checkFinite(u.Delta, fmt.Sprintf("update of client %q", u.ClientID))
}

func checkFinite(v []float64, what string) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("strategy: %s: value %d is %v", what, i, x)
		}
	}
	return nil
}

// applyDelta returns global + scale·delta.
func applyDelta(global, delta []float64, scale float64) []float64 {
	out := make([]float64, len(global))
	for i := range out {
		out[i] = global[i] + scale*delta[i]
	}
	return out
}

// weightedEvaluate is Flower's weighted_loss_avg plus the same weighting of every metric.
func weightedEvaluate(results []EvaluateResult) (Metrics, error) {
	if len(results) == 0 {
		return nil, fmt.Errorf("strategy: no evaluation results")
	}
	var n float64
	m := Metrics{}
	for _, r := range results {
		if r.NumExamples <= 0 {
			continue
		}
		w := float64(r.NumExamples)
		n += w
		m["loss"] += w * r.Loss
		for k, v := range r.Metrics {
			if k == "loss" {
				continue // clients report the loss among their metrics too: count it once
			}
			m[k] += w * v
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("strategy: evaluation results hold no examples")
	}
	for k := range m {
		m[k] /= n
	}
	m["examples"] = n
	return m, nil
}
