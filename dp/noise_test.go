package dp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"
	"weak"

	"github.com/confide-fl/confide/internal/linalg"
)

// moments returns the mean, standard deviation, and excess kurtosis of x.
func moments(x []float64) (mean, std, kurt float64) {
	n := float64(len(x))
	for _, v := range x {
		mean += v
	}
	mean /= n
	var m2, m4 float64
	for _, v := range x {
		d := (v - mean) * (v - mean)
		m2 += d
		m4 += d * d
	}
	m2 /= n
	m4 /= n
	return mean, math.Sqrt(m2), m4/(m2*m2) - 3
}

// ksStatistic returns the Kolmogorov–Smirnov distance between the sample and N(0, std²).
func ksStatistic(x []float64, std float64) float64 {
	s := slices.Clone(x)
	sort.Float64s(s)
	n := float64(len(s))
	d := 0.0
	for i, v := range s {
		cdf := 0.5 * math.Erfc(-v/(std*math.Sqrt2))
		d = math.Max(d, math.Max(math.Abs(cdf-float64(i)/n), math.Abs(float64(i+1)/n-cdf)))
	}
	return d
}

// checkGaussian asserts that x looks like N(0, std²) within k standard errors.
func checkGaussian(t *testing.T, name string, x []float64, std, k float64) {
	t.Helper()
	n := float64(len(x))
	mean, sd, kurt := moments(x)
	if se := std / math.Sqrt(n); math.Abs(mean) > k*se {
		t.Errorf("%s: mean %.5g, want 0 ± %.3g", name, mean, k*se)
	}
	if se := std / math.Sqrt(2*n); math.Abs(sd-std) > k*se {
		t.Errorf("%s: standard deviation %.6g, want %.6g ± %.3g", name, sd, std, k*se)
	}
	if se := math.Sqrt(24 / n); math.Abs(kurt) > k*se {
		t.Errorf("%s: excess kurtosis %.4g, want 0 ± %.3g", name, kurt, k*se)
	}
	for _, z := range []float64{1, 2, 3} {
		p := math.Erfc(z / math.Sqrt2)
		count := 0.0
		for _, v := range x {
			if math.Abs(v) > z*std {
				count++
			}
		}
		if se := math.Sqrt(p * (1 - p) / n); math.Abs(count/n-p) > k*se {
			t.Errorf("%s: P(|x| > %vσ) = %.5g, want %.5g ± %.2g", name, z, count/n, p, k*se)
		}
	}
	// KS critical value at significance 1e-6 is about sqrt(−ln(1e-6/2)/2)/√n ≈ 2.7/√n.
	if d := ksStatistic(x, std); d > 2.7/math.Sqrt(n) {
		t.Errorf("%s: Kolmogorov–Smirnov distance %.4g exceeds %.4g", name, d, 2.7/math.Sqrt(n))
	}
}

func TestAddGaussianNoiseIsCalibrated(t *testing.T) {
	// Noise multiplier 1.3, clip 2.5: std = σ·C = 3.25. Seeded, so deterministic; the
	// bounds are 5 standard errors.
	const sigma, clip = 1.3, 2.5
	x := make([]float64, 1_000_000)
	if err := AddGaussianNoise(x, sigma*clip, NewDeterministicNoise(20240501)); err != nil {
		t.Fatal(err)
	}
	checkGaussian(t, "deterministic", x, sigma*clip, 5)
}

func TestSecureNoiseIsCalibrated(t *testing.T) {
	// The secure source cannot be seeded; 7 standard errors make a false alarm a 1e-11
	// event.
	src, err := NewSecureNoise()
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, 300_000)
	if err := AddGaussianNoise(x, 0.7, src); err != nil {
		t.Fatal(err)
	}
	checkGaussian(t, "secure", x, 0.7, 7)
	// The fill splits a vector this long into one chunk per stream (on two or more
	// workers): a chunk repeating or tracking another's draws would pass the marginal
	// checks above, so the halves must be uncorrelated as well.
	h := len(x) / 2
	var sab, saa, sbb float64
	for i := range h {
		a, b := x[i], x[h+i]
		sab, saa, sbb = sab+a*b, saa+a*a, sbb+b*b
	}
	if r := sab / math.Sqrt(saa*sbb); math.Abs(r) > 7/math.Sqrt(float64(h)) {
		t.Errorf("the two halves of a secure fill correlate: r = %.4f (streams not independent?)", r)
	}
	if !src.Secure() || NewDeterministicNoise(1).Secure() {
		t.Error("Secure() must be true for SecureNoise and false for DeterministicNoise")
	}
}

