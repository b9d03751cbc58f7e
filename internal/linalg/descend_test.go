package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDescend compares Descend with its scalar expression, and DescendNarrow with Descend
// followed by Narrow, bit for bit, at lengths around the vector kernel's group of 8, with
// and without weight decay, with infinities, NaN and values beyond float32's range.
func TestDescend(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1001} {
		for _, wd := range []float64{0, 1e-4} {
			for _, narrow := range []bool{false, true} {
				t.Run(fmt.Sprintf("n%d/wd%g/narrow%v", n, wd, narrow), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), 3))
					const lr = 0.05
					p, g, low := make([]float64, n+1), make([]float64, n), make([]float32, n+1)
					for i := range g {
						p[i], g[i] = rng.NormFloat64(), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(10)-5))
					}
					if n > 3 {
						p[1], g[2], p[3] = math.Inf(1), math.NaN(), 1e300
					}
					p[n], low[n] = 7, 7
					want, wantLow := append([]float64(nil), p[:n]...), make([]float32, n)
					for i, v := range g {
						want[i] -= lr * (v + wd*want[i])
						wantLow[i] = float32(want[i])
					}
					if narrow {
						DescendNarrow(p, g, low, lr, wd)
					} else {
						Descend(p, g, lr, wd)
						copy(low, wantLow) // not Descend's to check
					}
					for i := range want {
						if !sameFloat(p[i], want[i]) || !sameFloat(float64(low[i]), float64(wantLow[i])) {
							t.Fatalf("at %d: %v, %v, want %v, %v", i, p[i], low[i], want[i], wantLow[i])
						}
					}
					if p[n] != 7 || low[n] != 7 {
						t.Fatalf("wrote past len(g)")
					}
				})
			}
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

// BenchmarkDescendNarrow is BenchmarkDescend also refreshing a float32 copy, against which
// BenchmarkDescend plus BenchmarkNarrow is the cost of the two passes.
func BenchmarkDescendNarrow(b *testing.B) {
	p, g, low := make([]float64, 235146), make([]float64, 235146), make([]float32, 235146)
	b.SetBytes(28 * int64(len(g)))
	for b.Loop() {
		DescendNarrow(p, g, low, 0.05, 0)
	}
}
