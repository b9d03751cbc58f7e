package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is the distance between a and b in units in the last place of T (0 for equal
// values, including two NaNs and two equal infinities).
func ulps[T Float](a, b T) float64 {
	fa, fb := float64(a), float64(b)
	if fa == fb || (math.IsNaN(fa) && math.IsNaN(fb)) {
		return 0
	}
	if math.IsNaN(fa) || math.IsNaN(fb) || math.IsInf(fa, 0) || math.IsInf(fb, 0) {
		return math.Inf(1)
	}
	ulp := math.Nextafter(math.Abs(fb), math.Inf(1)) - math.Abs(fb)
	if !is64[T]() {
		f := float32(math.Abs(fb))
		ulp = float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
	}
	return math.Abs(fa-fb) / ulp
}

// elementwiseInputs returns values from each range the kernels treat differently: both
// branches of tanh, exp's reduction range and its limits (float64's and float32's), and
// special values, rounded to T.
func elementwiseInputs[T Float]() []T {
	r := rand.New(rand.NewPCG(3, 4))
	var xs []float64
	for _, lim := range []float64{1e-300, 1e-30, 1e-8, 0.1, 0.625, 1, 3, 10, 20, 50, 87, 88, 89, 104, 708, 745, 1e6} {
		for i := 0; i < 2000; i++ {
			xs = append(xs, (2*r.Float64()-1)*lim)
		}
	}
	for _, v := range []float64{0, 0.625, 1, 2, 9, 10, 22, 44, 44.02, 86.9, 87, 87.3, 87.4, 88, 88.7, 88.8, 89, 103, 104,
		700, 708, 709, 709.7, 709.8, 710, 745, 746, 1e308, math.Inf(1), math.SmallestNonzeroFloat64, 5e-324,
		math.MaxFloat32, 0x1p-126, 0x1p-149, math.Nextafter(0.625, 0), math.Nextafter(709, 710)} {
		xs = append(xs, v, -v, math.Nextafter(v, 0), -math.Nextafter(v, 0))
		v32 := float64(float32(v))
		xs = append(xs, float64(math.Nextafter32(float32(v), 0)), float64(math.Nextafter32(float32(v), float32(math.Inf(1)))), -v32)
	}
	xs = append(xs, math.NaN())
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = T(x)
	}
	return out
}

// elementwiseFunc is one of the elementwise functions with its reference in float64.
type elementwiseFunc struct {
	name string
	ref  func(float64) float64
}

var elementwiseFuncs = []elementwiseFunc{{"exp", math.Exp}, {"sigmoid", SigmoidScalar}, {"tanh", math.Tanh}}

// elementwiseOf returns the exported function named name, instantiated for T.
func elementwiseOf[T Float](name string) func(dst, src []T) {
	switch name {
	case "exp":
		return Exp[T]
	case "sigmoid":
		return Sigmoid[T]
	default:
		return Tanh[T]
	}
}

func TestElementwiseMatchesMath(t *testing.T) {
	// float64: within 2 (exp) or 3 ulps of math; float32: within 2 or 3 ulps of math's
	// float64 result rounded to float32.
	t.Run("float64", func(t *testing.T) {
		testElementwiseMatchesMath[float64](t, map[string]float64{"exp": 2, "sigmoid": 3, "tanh": 3})
	})
	t.Run("float32", func(t *testing.T) {
		testElementwiseMatchesMath[float32](t, map[string]float64{"exp": 2, "sigmoid": 3, "tanh": 3})
	})
}

