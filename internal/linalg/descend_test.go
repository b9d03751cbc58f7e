package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDescend compares Descend with its scalar expression, bit for bit, at lengths around
// the vector kernel's group of 8, with and without weight decay.
func TestDescend(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1001} {
		for _, wd := range []float64{0, 1e-4} {
			t.Run(fmt.Sprintf("n%d/wd%g", n, wd), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 3))
				const lr = 0.05
				p, g := make([]float64, n+1), make([]float64, n)
				for i := range g {
					p[i], g[i] = rng.NormFloat64(), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(10)-5))
				}
				if n > 2 {
					p[1], g[2] = math.Inf(1), math.NaN()
				}
				p[n] = 7
				want := append([]float64(nil), p[:n]...)
				for i, v := range g {
					want[i] -= lr * (v + wd*want[i])
				}
				Descend(p, g, lr, wd)
				for i := range want {
					if !sameFloat(p[i], want[i]) {
						t.Fatalf("Descend at %d = %v, want %v", i, p[i], want[i])
					}
				}
				if p[n] != 7 {
					t.Fatalf("Descend wrote past len(g)")
				}
			})
		}
	}
}

// BenchmarkDescend updates the reference MLP's 235,146 parameters.
func BenchmarkDescend(b *testing.B) {
	p, g := make([]float64, 235146), make([]float64, 235146)
	b.SetBytes(24 * int64(len(g)))
	for b.Loop() {
		Descend(p, g, 0.05, 0)
	}
}
