package secagg

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/confide-fl/confide/dp"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// The packed integer encoding (ParametersLiteral.ValueBits = b > 0).
//
// Quantisation. A client maps every value of its vector to an integer in [0, 2^b − 1]: a
// weighted update value x = w·u_j ∈ [−W·C, W·C] to (x + W·C)/δ with δ = 2·W·C/(2^b − 1),
// its weight w ∈ (0, W] to w/δ_w with δ_w = W/(2^b − 1), and its count to 1. The real
// number is rounded stochastically (up with probability its fractional part), so the
// integer q satisfies E[q·δ] = x + W·C exactly and |q·δ − (x + W·C)| < δ: the rounding
// error is unbiased and bounded by one step, of variance at most δ²/4. The decoded sum of
// M updates is Σq·δ − M·W·C, so its error per coordinate is the sum of M independent
// rounding errors (std ≤ √M·δ/2, Parameters.SumErrorStd); nothing else (below).
//
// Packing. V integers share a ciphertext coefficient, value i of the coefficient at bit
// L + i·s:  c = Σ_{i<V} q_i·2^(L + i·s),  where
//   - s = b + ⌈log2 M⌉ bits per slot: the sum of M = MaxContributors integers below 2^b
//     stays below 2^s, so one slot's sum never carries into the next;
//   - L noise bits: decryption adds the members' flooding noise and the encryption noise
//     of the summed ciphertexts, e with |e| < 2^(L−1) (noiseBound: at most MaxCommitteeSize
//     shares of at most 6σ' each, lattigo's hard bound, plus 16 standard deviations of the
//     encryption noise), so round(c/2^L) recovers Σ c exactly: the flooding noise costs no
//     precision at all;
//   - V = ⌊(log2 Q − 2 − L)/s⌋ with Q the product of Primes 60-bit primes, so the largest
//     sum plus noise stays below Q/2 (coefficients decode centred).
//
// The coefficient is written in RNS (c mod q_l for each prime), encrypted by the same
// public-key encryption as the float encoding, and summed by the same additions. The
// server decodes by CRT over the primes (lattigo's Ring.PolyToBigintCentered), rounds away
// the noise and reads the V slots. Bytes per value: 16·Primes/V (2 polynomials of Primes
// 8-byte words per coefficient), falling towards 2·s/8 as primes are added; see doc.go's
// table.

// PackedStep is the packed encoding's quantisation step δ = 2·C·W/(2^b − 1): a weighted
// value in [−C·W, C·W] becomes an integer of b bits (b = ValueBits, C = ClipBound, W =
// MaxWeight). Distributed discrete noise is sized in these steps.
func PackedStep(clipBound, maxWeight float64, valueBits int) float64 {
	return 2 * clipBound * maxWeight / float64(uint64(1)<<valueBits-1)
}

// packing is the layout of a packed parameter set.
type packing struct {
	noise      dp.DiscreteGaussian // each client's noise share; zero without
	noiseClamp uint64              // B_z = ⌈14σ_z⌉: shares are redrawn beyond ±B_z (0 without)
	valueBits  int                 // b
	slotBits   int                 // s = b + ⌈log2 MaxContributors⌉
	perCoeff   int                 // V
	noiseBits  int                 // L
	maxQ       uint64              // 2^b − 1
	dataOffset float64             // W·C
	dataStep   float64             // δ
	weightStep float64             // δ_w
	pow        [][]uint64
}

// maxPackedValueBits bounds ValueBits: a slot (≤ 24 + 30 bits) fits a uint64 and the
// 128-bit accumulation of a coefficient's V products cannot overflow.
const maxPackedValueBits = 24

// packedPrimeBits is the size of every prime of the packed encoding's modulus.
const packedPrimeBits = 60

// securityLogQ is the largest log2 Q of 128-bit security for a ternary secret and error σ
// 3.2 at each LogN (the HomomorphicEncryption.org standard, as lattigo's example presets).
var securityLogQ = map[int]int{12: 109, 13: 218, 14: 438, 15: 881, 16: 1761}

// maxPrimes is the largest Primes the packed encoding accepts at logN.
func maxPrimes(logN int, insecure bool) int {
	if insecure && logN < 12 {
		return maxLevels
	}
	return min(securityLogQ[logN]/packedPrimeBits, maxLevels)
}

