package strategy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// biasCorrectedEMA is the closed form the recurrence must equal:
// (1−β)·Σ_k β^{n−k}·x_k / (1−β^n) over the models x_1 … x_n.
func biasCorrectedEMA(xs [][]float64, beta float64) []float64 {
	n := len(xs)
	out := make([]float64, len(xs[0]))
	for k, x := range xs {
		w := (1 - beta) * math.Pow(beta, float64(n-1-k)) / (1 - math.Pow(beta, float64(n)))
		for i, v := range x {
			out[i] += w * v
		}
	}
	return out
}

func TestEMAIsTheBiasCorrectedAverageOfTheIterates(t *testing.T) {
	deltas := [][]float64{{1, -2}, {3, 0.5}, {-1, 4}, {0.25, 0.25}, {2, -1}}
	for _, beta := range []float64{0.5, 0.9, 0.99} {
		t.Run(fmt.Sprint("beta", beta), func(t *testing.T) {
			plain := &FedAvgM{LR: 1, Momentum: 0.5}
			ema := WithEMA(&FedAvgM{LR: 1, Momentum: 0.5}, beta)
			x, y := []float64{0.1, 0.2}, []float64{0.1, 0.2}
			var iterates [][]float64
			if ema.(Averaging).Released() != nil {
				t.Fatal("released a model before the first round")
			}
			for r, d := range deltas {
				res := FitResults{Updates: updates([][]float64{d}, []float64{1})}
				var err error
				if x, _, err = plain.AggregateFit(uint64(r+1), x, res); err != nil {
					t.Fatal(err)
				}
				var m Metrics
				if y, m, err = ema.AggregateFit(uint64(r+1), y, res); err != nil {
					t.Fatal(err)
				}
				// The clients train from the inner strategy's iterate, unchanged.
				if !slices.Equal(x, y) {
					t.Fatalf("round %d: iterate %v, FedAvgM alone %v", r+1, y, x)
				}
				iterates = append(iterates, slices.Clone(y))
				if err := near(ema.(Averaging).Released(), biasCorrectedEMA(iterates, beta), 1e-12); err != nil {
					t.Fatalf("round %d: %v", r+1, err)
				}
				if want := (1 - beta) / (1 - math.Pow(beta, float64(r+1))); math.Abs(m["ema_weight"]-want) > 1e-15 {
					t.Fatalf("round %d: ema_weight %v, want %v", r+1, m["ema_weight"], want)
				}
			}
		})
	}
}

// Restoring the state resumes both the average and the inner strategy's momentum: the
// restored strategy continues exactly as the original.
func TestEMAStateRoundTrip(t *testing.T) {
	orig := WithEMA(&FedAvgM{LR: 1, Momentum: 0.9}, 0.8)
	x := []float64{0, 1, 2}
	step := func(s Strategy, round uint64, x []float64) []float64 {
		t.Helper()
		d := []float64{float64(round), -1, 0.5 * float64(round)}
		next, _, err := s.AggregateFit(round, x, FitResults{Sum: &WeightedSum{Sum: d, TotalWeight: 1, Count: 1}})
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	for r := uint64(1); r <= 3; r++ {
		x = step(orig, r, x)
	}
	st, err := orig.(Stateful).MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := New(Config{Name: NameFedAvgM, ServerLR: new(1.0), Momentum: new(0.9), EMADecay: 0.8}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.(Stateful).UnmarshalState(st); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restored.(Averaging).Released(), orig.(Averaging).Released()) {
		t.Fatalf("restored average %v, original %v", restored.(Averaging).Released(), orig.(Averaging).Released())
	}
	y := slices.Clone(x)
	for r := uint64(4); r <= 5; r++ {
		x, y = step(orig, r, x), step(restored, r, y)
	}
	if !slices.Equal(x, y) || !slices.Equal(restored.(Averaging).Released(), orig.(Averaging).Released()) {
		t.Fatalf("after resuming: iterate %v average %v; uninterrupted: %v %v", y, restored.(Averaging).Released(), x, orig.(Averaging).Released())
	}
}

// A state written before ema_decay was set is the inner strategy's: it resumes the
// momentum, and the average starts with the next round.
func TestEMAResumesFromTheInnerStrategysState(t *testing.T) {
	inner := &FedAvgM{LR: 1, Momentum: 0.5}
	if _, _, err := inner.AggregateFit(1, []float64{0}, FitResults{Updates: updates([][]float64{{2}}, []float64{1})}); err != nil {
		t.Fatal(err)
	}
	st, _ := inner.MarshalState()
	e := WithEMA(&FedAvgM{LR: 1, Momentum: 0.5}, 0.9)
	if err := e.(Stateful).UnmarshalState(st); err != nil {
		t.Fatal(err)
	}
	next, _, err := e.AggregateFit(2, []float64{2}, FitResults{Updates: updates([][]float64{{2}}, []float64{1})})
	if err != nil {
		t.Fatal(err)
	}
	// v = 0.5·2 + 2 = 3: the momentum came back; the average is this round's model.
	if next[0] != 5 || e.(Averaging).Released()[0] != 5 {
		t.Fatalf("iterate %v, average %v; want 5 and 5", next, e.(Averaging).Released())
	}
}

func TestEMAStateRejectsDamage(t *testing.T) {
	e := WithEMA(&FedAvg{}, 0.9)
	if _, _, err := e.AggregateFit(1, []float64{1, 2}, FitResults{Updates: updates([][]float64{{1, 1}}, []float64{1})}); err != nil {
		t.Fatal(err)
	}
	good, err := e.(Stateful).MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(emaStateTag); i < len(good); i++ {
		if err := WithEMA(&FedAvg{}, 0.9).(Stateful).UnmarshalState(good[:i]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", i, len(good))
		}
	}
	extra := append(slices.Clone(good), 1, 2, 3)
	if err := WithEMA(&FedAvg{}, 0.9).(Stateful).UnmarshalState(extra); err == nil || !strings.Contains(err.Error(), "keeps none") {
		t.Fatalf("inner state for fedavg: err = %v", err)
	}
	nan := slices.Clone(good)
	copy(nan[len(nan)-8:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // the last value: NaN
	if err := WithEMA(&FedAvg{}, 0.9).(Stateful).UnmarshalState(nan); err == nil {
		t.Fatal("NaN in the average: no error")
	}
}

func TestEMAConfig(t *testing.T) {
	for _, v := range []float64{-0.1, 1, math.NaN()} {
		if _, err := New(Config{Name: NameFedAvg, EMADecay: v}, false); err == nil || !strings.Contains(err.Error(), "ema_decay") {
			t.Errorf("ema_decay %v: err = %v", v, err)
		}
	}
	s, err := New(Config{Name: NameFedAdam}, false)
	if _, ok := s.(Averaging); ok || err != nil {
		t.Fatalf("ema_decay 0: %T %v, want the plain strategy", s, err)
	}
	// SCAFFOLD's control variates are found through the wrapper.
	s, err = New(Config{Name: NameScaffold, EMADecay: 0.9}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(Averaging); !ok || ControlledOf(s) == nil || s.Name() != NameScaffold {
		t.Fatalf("scaffold with ema_decay: %T, controlled %v, name %s", s, ControlledOf(s), s.Name())
	}
	if ControlledOf(&FedAvg{}) != nil {
		t.Fatal("fedavg has control variates")
	}
}
