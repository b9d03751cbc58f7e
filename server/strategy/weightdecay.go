package strategy

import "fmt"

// WeightDecay wraps a strategy and shrinks the global model by λ each round, decoupled from
// the inner strategy's step (Loshchilov and Hutter 2019, applied by the server):
//
//	x_{t+1} = inner(x_t) − λ·x_t
//
// Under DP the noise of every round lands on every parameter, also on those the data hardly
// moves (in a bag of words, the weights of rare words): there it adds up as a random walk
// whose spread grows with the rounds. The decay turns the walk into a process of bounded
// spread, about 1/√(2λ) rounds' worth of noise, at the price of shrinking the learnt
// weights towards zero. It reads only the global model, so it costs no privacy, and it
// works under secure aggregation and distributed noise, where the clients' own weight
// decay cannot (their update must stay linear in the noised gradient).
type WeightDecay struct {
	Strategy
	// Lambda is λ in (0, 1): the fraction of the global model taken off each round.
	Lambda float64
}

var (
	_ Strategy = (*WeightDecay)(nil)
	_ Stateful = (*WeightDecay)(nil)
)

// WithWeightDecay returns s shrinking the global model by λ each round (WeightDecay), or s
// itself when λ is 0.
func WithWeightDecay(s Strategy, lambda float64) Strategy {
	if lambda == 0 {
		return s
	}
	return &WeightDecay{Strategy: s, Lambda: lambda}
}

// Unwrap returns the inner strategy.
func (w *WeightDecay) Unwrap() Strategy { return w.Strategy }

func (w *WeightDecay) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	next, m, err := w.Strategy.AggregateFit(round, global, r)
	if err != nil {
		return nil, nil, err
	}
	if len(next) != len(global) {
		return nil, nil, fmt.Errorf("weight decay round %d: strategy %s returned %d parameters for %d", round, w.Name(), len(next), len(global))
	}
	out := make([]float64, len(next))
	for i, x := range next {
		out[i] = x - w.Lambda*global[i]
	}
	return out, m, nil
}

// MarshalState is the inner strategy's state (nil when it keeps none): the decay keeps none
// of its own.
func (w *WeightDecay) MarshalState() ([]byte, error) {
	if s, ok := w.Strategy.(Stateful); ok {
		return s.MarshalState()
	}
	return nil, nil
}

// UnmarshalState restores the inner strategy's state.
func (w *WeightDecay) UnmarshalState(b []byte) error {
	if s, ok := w.Strategy.(Stateful); ok {
		return s.UnmarshalState(b)
	}
	if len(b) > 0 {
		return fmt.Errorf("weight decay: %d bytes of state, but strategy %s keeps none", len(b), w.Name())
	}
	return nil
}