// newPackedParameters builds the packed encoding's parameters from a literal whose common
// fields are checked and defaulted; logScale is the literal's own LogScale (0, or the
// derived noise bits).
func newPackedParameters(lit ParametersLiteral, logScale int, insecure bool) (Parameters, error) {
	if lit.Primes == 0 && lit.ValueBits > 0 {
		return fewestBytesPrimes(lit, logScale, insecure)
	}
	if lit.ValueBits < 1 || lit.ValueBits > maxPackedValueBits {
		return Parameters{}, fieldError(FieldValueBits, lit.ValueBits, "%s %d out of range: use 1…%d bits per value for the packed encoding (ChoosePacking picks it from a target error), or leave %s and %s 0 for the float encoding", FieldValueBits, lit.ValueBits, maxPackedValueBits, FieldValueBits, FieldPrimes)
	}
	if mp := maxPrimes(lit.LogN, insecure); lit.Primes < 2 || lit.Primes > mp {
		return Parameters{}, fieldError(FieldPrimes, lit.Primes, "%s %d out of range: the packed encoding needs 2…%d primes of %d bits at %s %d (log2 Q at most %d for 128-bit security); raise %s for more", FieldPrimes, lit.Primes, mp, packedPrimeBits, FieldLogN, lit.LogN, securityLogQ[lit.LogN], FieldLogN)
	}
	if lit.LogQ != packedPrimeBits {
		return Parameters{}, fieldError(FieldLogQ, lit.LogQ, "%s %d: the packed encoding uses %d-bit primes (leave %s 0)", FieldLogQ, lit.LogQ, packedPrimeBits, FieldLogQ)
	}
	// The noise bits depend only on N, σ and M.
	noise := packedNoiseBound(1<<lit.LogN, lit.FloodingSigma, lit.MaxContributors)
	noiseBits := int(math.Floor(math.Log2(noise))) + 2 // |e| ≤ noise < 2^(L−1)
	if logScale != 0 && logScale != noiseBits {
		return Parameters{}, fieldError(FieldLogScale, logScale, "%s %d: the packed encoding derives it (%d noise bits here); leave %s 0", FieldLogScale, logScale, noiseBits, FieldLogScale)
	}
	lit.LogScale = noiseBits
	he, err := packedRing(lit.LogN, lit.Primes, noiseBits)
	if err != nil {
		return Parameters{}, fmt.Errorf("secagg: building the packed encoding's ring (LogN %d, %d primes): %w", lit.LogN, lit.Primes, err)
	}
	p := Parameters{lit: lit, he: he, moduli: he.Q()}
	if p.pack, err = newPacking(lit, p.moduli, noiseBits); err != nil {
		return Parameters{}, err
	}
	p.digest = p.computeDigest()
	return p, nil
}

// packedRings memoises the lattigo parameters of the packed encoding by (LogN, primes,
// noise bits): they are immutable, and building one (its NTT tables) takes about 10 ms at
// LogN 14 while the searches over primes (ChoosePacking, Primes 0) and over
// MaxContributors (MaxContributorsFor) build the same few again and again. At most
// 5 × 7 × a few noise-bit values exist.
var packedRings sync.Map // [3]int → hefloat.Parameters

func packedRing(logN, primes, noiseBits int) (hefloat.Parameters, error) {
	key := [3]int{logN, primes, noiseBits}
	if he, ok := packedRings.Load(key); ok {
		return he.(hefloat.Parameters), nil
	}
	logQ := make([]int, primes)
	for i := range logQ {
		logQ[i] = packedPrimeBits
	}
	he, err := hefloat.NewParametersFromLiteral(hefloat.ParametersLiteral{LogN: logN, LogQ: logQ, LogDefaultScale: noiseBits})
	if err != nil {
		return hefloat.Parameters{}, err
	}
	packedRings.Store(key, he)
	return he, nil
}

// fewestBytesPrimes builds lit with the number of primes (2 … the security bound) that
// gives the fewest bytes per value, the fewer primes on a tie: what Primes 0 means.
func fewestBytesPrimes(lit ParametersLiteral, logScale int, insecure bool) (Parameters, error) {
	lit.LogScale = logScale // the caller's, before the defaults
	return cheapestPrimes(lit, insecure, Parameters.BytesPerValue)
}

