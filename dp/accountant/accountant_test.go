package accountant

import (
	"math"
	"strings"
	"testing"
)

func TestGridDefinitions(t *testing.T) {
	cases := []struct {
		grid        Grid
		n           int
		first, last float64
	}{
		{OpacusOrders(), 99 + 52, 1.1, 63},
		{TFPrivacyOrders(), 10 + 59 + 3, 1.25, 512},
		{DPAccountingOrders(), 99 + 53 + 4, 1.1, 1024},
		{DefaultOrders(), 99 + 3 + 53 + 4, 1.1, 1024},
	}
	for _, tc := range cases {
		o := tc.grid.Orders
		if len(o) != tc.n || o[0] != tc.first || o[len(o)-1] != tc.last {
			t.Errorf("%s: %d orders from %v to %v, want %d from %v to %v", tc.grid.Name, len(o), o[0], o[len(o)-1], tc.n, tc.first, tc.last)
		}
		if err := tc.grid.Validate(); err != nil {
			t.Error(err)
		}
	}
	// 1 + 10/10 must be exactly 2 so that it takes the integer path, as in Python.
	if o := OpacusOrders().Orders; o[9] != 2 || o[19] != 3 {
		t.Errorf("Opacus grid: orders 10 and 20 are %v and %v, want 2 and 3", o[9], o[19])
	}
	def := map[float64]bool{}
	for _, a := range DefaultOrders().Orders {
		def[a] = true
	}
	for _, g := range []Grid{OpacusOrders(), TFPrivacyOrders(), DPAccountingOrders()} {
		for _, a := range g.Orders {
			if !def[a] {
				t.Errorf("default grid lacks %s order %v", g.Name, a)
			}
		}
	}
}

