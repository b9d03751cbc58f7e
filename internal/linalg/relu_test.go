package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// reluInputs returns n float32 values, half of them negative, with ±0, ±Inf and NaN at the
// start.
func reluInputs(n int, seed uint64) []float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	rng := rand.New(rand.NewPCG(seed, 4))
	x := make([]float32, n)
	for i := range x {
		if i < len(special) {
			x[i] = special[i]
			continue
		}
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestReLU32 compares ReLU32 and ReLUGrad32 with their scalar definitions, bit for bit
// (NaN for NaN), at lengths around the vector kernels' group of 16, in place and not.
func TestReLU32(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 17, 33, 100, 1000} {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			x := reluInputs(n, uint64(n))
			y := make([]float32, n+1)
			y[n] = 7
			ReLU32(y, x)
			for i, v := range x {
				if want := max(v, 0); math.Float32bits(y[i]) != math.Float32bits(want) && !(want != want && y[i] != y[i]) {
					t.Fatalf("ReLU32(%v) = %v at %d, want %v", v, y[i], i, want)
				}
			}
			if y[n] != 7 {
				t.Fatalf("ReLU32 wrote past len(src)")
			}
			inPlace := append([]float32(nil), x...)
			ReLU32(inPlace, inPlace)
			for i := range inPlace {
				if math.Float32bits(inPlace[i]) != math.Float32bits(y[i]) {
					t.Fatalf("ReLU32 in place at %d = %v, want %v", i, inPlace[i], y[i])
				}
			}
			dy := reluInputs(n, uint64(n)+100)
			dx := make([]float32, n+1)
			dx[n] = 7
			ReLUGrad32(dx, dy, y[:n])
			for i, v := range y[:n] {
				want := dy[i]
				if math.Float32bits(v) == 0 {
					want = 0
				}
				if math.Float32bits(dx[i]) != math.Float32bits(want) {
					t.Fatalf("ReLUGrad32 at %d (y %v, dy %v) = %v, want %v", i, v, dy[i], dx[i], want)
				}
			}
			if dx[n] != 7 {
				t.Fatalf("ReLUGrad32 wrote past len(y)")
			}
		})
	}
}

// BenchmarkReLU32 and BenchmarkReLUGrad32 run over a 64×256 activation.
func BenchmarkReLU32(b *testing.B) {
	x := reluInputs(64*256, 1)
	y := make([]float32, len(x))
	for b.Loop() {
		ReLU32(y, x)
	}
}

func BenchmarkReLUGrad32(b *testing.B) {
	y, dy := reluInputs(64*256, 1), reluInputs(64*256, 2)
	dx := make([]float32, len(y))
	for b.Loop() {
		ReLUGrad32(dx, dy, y)
	}
}
