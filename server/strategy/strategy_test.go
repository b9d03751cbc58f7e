package strategy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

func near(a, b []float64, tol float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("lengths %d and %d", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return fmt.Errorf("index %d: %v vs %v", i, a[i], b[i])
		}
	}
	return nil
}

func updates(deltas [][]float64, weights []float64) []ClientUpdate {
	out := make([]ClientUpdate, len(deltas))
	for i := range deltas {
		out[i] = ClientUpdate{ClientID: fmt.Sprint("c", i), Delta: deltas[i], Weight: weights[i], NumExamples: int(weights[i] * 100)}
	}
	return out
}

// sumOf forms the secure-aggregation view of the same updates.
func sumOf(ups []ClientUpdate) *WeightedSum {
	s := &WeightedSum{Sum: make([]float64, len(ups[0].Delta)), Count: len(ups)}
	for _, u := range ups {
		for i, v := range u.Delta {
			s.Sum[i] += u.Weight * v
		}
		s.TotalWeight += u.Weight
	}
	return s
}

func TestFedAvgWeightedMeanSameForUpdatesAndSum(t *testing.T) {
	global := []float64{1, 2}
	ups := updates([][]float64{{1, 0}, {0, 1}, {3, 3}}, []float64{1, 2, 1})
	// Σ w Δ / Σ w = ((1,0) + 2(0,1) + (3,3)) / 4 = (1, 1.25)
	want := []float64{2, 3.25}
	for name, r := range map[string]FitResults{"updates": {Updates: ups}, "sum": {Sum: sumOf(ups)}} {
		t.Run(name, func(t *testing.T) {
			got, _, err := (&FedAvg{}).AggregateFit(1, global, r)
			if err != nil {
				t.Fatal(err)
			}
			if err := near(got, want, 1e-12); err != nil {
				t.Fatal(err)
			}
			if global[0] != 1 || global[1] != 2 {
				t.Fatalf("global modified: %v", global)
			}
		})
	}
}

func TestMeanUpdateRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    FitResults
		want string
	}{
		{"wrong-length", FitResults{Updates: updates([][]float64{{1}}, []float64{1})}, "has 1 values, model has 2"},
		{"nan", FitResults{Updates: updates([][]float64{{1, math.NaN()}}, []float64{1})}, "value 1 is NaN"},
		{"zero-weight", FitResults{Updates: updates([][]float64{{1, 1}}, []float64{0})}, "weight 0"},
		{"empty", FitResults{}, "no updates"},
		{"sum-zero-weight", FitResults{Sum: &WeightedSum{Sum: []float64{1, 1}}}, "total weight 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MeanUpdate(2, tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestFedProxSendsMu(t *testing.T) {
	s, err := New(Config{Name: NameFedProx, ProximalMu: 0.1}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ConfigureFit(1, nil).ProximalMu; got != 0.1 {
		t.Fatalf("μ = %v, want 0.1", got)
	}
	if _, err := New(Config{Name: NameFedProx}, false); err == nil || !strings.Contains(err.Error(), "proximal_mu") {
		t.Fatalf("fedprox without μ: err = %v", err)
	}
}

func TestFedAvgMMomentum(t *testing.T) {
	s := &FedAvgM{LR: 1, Momentum: 0.5}
	x := []float64{0}
	r := FitResults{Updates: updates([][]float64{{1}}, []float64{1})}
	var err error
	// v1 = 1, x = 1; v2 = 0.5 + 1 = 1.5, x = 2.5
	for _, want := range []float64{1, 2.5} {
		if x, _, err = s.AggregateFit(1, x, r); err != nil {
			t.Fatal(err)
		}
		if math.Abs(x[0]-want) > 1e-12 {
			t.Fatalf("x = %v, want %v", x[0], want)
		}
	}
}

func TestAdaptiveFirstStepsByHand(t *testing.T) {
	// Reddi et al. 2021, Algorithm 2, with β1 = 0.9, β2 = 0.99, τ = 0.01, η = 0.1 and Δ̄ = 2
	// in both rounds: m1 = 0.2, m2 = 0.38.
	tests := []struct {
		opt    Optimizer
		v1, v2 float64
	}{
		{Adagrad, 4, 8},
		{Adam, 0.04, 0.99*0.04 + 0.04},
		{Yogi, 0.04, 0.04 + 0.01*4}, // sign(v1 − 4) = −1
	}
	for _, tc := range tests {
		a := NewAdaptive(tc.opt, 0.1, 0.9, 0.99, 0.01)
		t.Run(a.Name(), func(t *testing.T) {
			r := FitResults{Updates: updates([][]float64{{2}}, []float64{1})}
			x1, _, err := a.AggregateFit(1, []float64{0}, r)
			if err != nil {
				t.Fatal(err)
			}
			want1 := 0.1 * 0.2 / (math.Sqrt(tc.v1) + 0.01)
			x2, _, err := a.AggregateFit(2, x1, r)
			if err != nil {
				t.Fatal(err)
			}
			want2 := want1 + 0.1*0.38/(math.Sqrt(tc.v2)+0.01)
			if math.Abs(x1[0]-want1) > 1e-12 || math.Abs(x2[0]-want2) > 1e-12 {
				t.Fatalf("x = %v, %v; want %v, %v", x1[0], x2[0], want1, want2)
			}
			st, _ := a.MarshalState()
			b := NewAdaptive(tc.opt, 0.1, 0.9, 0.99, 0.01)
			if err := b.UnmarshalState(st); err != nil {
				t.Fatal(err)
			}
			y, _, _ := b.AggregateFit(3, x2, r)
			z, _, _ := a.AggregateFit(3, x2, r)
			if y[0] != z[0] {
				t.Fatalf("restored state gives %v, original %v", y[0], z[0])
			}
		})
	}
}

func TestRobustAggregatorsResistOutlier(t *testing.T) {
	deltas := [][]float64{{1, 1}, {1.1, 0.9}, {0.9, 1.1}, {1, 1.05}, {100, -100}}
	ups := updates(deltas, []float64{1, 1, 1, 1, 1})
	for _, tc := range []struct {
		s   Strategy
		tol float64
	}{
		{&FedMedian{}, 0.11},
		{&TrimmedMean{Beta: 0.2}, 0.11},
		{&Krum{Byzantine: 1, Keep: 1}, 0.11},
		{&Krum{Byzantine: 1, Keep: 3}, 0.11},
	} {
		t.Run(fmt.Sprintf("%s-%+v", tc.s.Name(), tc.s), func(t *testing.T) {
			got, _, err := tc.s.AggregateFit(1, []float64{0, 0}, FitResults{Updates: ups})
			if err != nil {
				t.Fatal(err)
			}
			if err := near(got, []float64{1, 1}, tc.tol); err != nil {
				t.Fatal(err)
			}
			_, _, err = tc.s.AggregateFit(1, []float64{0, 0}, FitResults{Sum: sumOf(ups)})
			if !errors.Is(err, ErrNeedsIndividualUpdates) {
				t.Fatalf("with a secure aggregate: err = %v, want ErrNeedsIndividualUpdates", err)
			}
		})
	}
}

func TestValidateRefusesRobustWithSecureAggregation(t *testing.T) {
	for _, name := range []string{NameFedMedian, NameTrimmedMean, NameKrum} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Name: name}, true)
			if err == nil || !strings.Contains(err.Error(), "secure aggregation lets the server see only their sum") {
				t.Fatalf("err = %v", err)
			}
			if _, err := New(Config{Name: name}, false); err != nil {
				t.Fatalf("without secure aggregation: %v", err)
			}
		})
	}
	if _, err := New(Config{Name: "fedsgd"}, false); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown name: err = %v", err)
	}
}

