package dp

import (
	"math"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
)

// TestDiscreteUserLevel: the sensitivity in steps is W·S/δ + √d, every client's share
// variance makes m_min shares sum to at least (z·Δ2)², and ε is the accountant's
// distributed discrete Gaussian over the rounds, growing with them; bad settings are errors.
func TestDiscreteUserLevel(t *testing.T) {
	u := DiscreteUserLevel{NoiseMultiplier: 1.2, Clip: 0.5, MaxWeight: 2, Step: 1.0 / 4096, Dim: 10000, MinShares: 40, MaxShares: 200}
	s, err := u.Sensitivity()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*0.5*4096 + 100.0; s.L2 != want || s.L1 != 100*want {
		t.Fatalf("sensitivity %+v, want L2 %v, L1 %v", s, want, 100*want)
	}
	v, err := u.LocalVariance()
	if err != nil {
		t.Fatal(err)
	}
	if sum := 40 * float64(v); sum < 1.2*1.2*s.L2*s.L2 || sum > 1.2*1.2*s.L2*s.L2+40 {
		t.Fatalf("σ_z² %d: 40 shares give %v, want at least (z·Δ2)² = %v and less than one step² a share more", v, sum, 1.2*1.2*s.L2*s.L2)
	}
	grid := accountant.DefaultOrders()
	prev := 0.0
	for _, rounds := range []int{1, 10, 100} {
		r, err := u.Epsilon(rounds, 1e-5, accountant.Config{Grid: grid})
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := accountant.DistributedDiscreteGaussianEpsilonRange(s, float64(v), 40, 200, 10000, rounds, 1e-5, grid, accountant.Improved)
		if err != nil {
			t.Fatal(err)
		}
		if r.Epsilon != want || !(r.Epsilon > prev) || r.Delta != 1e-5 {
			t.Fatalf("%d rounds: %+v, want ε %v (> %v)", rounds, r, want, prev)
		}
		prev = r.Epsilon
	}
	if r, err := u.Epsilon(0, 1e-5, accountant.Config{}); err != nil || r.Epsilon != 0 {
		t.Fatalf("no rounds: %+v %v, want ε 0", r, err)
	}
	for name, bad := range map[string]DiscreteUserLevel{
		"no clip":      {NoiseMultiplier: 1, MaxWeight: 1, Step: 1, Dim: 1, MinShares: 1},
		"no step":      {NoiseMultiplier: 1, Clip: 1, MaxWeight: 1, Dim: 1, MinShares: 1},
		"no dimension": {NoiseMultiplier: 1, Clip: 1, MaxWeight: 1, Step: 1, MinShares: 1},
		"no noise":     {Clip: 1, MaxWeight: 1, Step: 1, Dim: 1, MinShares: 1},
		"no shares":    {NoiseMultiplier: 1, Clip: 1, MaxWeight: 1, Step: 1, Dim: 1},
		"huge":         {NoiseMultiplier: 1e6, Clip: 1, MaxWeight: 1, Step: 1e-9, Dim: 1, MinShares: 1},
		"nan noise":    {NoiseMultiplier: math.NaN(), Clip: 1, MaxWeight: 1, Step: 1, Dim: 1, MinShares: 1},
	} {
		if _, err := bad.LocalVariance(); err == nil {
			t.Errorf("%s: LocalVariance of %+v: no error", name, bad)
		}
	}
}
