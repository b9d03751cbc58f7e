package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
)

// TestUserLevelEpsilonMatchesTheMechanism runs the user-level example (a few rounds) and
// recomputes its ε from what the run reports about the noise it actually added, without the
// budget split of dp.UpdateNoiseMultiplier: the released sums carried noise of std
// z_Δ·S on every update coordinate (sensitivity S) and σ_b on the adaptive clip's indicator
// sum (sensitivity ½, the centred indicator), so the mechanism's noise multiplier is
// (z_Δ⁻² + (½/σ_b)²)^(−½). With q and T from the run, the RDP accountant of that multiplier
// must give the reported ε to 1e-6 relative. (Before the indicator was centred, the same
// recomputation with sensitivity 1 gave ε ≈ 4.6 where 4.0 was reported.)
func TestUserLevelEpsilonMatchesTheMechanism(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4-round federation of 1000 clients on MNIST")
	}
	res := runJSON(t, "sim", "--config", filepath.Join("..", "..", "examples", "mnist-user-level.yaml"),
		"--rounds", "4", "--results-dir", "-", "--no-plots")
	priv, _ := res["privacy"].(map[string]any)
	ul, _ := priv["user_level"].(map[string]any)
	if ul == nil {
		t.Fatalf("no privacy.user_level in %v", res)
	}
	num := func(k string) float64 {
		v, ok := ul[k].(float64)
		if !ok {
			t.Fatalf("privacy.user_level.%s missing in %v", k, ul)
		}
		return v
	}
	zu, countStd, sens := num("update_noise_multiplier"), num("count_noise_std"), num("count_sensitivity")
	if sens != 0.5 {
		t.Fatalf("count sensitivity %v: clients must send the centred indicator (sensitivity ½)", sens)
	}
	z := 1 / math.Hypot(1/zu, sens/countStd)
	if accounted := num("noise_multiplier"); math.Abs(z-accounted) > 1e-9*accounted {
		t.Errorf("the mechanism's noise multiplier is %.12g, the accountant uses %.12g", z, accounted)
	}
	rounds := int(num("rounds"))
	want, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: z, SampleRate: num("sample_rate"), Steps: rounds}}, num("delta"), accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := num("epsilon"); math.Abs(got-want.Epsilon) > 1e-6*want.Epsilon || rounds != 4 {
		t.Errorf("reported user-level ε %.9g over %d rounds, the mechanism as run gives %.9g", got, rounds, want.Epsilon)
	}
	// The distributed shares are sized for the committee's minimum: ⌊50 − 2√50⌋ = 35.
	if m := num("min_contributions"); m != 35 {
		t.Errorf("min_contributions %v, want 35", m)
	}
}
