package secagg

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
)

// packedLiteral is a small packed parameter set for tests: N = 2^11 (insecure, tests only),
// 12-bit values, three primes.
var packedLiteral = ParametersLiteral{LogN: 11, ValueBits: 12, Primes: 3, MaxContributors: 50}

// TestPackedRoundingUnbiased: the mean of many stochastic roundings of a value converges
// to the value (within 5 standard errors: the rounding of y is Bernoulli(frac(y)) on top
// of ⌊y⌋), and every rounding is within one step.
func TestPackedRoundingUnbiased(t *testing.T) {
	p := testParams(t, packedLiteral)
	pk := p.pack
	r := rand.NewChaCha8([32]byte{1})
	const draws = 200_000
	for _, x := range []float64{-1, -0.7311, -1e-4, 0, 0.25, 0.5 + pk.dataStep/3, 0.99999, 1} {
		buf := make([]uint64, draws)
		update := make([]float64, draws)
		for i := range update {
			update[i] = x
		}
		pk.quantise(buf, 0, update, 1, r, nil)
		sum := 0.0
		for _, q := range buf {
			v := float64(q)*pk.dataStep - pk.dataOffset
			if math.Abs(v-x) >= pk.dataStep {
				t.Fatalf("x = %g rounded to %g, more than one step %g away", x, v, pk.dataStep)
			}
			sum += v
		}
		mean := sum / draws
		y := (x + pk.dataOffset) / pk.dataStep
		frac := y - math.Floor(y)
		se := pk.dataStep * math.Sqrt(frac*(1-frac)/draws)
		if d := math.Abs(mean - x); d > 5*se+1e-12 {
			t.Errorf("x = %g: mean of %d roundings %.9g, off by %.3g > 5 standard errors (%.3g)", x, draws, mean, d, 5*se)
		}
	}
}

// TestPackedLayoutExtremes encodes coefficients at the extremes of the layout (every slot
// at the largest sum of MaxContributors values, or 0) with the largest decryption noise of
// either sign, and decodes them exactly; a coefficient past the top slot is refused.
func TestPackedLayoutExtremes(t *testing.T) {
	for _, lit := range []ParametersLiteral{
		packedLiteral,
		{LogN: 11, ValueBits: 1, Primes: 2, MaxContributors: 2},
		{LogN: 11, ValueBits: 24, Primes: 8, MaxContributors: 1 << 20},
		{LogN: 14, ValueBits: 11, Primes: 6, MaxContributors: 1000},
		{LogN: 11, ValueBits: 8, Primes: 3, MaxContributors: 50, NoiseVariance: 10_000},
	} {
		t.Run(fmt.Sprintf("b%d_primes%d_M%d_noise%d", lit.ValueBits, lit.Primes, lit.MaxContributors, lit.NoiseVariance), func(t *testing.T) {
			p := testParams(t, lit)
			pk, n, v := p.pack, p.N(), p.pack.perCoeff
			maxSum := uint64(lit.MaxContributors) * (pk.maxQ + 2*pk.noiseClamp)
			if maxSum >= 1<<pk.slotBits {
				t.Fatalf("the largest sum %d does not fit a %d-bit slot", maxSum, pk.slotBits)
			}
			vals := make([]uint64, n*v)
			for j := range n {
				for i := range v {
					switch j % 3 {
					case 0:
						vals[j*v+i] = maxSum
					case 1:
						vals[j*v+i] = uint64(j*7+i) % (maxSum + 1)
					}
				}
			}
			ringQ := p.he.RingQ()
			poly := ringQ.NewPoly()
			pk.encode(vals, poly, p.Moduli())
			// Add noise ±(2^(L−1) − 1), the largest the layout absorbs.
			noise := ringQ.NewPoly()
			e := new(big.Int).Lsh(big.NewInt(1), uint(pk.noiseBits-1))
			e.Sub(e, big.NewInt(1))
			coeffs := make([]*big.Int, n)
			for j := range coeffs {
				coeffs[j] = new(big.Int).Set(e)
				if j%2 == 1 {
					coeffs[j].Neg(e)
				}
			}
			ringQ.SetCoefficientsBigint(coeffs, noise)
			ringQ.Add(poly, noise, poly)
			got := make([]uint64, n*v)
			for j := range coeffs {
				coeffs[j] = new(big.Int)
			}
			if err := pk.decode(ringQ, poly, got, coeffs); err != nil {
				t.Fatal(err)
			}
			for i := range vals {
				if got[i] != vals[i] {
					t.Fatalf("slot %d decoded %d, want %d", i, got[i], vals[i])
				}
			}
			// A coefficient of 2^(L + V·s): beyond the top slot.
			over := new(big.Int).Lsh(big.NewInt(1), uint(pk.noiseBits+v*pk.slotBits))
			for j := range coeffs {
				coeffs[j].Set(over)
			}
			ringQ.SetCoefficientsBigint(coeffs, poly)
			if err := pk.decode(ringQ, poly, got, coeffs); err == nil {
				t.Errorf("a coefficient past the top slot decoded")
			}
		})
	}
}

