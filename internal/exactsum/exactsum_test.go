package exactsum

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// The sum is the same bit for bit in every order, and equals the exactly rounded sum of
// the terms (computed with math/big) when no term is below 2^−FracBits.
func TestOrderIndependentAndExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, terms = 64, 300
	xs := make([][]float64, terms)
	ws := make([]float64, terms)
	for k := range xs {
		xs[k] = make([]float64, n)
		for i := range xs[k] {
			xs[k][i] = r.NormFloat64() * math.Pow(10, float64(r.IntN(12)-6))
		}
		ws[k] = r.Float64() * 4
	}
	sum := func(order []int) []float64 {
		v := New(n)
		for _, k := range order {
			if err := v.AddScaled(ws[k], xs[k]); err != nil {
				t.Fatal(err)
			}
		}
		return v.Float64s()
	}
	order := make([]int, terms)
	for i := range order {
		order[i] = i
	}
	want := sum(order)
	for range 5 {
		r.Shuffle(terms, func(i, j int) { order[i], order[j] = order[j], order[i] })
		if got := sum(order); !slices.Equal(got, want) {
			t.Fatalf("order changed the sum")
		}
	}
	// Against big.Float with ample precision.
	for i := range n {
		acc := new(big.Float).SetPrec(2000)
		for k := range xs {
			acc.Add(acc, new(big.Float).SetFloat64(ws[k]*xs[k][i]))
		}
		exact, _ := acc.Float64()
		if want[i] != exact {
			t.Fatalf("value %d: %v, exact %v", i, want[i], exact)
		}
	}
	// A naive float64 sum differs in some positions in some orders: the point of it.
}

func TestEdgeValues(t *testing.T) {
	v := New(4)
	x := []float64{math.SmallestNonzeroFloat64, math.Copysign(0, -1), 1 << 59, -3 * math.Pow(2, -100)}
	if err := v.AddScaled(1, x); err != nil {
		t.Fatal(err)
	}
	if err := v.AddScaled(1, x); err != nil {
		t.Fatal(err)
	}
	got := v.Float64s()
	want := []float64{0, 0, 1 << 60, -6 * math.Pow(2, -100)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), 1 << 60, -(1 << 61)} {
		if err := v.AddScaled(1, []float64{0, 0, bad, 0}); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
	if err := v.AddScaled(1, []float64{1}); err == nil {
		t.Fatal("wrong length accepted")
	}
	if got2 := v.Float64s(); !slices.Equal(got2, want) || v.Terms() != 2 {
		t.Fatalf("a refused vector changed the sum: %v", got2)
	}
	// Cancellation to exactly zero, and a negative total.
	u := New(1)
	_ = u.AddScaled(1, []float64{0.1})
	_ = u.AddScaled(-1, []float64{0.1})
	_ = u.AddScaled(1, []float64{-2.5})
	o := New(1)
	_ = o.AddScaled(2, []float64{0.25})
	if err := u.Add(o); err != nil {
		t.Fatal(err)
	}
	if got := u.Float64s()[0]; got != -2 || u.Terms() != 4 {
		t.Fatalf("got %v (%d terms), want -2 (4)", got, u.Terms())
	}
}

func BenchmarkAddScaled(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, 50890)
	for i := range x {
		x[i] = r.NormFloat64() * 1e-2
	}
	v := New(len(x))
	b.SetBytes(int64(8 * len(x)))
	for b.Loop() {
		_ = v.AddScaled(0.7, x)
	}
}
