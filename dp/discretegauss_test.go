package dp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// dgPMF returns P[X = x] of N_Z(0, variance) for |x| ≤ max, normalised over |x| ≤ 60σ (the
// mass beyond is below e^−1800).
func dgPMF(variance float64, max int) func(int) float64 {
	lim := int(60*math.Sqrt(variance)) + 1
	z := 0.0
	for x := -lim; x <= lim; x++ {
		z += math.Exp(-float64(x) * float64(x) / (2 * variance))
	}
	return func(x int) float64 { return math.Exp(-float64(x)*float64(x)/(2*variance)) / z }
}

// chiSquare returns Pearson's statistic of the counts (value → count, total n) against
// pmf and its degrees of freedom: values are binned individually where the expected count
// is at least 5, and the two tails pooled.
func chiSquare(counts map[int]int, n int, pmf func(int) float64, lim int) (stat float64, dof int) {
	// Grow the central range while each value's expected count is at least 5.
	lo, hi := 0, 0
	for lo > -lim && float64(n)*pmf(lo-1) >= 5 {
		lo--
	}
	for hi < lim && float64(n)*pmf(hi+1) >= 5 {
		hi++
	}
	inside, pInside := 0, 0.0
	for x := lo; x <= hi; x++ {
		e := float64(n) * pmf(x)
		d := float64(counts[x]) - e
		stat += d * d / e
		inside += counts[x]
		pInside += pmf(x)
	}
	// The tails, pooled (symmetric law: each has half the outside mass).
	below, above := 0, 0
	for x, c := range counts {
		if x < lo {
			below += c
		} else if x > hi {
			above += c
		}
	}
	eTail := float64(n) * (1 - pInside) / 2
	for _, c := range []int{below, above} {
		d := float64(c) - eTail
		stat += d * d / eTail
	}
	return stat, hi - lo + 2
}

// chiSquareCritical is the χ² quantile of dof degrees of freedom at upper tail 1e-6
// (Wilson–Hilferty: z = 4.753).
func chiSquareCritical(dof int) float64 {
	k := float64(dof)
	return k * math.Pow(1-2/(9*k)+4.753*math.Sqrt(2/(9*k)), 3)
}

// TestDiscreteGaussianDistribution: 400,000 draws of N_Z(0, σ²) pass Pearson's χ² test of
// the exact probability mass function at level 1e-6, and the same draws fail it against
// the law of variance 1.1·σ² (so the test can tell the distributions apart). The sample
// mean is 0 and the variance σ² within 5 standard errors.
func TestDiscreteGaussianDistribution(t *testing.T) {
	const n = 400_000
	for _, variance := range []uint64{1, 2, 7, 100, 2500} {
		t.Run(fmt.Sprintf("var%d", variance), func(t *testing.T) {
			g, err := NewDiscreteGaussian(variance)
			if err != nil {
				t.Fatal(err)
			}
			src := rand.NewChaCha8([32]byte{byte(variance)})
			counts := map[int]int{}
			sum, sumSq := 0.0, 0.0
			for range n {
				x := g.Sample(src)
				counts[int(x)]++
				sum += float64(x)
				sumSq += float64(x) * float64(x)
			}
			v := float64(variance)
			lim := int(60*math.Sqrt(v)) + 1
			stat, dof := chiSquare(counts, n, dgPMF(v, lim), lim)
			if crit := chiSquareCritical(dof); stat > crit {
				t.Errorf("χ² = %.1f with %d degrees of freedom exceeds %.1f (p < 1e-6)", stat, dof, crit)
			}
			wrong, wdof := chiSquare(counts, n, dgPMF(1.1*v, lim), lim)
			if crit := chiSquareCritical(wdof); wrong <= crit {
				t.Errorf("against variance %.1f: χ² = %.1f ≤ %.1f, the test cannot tell them apart", 1.1*v, wrong, crit)
			}
			mean, variance2 := sum/n, sumSq/n-(sum/n)*(sum/n)
			if math.Abs(mean) > 5*math.Sqrt(v/n) {
				t.Errorf("mean %.4f, want 0 ± %.4f", mean, 5*math.Sqrt(v/n))
			}
			// Var of x² for a Gaussian is 2σ⁴; the discrete law's variance is just below σ².
			if math.Abs(variance2-v) > 5*math.Sqrt(2*v*v/n)+0.1 {
				t.Errorf("variance %.3f, want %g ± %.3f", variance2, v, 5*math.Sqrt(2*v*v/n))
			}
		})
	}
}