// TestExtractBits checks extractBits against big.Int shifts, across word boundaries.
func TestExtractBits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := new(big.Int)
	for trial := 0; trial < 200; trial++ {
		b := make([]byte, 38) // 304 bits
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		x.SetBytes(b)
		off, n := r.IntN(320), uint(1+r.IntN(64))
		want := new(big.Int).Rsh(x, uint(off))
		want.And(want, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), n), big.NewInt(1)))
		if got := extractBits(x.Bits(), off, n); got != want.Uint64() {
			t.Fatalf("extractBits(off %d, n %d) = %x, want %x", off, n, got, want.Uint64())
		}
	}
}

// TestChoosePacking: the target (values in [−1, 1], 1000 clients, mean within
// 1e-4) gets the fewest value bits that meet it and an upload below raw float64 bytes,
// padding of the last ciphertext included when the dimension is given.
func TestChoosePacking(t *testing.T) {
	for _, tc := range []struct {
		lit        ParametersLiteral
		target     float64
		dim        int
		wantBits   int
		maxBytesPV float64 // of the upload of dim values, or asymptotically for dim 0
	}{
		{ParametersLiteral{MaxContributors: 1000}, 1e-4, 0, 11, 6.4},
		{ParametersLiteral{MaxContributors: 1000}, 1e-4, 1_000_000, 11, 7.4},
		{ParametersLiteral{MaxContributors: 100}, 1e-4, 0, 13, 8},
		{ParametersLiteral{MaxContributors: 1000, ClipBound: 0.1}, 1e-4, 0, 8, 8},
		{ParametersLiteral{LogN: 15, MaxContributors: 10000}, 1e-5, 0, 13, 8},
	} {
		t.Run(fmt.Sprintf("C%g_M%d_target%g_d%d", tc.lit.ClipBound, tc.lit.MaxContributors, tc.target, tc.dim), func(t *testing.T) {
			p, err := ChoosePacking(tc.lit, tc.target, tc.dim)
			if err != nil {
				t.Fatal(err)
			}
			lit := p.Literal()
			m := float64(lit.MaxContributors)
			errOf := func(step float64) float64 { return 6 * step / (2 * math.Sqrt(m)) }
			if lit.ValueBits != tc.wantBits {
				t.Errorf("ValueBits %d, want %d", lit.ValueBits, tc.wantBits)
			}
			if e := errOf(p.QuantisationStep()); e > tc.target {
				t.Errorf("6 std of the mean's error %.3g exceeds the target %g", e, tc.target)
			}
			if e := errOf(2 * lit.ClipBound / float64(uint64(1)<<(lit.ValueBits-1)-1)); e <= tc.target {
				t.Errorf("%d bits would do (error %.3g)", lit.ValueBits-1, e)
			}
			bpv := p.BytesPerValue()
			if tc.dim > 0 {
				bpv = float64(p.UpdateBytes(tc.dim, 0)) / float64(tc.dim)
			}
			if bpv > tc.maxBytesPV {
				t.Errorf("%.3f bytes per value, want at most %g", bpv, tc.maxBytesPV)
			}
			// No other prime count is smaller.
			for k := 2; k <= maxPrimes(lit.LogN, false); k++ {
				l := lit
				l.Primes, l.LogScale = k, 0
				if q, err := NewParameters(l); err == nil && uploadCost(q, tc.dim) < uploadCost(p, tc.dim)*(1-1e-12) {
					t.Errorf("%d primes cost %.0f, chosen %d cost %.0f", k, uploadCost(q, tc.dim), lit.Primes, uploadCost(p, tc.dim))
				}
			}
			t.Logf("%s: %.3f bytes per value (%.3f× float64), step %.3g", p.EncodingName(), bpv, bpv/8, p.QuantisationStep())
			// The chosen literal rebuilds the same parameters.
			again, err := NewParameters(lit)
			if err != nil || again.Digest() != p.Digest() {
				t.Errorf("NewParameters(Literal()) = %v, digest equal %v", err, err == nil && again.Digest() == p.Digest())
			}
		})
	}
	if _, err := ChoosePacking(ParametersLiteral{LogN: 12}, 1e-4, 0); err == nil {
		t.Errorf("LogN 12 (one 60-bit prime within the security bound) got a packing")
	}
	if _, err := ChoosePacking(ParametersLiteral{}, 0, 0); err == nil {
		t.Errorf("a zero target got a packing")
	}
	if _, err := ChoosePacking(ParametersLiteral{ClipBound: -1}, 1e-4, 0); err == nil || !strings.Contains(err.Error(), "ClipBound") {
		t.Errorf("a negative ClipBound: err = %v", err)
	}
}

