package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is the distance between a and b in units in the last place (0 for equal values,
// including two NaNs and two equal infinities).
func ulps(a, b float64) float64 {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return 0
	}
	if math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.Inf(1)
	}
	ulp := math.Nextafter(math.Abs(b), math.Inf(1)) - math.Abs(b)
	return math.Abs(a-b) / ulp
}

// elementwiseInputs returns values from each range the kernels treat differently: both
// branches of tanh, exp's reduction range and its limits, and special values.
func elementwiseInputs() []float64 {
	r := rand.New(rand.NewPCG(3, 4))
	var xs []float64
	for _, lim := range []float64{1e-300, 1e-8, 0.1, 0.625, 1, 3, 20, 50, 708, 745, 1e6} {
		for i := 0; i < 2000; i++ {
			xs = append(xs, (2*r.Float64()-1)*lim)
		}
	}
	for _, v := range []float64{0, 0.625, 1, 2, 22, 44, 44.02, 88, 700, 708, 709, 709.7, 709.8, 710, 745, 746, 1e308,
		math.Inf(1), math.SmallestNonzeroFloat64, 5e-324, math.Nextafter(0.625, 0), math.Nextafter(709, 710)} {
		xs = append(xs, v, -v, math.Nextafter(v, 0), -math.Nextafter(v, 0))
	}
	xs = append(xs, math.NaN())
	return xs
}

func TestElementwiseMatchesMath(t *testing.T) {
	sigmoid := SigmoidScalar
	cases := []struct {
		name    string
		vec     func(dst, src []float64)
		ref     func(float64) float64
		maxUlps float64
	}{
		{"exp", Exp[float64], math.Exp, 2},
		{"sigmoid", Sigmoid[float64], sigmoid, 3},
		{"tanh", Tanh[float64], math.Tanh, 3},
	}
	xs := elementwiseInputs()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := make([]float64, len(xs))
			c.vec(got, xs)
			worst := 0.0
			for i, x := range xs {
				want := c.ref(x)
				u := ulps(got[i], want)
				// Results in the subnormal range carry fewer significant bits.
				if math.Abs(want) < 0x1p-1022 && math.Abs(got[i]-want) <= 0x1p-1074*c.maxUlps {
					continue
				}
				if u > c.maxUlps {
					t.Fatalf("%s(%v) = %v, math gives %v (%.1f ulps)", c.name, x, got[i], want, u)
				}
				worst = max(worst, u)
			}
			t.Logf("%s: worst %.2f ulps over %d inputs", c.name, worst, len(xs))
		})
	}
}

// TestElementwiseTailsAndAliasing checks every length up to 9 (partial groups of four), in
// place and at every offset, and that a value's result does not depend on its position.
func TestElementwiseTailsAndAliasing(t *testing.T) {
	xs := []float64{0.3, -1.7, 2.5, 700.5, -0.01, 5, -800, 0.7, 9, 1e-3, -3}
	for _, f := range []struct {
		name string
		fn   func(dst, src []float64)
	}{{"exp", Exp[float64]}, {"sigmoid", Sigmoid[float64]}, {"tanh", Tanh[float64]}} {
		full := make([]float64, len(xs))
		f.fn(full, xs)
		for off := 0; off < len(xs); off++ {
			for n := 0; off+n <= len(xs) && n <= 9; n++ {
				t.Run(fmt.Sprintf("%s/off%d/n%d", f.name, off, n), func(t *testing.T) {
					buf := append([]float64(nil), xs...)
					f.fn(buf[off:off+n], buf[off:off+n])
					for i := range buf {
						want := xs[i]
						if i >= off && i < off+n {
							want = full[i]
						}
						if buf[i] != want {
							t.Fatalf("element %d: got %v want %v", i, buf[i], want)
						}
					}
				})
			}
		}
	}
}

func BenchmarkElementwise(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float64, 1024)
	for i := range src {
		src[i] = 4 * r.NormFloat64()
	}
	dst := make([]float64, len(src))
	for _, f := range []struct {
		name string
		vec  func(dst, src []float64)
		ref  func(float64) float64
	}{{"exp", Exp[float64], math.Exp}, {"sigmoid", Sigmoid[float64], SigmoidScalar}, {"tanh", Tanh[float64], math.Tanh}} {
		b.Run(f.name+"/vector", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f.vec(dst, src)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
		})
		b.Run(f.name+"/math", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				for j, v := range src {
					dst[j] = f.ref(v)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
		})
	}
}

// TestRowOps checks AddRowVector and SumRows against plain loops, bit for bit (each column
// is summed top to bottom whatever the split), for shapes that split across workers and
// shapes that do not.
func TestRowOps(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][2]int{{3, 5}, {600, 300}, {2048, 10}, {9, 20000}} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%dx%d/w%d", s[0], s[1], workers), func(t *testing.T) {
				old := Workers
				Workers = workers
				defer func() { Workers = old }()
				m, n := s[0], s[1]
				x, v := randSlice(r, m*n), randSlice(r, n)
				got, want := append([]float64(nil), x...), append([]float64(nil), x...)
				AddRowVector(got, m, n, v)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						want[i*n+j] += v[j]
					}
				}
				sums, wantSums := append([]float64(nil), v...), append([]float64(nil), v...)
				SumRows(sums, x, m, n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						wantSums[j] += x[i*n+j]
					}
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("AddRowVector: element %d: got %v want %v", i, got[i], want[i])
					}
				}
				for j := range wantSums {
					if sums[j] != wantSums[j] {
						t.Fatalf("SumRows: column %d: got %v want %v", j, sums[j], wantSums[j])
					}
				}
			})
		}
	}
}
