package linalg

import (
	"fmt"
	"math"
	"testing"
)

// TestMaxArg32 compares MaxArg32 with its scalar definition, bit for bit (NaN for NaN),
// over four window positions with ties, ±0, ±Inf and NaN, at lengths around the vector
// kernel's group of 8.
func TestMaxArg32(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 16, 17, 32, 100} {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			win := [][]float32{reluInputs(n, 1), reluInputs(n, 2), reluInputs(n, 1), reluInputs(n, 3)}
			if n > 3 {
				win[1][3] = float32(math.NaN())
				win[0][1], win[2][1] = float32(math.Copysign(0, -1)), 0
			}
			y, arg := make([]float32, n+1), make([]int32, n+1)
			wantY, wantArg := make([]float32, n), make([]int32, n)
			y[n], arg[n] = 7, 7
			copy(y, win[0])
			copy(wantY, win[0])
			for k, x := range win[1:] {
				base := int32(100 * (k + 1))
				MaxArg32(y, arg, x, base)
				for i, v := range x {
					if v > wantY[i] {
						wantArg[i] = base + int32(i)
					}
					wantY[i] = max(wantY[i], v)
				}
			}
			for i := range wantY {
				if math.Float32bits(y[i]) != math.Float32bits(wantY[i]) && !(y[i] != y[i] && wantY[i] != wantY[i]) || arg[i] != wantArg[i] {
					t.Fatalf("at %d: y %v arg %d, want %v %d", i, y[i], arg[i], wantY[i], wantArg[i])
				}
			}
			if y[n] != 7 || arg[n] != 7 {
				t.Fatalf("MaxArg32 wrote past len(x)")
			}
		})
	}
}