func TestAddGaussianNoiseAddsToDst(t *testing.T) {
	a := []float64{1, 2, 3}
	b := []float64{0, 0, 0}
	_ = AddGaussianNoise(a, 0.5, NewDeterministicNoise(7))
	_ = AddGaussianNoise(b, 0.5, NewDeterministicNoise(7))
	for i := range a {
		if a[i] != float64(i+1)+b[i] {
			t.Errorf("element %d: %v vs %v + %v: the same seed must add the same noise", i, a[i], i+1, b[i])
		}
	}
	c := []float64{0, 0, 0}
	_ = AddGaussianNoise(c, 0.5, NewDeterministicNoise(8))
	if slices.Equal(b, c) {
		t.Error("different seeds gave the same noise")
	}
	z := []float64{1, 2}
	if err := AddGaussianNoise(z, 0, NewDeterministicNoise(1)); err != nil || z[0] != 1 || z[1] != 2 {
		t.Errorf("std 0 must leave dst unchanged: %v %v", z, err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := AddGaussianNoise(z, bad, NewDeterministicNoise(1)); err == nil {
			t.Errorf("std %v: want an error", bad)
		}
	}
	if err := AddGaussianNoise(z, 1, nil); err == nil {
		t.Error("nil source: want an error")
	}
}

func BenchmarkAddGaussianNoiseSecure(b *testing.B) {
	src, err := NewSecureNoise()
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float64, 100_000)
	b.SetBytes(8 * int64(len(x)))
	for i := 0; i < b.N; i++ {
		_ = AddGaussianNoise(x, 1, src)
	}
}

// BenchmarkNormFloat64ChaCha8 is the baseline SecureNoise replaced: math/rand/v2's
// NormFloat64 on a ChaCha8 source, the same 10^5 additions per op as
// BenchmarkAddGaussianNoiseSecure (compare with -cpu 1).
func BenchmarkNormFloat64ChaCha8(b *testing.B) {
	r := rand.New(rand.NewChaCha8([32]byte{1}))
	x := make([]float64, 100_000)
	b.SetBytes(8 * int64(len(x)))
	for i := 0; i < b.N; i++ {
		for k := range x {
			x[k] += r.NormFloat64()
		}
	}
}

// keepHelpersPolling runs empty parallel regions with a busy caller between them, so that
// linalg's helper keeps polling (and doing idle work) until done reports true or 10 s pass.
func keepHelpersPolling(t *testing.T, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !done(); {
		if time.Now().After(deadline) {
			t.Fatal("idle work not done after 10 s")
		}
		linalg.ParallelForChunks(2, linalg.MinParallelFor, 1, func(int, int, int) {})
		for spin := time.Now(); time.Since(spin) < 200*time.Microsecond; {
		}
	}
}