func testElementwiseMatchesMath[T Float](t *testing.T, maxUlps map[string]float64) {
	minNormal, minSub := byType[T](0x1p-1022, 0x1p-126), byType[T](0x1p-1074, 0x1p-149)
	xs := elementwiseInputs[T]()
	for _, f := range elementwiseFuncs {
		t.Run(f.name, func(t *testing.T) {
			got := make([]T, len(xs))
			elementwiseOf[T](f.name)(got, xs)
			worst := 0.0
			for i, x := range xs {
				want := T(f.ref(float64(x)))
				u := ulps(got[i], want)
				// Results in the subnormal range carry fewer significant bits.
				if math.Abs(float64(want)) < minNormal && math.Abs(float64(got[i]-want)) <= minSub*maxUlps[f.name] {
					continue
				}
				if u > maxUlps[f.name] {
					t.Fatalf("%s(%v) = %v, math gives %v (%.1f ulps)", f.name, x, got[i], want, u)
				}
				worst = max(worst, u)
			}
			t.Logf("%s: worst %.2f ulps over %d inputs", f.name, worst, len(xs))
		})
	}
}

// TestElementwiseTailsAndAliasing checks every length up to 17 (partial groups of four and
// eight), in place and at every offset, and that a value's result does not depend on its
// position.
func TestElementwiseTailsAndAliasing(t *testing.T) {
	t.Run("float64", testElementwiseTailsAndAliasing[float64])
	t.Run("float32", testElementwiseTailsAndAliasing[float32])
}

func testElementwiseTailsAndAliasing[T Float](t *testing.T) {
	// Values the kernels refuse (700.5 and −800 for float32's exp and sigmoid, −800 for
	// float64's) sit among ones they handle.
	xs := []T{0.3, -1.7, 2.5, 700.5, -0.01, 5, -800, 0.7, 9, 1e-3, -3, 0.625, -95, 12, 88.5, -0.5, 1.25, 40, -7}
	for _, f := range elementwiseFuncs {
		fn := elementwiseOf[T](f.name)
		full := make([]T, len(xs))
		fn(full, xs)
		for off := 0; off < len(xs); off++ {
			for n := 0; off+n <= len(xs) && n <= 17; n++ {
				t.Run(fmt.Sprintf("%s/off%d/n%d", f.name, off, n), func(t *testing.T) {
					buf := append([]T(nil), xs...)
					fn(buf[off:off+n], buf[off:off+n])
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
	for _, f := range elementwiseFuncs {
		benchElementwise[float64](b, f)
		benchElementwise[float32](b, f)
	}
}

func benchElementwise[T Float](b *testing.B, f elementwiseFunc) {
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]T, 1024)
	for i := range src {
		src[i] = T(4 * r.NormFloat64())
	}
	dst := make([]T, len(src))
	vec := elementwiseOf[T](f.name)
	b.Run(f.name+"/vector/"+typeName[T](), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			vec(dst, src)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
	})
	b.Run(f.name+"/math/"+typeName[T](), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for j, v := range src {
				dst[j] = T(f.ref(float64(v)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
	})
}

// TestRowOps checks AddRowVector, SumRows and ScaleRows against plain loops, bit for bit (each column
// is summed top to bottom whatever the split), for shapes that split across workers and
// shapes that do not.
func TestRowOps(t *testing.T) {
	t.Run("float64", testRowOps[float64])
	t.Run("float32", testRowOps[float32])
}

func testRowOps[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][2]int{{3, 5}, {600, 300}, {2048, 10}, {9, 20000}} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("%dx%d/w%d", s[0], s[1], workers), func(t *testing.T) {
				defer setWorkers(workers)()
				m, n := s[0], s[1]
				x, v := randT[T](r, m*n), randT[T](r, n)
				got, want := append([]T(nil), x...), append([]T(nil), x...)
				AddRowVector(got, m, n, v)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						want[i*n+j] += v[j]
					}
				}
				sums, wantSums := append([]T(nil), v...), append([]T(nil), v...)
				SumRows(sums, x, m, n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						wantSums[j] += x[i*n+j]
					}
				}
				w := randT[T](r, m)
				scaled, wantScaled := make([]T, m*n), make([]T, m*n)
				ScaleRows(scaled, x, m, n, w)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						wantScaled[i*n+j] = w[i] * x[i*n+j]
					}
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("AddRowVector: element %d: got %v want %v", i, got[i], want[i])
					}
					if scaled[i] != wantScaled[i] {
						t.Fatalf("ScaleRows: element %d: got %v want %v", i, scaled[i], wantScaled[i])
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