// cheapestPrimes builds lit (validated as NewParameters does) with each number of primes
// from 2 to the security bound and returns the parameters of the lowest cost, the fewer
// primes on a tie.
func cheapestPrimes(lit ParametersLiteral, insecure bool, cost func(Parameters) float64) (Parameters, error) {
	var best Parameters
	var firstErr error
	logN := lit.withDefaults().LogN // only for the bound: lit keeps its zero fields
	for k := 2; k <= maxPrimes(logN, insecure); k++ {
		lit.Primes = k
		p, err := newParameters(lit, insecure)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		if best.pack == nil || cost(p) < cost(best)*(1-1e-12) {
			best = p
		}
	}
	if best.pack == nil {
		if firstErr == nil {
			firstErr = fieldError(FieldLogN, logN, "%s %d allows at most %d primes of %d bits; the packed encoding needs 2 (raise %s)", FieldLogN, logN, maxPrimes(logN, insecure), packedPrimeBits, FieldLogN)
		}
		return Parameters{}, firstErr
	}
	return best, nil
}

// packedNoiseBound bounds |e| of a decrypted aggregate coefficient: up to MaxCommitteeSize
// decryption shares of flooding noise bounded by 6σ' each (lattigo's Gaussian sampler
// rejects larger draws), plus 16 standard deviations of the encryption noise of M summed
// public-key encryptions under a collective key of up to MaxCommitteeSize ternary secrets
// (per encryption u·e_pk + e1·s + e0: variance ≈ (4/3)·N·K·σ² + σ²).
func packedNoiseBound(n int, floodingSigma float64, contributors int) float64 {
	const sigmaFresh = 3.2 // rlwe.DefaultNoise
	flood := math.Sqrt(floodingSigma*floodingSigma + sigmaFresh*sigmaFresh)
	fresh := sigmaFresh * math.Sqrt((4.0/3*float64(n)*MaxCommitteeSize+1)*float64(contributors))
	return MaxCommitteeSize*(6*flood+1) + 16*fresh
}

// newPacking lays out the coefficients for the moduli.
func newPacking(lit ParametersLiteral, moduli []uint64, noiseBits int) (*packing, error) {
	q := big.NewInt(1)
	for _, qi := range moduli {
		q.Mul(q, new(big.Int).SetUint64(qi))
	}
	logQ := q.BitLen() - 1 // ⌊log2 Q⌋
	headroom := bits.Len(uint(lit.MaxContributors - 1))
	pk := &packing{valueBits: lit.ValueBits, slotBits: lit.ValueBits + headroom, noiseBits: noiseBits}
	if lit.NoiseVariance != 0 {
		g, err := dp.NewDiscreteGaussian(lit.NoiseVariance)
		if err != nil {
			return nil, fieldError(FieldNoiseVariance, lit.NoiseVariance, "%s %d: must be 1…2^40 (an integer number of squared quantisation steps)", FieldNoiseVariance, lit.NoiseVariance)
		}
		pk.noise = g
		pk.noiseClamp = uint64(math.Ceil(14 * math.Sqrt(float64(lit.NoiseVariance))))
		// A client's slot holds q + z + B_z ∈ [0, 2^b − 1 + 2·B_z]; M of them must fit.
		hi, lo := bits.Mul64(uint64(lit.MaxContributors), 1<<lit.ValueBits-1+2*pk.noiseClamp)
		if hi != 0 || bits.Len64(lo) > 60 {
			return nil, fieldError(FieldNoiseVariance, lit.NoiseVariance, "%s %d with %s %d needs slots of more than 60 bits; lower either", FieldNoiseVariance, lit.NoiseVariance, FieldMaxContributors, lit.MaxContributors)
		}
		pk.slotBits = bits.Len64(lo)
	}
	pk.perCoeff = (logQ - 2 - noiseBits) / pk.slotBits
	if pk.perCoeff < 1 {
		return nil, fieldError(FieldPrimes, lit.Primes, "packed encoding: a value of %s %d + %d bits of headroom for %s %d does not fit above the %d noise bits in %d primes (log2 Q = %d); raise %s or lower %s or %s", FieldValueBits, lit.ValueBits, pk.slotBits-lit.ValueBits, FieldMaxContributors, lit.MaxContributors, noiseBits, len(moduli), logQ, FieldPrimes, FieldValueBits, FieldMaxContributors)
	}
	pk.maxQ = 1<<lit.ValueBits - 1
	pk.dataOffset = lit.ClipBound * lit.MaxWeight
	pk.dataStep = PackedStep(lit.ClipBound, lit.MaxWeight, lit.ValueBits)
	pk.weightStep = lit.MaxWeight / float64(pk.maxQ)
	pk.pow = make([][]uint64, len(moduli))
	t := new(big.Int)
	for l, ql := range moduli {
		bq := new(big.Int).SetUint64(ql)
		pk.pow[l] = make([]uint64, pk.perCoeff)
		for i := range pk.pow[l] {
			t.Lsh(big.NewInt(1), uint(noiseBits+i*pk.slotBits))
			pk.pow[l][i] = t.Mod(t, bq).Uint64()
		}
	}
	return pk, nil
}

