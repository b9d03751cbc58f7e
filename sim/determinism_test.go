package sim_test

import (
	"reflect"
	"testing"

	"github.com/confide-fl/confide/sim"
)

// TestSameSeedSameMetricsWithSecureAggregation: with dp.deterministic_noise the clients'
// secure-aggregation randomness (member keys, dealings, encryption, flooding noise) is
// seeded too, so two runs give bit-identical per-round metrics with secure aggregation on.
func TestSameSeedSameMetricsWithSecureAggregation(t *testing.T) {
	c := withDPAndSecAgg(small())
	c.DP.DeterministicNoise = true
	c.Heterogeneity = sim.HeterogeneityConfig{SpeedSigma: 0.5}
	c.Workers = 3
	a, b := run(t, c), run(t, c)
	if !a.Summary.SecureAggregation || a.Summary.ValueBits == nil || len(a.Rounds) != c.Rounds || len(b.Rounds) != c.Rounds {
		t.Fatalf("secure aggregation %v (value_bits %v), %d and %d rounds", a.Summary.SecureAggregation, a.Summary.ValueBits, len(a.Rounds), len(b.Rounds))
	}
	for i := range a.Rounds {
		x, y := a.Rounds[i], b.Rounds[i]
		if x.Failed || x.Contributors == 0 {
			t.Fatalf("round %d: failed=%v %q, %d contributors", x.Round, x.Failed, x.Reason, x.Contributors)
		}
		x.WallSeconds, x.EvalSeconds, x.ElapsedSeconds = 0, 0, 0
		y.WallSeconds, y.EvalSeconds, y.ElapsedSeconds = 0, 0, 0
		if !reflect.DeepEqual(x, y) {
			t.Errorf("round %d differs between runs with the same seed:\n%+v (loss %v)\n%+v (loss %v)", x.Round, x, *x.Loss, y, *y.Loss)
		}
	}
}