// drawingAhead returns a SecureNoise that draws ahead (two workers for the test's duration),
// or skips the test with fewer than two processors, where helpers do not poll.
func drawingAhead(t *testing.T) *SecureNoise {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("helpers poll, and draw ahead, only with two or more processors")
	}
	old := linalg.Workers
	linalg.Workers = 2
	t.Cleanup(func() { linalg.Workers = old })
	src, err := NewSecureNoise()
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// With helpers to spare, a SecureNoise draws the next fill's variates while they poll for
// work: the fill then uses them (calibrated, independent of the fill before) and clears
// them, and nothing is drawn ahead once the SecureNoise is gone.
func TestSecureNoiseDrawsAhead(t *testing.T) {
	src := drawingAhead(t)
	const n = 200_000
	first := make([]float64, n)
	if err := AddGaussianNoise(first, 1, src); err != nil {
		t.Fatal(err)
	}
	a := src.ahead
	if a == nil || len(a.bufs[0].z) != n {
		t.Fatalf("the first parallel fill set up no drawing ahead of %d variates", n)
	}
	keepHelpersPolling(t, func() bool { return a.ready() == 2*n })
	snap := a.snapshot()
	second := make([]float64, n)
	if err := AddGaussianNoise(second, 0.7, src); err != nil {
		t.Fatal(err)
	}
	// Both buffers are full: the fill takes the whole of the first.
	for i, v := range second {
		if want := 0.7 * snap[0][len(snap[0])-n+i]; v != want {
			t.Fatalf("value %d: %v, not 0.7 × the variate drawn ahead %v", i, v, want/0.7)
		}
	}
	// The helper may already be drawing again; what it has not redrawn must be cleared.
	if err := a.checkLayout(snap, 0); err != nil {
		t.Fatal("after the fill: ", err)
	}
	checkGaussian(t, "drawn ahead", second, 0.7, 7)
	var sab, saa, sbb float64
	for i := range n {
		sab, saa, sbb = sab+first[i]*second[i], saa+first[i]*first[i], sbb+second[i]*second[i]
	}
	if r := sab / math.Sqrt(saa*sbb); math.Abs(r) > 7/math.Sqrt(n) {
		t.Errorf("a fill drawn ahead correlates with the fill before it: r = %.4f", r)
	}
	// A fill longer than what is ready uses it all and draws the rest itself.
	keepHelpersPolling(t, func() bool { return a.ready() == 2*n })
	third := make([]float64, 2*n+parallelNoiseMin)
	if err := AddGaussianNoise(third, 1, src); err != nil {
		t.Fatal(err)
	}
	checkGaussian(t, "partly drawn ahead", third, 1, 7)
	if slices.Contains(third, 0) {
		t.Error("a value of a partly drawn-ahead fill got no noise")
	}

	// The idle work goes with the SecureNoise: once it is collected, nothing (the list of
	// idle work included) holds its buffer.
	wa := weak.Make(a)
	src, a = nil, nil
	for deadline := time.Now().Add(10 * time.Second); wa.Value() != nil; {
		if time.Now().After(deadline) {
			t.Fatal("a collected SecureNoise's buffer for drawing ahead is still reachable after 10 s")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// UseNormals lends standard normal draws once each — drawn ahead where ready, drawn on the
// spot otherwise — and keeps its buffer's layout when the borrower does not zero them.
func TestSecureNoiseUseNormals(t *testing.T) {
	src := drawingAhead(t)
	if src.UseNormals(100, func([]float64) bool { t.Fatal("called for 100 draws"); return true }) {
		t.Error("UseNormals lent 100 draws: short vectors are AddGaussian's")
	}
	const n = 150_000
	var prev []float64
	lend := func(name string, zero bool) {
		t.Helper()
		var got []float64
		if !src.UseNormals(n, func(z []float64) bool {
			got = slices.Clone(z)
			if zero {
				clear(z)
			}
			return zero
		}) {
			t.Fatalf("%s: UseNormals lent nothing", name)
		}
		checkGaussian(t, name, got, 1, 7)
		if prev != nil {
			var sab float64
			for i := range got {
				sab += got[i] * prev[i]
			}
			if r := sab / n; math.Abs(r) > 7/math.Sqrt(n) {
				t.Errorf("%s: the draws correlate with the previous loan's: r = %.4f", name, r)
			}
		}
		prev = got
		if err := src.ahead.checkLayout([2][]float64{}, -1); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	lend("drawn on the spot", true)
	a := src.ahead
	keepHelpersPolling(t, func() bool { return a.ready() == 2*n })
	lend("drawn ahead", true)
	lend("not zeroed by the borrower", false)
	keepHelpersPolling(t, func() bool { return a.ready() >= n/2 })
	lend("partly drawn ahead", true)
	if src.UseNormals(n+1, func([]float64) bool { t.Fatal("called beyond the buffer"); return true }) {
		t.Error("UseNormals lent more draws than its buffer holds")
	}
}

// ready returns how many variates the buffers hold.
func (a *ahead) ready() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bufs[0].n + a.bufs[1].n
}

// snapshot returns copies of the buffers.
func (a *ahead) snapshot() [2][]float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return [2][]float64{slices.Clone(a.bufs[0].z), slices.Clone(a.bufs[1].z)}
}

// checkLayout reports an error unless every buffer is drawn values then zeros and, if used
// ≥ 0, buffer used (whose draws a fill took) holds none of snap's values where it held
// them. (Values, not positions, would not do: the ziggurat's outputs are j·w for 2^32
// integers j and 128 widths w, so among a few 10^5 draws some repeat.)
func (a *ahead) checkLayout(snap [2][]float64, used int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, b := range a.bufs {
		for i, v := range b.z {
			if i >= b.n && v != 0 {
				return fmt.Errorf("buffer %d: value %d beyond the %d drawn is %v: used noise kept", k, i, b.n, v)
			}
			if k == used && i < b.n && v == snap[k][i] {
				return fmt.Errorf("buffer %d: value %d = %v was used and is still held", k, i, v)
			}
		}
	}
	return nil
}
