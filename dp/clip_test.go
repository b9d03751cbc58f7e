package dp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestL2NormScales(t *testing.T) {
	cases := []struct {
		v    []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3, 4}, 5},
		{[]float64{1e200, 1e200}, math.Sqrt2 * 1e200},
		{[]float64{1e-200, -1e-200}, math.Sqrt2 * 1e-200},
		{[]float64{0, -2, 0}, 2},
		{[]float64{1, math.Inf(-1)}, math.Inf(1)},
	}
	for _, tc := range cases {
		if got := L2Norm(tc.v); math.Abs(got-tc.want) > 1e-15*tc.want && got != tc.want {
			t.Errorf("L2Norm(%v) = %v, want %v", tc.v, got, tc.want)
		}
	}
	if !math.IsNaN(L2Norm([]float64{1, math.NaN()})) {
		t.Error("L2Norm with NaN must be NaN")
	}
}

func TestClipFactor(t *testing.T) {
	cases := []struct{ norm, c, want float64 }{
		{0, 1, 1}, {0.5, 1, 1}, {1, 1, 1}, {4, 1, 0.25}, {math.NaN(), 1, 0}, {math.Inf(1), 1, 0}, {3, 0, 0},
	}
	for _, tc := range cases {
		if got := ClipFactor(tc.norm, tc.c); got != tc.want {
			t.Errorf("ClipFactor(%v, %v) = %v, want %v", tc.norm, tc.c, got, tc.want)
		}
	}
}

func TestClipL2BoundsEveryContribution(t *testing.T) {
	// Random examples at scales from 1e-300 to 1e300, plus broken ones: after clipping to C
	// every example has norm ≤ C, keeps its direction, and examples already within C are
	// untouched; so adding or removing any one example moves the sum by at most C.
	rng := rand.New(rand.NewPCG(1, 2))
	const c = 1.7
	var examples [][]float64
	for _, scale := range []float64{1e-300, 1e-3, 0.3, 1, 1.7, 10, 1e6, 1e300} {
		for k := 0; k < 20; k++ {
			v := make([]float64, 1+rng.IntN(64))
			for i := range v {
				v[i] = scale * rng.NormFloat64()
			}
			examples = append(examples, v)
		}
	}
	examples = append(examples, []float64{math.NaN(), 1}, []float64{math.Inf(1), 0}, []float64{0, 0})
	sum := make([]float64, 64)
	clipped := make([][]float64, len(examples))
	for k, v := range examples {
		name := fmt.Sprintf("example %d", k)
		orig := append([]float64(nil), v...)
		norm := L2Norm(orig)
		scale := ClipL2(v, c)
		after := L2Norm(v)
		if after > c*(1+1e-15) {
			t.Errorf("%s: norm %v after clipping to %v", name, after, c)
		}
		switch {
		case math.IsNaN(norm) || math.IsInf(norm, 0):
			if scale != 0 || after != 0 {
				t.Errorf("%s: non-finite example must be zeroed, got scale %v norm %v", name, scale, after)
			}
		case norm <= c:
			if scale != 1 {
				t.Errorf("%s: norm %v within C changed (scale %v)", name, norm, scale)
			}
		default:
			for i := range v {
				if v[i] != orig[i]*scale {
					t.Errorf("%s: element %d is %v, want %v·%v", name, i, v[i], orig[i], scale)
				}
			}
		}
		clipped[k] = v
		for i, x := range v {
			sum[i] += x
		}
	}
	for k, v := range clipped {
		without := append([]float64(nil), sum...)
		for i, x := range v {
			without[i] -= x
		}
		diff := make([]float64, len(sum))
		for i := range sum {
			diff[i] = sum[i] - without[i]
		}
		if d := L2Norm(diff); d > c*(1+1e-9) {
			t.Errorf("removing example %d moves the clipped sum by %v > C = %v", k, d, c)
		}
	}
}

func TestClipL2PanicsOnInvalidClipNorm(t *testing.T) {
	for _, c := range []float64{-1, math.NaN(), math.Inf(1)} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "clip norm") {
					t.Errorf("c = %v: want a panic naming the clip norm, got %v", c, r)
				}
			}()
			ClipL2([]float64{1}, c)
		}()
		if err := ValidateClipNorm(c); err == nil {
			t.Errorf("ValidateClipNorm(%v): want an error", c)
		}
	}
}

func BenchmarkClipL2(b *testing.B) {
	v := make([]float64, 100_000)
	for i := range v {
		v[i] = float64(i%7) - 3
	}
	b.SetBytes(8 * int64(len(v)))
	for i := 0; i < b.N; i++ {
		ClipL2(v, 1e9)
	}
}