// TestPackedForDimension: the default simulation's MLP (50,890 values, 16-bit values, up to
// 1000 clients) is smallest with 3 primes, where Primes 0 (asymptotic) takes 6.
func TestPackedForDimension(t *testing.T) {
	lit := ParametersLiteral{ClipBound: 50, ValueBits: 16}
	p, err := PackedForDimension(lit, 50_890)
	if err != nil {
		t.Fatal(err)
	}
	asym, err := NewParameters(lit)
	if err != nil {
		t.Fatal(err)
	}
	if p.Levels() != 3 || asym.Levels() != 6 || p.UpdateBytes(50_890, 0) >= asym.UpdateBytes(50_890, 0) {
		t.Errorf("for 50,890 values: %d primes (%d bytes), asymptotically %d (%d bytes); want 3 and 6, the first smaller",
			p.Levels(), p.UpdateBytes(50_890, 0), asym.Levels(), asym.UpdateBytes(50_890, 0))
	}
	if _, err := PackedForDimension(ParametersLiteral{}, 10); err == nil {
		t.Errorf("the float encoding got a packing")
	}
}

// TestPackedParametersRefused: bad packed literals are errors naming the field and the fix.
func TestPackedParametersRefused(t *testing.T) {
	for _, tc := range []struct {
		lit  ParametersLiteral
		want string
	}{
		{ParametersLiteral{ValueBits: 25, Primes: 3}, "ValueBits 25"},
		{ParametersLiteral{ValueBits: -1, Primes: 3}, "ValueBits -1"},
		{ParametersLiteral{Primes: 3}, "ValueBits 0"},
		{ParametersLiteral{ValueBits: 12, Primes: 1}, "Primes 1"},
		{ParametersLiteral{ValueBits: 12, Primes: 8}, "Primes 8"},
		{ParametersLiteral{LogN: 13, ValueBits: 12, Primes: 4}, "Primes 4"},
		{ParametersLiteral{ValueBits: 12, Primes: 3, LogQ: 50}, "LogQ 50"},
		{ParametersLiteral{ValueBits: 12, Primes: 3, LogScale: 45}, "LogScale 45"},
		{ParametersLiteral{ValueBits: 24, Primes: 2, MaxContributors: 1 << 30, FloodingSigma: 1 << 60}, "raise Primes"},
	} {
		_, err := NewParameters(tc.lit)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one naming %q", tc.lit, err, tc.want)
		}
	}
}

