package dp

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
)

func TestClipUpdate(t *testing.T) {
	u := []float64{3, 4}
	norm, err := ClipUpdate(u, 1)
	if err != nil || norm != 5 || math.Abs(L2Norm(u)-1) > 1e-15 {
		t.Errorf("ClipUpdate([3 4], 1): norm %v, after %v, err %v", norm, u, err)
	}
	bad := []float64{1, math.NaN(), 2}
	if _, err := ClipUpdate(bad, 1); err == nil || !strings.Contains(err.Error(), "element 1") || bad[0] != 1 {
		t.Errorf("NaN update: err %v, update %v; want an error naming element 1 and the update unchanged", err, bad)
	}
	if _, err := ClipUpdate([]float64{1}, -1); err == nil {
		t.Error("negative clip: want an error")
	}
}

func TestDistributedNoiseSumsToCentralNoise(t *testing.T) {
	// m clients each add N(0, σ²S²/m); their sum must be N(0, σ²S²), the central noise:
	// the least noise a sum the committee decrypts (≥ m updates) can carry.
	const sigma, clip, m, dim = 1.1, 0.8, 16, 200_000
	central, _ := CentralNoiseStd(sigma, clip)
	share, err := DistributedNoiseStd(sigma, clip, m)
	if err != nil || math.Abs(central-sigma*clip) > 1e-15 || math.Abs(share-central/4) > 1e-15 {
		t.Fatalf("central %v, share %v (%v)", central, share, err)
	}
	src := NewDeterministicNoise(99)
	sum := make([]float64, dim)
	for c := 0; c < m; c++ {
		if err := AddGaussianNoise(sum, share, src); err != nil {
			t.Fatal(err)
		}
	}
	checkGaussian(t, "sum of shares", sum, central, 5)

	if _, err := DistributedNoiseStd(sigma, clip, 0); err == nil {
		t.Error("0 minimum contributors: want an error")
	}
	if _, err := CentralNoiseStd(-1, clip); err == nil || !strings.Contains(err.Error(), "noise multiplier") {
		t.Errorf("negative σ: %v", err)
	}
}

func TestAdaptiveClipperDefaultsAndStep(t *testing.T) {
	a, err := NewAdaptiveClipper(AdaptiveClipperLiteral{InitialClip: 1, ExpectedClients: 100})
	if err != nil {
		t.Fatal(err)
	}
	if a.quantile != 0.5 || a.rate != 0.2 || a.CountNoiseStd() != 5 {
		t.Errorf("defaults: γ=%v η=%v σ_b=%v, want 0.5, 0.2, 100/20", a.quantile, a.rate, a.CountNoiseStd())
	}
	if a.DistributedCountNoiseStd(25) != 1 {
		t.Errorf("distributed count noise %v, want 5/√25", a.DistributedCountNoiseStd(25))
	}
	// All 100 clients under the clip (centred indicators +½ each): b̄ = 1,
	// C ← C·exp(−0.2·(1 − 0.5)).
	c, _ := a.Update(50)
	if want := math.Exp(-0.1); math.Abs(c-want) > 1e-15 {
		t.Errorf("after b̄=1: C = %v, want %v", c, want)
	}
	// None under (−½ each): C grows by exp(0.1).
	c, _ = a.Update(-50)
	if math.Abs(c-1) > 1e-15 {
		t.Errorf("after b̄=0: C = %v, want 1", c)
	}
	for _, lit := range []AdaptiveClipperLiteral{
		{InitialClip: 0, ExpectedClients: 10},
		{InitialClip: 1, ExpectedClients: 0},
		{InitialClip: 1, ExpectedClients: 10, TargetQuantile: 1},
		{InitialClip: 1, ExpectedClients: 10, LearningRate: -1},
	} {
		if _, err := NewAdaptiveClipper(lit); err == nil {
			t.Errorf("%+v: want an error", lit)
		}
	}
	if _, err := a.Update(math.NaN()); err == nil {
		t.Error("NaN indicator sum: want an error")
	}
}

// The indicator a client reports is centred, so adding or removing one client moves the
// indicator sum by at most ½, and the pair (update sum with noise z_Δ·S, indicator sum with
// noise σ_b) is a Gaussian mechanism whose noise multiplier, computed here from the two
// sensitivities and noise levels without UpdateNoiseMultiplier's formula, is exactly the
// z that is accounted for.
func TestAdaptiveClippingCostsExactlyTheAccountedNoise(t *testing.T) {
	sens := math.Abs(ClipIndicator(0, 1) - ClipIndicator(2, 1))
	if sens != 1 || ClipIndicator(0, 1) != 0.5 || ClipIndicator(2, 1) != -0.5 {
		t.Fatalf("indicators %v and %v: want +½ and −½", ClipIndicator(0, 1), ClipIndicator(2, 1))
	}
	// Add/remove sensitivity of the centred sum is max|b − ½| = ½.
	addRemove := max(math.Abs(ClipIndicator(0, 1)), math.Abs(ClipIndicator(2, 1)))
	for _, tc := range []struct{ z, countStd, clip float64 }{{1, 2.5, 0.5}, {1.1, 5, 3}, {0.7, 0.4, 10}} {
		zu, err := UpdateNoiseMultiplier(tc.z, tc.countStd)
		if err != nil {
			t.Fatal(err)
		}
		updateStd := zu * tc.clip
		// Whitening each part by its noise: the mechanism's sensitivity in noise units.
		eff := 1 / math.Hypot(tc.clip/updateStd, addRemove/tc.countStd)
		if math.Abs(eff-tc.z) > 1e-12*tc.z {
			t.Errorf("z %v, σ_b %v: effective noise multiplier %v, want the accounted %v", tc.z, tc.countStd, eff, tc.z)
		}
	}
}

