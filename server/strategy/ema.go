package strategy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Averaging is implemented by strategies that release an average of the global models
// rather than the latest one (EMA): the server evaluates, checkpoints and returns the
// released model, while the clients keep training from the global iterate AggregateFit
// returns.
type Averaging interface {
	// Released returns the model released after the latest AggregateFit, nil before the
	// first. The caller must not modify it.
	Released() []float64
}

// EMA wraps a strategy and releases the exponential moving average of the global models it
// produces, the parameter averaging De et al. 2022 ("Unlocking high-accuracy differentially
// private image classification through scale", Sec. 3.3) use on DP-SGD: the last rounds'
// DP noise and client sampling stay in the iterate, of which the average keeps only a
// fraction. After the n-th aggregation, with x_n the inner strategy's new global model,
//
//	a_n = a_{n−1} + α_n·(x_n − a_{n−1}),  α_n = (1−β)/(1−β^n),
//
// which is the bias-corrected average (1−β)·Σ_k β^{n−k}·x_k / (1−β^n) (the weights sum to
// one; a_1 = x_1), so that the models of a few rounds are not pulled towards the initial
// one. The average is computed from the released global models only, so it is
// post-processing: it costs no privacy.
//
// The inner strategy and its state are untouched: AggregateFit returns the inner's global
// iterate, which the clients train from; Released returns the average. Unwrap gives the
// inner strategy (for its optional interfaces, e.g. Controlled).
type EMA struct {
	Strategy
	// Decay is β in (0, 1): each round's model enters the average with weight about 1−β,
	// so the average spans about 1/(1−β) rounds.
	Decay float64
	avg   []float64
	n     uint64 // aggregations averaged
}

var (
	_ Strategy  = (*EMA)(nil)
	_ Stateful  = (*EMA)(nil)
	_ Averaging = (*EMA)(nil)
)

// WithEMA returns s releasing the exponential moving average of its global models with
// decay β (EMA), or s itself when β is 0.
func WithEMA(s Strategy, decay float64) Strategy {
	if decay == 0 {
		return s
	}
	return &EMA{Strategy: s, Decay: decay}
}

// Unwrap returns the inner strategy.
func (e *EMA) Unwrap() Strategy { return e.Strategy }

// AggregateFit aggregates with the inner strategy and averages its new global model in.
func (e *EMA) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	next, m, err := e.Strategy.AggregateFit(round, global, r)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFinite(next, "global model"); err != nil {
		return nil, nil, err
	}
	if len(e.avg) != len(next) {
		e.avg, e.n = nil, 0 // a new model shape starts a new average
	}
	e.n++
	if e.avg == nil {
		e.avg = make([]float64, len(next))
	}
	alpha := (1 - e.Decay) / (1 - math.Pow(e.Decay, float64(e.n))) // 1 at n = 1
	avg := make([]float64, len(next))
	for i, x := range next {
		avg[i] = e.avg[i] + alpha*(x-e.avg[i])
	}
	e.avg = avg
	if m == nil {
		m = Metrics{}
	}
	m["ema_weight"] = alpha
	return next, m, nil
}

func (e *EMA) Released() []float64 { return e.avg }

// emaStateTag opens an EMA's state: what follows is the count of averaged rounds, the
// average, then the inner strategy's state.
var emaStateTag = []byte("ema1")

// MarshalState encodes the average, its round count and the inner strategy's state.
func (e *EMA) MarshalState() ([]byte, error) {
	var inner []byte
	if s, ok := e.Strategy.(Stateful); ok {
		var err error
		if inner, err = s.MarshalState(); err != nil {
			return nil, err
		}
	}
	avg := encodeVectors(e.avg)
	b := append([]byte{}, emaStateTag...)
	b = binary.LittleEndian.AppendUint64(b, e.n)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(avg)))
	b = append(b, avg...)
	return append(b, inner...), nil
}

// UnmarshalState restores what MarshalState encoded. A state without the EMA's tag is the
// inner strategy's own, written before strategy.ema_decay was set: the inner strategy
// resumes from it and the average starts with the next round.
func (e *EMA) UnmarshalState(b []byte) error {
	inner := b
	if bytes.HasPrefix(b, emaStateTag) {
		b = b[len(emaStateTag):]
		if len(b) < 16 {
			return fmt.Errorf("ema state: truncated (%d bytes after the tag)", len(b))
		}
		n, size := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		b = b[16:]
		if size > uint64(len(b)) {
			return fmt.Errorf("ema state: the average claims %d bytes, %d left", size, len(b))
		}
		v, err := decodeVectors(b[:size], 1)
		if err != nil {
			return fmt.Errorf("ema state: %w", err)
		}
		if err := checkFinite(v[0], "ema state"); err != nil {
			return err
		}
		if (n == 0) != (len(v[0]) == 0) {
			return fmt.Errorf("ema state: %d rounds averaged into %d values", n, len(v[0]))
		}
		e.avg, e.n = v[0], n
		if len(e.avg) == 0 {
			e.avg = nil
		}
		inner = b[size:]
	}
	s, ok := e.Strategy.(Stateful)
	switch {
	case ok:
		return s.UnmarshalState(inner)
	case len(inner) > 0:
		return fmt.Errorf("ema state: %d bytes of inner state, but strategy %s keeps none", len(inner), e.Name())
	}
	return nil
}

// ControlledOf returns the control variates of s or of the strategy it wraps (Unwrap), nil
// when it keeps none.
func ControlledOf(s Strategy) Controlled {
	for s != nil {
		if c, ok := s.(Controlled); ok {
			return c
		}
		w, ok := s.(interface{ Unwrap() Strategy })
		if !ok {
			return nil
		}
		s = w.Unwrap()
	}
	return nil
}
