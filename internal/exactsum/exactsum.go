// Package exactsum adds float64 vectors exactly, so a sum does not depend on the order of
// its terms.
//
// Each value is held as a 192-bit two's-complement fixed-point number with FracBits
// fractional bits: a term is rounded once, to the nearest multiple of 2^−FracBits (far
// below float64's resolution at any magnitude a model update has), and the additions after
// that are integer additions, which are associative. The server sums plaintext client
// updates this way as they arrive, keeping one accumulator instead of every update, and a
// round's result is the same bit for bit whatever order the network delivered them in.
package exactsum

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
)

const (
	// FracBits is the number of fractional bits: terms are rounded to multiples of 2^−100.
	FracBits = 100
	// MaxTerm bounds the magnitude of one term (2^60); with the 192-bit accumulators, up
	// to 2^30 terms of that size add without overflow.
	MaxTerm = 1 << 60
	// MaxTerms is the number of terms a Vector accepts.
	MaxTerms = 1 << 30
)

// Vector is an exact running sum of n-vectors. The zero value is not usable; use New.
type Vector struct {
	limbs []uint64 // 3 per value: least significant first
	terms int
}

// New returns a zero sum of n-vectors.
func New(n int) *Vector { return &Vector{limbs: make([]uint64, 3*n)} }

// Len returns the vector length.
func (v *Vector) Len() int { return len(v.limbs) / 3 }

// AddScaled adds w·x (each product rounded to float64 first, as w*x[i] in Go). It refuses,
// leaving the sum unchanged, a vector of another length, a non-finite product or one of
// magnitude ≥ MaxTerm, and more than MaxTerms additions.
func (v *Vector) AddScaled(w float64, x []float64) error {
	if len(x) != v.Len() {
		return fmt.Errorf("exactsum: vector of %d values, the sum has %d", len(x), v.Len())
	}
	if v.terms >= MaxTerms {
		return fmt.Errorf("exactsum: more than %d terms", MaxTerms)
	}
	for i, xi := range x {
		if t := w * xi; !(math.Abs(t) < MaxTerm) {
			return fmt.Errorf("exactsum: value %d is %v (×%v): must be finite and below 2^60 in magnitude", i, xi, w)
		}
	}
	for i, xi := range x {
		v.add(i, w*xi)
	}
	v.terms++
	return nil
}

// add adds t (finite, |t| < MaxTerm) to value i.
func (v *Vector) add(i int, t float64) {
	if t == 0 {
		return
	}
	b := math.Float64bits(t)
	neg := b>>63 != 0
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0 {
		exp = 1 // subnormal
	} else {
		mant |= 1 << 52
	}
	// |t| = mant · 2^(exp−1075); in units of 2^−FracBits, shifted left by s.
	s := exp - 1075 + FracBits
	var l0, l1, l2 uint64
	switch {
	case s >= 128:
		l2 = mant << (s - 128)
	case s >= 64:
		l1 = mant << (s - 64)
		if s > 64 {
			l2 = mant >> (128 - s)
		}
	case s > 0:
		l0 = mant << s
		l1 = mant >> (64 - s)
	case s == 0:
		l0 = mant
	case s > -64:
		// Round to nearest, ties away from zero (a fixed rule per term: the sum stays
		// order-independent).
		l0 = mant >> -s
		if mant>>(-s-1)&1 != 0 {
			l0++
		}
	default:
		return // below 2^−FracBits/2 in magnitude: rounds to 0
	}
	a := v.limbs[3*i : 3*i+3 : 3*i+3]
	var c uint64
	if neg {
		a[0], c = bits.Sub64(a[0], l0, 0)
		a[1], c = bits.Sub64(a[1], l1, c)
		a[2], _ = bits.Sub64(a[2], l2, c)
		return
	}
	a[0], c = bits.Add64(a[0], l0, 0)
	a[1], c = bits.Add64(a[1], l1, c)
	a[2], _ = bits.Add64(a[2], l2, c)
}

// Add adds another sum of the same length.
func (v *Vector) Add(o *Vector) error {
	if o.Len() != v.Len() {
		return fmt.Errorf("exactsum: adding a sum of %d values to one of %d", o.Len(), v.Len())
	}
	if v.terms+o.terms > MaxTerms {
		return fmt.Errorf("exactsum: more than %d terms", MaxTerms)
	}
	for i := 0; i < len(v.limbs); i += 3 {
		var c uint64
		v.limbs[i], c = bits.Add64(v.limbs[i], o.limbs[i], 0)
		v.limbs[i+1], c = bits.Add64(v.limbs[i+1], o.limbs[i+1], c)
		v.limbs[i+2], _ = bits.Add64(v.limbs[i+2], o.limbs[i+2], c)
	}
	v.terms += o.terms
	return nil
}

// Terms returns the number of vectors added.
func (v *Vector) Terms() int { return v.terms }

// Float64s returns the sums, each rounded to the nearest float64.
func (v *Vector) Float64s() []float64 {
	out := make([]float64, v.Len())
	var n big.Int
	var f big.Float
	words := make([]big.Word, 3)
	for i := range out {
		a := v.limbs[3*i : 3*i+3]
		if a[0] == 0 && a[1] == 0 && a[2] == 0 {
			continue
		}
		neg := a[2]>>63 != 0
		l0, l1, l2 := a[0], a[1], a[2]
		if neg { // two's complement magnitude
			var c uint64
			l0, c = bits.Sub64(0, l0, 0)
			l1, c = bits.Sub64(0, l1, c)
			l2, _ = bits.Sub64(0, l2, c)
		}
		n.SetBits(limbWords(words, l0, l1, l2))
		f.SetPrec(53).SetMode(big.ToNearestEven)
		f.SetInt(&n)
		x, _ := f.SetMantExp(&f, -FracBits).Float64()
		if neg {
			x = -x
		}
		out[i] = x
	}
	return out
}

// limbWords writes the 192-bit magnitude as big.Words (64-bit words on 64-bit platforms,
// 32-bit ones elsewhere).
func limbWords(w []big.Word, l0, l1, l2 uint64) []big.Word {
	if bits.UintSize == 64 {
		w = w[:3]
		w[0], w[1], w[2] = big.Word(l0), big.Word(l1), big.Word(l2)
		return w
	}
	w = append(w[:0], big.Word(uint32(l0)), big.Word(l0>>32), big.Word(uint32(l1)), big.Word(l1>>32), big.Word(uint32(l2)), big.Word(l2>>32))
	return w
}
