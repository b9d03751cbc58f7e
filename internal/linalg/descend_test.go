package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDescend compares Descend with its scalar expression, DescendNarrow with Descend
// followed by Narrow, DescendDrain with clearing g, Drain and DescendNarrow, and
// DescendDrainNoise with DescendDrain's passes and adding std·z to g before DescendNarrow, bit for
// bit, at lengths around the vector kernels' group of 8, with and without weight decay,
// with infinities, NaN, −0 and values beyond float32's range.
func TestDescend(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1001} {
		for _, wd := range []float64{0, 1e-4} {
			for _, kernel := range []string{"Descend", "DescendNarrow", "DescendDrain", "DescendDrainNoise"} {
				t.Run(fmt.Sprintf("n%d/wd%g/%s", n, wd, kernel), func(t *testing.T) {
					testDescend(t, n, wd, kernel)
				})
			}
		}
	}
}

func testDescend(t *testing.T, n int, wd float64, kernel string) {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	const lr = 0.05
	p, g, low, src := make([]float64, n+1), make([]float64, n+1), make([]float32, n+1), make([]float32, n+1)
	z := make([]float64, n+1)
	const std = 0.37
	for i := range n {
		p[i], g[i] = rng.NormFloat64(), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(10)-5))
		src[i] = float32(g[i])
		z[i] = rng.NormFloat64()
	}
	z[n] = 7
	if n > 5 {
		p[1], g[2], p[3], src[4], src[5] = math.Inf(1), math.NaN(), 1e300, float32(math.NaN()), float32(math.Copysign(0, -1))
		p[5] = math.Copysign(0, -1) // with src[5] = −0 and no weight decay, the one value where Drain's +0 matters
	}
	p[n], g[n], low[n], src[n] = 7, 7, 7, 7
	want, wantG, wantLow := append([]float64(nil), p...), append([]float64(nil), g...), append([]float32(nil), low...)
	if kernel == "DescendDrain" || kernel == "DescendDrainNoise" {
		clear(wantG[:n])
		Drain(wantG[:n], append([]float32(nil), src[:n]...))
	}
	if kernel == "DescendDrainNoise" {
		Axpy(std, z[:n], wantG[:n])
	}
	for i, v := range wantG[:n] {
		want[i] -= lr * (v + wd*want[i])
		if kernel != "Descend" {
			wantLow[i] = float32(want[i])
		}
	}
	switch kernel {
	case "Descend":
		Descend(p, g[:n], lr, wd)
	case "DescendNarrow":
		DescendNarrow(p, g[:n], low, lr, wd)
	case "DescendDrainNoise":
		DescendDrainNoise(p, src[:n], z, std, low, lr, wd)
		g = wantG // not formed
		for i, v := range z {
			if i < n && v != 0 || i == n && v != 7 {
				t.Fatalf("z[%d] = %v after DescendDrainNoise: it zeroes z[:len(src)] only", i, v)
			}
		}
	case "DescendDrain":
		srcBefore := append([]float32(nil), src...)
		DescendDrain(p, src[:n], low, lr, wd)
		g = wantG // not formed
		for i, v := range src {
			if !sameFloat(float64(v), float64(srcBefore[i])) {
				t.Fatalf("src[%d] = %v, was %v: DescendDrain wrote it", i, v, srcBefore[i])
			}
		}
	}
	for i := range want {
		if !sameFloat(p[i], want[i]) || !sameFloat(g[i], wantG[i]) || !sameFloat(float64(low[i]), float64(wantLow[i])) {
			t.Fatalf("at %d: p, g, low = %v, %v, %v, want %v, %v, %v", i, p[i], g[i], low[i], want[i], wantG[i], wantLow[i])
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

// BenchmarkDescendDrain is BenchmarkDescendNarrow taking the gradients from float32 ones,
// against which clearing g, BenchmarkDrain and BenchmarkDescendNarrow are the three passes
// it replaces.
func BenchmarkDescendDrain(b *testing.B) {
	p, src, low := make([]float64, 235146), make([]float32, 235146), make([]float32, 235146)
	b.SetBytes(24 * int64(len(p)))
	for b.Loop() {
		DescendDrain(p, src, low, 0.05, 0)
	}
}

// BenchmarkDescendDrainNoise is BenchmarkDescendDrain adding DP-SGD's noise from a vector
// of draws (which it zeroes).
func BenchmarkDescendDrainNoise(b *testing.B) {
	const n = 235146
	p, src, z, low := make([]float64, n), make([]float32, n), make([]float64, n), make([]float32, n)
	b.SetBytes(40 * n) // p and z read and written, src read, low written
	for b.Loop() {
		DescendDrainNoise(p, src, z, 0.1, low, 0.05, 0)
	}
}
