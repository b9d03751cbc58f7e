package strategy

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Controlled is implemented by strategies that keep control variates (SCAFFOLD): fit
// tasks carry Control(), clients append their control-variate deltas Δc_i after their
// update (as many values as the model has parameters), and the server hands their sum to
// UpdateControl. Updates then weigh 1 each: the means are uniform.
type Controlled interface {
	// Control returns the server's control variate c for a model of dim parameters (zero
	// at first). The caller must not modify it.
	Control(dim int) []float64
	// UpdateControl sets c ← c + Σ Δc_i / population, with sum = Σ Δc_i over count
	// clients out of the population of clients that could have been sampled.
	UpdateControl(sum []float64, count, population int) error
	// ControlClipNorm is the L2 bound clients clip Δc_i to (0: none).
	ControlClipNorm() float64
}

// Scaffold is SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging
// for Federated Learning", Algorithm 1 with option II): clients correct their local
// gradients by c − c_i, which removes the drift between heterogeneous clients' local
// optima; the server steps x ← x + η_g·mean(Δy_i) (FedAvg with the server learning rate η_g
// and its decay) and c ← c + (1/N)·Σ Δc_i. The control variates travel in the same vector as
// the updates, so under secure aggregation the server learns only their sum too.
type Scaffold struct {
	FedAvg
	// LR is the server learning rate η_g (1 in the paper's experiments).
	LR float64
	// ClipNorm bounds each client's Δc_i (L2); required under secure aggregation.
	ClipNorm float64
	c        []float64
}

var (
	_ Strategy   = (*Scaffold)(nil)
	_ Controlled = (*Scaffold)(nil)
	_ Stateful   = (*Scaffold)(nil)
)

func (*Scaffold) Name() string { return NameScaffold }

func (s *Scaffold) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	mean, err := MeanUpdate(len(global), r)
	if err != nil {
		return nil, nil, fmt.Errorf("scaffold round %d: %w", round, err)
	}
	lr := s.LR * s.Decay.Factor(round)
	return applyDelta(global, mean, lr), Metrics{"update_norm": norm(mean), "server_lr": lr, "control_norm": norm(s.c)}, nil
}

func (s *Scaffold) Control(dim int) []float64 {
	if len(s.c) != dim {
		s.c = make([]float64, dim) // a new model shape starts from zero
	}
	return s.c
}

func (s *Scaffold) UpdateControl(sum []float64, count, population int) error {
	if len(sum) != len(s.c) {
		return fmt.Errorf("scaffold: %d control-variate deltas for a control variate of %d", len(sum), len(s.c))
	}
	if count < 1 || population < count {
		return fmt.Errorf("scaffold: %d control-variate deltas from a population of %d", count, population)
	}
	next := make([]float64, len(s.c))
	for i, v := range sum {
		next[i] = s.c[i] + v/float64(population)
	}
	if err := checkFinite(next, "control variate"); err != nil {
		return err
	}
	s.c = next
	return nil
}

func (s *Scaffold) ControlClipNorm() float64 { return s.ClipNorm }

// MarshalState encodes c (little-endian float64s).
func (s *Scaffold) MarshalState() ([]byte, error) {
	b := make([]byte, 8*len(s.c))
	for i, v := range s.c {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b, nil
}

// UnmarshalState restores c.
func (s *Scaffold) UnmarshalState(b []byte) error {
	if len(b)%8 != 0 {
		return fmt.Errorf("scaffold state: %d bytes, not a whole number of float64s", len(b))
	}
	c := make([]float64, len(b)/8)
	for i := range c {
		c[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	if err := checkFinite(c, "scaffold state"); err != nil {
		return err
	}
	s.c = c
	return nil
}
