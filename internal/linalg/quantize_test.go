package linalg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeRowsMatchesScalar checks QuantizeRows (with quantizeRowAVX2 where the CPU
// has AVX2) against the rule it documents, value by value: q = round half away from zero of
// x/s clamped to ±127, on random rows of every length up to 70 (vector body and tail), with
// ties (x/s = n + 0.5), signed zeros and clamped values planted, dynamic and static.
func TestQuantizeRowsMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	for k := 1; k <= 70; k++ {
		for _, static := range []float64{0, 0.01} {
			const m = 3
			kp := PaddedDepth(k)
			x := make([]float64, m*k)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			x[0] = 0.5 * 0.01 // a tie under the static scale
			x[k-1] = math.Copysign(0, -1)
			if k > 2 {
				x[1] = -2.5 * 0.01 // a negative tie
				x[2] = 5           // clamped under the static scale
			}
			dst, s := make([]int16, m*kp), make([]float64, m)
			for i := range dst {
				dst[i] = 99 // the padding must be zeroed
			}
			QuantizeRows(dst, s, x, m, k, kp, static)
			for i := range m {
				for p := range kp {
					want := int16(0)
					if p < k {
						r := math.Max(-127, math.Min(127, x[i*k+p]/s[i]))
						if s[i] == 0 {
							r = 0
						}
						want = int16(math.Round(r)) // Round: half away from zero
					}
					if got := dst[i*kp+p]; got != want && !(p < k && math.Abs(float64(got-want)) == 1 && isNearTie(x[i*k+p], s[i])) {
						t.Fatalf("k %d static %g row %d value %d (x %g, s %g): %d, want %d", k, static, i, p, x[i*k+p], s[i], got, want)
					}
				}
			}
		}
	}
}

// isNearTie says x/s is within rounding of n + 0.5: QuantizeRows multiplies by 1/s, the
// reference divides, and the two may land on either side of a tie.
func isNearTie(x, s float64) bool {
	r := math.Abs(x / s)
	return math.Abs(r-math.Floor(r)-0.5) < 1e-9
}
