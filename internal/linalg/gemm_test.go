package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func naive(ta, tb bool, a, b []float64, m, k, n int) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if ta {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if tb {
					bv = b[j*k+p]
				}
				s += av * bv
			}
			out[i*n+j] = s
		}
	}
	return out
}

func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.NormFloat64()
	}
	return s
}

func TestGemmMatchesNaive(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 19}, {64, 784, 256}, {70, 9, 130}, {2, 0, 3}, {128, 64, 10}}
	for _, backend := range []bool{false, true} {
		if backend && !useVek {
			continue
		}
		for _, s := range shapes {
			for _, form := range []string{"NN", "NT", "TN"} {
				for _, acc := range []bool{false, true} {
					name := fmt.Sprintf("vek=%v/%s/%dx%dx%d/acc=%v", backend, form, s[0], s[1], s[2], acc)
					t.Run(name, func(t *testing.T) {
						old := useVek
						useVek = backend
						defer func() { useVek = old }()
						m, k, n := s[0], s[1], s[2]
						r := rand.New(rand.NewPCG(1, uint64(m*k*n)))
						a, b := randSlice(r, m*k), randSlice(r, k*n)
						dst := randSlice(r, m*n)
						init := append([]float64(nil), dst...)
						var want []float64
						switch form {
						case "NN":
							MulNN(dst, a, b, m, k, n, acc)
							want = naive(false, false, a, b, m, k, n)
						case "NT":
							MulNT(dst, a, b, m, k, n, acc)
							want = naive(false, true, a, b, m, k, n)
						case "TN":
							MulTN(dst, a, b, m, k, n, acc)
							want = naive(true, false, a, b, m, k, n)
						}
						for i := range want {
							if acc {
								want[i] += init[i]
							}
							if d := math.Abs(dst[i] - want[i]); d > 1e-10*(1+math.Abs(want[i])) {
								t.Fatalf("element %d: got %v want %v", i, dst[i], want[i])
							}
						}
					})
				}
			}
		}
	}
}

func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, s := range [][2]int{{1, 1}, {3, 70}, {65, 33}} {
		src := randSlice(r, s[0]*s[1])
		dst := make([]float64, len(src))
		Transpose(dst, src, s[0], s[1])
		for i := 0; i < s[0]; i++ {
			for j := 0; j < s[1]; j++ {
				if dst[j*s[0]+i] != src[i*s[1]+j] {
					t.Fatalf("%v: (%d,%d) wrong", s, i, j)
				}
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range [][3]int{{64, 784, 256}, {64, 256, 128}, {784, 64, 256}, {256, 256, 256}} {
		for _, backend := range []string{"vek", "gonum"} {
			if backend == "vek" && !useVek {
				continue
			}
			b.Run(fmt.Sprintf("%s/%dx%dx%d", backend, s[0], s[1], s[2]), func(b *testing.B) {
				old := useVek
				useVek = backend == "vek"
				defer func() { useVek = old }()
				m, k, n := s[0], s[1], s[2]
				r := rand.New(rand.NewPCG(1, 2))
				x, y, d := randSlice(r, m*k), randSlice(r, k*n), make([]float64, m*n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					MulNN(d, x, y, m, k, n, false)
				}
				b.ReportMetric(float64(2*m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