// TestDistributedDiscreteGaussianSum: the sum of n clients' independent N_Z(0, σ²) shares
// passes the χ² test of N_Z(0, nσ²) (Kairouz et al. 2021: the two are within τ, here
// 10·Σ exp(−2π²·2·k/(k+1)) ≈ 3e-8, far below what 300,000 sums can see) and fails it
// against N_Z(0, nσ² + n) — an error of one unit of variance per share.
func TestDistributedDiscreteGaussianSum(t *testing.T) {
	const trials, clients, variance = 300_000, 8, 2
	g, err := NewDiscreteGaussian(variance)
	if err != nil {
		t.Fatal(err)
	}
	src := rand.NewChaCha8([32]byte{42})
	counts := map[int]int{}
	shares := make([]int64, clients)
	for range trials {
		clear(shares)
		g.AddTo(shares, src)
		s := int64(0)
		for _, x := range shares {
			s += x
		}
		counts[int(s)]++
	}
	total := float64(clients * variance)
	lim := int(60*math.Sqrt(total)) + 1
	stat, dof := chiSquare(counts, trials, dgPMF(total, lim), lim)
	if crit := chiSquareCritical(dof); stat > crit {
		t.Errorf("sum of %d shares: χ² = %.1f with %d degrees of freedom exceeds %.1f", clients, stat, dof, crit)
	}
	wrong, wdof := chiSquare(counts, trials, dgPMF(total+clients, lim), lim)
	if crit := chiSquareCritical(wdof); wrong <= crit {
		t.Errorf("against variance %g: χ² = %.1f ≤ %.1f", total+clients, wrong, crit)
	}
}

// TestBernoulliExp: the exact Bernoulli(exp(−γ)) of CKS 2020, Algorithm 1, for γ below,
// at and above 1, hits exp(−γ) within 5 standard errors over 200,000 draws.
func TestBernoulliExp(t *testing.T) {
	src := rand.NewChaCha8([32]byte{7})
	const n = 200_000
	for _, g := range []struct{ num, den uint64 }{{0, 1}, {3, 10}, {1, 1}, {5, 2}, {1 << 40, 1 << 39}} {
		hits := 0
		for range n {
			if bernoulliExp(u128{lo: g.num}, u128{lo: g.den}, src) {
				hits++
			}
		}
		p := math.Exp(-float64(g.num) / float64(g.den))
		if se := math.Sqrt(p * (1 - p) / n); math.Abs(float64(hits)/n-p) > 5*se+1e-12 {
			t.Errorf("γ = %d/%d: frequency %.5f, want %.5f ± %.5f", g.num, g.den, float64(hits)/n, p, 5*se)
		}
	}
}

// TestDiscreteGaussianHelpers: the integer square root, the 128-bit helpers and the
// parameter checks.
func TestDiscreteGaussianHelpers(t *testing.T) {
	for _, v := range []uint64{0, 1, 2, 3, 4, 99, 100, 101, 1<<40 - 1, 1 << 40} {
		r := isqrt(v)
		if r*r > v || (r+1)*(r+1) <= v {
			t.Errorf("isqrt(%d) = %d", v, r)
		}
	}
	if _, ok := (u128{hi: 1 << 63}).mulSmall(2); ok {
		t.Errorf("an overflowing product reported no overflow")
	}
	if p, ok := (u128{hi: 1, lo: 1 << 63}).mulSmall(4); !ok || p != (u128{hi: 6, lo: 0}) {
		t.Errorf("(2^64 + 2^63)·4 = %+v, %v", p, ok)
	}
	src := rand.NewChaCha8([32]byte{9})
	m := u128{hi: 3, lo: 5}
	for range 1000 {
		if x := uniformBelow(m, src); !x.less(m) {
			t.Fatalf("uniformBelow(%+v) = %+v", m, x)
		}
	}
	for _, v := range []uint64{0, MaxDiscreteGaussianVariance + 1} {
		if _, err := NewDiscreteGaussian(v); err == nil {
			t.Errorf("variance %d accepted", v)
		}
	}
	g, _ := NewDiscreteGaussian(MaxDiscreteGaussianVariance)
	if x := g.Sample(src); x < -60<<20 || x > 60<<20 {
		t.Errorf("a draw of N_Z(0, 2^40) = %d, beyond 60σ", x)
	}
}

// BenchmarkDiscreteGaussian measures a draw of N_Z(0, 10^4) on the secure source (a client
// adds one per coordinate).
func BenchmarkDiscreteGaussian(b *testing.B) {
	g, _ := NewDiscreteGaussian(10_000)
	src, err := SecureRand()
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]int64, 1024)
	b.ResetTimer()
	for range b.N {
		g.AddTo(dst, src)
	}
	b.SetBytes(0)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dst)), "ns/draw")
}