// numChunks is the number of ciphertexts of a dim-value update (the weight and count
// included), V values per coefficient, n coefficients per ciphertext.
func (pk *packing) numChunks(dim, n int) int {
	coeffs := (dim + extraSlots + pk.perCoeff - 1) / pk.perCoeff
	return (coeffs + n - 1) / n
}

// quantise fills dst with the integers of chunk k of (weight·update, weight, 1), rounded
// stochastically with draws from r; positions past the vector are 0. With discrete noise,
// every update value also gets z + B_z, z a share of N_Z(0, σ_z²) drawn from noise (|z| ≤
// B_z: redrawn beyond), so the slot stays non-negative.
func (pk *packing) quantise(dst []uint64, k int, update []float64, weight float64, r *rand.ChaCha8, noise rand.Source) {
	dim := len(update)
	lo := k * len(dst)
	for i := range dst {
		switch g := lo + i; {
		case g < dim:
			dst[i] = pk.round((weight*update[g]+pk.dataOffset)/pk.dataStep, r)
			if pk.noiseClamp != 0 {
				dst[i] += pk.noiseShare(noise)
			}
		case g == dim:
			dst[i] = pk.round(weight/pk.weightStep, r)
		case g == dim+1:
			dst[i] = 1
		default:
			dst[i] = 0
		}
	}
}

// noiseShare returns z + B_z for a discrete Gaussian share z with |z| ≤ B_z.
func (pk *packing) noiseShare(src rand.Source) uint64 {
	for {
		z := pk.noise.Sample(src)
		if a := uint64(max(z, -z)); a <= pk.noiseClamp {
			return uint64(int64(pk.noiseClamp) + z)
		}
	}
}

// round rounds y ∈ [0, 2^b − 1] stochastically: up with probability y − ⌊y⌋, so the
// result's mean is y. Values a rounding error of the float division puts outside the range
// are clamped to it.
func (pk *packing) round(y float64, r *rand.ChaCha8) uint64 {
	y = max(y, 0)
	f := math.Floor(y)
	q := uint64(f)
	if float64(r.Uint64()>>11)*0x1p-53 < y-f {
		q++
	}
	return min(q, pk.maxQ)
}

// encode writes the coefficients c_j = Σ_i vals[j·V+i]·2^(L+i·s) of one chunk into the
// coefficient-domain polynomial p, modulo each prime (RNS).
func (pk *packing) encode(vals []uint64, p ring.Poly, moduli []uint64) {
	v := pk.perCoeff
	for l, ql := range moduli {
		pow := pk.pow[l]
		cs := p.Coeffs[l]
		for j := range cs {
			// Σ of V products below 2^b·2^60: the high word stays below V·2^b < q_l.
			var hi, lo uint64
			for i, x := range vals[j*v : (j+1)*v] {
				h, l := bits.Mul64(x, pow[i])
				var c uint64
				lo, c = bits.Add64(lo, l, 0)
				hi += h + c
			}
			cs[j] = bits.Rem64(hi, lo, ql)
		}
	}
}

// decode reads the slot sums of one chunk from its decrypted, coefficient-domain
// polynomial p (all primes) into dst (N·V values). It fails if a coefficient is not a
// packed sum plus noise below the bound: the aggregate overflowed or a share was wrong.
func (pk *packing) decode(ringQ *ring.Ring, p ring.Poly, dst []uint64, coeffs []*big.Int) error {
	ringQ.PolyToBigintCentered(p, 1, coeffs)
	v, s := pk.perCoeff, uint(pk.slotBits)
	mask := uint64(1)<<s - 1
	half := new(big.Int).Lsh(big.NewInt(1), uint(pk.noiseBits-1))
	limit := v * pk.slotBits
	for j, c := range coeffs {
		c.Add(c, half)
		c.Rsh(c, uint(pk.noiseBits)) // floor((c + 2^(L−1)) / 2^L): the nearest integer
		if c.Sign() < 0 || c.BitLen() > limit {
			return fmt.Errorf("coefficient %d does not decode to %d packed sums (%d bits): the aggregate overflowed or a decryption share is wrong", j, v, c.BitLen())
		}
		words := c.Bits()
		for i := range v {
			dst[j*v+i] = extractBits(words, i*pk.slotBits, s) & mask
		}
	}
	return nil
}

