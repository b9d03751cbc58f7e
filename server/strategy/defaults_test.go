package strategy

import (
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Unset settings take Flower's defaults (flwr.server.strategy: fedavgm.py
// server_learning_rate 1.0, server_momentum 0.0; fedadam.py eta 1e-1, beta_1 0.9, beta_2
// 0.99, tau 1e-9; fedyogi.py eta 1e-2, beta_1 0.9, beta_2 0.99, tau 1e-3; fedadagrad.py
// eta 1e-1, tau 1e-9, beta_1 0; FedTrimmedAvg beta 0.2).
func TestUnsetSettingsTakeFlowersDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Strategy
	}{
		{NameFedAvgM, &FedAvgM{LR: 1, Momentum: 0}},
		{NameFedAdam, &Adaptive{Opt: Adam, LR: 0.1, Beta1: 0.9, Beta2: 0.99, Tau: 1e-9}},
		{NameFedYogi, &Adaptive{Opt: Yogi, LR: 0.01, Beta1: 0.9, Beta2: 0.99, Tau: 1e-3}},
		{NameFedAdagrad, &Adaptive{Opt: Adagrad, LR: 0.1, Beta1: 0, Beta2: 0.99, Tau: 1e-9}},
		{NameTrimmedMean, &TrimmedMean{Beta: 0.2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := New(Config{Name: tc.name}, false)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSettings(got, tc.want) {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

func sameSettings(a, b Strategy) bool {
	switch a := a.(type) {
	case *FedAvgM:
		b := b.(*FedAvgM)
		return a.LR == b.LR && a.Momentum == b.Momentum
	case *Adaptive:
		b := b.(*Adaptive)
		return a.Opt == b.Opt && a.LR == b.LR && a.Beta1 == b.Beta1 && a.Beta2 == b.Beta2 && a.Tau == b.Tau
	case *TrimmedMean:
		return a.Beta == b.(*TrimmedMean).Beta
	}
	return false
}

// A setting written as 0 is 0, not the default: `momentum: 0` used to become 0.9.
func TestExplicitZeroSettingsAreKept(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want Strategy
	}{
		{"name: fedavgm\nmomentum: 0\nserver_lr: 0.5\n", &FedAvgM{LR: 0.5, Momentum: 0}},
		{"name: fedavgm\nmomentum: 0.9\n", &FedAvgM{LR: 1, Momentum: 0.9}},
		{"name: fedadam\nbeta1: 0\nbeta2: 0\n", &Adaptive{Opt: Adam, LR: 0.1, Beta1: 0, Beta2: 0, Tau: 1e-9}},
		{"name: fedyogi\nbeta1: 0\n", &Adaptive{Opt: Yogi, LR: 0.01, Beta1: 0, Beta2: 0.99, Tau: 1e-3}},
		{"name: trimmedmean\ntrim_fraction: 0\n", &TrimmedMean{Beta: 0}},
	} {
		t.Run(strings.ReplaceAll(strings.TrimSpace(tc.yaml), "\n", ","), func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.yaml), &c); err != nil {
				t.Fatal(err)
			}
			got, err := New(c, false)
			if err != nil {
				t.Fatal(err)
			}
			if !sameSettings(got, tc.want) {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
		})
	}
	final := 0.0
	s, err := New(Config{Name: NameFedAvg, ServerLRDecay: DecayLinear, ServerLRFinal: &final, Rounds: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	if f := s.(*FedAvg).Decay.Factor(3); f != 0 {
		t.Fatalf("server_lr_final 0: last round's factor %v, want 0", f)
	}
}

func TestValidateRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Name: NameFedAdam, Tau: new(0.0)}, "tau = 0"},
		{Config{Name: NameFedAdam, Tau: new(math.Inf(1))}, "tau = +Inf"},
		{Config{Name: NameFedAvgM, Momentum: new(1.0)}, "momentum = 1"},
		{Config{Name: NameFedAdam, Beta2: new(-0.1)}, "beta2 = -0.1"},
		{Config{Name: NameFedAvgM, ServerLR: new(math.NaN())}, "server_lr = NaN"},
		{Config{Name: NameTrimmedMean, TrimFraction: new(0.5)}, "trim_fraction = 0.5"},
	} {
		if _, err := New(tc.c, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.c, err, tc.want)
		}
	}
}

// Clients send their loss among their metrics as well: it is averaged once, not twice.
func TestWeightedEvaluateCountsTheLossOnce(t *testing.T) {
	m, err := (&FedAvg{}).AggregateEvaluate(1, []EvaluateResult{
		{NumExamples: 100, Loss: 1, Metrics: map[string]float64{"loss": 1, "accuracy": 0.5}},
		{NumExamples: 300, Loss: 2, Metrics: map[string]float64{"loss": 2, "accuracy": 0.9}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m["loss"]-1.75) > 1e-12 || math.Abs(m["accuracy"]-0.8) > 1e-12 {
		t.Fatalf("metrics %v, want loss 1.75 and accuracy 0.8", m)
	}
}

// Krum needs n > 2f + 2 updates (Blanchard et al. 2017, Proposition 1).
func TestKrumNeedsMoreThan2FPlus2Updates(t *testing.T) {
	for _, tc := range []struct {
		n, f int
		ok   bool
	}{{4, 1, false}, {5, 1, true}, {2, 0, false}, {3, 0, true}, {6, 2, false}, {7, 2, true}} {
		deltas := make([][]float64, tc.n)
		weights := make([]float64, tc.n)
		for i := range deltas {
			deltas[i], weights[i] = []float64{float64(i)}, 1
		}
		_, _, err := (&Krum{Byzantine: tc.f, Keep: 1}).AggregateFit(1, []float64{0}, FitResults{Updates: updates(deltas, weights)})
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "more than 2f + 2")) {
			t.Errorf("n = %d, f = %d: err = %v, want ok = %v", tc.n, tc.f, err, tc.ok)
		}
	}
}