func TestAdaptiveClipperMaxClipCapsTheGrowth(t *testing.T) {
	a, err := NewAdaptiveClipper(AdaptiveClipperLiteral{InitialClip: 1, ExpectedClients: 10, MaxClip: 1.05})
	if err != nil {
		t.Fatal(err)
	}
	// No client under the clip: C would grow by exp(0.1) ≈ 1.105 but stops at the cap.
	if c, _ := a.Update(-5); c != 1.05 {
		t.Errorf("after b̄=0: C = %v, want the cap 1.05", c)
	}
	if c, _ := a.Update(5); math.Abs(c-1.05*math.Exp(-0.1)) > 1e-15 {
		t.Errorf("after b̄=1: C = %v, want 1.05·exp(−0.1)", c)
	}
	for _, lit := range []AdaptiveClipperLiteral{
		{InitialClip: 2, ExpectedClients: 10, MaxClip: 1},
		{InitialClip: 1, ExpectedClients: 10, MaxClip: -1},
		{InitialClip: 1, ExpectedClients: 10, MaxClip: math.Inf(1)},
	} {
		if _, err := NewAdaptiveClipper(lit); err == nil {
			t.Errorf("%+v: want an error", lit)
		}
	}
}

func TestAdaptiveClipperTracksTheMedian(t *testing.T) {
	// Update norms are log-normal with median 3; starting from C = 0.1 the noisy geometric
	// update must settle near the median (Andrew et al. 2021, Fig. 1).
	const m = 200
	rng := rand.New(rand.NewPCG(3, 4))
	noise := NewDeterministicNoise(5)
	a, err := NewAdaptiveClipper(AdaptiveClipperLiteral{InitialClip: 0.1, ExpectedClients: m})
	if err != nil {
		t.Fatal(err)
	}
	var late []float64
	for round := 0; round < 400; round++ {
		clip := a.Clip()
		sum := 0.0
		for c := 0; c < m; c++ {
			sum += ClipIndicator(3*math.Exp(0.5*rng.NormFloat64()), clip)
		}
		if _, err := a.UpdateWithNoise(sum, noise); err != nil {
			t.Fatal(err)
		}
		if round >= 300 {
			late = append(late, a.Clip())
		}
	}
	mean := 0.0
	for _, c := range late {
		mean += c
	}
	mean /= float64(len(late))
	if math.Abs(mean-3)/3 > 0.05 {
		t.Errorf("clip after 300 rounds averages %v, want the median 3 within 5%%", mean)
	}
}

func TestUpdateNoiseMultiplier(t *testing.T) {
	// z = 1 with σ_b = 5: z_Δ = (1 − 1/100)^(−1/2).
	got, err := UpdateNoiseMultiplier(1, 5)
	if want := 1 / math.Sqrt(0.99); err != nil || math.Abs(got-want) > 1e-15 {
		t.Errorf("z_Δ = %v (%v), want %v", got, err, want)
	}
	// Composing the two Gaussians gives back z: z_Δ⁻² + (2σ_b)⁻² = z⁻².
	if z := 1 / math.Sqrt(1/(got*got)+1/100.0); math.Abs(z-1) > 1e-15 {
		t.Errorf("composed noise multiplier %v, want 1", z)
	}
	for _, tc := range []struct{ z, sb float64 }{{1, 0.5}, {1, 0}, {0, 5}, {-1, 5}, {1, math.NaN()}} {
		if _, err := UpdateNoiseMultiplier(tc.z, tc.sb); err == nil {
			t.Errorf("z=%v σ_b=%v: want an error", tc.z, tc.sb)
		}
	}
}

func TestUserLevelEpsilon(t *testing.T) {
	u := UserLevel{NoiseMultiplier: 1.0, ClientsPerRound: 100, Population: 10000, Rounds: 2000, Delta: 1e-6}
	got, err := UserLevelEpsilon(u, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: 1.0, SampleRate: 0.01, Steps: 2000}}, 1e-6, accountant.Config{})
	if got != want {
		t.Errorf("user-level result %+v, want the accountant's %+v with q = 100/10000", got, want)
	}
	for _, bad := range []UserLevel{
		{NoiseMultiplier: 1, ClientsPerRound: 200, Population: 100, Rounds: 1, Delta: 1e-5},
		{NoiseMultiplier: 1, ClientsPerRound: 10, Population: 0, Rounds: 1, Delta: 1e-5},
		{NoiseMultiplier: 1, ClientsPerRound: 10, Population: 100, Rounds: -1, Delta: 1e-5},
	} {
		if _, err := UserLevelEpsilon(bad, accountant.Config{}); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}