func TestWeightedEvaluate(t *testing.T) {
	m, err := (&FedAvg{}).AggregateEvaluate(1, []EvaluateResult{
		{NumExamples: 100, Loss: 1, Metrics: map[string]float64{"accuracy": 0.5}},
		{NumExamples: 300, Loss: 2, Metrics: map[string]float64{"accuracy": 0.9}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m["loss"]-1.75) > 1e-12 || math.Abs(m["accuracy"]-0.8) > 1e-12 {
		t.Fatalf("metrics %v", m)
	}
}

func TestDecodeVectorsNeverPanics(t *testing.T) {
	good := encodeVectors([]float64{1, 2}, []float64{3})
	for i := 0; i < len(good); i++ {
		if _, err := decodeVectors(good[:i], 2); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
	bad := append([]byte{}, good...)
	bad[4] = 0xff
	if _, err := decodeVectors(bad, 2); err == nil {
		t.Fatal("oversized length: no error")
	}
}

func TestServerLRDecay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s     LRSchedule
		round uint64
		want  float64
	}{
		{"none", LRSchedule{}, 7, 1},
		{"cosine-first", LRSchedule{Kind: DecayCosine, Final: 0.1, Rounds: 11}, 1, 1},
		{"cosine-middle", LRSchedule{Kind: DecayCosine, Final: 0.1, Rounds: 11}, 6, 0.55},
		{"cosine-last", LRSchedule{Kind: DecayCosine, Final: 0.1, Rounds: 11}, 11, 0.1},
		{"cosine-after", LRSchedule{Kind: DecayCosine, Final: 0.1, Rounds: 11}, 20, 0.1},
		{"linear-quarter", LRSchedule{Kind: DecayLinear, Final: 0, Rounds: 5}, 2, 0.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Factor(tc.round); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("factor %v, want %v", got, tc.want)
			}
		})
	}
	// FedAvg with the decay: the last round moves by a tenth of the mean update.
	s, err := New(Config{Name: NameFedAvg, ServerLRDecay: DecayCosine, Rounds: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	got, m, err := s.AggregateFit(3, []float64{0}, FitResults{Updates: updates([][]float64{{1}}, []float64{1})})
	if err != nil || math.Abs(got[0]-0.1) > 1e-12 || m["server_lr"] != 0.1 {
		t.Fatalf("round 3 of 3: %v %v %v, want 0.1", got, m, err)
	}
	for _, c := range []Config{{Name: NameFedAvg, ServerLRDecay: "step"}, {Name: NameFedAvg, ServerLRFinal: new(2.0)}, {Name: NameKrum, ServerLRDecay: DecayCosine}} {
		if err := c.Validate(false); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}