// TestEncodingsDoNotMix: an upload of one encoding is refused by an aggregate of the other
// with an error that names the encoding, and the float encoding's digest is what it was
// before the packed encoding existed (so member states of earlier versions still load).
func TestEncodingsDoNotMix(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 21)
	float := testParams(t, ParametersLiteral{LogN: 11})
	packed := testParams(t, packedLiteral)
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, packed, cfg, 1)
	enc, err := NewEncryptor(packed, f.pk, EncryptorConfig{ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	eu, err := enc.EncryptUpdate(1, []float64{0.5, -0.5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewAggregator(float, AggregatorConfig{Session: f.session, Round: 1, Dim: 2, Committee: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Add(eu); err == nil || !strings.Contains(err.Error(), "float encoding") {
		t.Errorf("packed upload into a float aggregate: err = %v", err)
	}
	if _, err := NewEncryptor(float, f.pk, EncryptorConfig{ClientID: "c"}); err == nil {
		t.Errorf("a packed key was accepted for the float encoding")
	}
	if float.Digest() == packed.Digest() {
		t.Errorf("the encodings share a digest")
	}
}

// TestPackedDiscreteNoise: with NoiseVariance every client adds a share of N_Z(0, σ_z²) to
// each value it packs, and the decrypted sum of n clients' updates carries their sum: for
// updates of −ClipBound (whose rounding is exact) the decoded noise of every coordinate is
// an integer number of steps, and over all coordinates it passes Pearson's χ² test of
// N_Z(0, n·σ_z²) (Kairouz et al. 2021: within τ ≈ 1e-12 of the sum) at level 1e-6 and
// fails it against N_Z(0, n·σ_z² + n).
func TestPackedDiscreteNoise(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 22)
	const clients, variance = 8, 3
	p := testParams(t, ParametersLiteral{LogN: 11, ValueBits: 4, Primes: 3, MaxContributors: clients, NoiseVariance: variance})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 2)
	dim := p.NumChunks(1)*p.N()*p.ValuesPerCoefficient() - extraSlots // one chunk, full
	agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: dim, Committee: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	low := make([]float64, dim)
	for j := range low {
		low[j] = -1
	}
	for i := range clients {
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: fmt.Sprint("c", i), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		eu, err := enc.EncryptUpdate(1, low, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(eu); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.decrypt(t, agg, []MemberID{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != clients || res.TotalWeight != clients {
		t.Fatalf("count %d, total weight %g: the count and weight slots carry no noise", res.Count, res.TotalWeight)
	}
	counts := map[int64]int{}
	step := p.QuantisationStep()
	for j, v := range res.WeightedSum {
		z := (v + clients) / step
		r := math.Round(z)
		if math.Abs(z-r) > 1e-6 {
			t.Fatalf("coordinate %d decoded %g, not a whole number of steps from −%d", j, v, clients)
		}
		counts[int64(r)]++
	}
	total := float64(clients * variance)
	pearson := func(v float64) (stat float64, dof int) {
		pmf := func(x int64) float64 { return math.Exp(-float64(x*x) / (2 * v)) }
		z := 0.0
		for x := int64(-400); x <= 400; x++ {
			z += pmf(x)
		}
		var outside, pOut float64
		for x := int64(-400); x <= 400; x++ {
			e := float64(dim) * pmf(x) / z
			if e < 5 {
				outside += float64(counts[x])
				pOut += pmf(x) / z
				continue
			}
			d := float64(counts[x]) - e
			stat += d * d / e
			dof++
		}
		d := outside - float64(dim)*pOut
		return stat + d*d/(float64(dim)*pOut), dof
	}
	critical := func(dof int) float64 { // χ² upper 1e-6 quantile (Wilson–Hilferty)
		k := float64(dof)
		return k * math.Pow(1-2/(9*k)+4.753*math.Sqrt(2/(9*k)), 3)
	}
	if stat, dof := pearson(total); stat > critical(dof) {
		t.Errorf("the decrypted noise of %d shares: χ² = %.1f with %d degrees of freedom exceeds %.1f", clients, stat, dof, critical(dof))
	} else {
		t.Logf("%d coordinates of the sum of %d shares of N_Z(0, %d): χ² = %.1f (%d degrees of freedom)", dim, clients, variance, stat, dof)
	}
	if stat, dof := pearson(total + clients); stat <= critical(dof) {
		t.Errorf("against variance %g: χ² = %.1f ≤ %.1f, the test cannot tell them apart", total+clients, stat, critical(dof))
	}
	if _, err := NewParameters(ParametersLiteral{NoiseVariance: 3}); err == nil {
		t.Errorf("NoiseVariance without the packed encoding accepted")
	}
}

// TestPackedPrimesChosen: Primes 0 takes the count with the fewest bytes per value, which
// Literal reports, so the literal rebuilds the same parameters (as a client does from the
// server's task).
func TestPackedPrimesChosen(t *testing.T) {
	p, err := NewParameters(ParametersLiteral{ValueBits: 11})
	if err != nil {
		t.Fatal(err)
	}
	lit := p.Literal()
	if lit.Primes != 6 || p.BytesPerValue() != 6.4 {
		t.Errorf("chose %d primes, %.3f bytes per value; want 6 and 6.4 (doc.go's table)", lit.Primes, p.BytesPerValue())
	}
	again, err := NewParameters(lit)
	if err != nil || again.Digest() != p.Digest() {
		t.Errorf("the reported literal rebuilds other parameters (%v)", err)
	}
	if _, err := NewParameters(ParametersLiteral{LogN: 12, ValueBits: 11}); err == nil || !strings.Contains(err.Error(), "raise LogN") {
		t.Errorf("LogN 12 (one prime within the security bound): err = %v", err)
	}
}

// TestPackedTradeOffTable pins every row of doc.go's trade-off table (LogN 14, σ = 2^30,
// values in [−1, 1]): the primes with the fewest bytes per value, the slot bits, the
// values per coefficient, the bytes per value and their ratio to raw float64, the ratio of
// an upload of 10^6 values with the primes PackedForDimension picks, the step δ and six
// standard deviations of the rounding error of the mean of M updates, each to the digits
// printed; the float encoding's row and the default (DefaultValueBits) are in it.
func TestPackedTradeOffTable(t *testing.T) {
	const dim = 1_000_000
	for _, row := range []struct {
		bits, clients, primes, slotBits, perCoeff int
		bytesPerValue, ratio, ratioAtDim          float64
		step, meanError                           float64
	}{
		{8, 1000, 7, 18, 20, 5.60, 0.70, 0.79, 7.8e-3, 7.4e-4},
		{11, 100, 7, 18, 20, 5.60, 0.70, 0.79, 9.8e-4, 2.9e-4},
		{11, 1000, 6, 21, 15, 6.40, 0.80, 0.92, 9.8e-4, 9.3e-5},
		{11, 10000, 7, 25, 15, 7.47, 0.93, 1.15, 9.8e-4, 2.9e-5},
		{12, 1000, 7, 22, 17, 6.59, 0.82, 0.92, 4.9e-4, 4.6e-5},
		{13, 1000, 7, 23, 16, 7.00, 0.88, 0.92, 2.4e-4, 2.3e-5},
		{14, 100, 6, 21, 15, 6.40, 0.80, 0.92, 1.2e-4, 3.7e-5},
		{DefaultValueBits, 1000, 6, 24, 13, 7.38, 0.92, 0.98, 1.2e-4, 1.2e-5},
		{14, 10000, 7, 28, 13, 8.62, 1.08, 1.15, 1.2e-4, 3.7e-6},
		{16, 1000, 6, 26, 12, 8.00, 1.00, 1.15, 3.1e-5, 2.9e-6},
		{16, 10000, 7, 30, 12, 9.33, 1.17, 1.31, 3.1e-5, 9.2e-7},
	} {
		t.Run(fmt.Sprintf("b%d_M%d", row.bits, row.clients), func(t *testing.T) {
			lit := ParametersLiteral{ValueBits: row.bits, MaxContributors: row.clients}
			p, err := NewParameters(lit)
			if err != nil {
				t.Fatal(err)
			}
			atDim, err := PackedForDimension(lit, dim)
			if err != nil {
				t.Fatal(err)
			}
			digits := func(x float64, d int) float64 { // x to d significant digits
				if x == 0 {
					return 0
				}
				s := math.Pow(10, float64(d)-math.Ceil(math.Log10(math.Abs(x))))
				return math.Round(x*s) / s
			}
			got := []float64{float64(p.Levels()), float64(p.pack.slotBits), float64(p.ValuesPerCoefficient()),
				math.Round(p.BytesPerValue()*100) / 100, math.Round(p.BytesPerValue()/8*100) / 100,
				math.Round(float64(atDim.UpdateBytes(dim, 0))/(8*dim)*100) / 100,
				digits(p.QuantisationStep(), 2), digits(6*p.QuantisationStep()/(2*math.Sqrt(float64(row.clients))), 2)}
			want := []float64{float64(row.primes), float64(row.slotBits), float64(row.perCoeff), row.bytesPerValue, row.ratio, row.ratioAtDim, row.step, row.meanError}
			if !slices.Equal(got, want) {
				t.Errorf("primes, slot bits, values/coeff, bytes/value, ×float64, ×float64 at d = 10^6, step, error of mean = %v, want %v", got, want)
			}
		})
	}
	f, err := NewParameters(ParametersLiteral{})
	if err != nil {
		t.Fatal(err)
	}
	// Its error: six standard deviations of the flooding noise at t = 6, over M = 1000.
	meanError := 6 * f.ErrorStd(6) / 1000
	if r := math.Round(float64(f.UpdateBytes(dim, 0))/(8*dim)*100) / 100; f.BytesPerValue() != 16 || r != 2.03 || math.Abs(meanError-4.5e-7) > 0.05e-7 {
		t.Errorf("float encoding: %g bytes per value, %g× raw float64 at d = 10^6, error of the mean %.2g; want 16, 2.03 and 4.5e-7", f.BytesPerValue(), r, meanError)
	}
}