// extractBits returns the n ≤ 64 bits of the little-endian word slice w starting at bit
// off (missing words are 0).
func extractBits(w []big.Word, off int, n uint) uint64 {
	const ws = bits.UintSize
	word := func(i int) uint64 {
		if i < len(w) {
			return uint64(w[i])
		}
		return 0
	}
	var out uint64
	for got := uint(0); got < n; {
		bit := off + int(got)
		i, sh := bit/ws, uint(bit%ws)
		chunk := word(i) >> sh
		take := min(uint(ws)-sh, n-got)
		if take < 64 {
			chunk &= 1<<take - 1
		}
		out |= chunk << got
		got += take
	}
	return out
}

// values turns the slot sums of a whole aggregate (in vector order) into the decoded
// Σw·u, Σw and the count.
func (pk *packing) values(sums []uint64, dim int) (weighted []float64, totalWeight float64, count uint64) {
	count = sums[dim+1]
	weighted = make([]float64, dim)
	off := float64(count) * pk.dataOffset
	shift := int64(count * pk.noiseClamp) // the clients' noise offsets B_z
	for j := range weighted {
		weighted[j] = float64(int64(sums[j])-shift)*pk.dataStep - off
	}
	return weighted, float64(sums[dim]) * pk.weightStep, count
}

// uploadCost is what ChoosePacking minimises: the bytes of an upload of dim values, or for
// dim 0 the bytes per value.
func uploadCost(p Parameters, dim int) float64 {
	if dim > 0 {
		return float64(p.UpdateBytes(dim, 0))
	}
	return p.BytesPerValue()
}

// ChoosePacking returns packed-encoding parameters for lit (its LogN, FloodingSigma,
// ClipBound, MaxWeight and MaxContributors; ValueBits, Primes and LogScale are chosen):
// the fewest bits per value whose rounding keeps six standard deviations of the error of
// the mean of MaxContributors updates, 6·δ/(2·√M), within targetMeanError (six: the
// largest over 10^8 coordinates), then the number of primes with the smallest upload of
// dim values (the last ciphertext's padding included; dim 0: the fewest bytes per value
// asymptotically), the fewer primes on a tie, within the 128-bit security bound of LogN.
// For fewer contributors the error of the mean grows as 1/√n (SumErrorStd).
func ChoosePacking(lit ParametersLiteral, targetMeanError float64, dim int) (Parameters, error) {
	if !(targetMeanError > 0) || math.IsInf(targetMeanError, 0) {
		return Parameters{}, fmt.Errorf("secagg: target error %g: must be a positive bound on the error of the mean update", targetMeanError)
	}
	lit.ValueBits, lit.Primes, lit.LogScale = 0, 0, 0
	lit = lit.withDefaults()
	lit.LogScale = 0
	m := float64(lit.MaxContributors)
	b := 1
	for ; b <= maxPackedValueBits; b++ {
		step := 2 * lit.ClipBound * lit.MaxWeight / float64(uint64(1)<<b-1)
		if 6*step/(2*math.Sqrt(m)) <= targetMeanError {
			break
		}
	}
	if b > maxPackedValueBits {
		return Parameters{}, fmt.Errorf("secagg: target error %g of the mean is below what %d-bit values reach with ClipBound %g, MaxWeight %g and MaxContributors %d; raise the target or use the float encoding", targetMeanError, maxPackedValueBits, lit.ClipBound, lit.MaxWeight, lit.MaxContributors)
	}
	lit.ValueBits = b
	return PackedForDimension(lit, dim)
}

// PackedForDimension returns the packed-encoding parameters of lit (ValueBits set; its
// Primes is ignored) with the number of primes that makes an upload of dim values smallest,
// the last ciphertext's padding included (dim 0: the fewest bytes per value), the fewer
// primes on a tie. For a small model the padding decides: at LogN 14 and 16-bit values,
// 50,890 values take 786 kB with 3 primes and 1.57 MB with the 6 that are best for large
// models.
func PackedForDimension(lit ParametersLiteral, dim int) (Parameters, error) {
	if lit.ValueBits == 0 {
		return Parameters{}, fieldError(FieldValueBits, 0, "%s 0: PackedForDimension needs the packed encoding's bits per value", FieldValueBits)
	}
	return cheapestPrimes(lit, false, func(p Parameters) float64 { return uploadCost(p, dim) })
}
