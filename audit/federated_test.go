package audit

import (
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// TestFederatedAudit plants 200 canary clients in a small user-level DP federation (20
// data clients, 8 expected a round, 20 rounds, central noise): with noise multiplier 1 the
// bound stays below the user-level ε the federation reports; with 0.01 (a claimed ε in the
// hundreds) the canaries are plain to see.
func TestFederatedAudit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		z      float64
		lo, hi float64
	}{
		{"z=1", 1, 0, 0}, // hi: the claimed ε
		{"z=0.01", 0.01, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sim.Config{
				Name: "audit", Seed: 3, Rounds: 20, Clients: 20, ClientsPerRound: 8, Partition: "iid",
				Model:      model.Spec{Type: model.TypeMLP, Hidden: []int{16}},
				Training:   sim.TrainingConfig{Epochs: 1, BatchSize: 10, LR: 0.2},
				ResultsDir: "-",
				DP: sim.DPConfig{DeterministicNoise: true, DPConfig: server.DPConfig{Delta: 1e-5,
					UserLevel: server.UserLevelDPConfig{Mode: server.UserLevelCentral, NoiseMultiplier: tc.z, Clip: 1}}},
			}
			res, err := RunFederated(t.Context(), Federated{Sim: c, Canaries: 200, Confidence: 0.95, Seed: 1},
				sim.Options{Train: padded(400, 8, 16, 1), Test: padded(200, 8, 16, 2)})
			if err != nil {
				t.Fatal(err)
			}
			b := res.Bound
			claimed := res.Report.Summary.Privacy.UserLevel.Epsilon
			hi := tc.hi
			if hi == 0 {
				hi = claimed
			}
			if b.EpsilonLower < tc.lo || b.EpsilonLower > hi {
				t.Errorf("ε lower %.3f (%d of %d right), want in [%v, %v] (claimed %.3g)", b.EpsilonLower, b.Correct, b.Guesses, tc.lo, hi, claimed)
			}
			if res.QuietCanaries != 200 || res.Rounds == 0 || res.Report.Summary.Clients != 20+b.Included {
				t.Errorf("%d quiet canaries, %d rounds seen, %d clients; want 200, > 0, %d", res.QuietCanaries, res.Rounds, res.Report.Summary.Clients, 20+b.Included)
			}
			t.Logf("z = %v: claimed ε %.3g, ε lower %.3f (%d of %d right, %s), %d rounds", tc.z, claimed, b.EpsilonLower, b.Correct, b.Guesses, b.Strategy, res.Rounds)
		})
	}
	if _, err := RunFederated(t.Context(), Federated{Sim: sim.Config{}, Canaries: 10, Confidence: 0.95}, sim.Options{}); err == nil {
		t.Error("a federation without user-level DP accepted")
	}
}
