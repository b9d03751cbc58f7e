package dp

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// zigNormal draws one variate from src the way secureStream does.
func zigNormal(src wordSource) float64 {
	u := src.Uint64()
	if z, ok := zigFast(u); ok {
		return z
	}
	return zigSlow(u, src)
}

// The copied ziggurat consumes words exactly as math/rand/v2's NormFloat64 does and returns
// the same variates bit for bit, slow paths and tail included.
func TestZigguratMatchesStdlib(t *testing.T) {
	ours := rand.NewPCG(7, 11)
	std := rand.New(rand.NewPCG(7, 11))
	tails := 0
	for i := 0; i < 10_000_000; i++ {
		a, b := zigNormal(ours), std.NormFloat64()
		if math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("draw %d: ziggurat %v, math/rand/v2 %v", i, a, b)
		}
		if math.Abs(a) > zigR {
			tails++
		}
	}
	if tails == 0 {
		t.Fatal("no draw beyond the base strip: the tail path was not exercised")
	}
}

// The secure stream's variates follow N(0, 1): Kolmogorov–Smirnov against Φ, and the
// frequency of the tail beyond 3.44 (where the ziggurat switches method).
func TestSecureStreamNormal(t *testing.T) {
	s, err := newSecureStream()
	if err != nil {
		t.Fatal(err)
	}
	const n = 600_001 // triples and a remainder
	x := make([]float64, n)
	s.addNormals(x, 1)
	tail := 0
	for _, v := range x {
		if math.Abs(v) > zigR {
			tail++
		}
	}
	p := math.Erfc(zigR / math.Sqrt2) // P(|Z| > 3.44) ≈ 5.8e-4
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	if math.Abs(float64(tail)-mean) > 6*sd {
		t.Errorf("%d draws beyond ±%.2f, want %.0f ± %.0f", tail, zigR, mean, 6*sd)
	}
	// Each position of a triple (the third is assembled from the spare bits of the first
	// two words) is N(0, 1), and the positions are uncorrelated.
	for pos := 0; pos < 3; pos++ {
		var col []float64
		for i := pos; i+3 <= n; i += 3 {
			col = append(col, x[i])
		}
		if d, crit := ksNormal(col), 2.6/math.Sqrt(float64(len(col))); d > crit {
			t.Errorf("position %d of a triple: KS distance %.5f > %.5f (level 1e-6)", pos, d, crit)
		}
	}
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 3}} {
		var sxy float64
		m := 0
		for i := 0; i+pair[1] < n-1; i += 3 {
			sxy += x[i+pair[0]] * x[i+pair[1]]
			m++
		}
		if r := sxy / float64(m); math.Abs(r) > 6/math.Sqrt(float64(m)) {
			t.Errorf("draws %d and %d of a triple: correlation %.4f", pair[0], pair[1], r)
		}
	}
	if d, crit := ksNormal(x), 2.6/math.Sqrt(n); d > crit {
		t.Errorf("KS distance %.5f > %.5f", d, crit)
	}
}

// ksNormal returns the Kolmogorov–Smirnov distance of x (sorted in place) from N(0, 1).
func ksNormal(x []float64) float64 {
	sort.Float64s(x)
	n := float64(len(x))
	d := 0.0
	for i, v := range x {
		f := 0.5 * math.Erfc(-v/math.Sqrt2)
		d = max(d, math.Abs(f-float64(i)/n), math.Abs(f-float64(i+1)/n))
	}
	return d
}

// A stream rekeys from crypto/rand after secureReseedWords words and keeps producing words
// that do not repeat the old key's.
func TestSecureStreamRekeys(t *testing.T) {
	s, err := newSecureStream()
	if err != nil {
		t.Fatal(err)
	}
	first := s.Uint64()
	oldCtr := s.ctr
	s.words, s.pos = secureReseedWords, streamWords
	if s.Uint64() == first {
		t.Error("the rekeyed stream repeated the first word")
	}
	if s.ctr == oldCtr || s.words != streamWords {
		t.Errorf("no rekey after %d words (words now %d)", secureReseedWords, s.words)
	}
	// Two streams are independent keys: their first words differ.
	s2, err := newSecureStream()
	if err != nil {
		t.Fatal(err)
	}
	if s2.buf == s.buf {
		t.Error("two secure streams produced the same buffer")
	}
}
