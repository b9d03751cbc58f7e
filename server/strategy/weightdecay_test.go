package strategy

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestWeightDecayShrinksTheGlobalModel(t *testing.T) {
	// FedAvgM (η 1, β 0.5) with λ 0.1 from x = (1, −2) and the mean update (1, 1) twice:
	// v1 = (1, 1), x1 = (1, −2) + v1 − 0.1·(1, −2) = (1.9, −0.8);
	// v2 = (1.5, 1.5), x2 = x1 + v2 − 0.1·x1 = (3.21, 0.78).
	s := WithWeightDecay(&FedAvgM{LR: 1, Momentum: 0.5}, 0.1)
	x := []float64{1, -2}
	r := FitResults{Updates: updates([][]float64{{1, 1}}, []float64{1})}
	for round, want := range [][]float64{{1.9, -0.8}, {3.21, 0.78}} {
		var err error
		if x, _, err = s.AggregateFit(uint64(round+1), x, r); err != nil {
			t.Fatal(err)
		}
		if err := near(x, want, 1e-12); err != nil {
			t.Fatalf("round %d: %v", round+1, err)
		}
	}
}

// The inner strategy's state goes through both wrappers: momentum survives a restart of
// EMA(WeightDecay(FedAvgM)), and a strategy without state writes none.
func TestWrappedStrategiesKeepTheInnerState(t *testing.T) {
	c := Config{Name: NameFedAvgM, Momentum: new(0.9), WeightDecay: 0.05, EMADecay: 0.5}
	a, err := New(c, true)
	if err != nil {
		t.Fatal(err)
	}
	r := FitResults{Sum: &WeightedSum{Sum: []float64{2, -1}, TotalWeight: 1, Count: 1}}
	x, _, err := a.AggregateFit(1, []float64{0, 0}, r)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.(Stateful).MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(c, true)
	if err := b.(Stateful).UnmarshalState(st); err != nil {
		t.Fatal(err)
	}
	ya, _, _ := a.AggregateFit(2, x, r)
	yb, _, _ := b.AggregateFit(2, x, r)
	if !slices.Equal(ya, yb) || !slices.Equal(a.(Averaging).Released(), b.(Averaging).Released()) {
		t.Fatalf("restored: %v / %v, original %v / %v", yb, b.(Averaging).Released(), ya, a.(Averaging).Released())
	}
	plain := WithWeightDecay(&FedAvg{}, 0.05).(Stateful)
	if st, err := plain.MarshalState(); st != nil || err != nil {
		t.Fatalf("fedavg with weight decay: state %v, %v; want none", st, err)
	}
	if err := plain.UnmarshalState([]byte{1}); err == nil || !strings.Contains(err.Error(), "keeps none") {
		t.Fatalf("state for a stateless strategy: err = %v", err)
	}
	for _, v := range []float64{-0.1, 1, math.NaN()} {
		if _, err := New(Config{Name: NameFedAvg, WeightDecay: v}, false); err == nil || !strings.Contains(err.Error(), "weight_decay") {
			t.Errorf("weight_decay %v: err = %v", v, err)
		}
	}
	if s, _ := New(Config{Name: NameScaffold, WeightDecay: 0.1, EMADecay: 0.9}, false); ControlledOf(s) == nil {
		t.Fatal("scaffold's control variates lost behind two wrappers")
	}
}
