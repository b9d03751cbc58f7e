package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convertInputs returns n float64 values: random magnitudes across float32's range and
// beyond, and the special values (±0, ±Inf, NaN, float32 overflow and underflow, halfway
// cases between float32 neighbours) at the start, so every length sees some.
func convertInputs(n int) []float64 {
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 1e300, -1e300, 1e-300,
		math.SmallestNonzeroFloat32 / 2, float64(math.MaxFloat32) * 1.0000001, 1 + 1.0/(1<<24), 1 + 3.0/(1<<24)}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n)
	for i := range x {
		if i < len(special) {
			x[i] = special[i]
			continue
		}
		x[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(80)-40))
	}
	return x
}

func sameFloat(a, b float64) bool {
	return a == b && math.Signbit(a) == math.Signbit(b) || a != a && b != b
}

// TestNarrow compares Narrow with Go's conversion, value by value, at lengths around the
// vector kernel's group of 16.
// convertLengths are the lengths TestNarrow and TestDrain check, on two workers: the long
// ones (MinParallelFor values and more) are split across them, in ranges of whole vector
// groups, with a tail.
var convertLengths = []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, MinParallelFor, 3*MinParallelFor + 17}

// setWorkers sets Workers to n and returns what restores it.
func setWorkers(n int) (restore func()) {
	old := Workers
	Workers = n
	return func() { Workers = old }
}

func TestNarrow(t *testing.T) {
	defer setWorkers(2)()
	for _, n := range convertLengths {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			src := convertInputs(n)
			dst := make([]float32, n+1)
			dst[n] = 7
			Narrow(dst, src)
			for i, v := range src {
				if want := float32(v); !sameFloat(float64(dst[i]), float64(want)) {
					t.Fatalf("Narrow(%v) = %v at %d, want %v", v, dst[i], i, want)
				}
			}
			if dst[n] != 7 {
				t.Fatalf("Narrow wrote past len(src)")
			}
		})
	}
}

// TestDrain compares Drain with dst[i] += float64(src[i]), value by value, and checks it
// zeroes src.
func TestDrain(t *testing.T) {
	defer setWorkers(2)()
	for _, n := range convertLengths {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			x := convertInputs(n)
			src := make([]float32, n)
			Narrow(src, x)
			dst, want := make([]float64, n+1), make([]float64, n)
			for i := range want {
				dst[i] = x[(i+5)%n] / 3
				want[i] = dst[i] + float64(src[i])
			}
			dst[n] = 7
			Drain(dst, src)
			for i := range want {
				if !sameFloat(dst[i], want[i]) {
					t.Fatalf("Drain at %d = %v, want %v", i, dst[i], want[i])
				}
				if math.Float32bits(src[i]) != 0 {
					t.Fatalf("Drain left src[%d] = %v", i, src[i])
				}
			}
			if dst[n] != 7 {
				t.Fatalf("Drain wrote past len(src)")
			}
		})
	}
}

// BenchmarkNarrow and BenchmarkDrain convert the reference MLP's 235,146 parameters.
func BenchmarkNarrow(b *testing.B) {
	src, dst := convertInputs(235146), make([]float32, 235146)
	b.SetBytes(12 * int64(len(src)))
	for b.Loop() {
		Narrow(dst, src)
	}
}

func BenchmarkDrain(b *testing.B) {
	dst, src := make([]float64, 235146), make([]float32, 235146)
	b.SetBytes(20 * int64(len(src)))
	for b.Loop() {
		Drain(dst, src)
	}
}