func TestParseGrid(t *testing.T) {
	cases := []struct {
		in   string
		want []float64
		name string
	}{
		{"opacus", OpacusOrders().Orders, "opacus"},
		{"tf-privacy", TFPrivacyOrders().Orders, "tf-privacy"},
		{"2:5", []float64{2, 3, 4, 5}, "custom"},
		{"1.5, 2.5,8:9", []float64{1.5, 2.5, 8, 9}, "custom"},
		{"1.5:3:0.5", []float64{1.5, 2, 2.5, 3}, "custom"},
		{"2,inf", []float64{2, math.Inf(1)}, "custom"},
	}
	for _, tc := range cases {
		g, err := ParseGrid(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if g.Name != tc.name || len(g.Orders) != len(tc.want) {
			t.Errorf("%q: got %s %v", tc.in, g.Name, g.Orders)
			continue
		}
		for i := range g.Orders {
			if g.Orders[i] != tc.want[i] {
				t.Errorf("%q: order %d = %v, want %v", tc.in, i, g.Orders[i], tc.want[i])
			}
		}
	}
	for _, bad := range []string{"0.5", "abc", "3:2", "2:3:0", "1:2:3:4", "nan"} {
		if _, err := ParseGrid(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	inf := math.Inf(1)
	cases := []struct {
		name            string
		q, sigma, alpha float64
		want            float64
	}{
		{"q=0", 0, 1, 2.5, 0},
		{"q=0 σ=0", 0, 0, 2.5, 0},
		{"σ=0", 0.1, 0, 2.5, inf},
		{"q=1", 1, 2, 3, 3.0 / 8},
		{"α=inf", 0.1, 2, inf, inf},
		{"α=1 subsampled", 0.1, 2, 1, inf},
		{"α=1 q=1", 1, 2, 1, 1.0 / 8},
	}
	for _, tc := range cases {
		got, err := SampledGaussianRDP(tc.q, tc.sigma, tc.alpha, SignedSeries)
		if err != nil || got != tc.want {
			t.Errorf("%s: RDP = %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
	// Zero steps spend nothing; σ = 0 spends everything.
	if r, err := Epsilon([]Step{{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 0}}, 1e-5, Config{}); err != nil || r.Epsilon != 0 {
		t.Errorf("steps=0: ε = %v (%v), want 0", r.Epsilon, err)
	}
	if r, err := Epsilon([]Step{{NoiseMultiplier: 0, SampleRate: 0.1, Steps: 1}}, 1e-5, Config{}); err != nil || !math.IsInf(r.Epsilon, 1) {
		t.Errorf("σ=0: ε = %v (%v), want +Inf", r.Epsilon, err)
	}
	if s, _, err := NoiseMultiplier(NoiseSearch{TargetEpsilon: 1, Delta: 1e-5, SampleRate: 0, Steps: 100}, Config{}); err != nil || s != 0 {
		t.Errorf("q=0: σ = %v (%v), want 0", s, err)
	}
}

func TestInvalidInputsNameTheParameter(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name, want string
		err        error
	}{
		{"q<0", "sample rate", second(SampledGaussianRDP(-0.1, 1, 2, SignedSeries))},
		{"q>1", "sample rate", second(SampledGaussianRDP(1.5, 1, 2, SignedSeries))},
		{"q NaN", "sample rate", second(SampledGaussianRDP(nan, 1, 2, SignedSeries))},
		{"σ<0", "noise multiplier", second(SampledGaussianRDP(0.1, -1, 2, SignedSeries))},
		{"σ inf", "noise multiplier", second(SampledGaussianRDP(0.1, math.Inf(1), 2, SignedSeries))},
		{"α<1", "order", second(SampledGaussianRDP(0.1, 1, 0.5, SignedSeries))},
		{"steps<0", "steps", second(Epsilon([]Step{{NoiseMultiplier: 1, SampleRate: 0.1, Steps: -1}}, 1e-5, Config{}))},
		{"δ=0", "delta", second(Epsilon(nil, 0, Config{}))},
		{"δ=1", "delta", second(Epsilon(nil, 1, Config{}))},
		{"ε<0", "epsilon", second(Delta(nil, -1, Config{}))},
		{"empty grid", "no orders", second(Epsilon(nil, 1e-5, Config{Grid: Grid{Name: "x", Orders: []float64{}}}))},
		{"unknown grid", "unknown grid", second(Epsilon(nil, 1e-5, Config{Grid: Grid{Name: "nope"}}))},
		{"target ε", "target epsilon", third(NoiseMultiplier(NoiseSearch{TargetEpsilon: 0, Delta: 1e-5, SampleRate: 0.1, Steps: 1}, Config{}))},
		{"budget too small", "budget is too small", third(NoiseMultiplier(NoiseSearch{TargetEpsilon: 1e-9, Delta: 1e-5, SampleRate: 0.5, Steps: 100000}, Config{}))},
	}
	for _, tc := range cases {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, tc.err, tc.want)
		}
	}
}

func second[A any](_ A, err error) error        { return err }
func third[A, B any](_ A, _ B, err error) error { return err }

func TestComposeMergesAndSumsHeterogeneousSteps(t *testing.T) {
	a, _ := NewRDP(Config{Grid: OpacusOrders()})
	for i := 0; i < 3; i++ {
		_ = a.Compose(Step{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 1})
	}
	_ = a.Compose(Step{NoiseMultiplier: 2, SampleRate: 0.05, Steps: 10})
	h := a.History()
	if len(h) != 2 || h[0].Steps != 3 || h[1].Steps != 10 {
		t.Fatalf("history %+v, want two merged entries", h)
	}
	got, _ := a.RDPCurve()
	one, _ := SampledGaussianRDPCurve(0.01, 1.1, OpacusOrders().Orders, SignedSeries)
	two, _ := SampledGaussianRDPCurve(0.05, 2, OpacusOrders().Orders, SignedSeries)
	for k := range got {
		if want := 3*one[k] + 10*two[k]; math.Abs(got[k]-want) > 1e-15*want {
			t.Errorf("order %v: RDP %v, want %v", OpacusOrders().Orders[k], got[k], want)
		}
	}
	// Epsilon with extra steps is a what-if: the history does not change.
	before, _ := a.Epsilon(1e-5)
	after, _ := a.Epsilon(1e-5, Step{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 100})
	again, _ := a.Epsilon(1e-5)
	if !(after.Epsilon > before.Epsilon) || again != before {
		t.Errorf("what-if: before %v, with extra %v, again %v", before.Epsilon, after.Epsilon, again.Epsilon)
	}
}

func TestEpsilonMonotone(t *testing.T) {
	// More steps, a larger sample rate or less noise never decrease ε.
	base := Step{NoiseMultiplier: 1.2, SampleRate: 0.02, Steps: 500}
	eps := func(s Step) float64 {
		r, err := Epsilon([]Step{s}, 1e-5, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Epsilon
	}
	e0 := eps(base)
	more := base
	more.Steps = 1000
	bigger := base
	bigger.SampleRate = 0.04
	less := base
	less.NoiseMultiplier = 1.0
	for name, s := range map[string]Step{"steps": more, "sample rate": bigger, "noise": less} {
		if e := eps(s); !(e > e0) {
			t.Errorf("%s: ε %v not above %v", name, e, e0)
		}
	}
}

func BenchmarkSampledGaussianRDPFractional(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, _ = SampledGaussianRDP(0.01, 1.1, 3.7, SignedSeries)
	}
}

func BenchmarkEpsilonDefaultGrid(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, _ = Epsilon([]Step{{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 1000}}, 1e-5, Config{})
	}
}

func BenchmarkNoiseMultiplier(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_, _, _ = NoiseMultiplier(NoiseSearch{TargetEpsilon: 8, Delta: 1e-5, SampleRate: 0.04, Steps: 2250}, Config{})
	}
}

func TestHugeOrdersAreBoundedNotSlow(t *testing.T) {
	// A fractional order beyond 1e5 is bounded by the next integer order (RDP grows with α);
	// beyond 2^20 the bound is +Inf. Neither may hang or fall below the true value.
	frac, err := SampledGaussianRDP(0.01, 50, 123456.5, SignedSeries)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := SampledGaussianRDP(0.01, 50, 123457, SignedSeries)
	below, _ := SampledGaussianRDP(0.01, 50, 123456, SignedSeries)
	if !(frac == next && below <= frac) {
		t.Errorf("α=123456.5: %v, want the α=123457 value %v (α=123456: %v)", frac, next, below)
	}
	if r, _ := SampledGaussianRDP(0.01, 50, 1<<21, SignedSeries); !math.IsInf(r, 1) {
		t.Errorf("α=2^21: %v, want +Inf", r)
	}
}
