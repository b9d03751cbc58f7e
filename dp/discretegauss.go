package dp

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Discrete Gaussian noise for integer-encoded updates (secure aggregation's packed
// encoding): N_Z(0, σ²), the distribution on the integers with P[x] ∝ exp(−x²/(2σ²)).
// Kairouz, Liu and Steinke 2021 ("The Distributed Discrete Gaussian Mechanism for
// Federated Learning with Secure Aggregation") have every client add an independent
// N_Z(0, σ²) to its integer vector; the sum of n such shares is close to N_Z(0, nσ²), and
// accountant.DistributedDiscreteGaussianRDP accounts for the difference exactly (τ).
//
// Sampling is exact: Canonne, Kamath and Steinke 2020 ("The Discrete Gaussian for
// Differential Privacy", Algorithms 1–3) by rejection from a discrete Laplace, with
// Bernoulli(exp(−γ)) drawn from uniform integers only (no floating point anywhere), so the
// output has exactly the discrete Gaussian's law given uniform input bits, unlike a
// rounded floating-point Gaussian (Mironov 2012). The variance σ² is an integer; a caller
// with a real σ² rounds it up (more noise than accounted, never less).

// MaxDiscreteGaussianVariance bounds σ²: the sampler's integers (|y|·t, (|y|·t − σ²)² and
// 2σ²t²) then fit 128 bits.
const MaxDiscreteGaussianVariance = 1 << 40

// DiscreteGaussian samples N_Z(0, σ²) for an integer σ². The zero value is not usable;
// make one with NewDiscreteGaussian. It holds no state and may be shared.
type DiscreteGaussian struct {
	s uint64 // σ²
	t uint64 // ⌊σ⌋ + 1: the scale of the discrete Laplace proposal (CKS 2020, Algorithm 3)
}

// NewDiscreteGaussian returns the sampler of N_Z(0, variance), 1 ≤ variance ≤
// MaxDiscreteGaussianVariance.
func NewDiscreteGaussian(variance uint64) (DiscreteGaussian, error) {
	if variance < 1 || variance > MaxDiscreteGaussianVariance {
		return DiscreteGaussian{}, fmt.Errorf("dp: discrete Gaussian variance %d: must be an integer in 1…2^40 (round a real σ² up)", variance)
	}
	sigma := isqrt(variance) // ⌊σ⌋
	return DiscreteGaussian{s: variance, t: sigma + 1}, nil
}

// Variance returns σ², the parameter (the distribution's variance is slightly below it).
func (g DiscreteGaussian) Variance() uint64 { return g.s }

// Sample draws one value using src's uniform 64-bit words (production: SecureRand).
// CKS 2020, Algorithm 3: draw Y from the discrete Laplace of scale t = ⌊σ⌋+1 and keep it
// with probability exp(−(|Y| − σ²/t)²/(2σ²)) = exp(−(|Y|·t − σ²)²/(2σ²t²)).
func (g DiscreteGaussian) Sample(src rand.Source) int64 {
	den := mul128(2*g.s, g.t*g.t) // 2σ²t² < 2^82
	for {
		y := discreteLaplace(g.t, src)
		a := uint64(y)
		if y < 0 {
			a = uint64(-y)
		}
		if a > 1<<40 {
			// Kept with probability below exp(−2^38): rejecting changes the law by less.
			continue
		}
		at := a * g.t // < 2^61
		d := at - g.s
		if at < g.s {
			d = g.s - at
		}
		if bernoulliExp(mul128(d, d), den, src) {
			return y
		}
	}
}

// AddTo adds an independent draw to every element of dst.
func (g DiscreteGaussian) AddTo(dst []int64, src rand.Source) {
	for i := range dst {
		dst[i] += g.Sample(src)
	}
}

// discreteLaplace draws from P[x] ∝ exp(−|x|/t) on the integers (CKS 2020, Algorithm 2
// with s = 1): U uniform in [0, t) kept with probability exp(−U/t), plus t times a
// geometric V (P[V = v] ∝ e^−v), and a sign, rejecting −0 so 0 is not counted twice.
func discreteLaplace(t uint64, src rand.Source) int64 {
	one := u128{lo: 1}
	for {
		u := uniformBelow(u128{lo: t}, src).lo
		if !bernoulliExp(u128{lo: u}, u128{lo: t}, src) {
			continue
		}
		var v uint64
		for bernoulliExp(one, one, src) {
			v++
		}
		x := u + t*v
		neg := src.Uint64()&1 == 1
		if neg && x == 0 {
			continue
		}
		if neg {
			return -int64(x)
		}
		return int64(x)
	}
}

// bernoulliExp returns true with probability exp(−num/den), den > 0 (CKS 2020,
// Algorithm 1): for γ > 1 it needs ⌊γ⌋ successes of Bernoulli(exp(−1)) and then one of
// Bernoulli(exp(−frac γ)); for γ ≤ 1 it counts the successes of Bernoulli(γ/k), k = 1, 2,
// … up to the first failure and returns whether that K is odd.
func bernoulliExp(num, den u128, src rand.Source) bool {
	one := u128{lo: 1}
	for den.less(num) {
		if !bernoulliExpAtMost1(one, one, src) {
			return false
		}
		num = num.sub(den)
	}
	return bernoulliExpAtMost1(num, den, src)
}

// bernoulliExpAtMost1 is Algorithm 1 for γ = num/den ≤ 1.
func bernoulliExpAtMost1(num, den u128, src rand.Source) bool {
	k := uint64(1)
	for {
		bound, ok := den.mulSmall(k)
		// Bernoulli(γ/k): a uniform integer below den·k is below num. Past 128 bits the
		// probability is below 2^−46 of a term that already needed k successes; treat it
		// as the failure it almost surely is (k > 2^46 never happens).
		if !ok || !uniformBelow(bound, src).less(num) {
			break
		}
		k++
	}
	return k%2 == 1
}

// u128 is an unsigned 128-bit integer.
type u128 struct{ hi, lo uint64 }

func mul128(a, b uint64) u128 {
	hi, lo := bits.Mul64(a, b)
	return u128{hi, lo}
}

func (x u128) less(y u128) bool { return x.hi < y.hi || (x.hi == y.hi && x.lo < y.lo) }

func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

// mulSmall returns x·k and false if it overflows 128 bits.
func (x u128) mulSmall(k uint64) (u128, bool) {
	h1, lo := bits.Mul64(x.lo, k)
	h2, mid := bits.Mul64(x.hi, k)
	hi, carry := bits.Add64(mid, h1, 0)
	return u128{hi, lo}, h2 == 0 && carry == 0
}

func (x u128) bitLen() int {
	if x.hi != 0 {
		return 64 + bits.Len64(x.hi)
	}
	return bits.Len64(x.lo)
}

// uniformBelow draws uniformly from [0, m), m > 0, by rejection of masked words.
func uniformBelow(m u128, src rand.Source) u128 {
	n := m.bitLen()
	for {
		// A shift by 64 gives 0 in Go, so the masks are all ones at full width.
		var x u128
		if n <= 64 {
			x.lo = src.Uint64() & (uint64(1)<<n - 1)
		} else {
			x.lo = src.Uint64()
			x.hi = src.Uint64() & (uint64(1)<<(n-64) - 1)
		}
		if x.less(m) {
			return x
		}
	}
}

// isqrt returns ⌊√v⌋.
func isqrt(v uint64) uint64 {
	r := uint64(0)
	for b := uint64(1) << 31; b > 0; b >>= 1 {
		if c := r | b; c*c <= v {
			r = c
		}
	}
	return r
}
