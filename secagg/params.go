package secagg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Defaults taken by the zero fields of a ParametersLiteral. They are the measured sweet spot
// of the lattigo notes: one 60-bit prime, Δ = 2^45 (so |sum| < 2^14 before wrap-around),
// flooding σ = 2^30 (predicted error std 7.5e-5 per coordinate at t = 6).
const (
	DefaultLogN            = 14
	DefaultLogQ            = 60
	DefaultLogScale        = 45
	DefaultFloodingSigma   = 1 << 30
	DefaultClipBound       = 1.0
	DefaultMaxWeight       = 1.0
	DefaultMaxContributors = 1000
	// DefaultValueBits is the packed encoding's bits per value that a federation's
	// configuration takes when it leaves the encoding unset (server.SecAggConfig); a
	// ParametersLiteral's zero ValueBits is still the float encoding. 14 bits keep the
	// rounding error of the mean of 1000 updates of values in [−1, 1] near 1e-5 (doc.go's
	// table) and an upload of 10^6 values at 0.98× the raw float64 bytes; fewer bits would
	// save no bytes on small models (one ciphertext of a few primes either way) and would
	// add rounding noise where updates are far smaller than their clip bound.
	DefaultValueBits = 14
)

// Limits enforced by NewParameters and CommitteeConfig.Validate.
const (
	// MinFloodingSigma is the smallest accepted flooding (smudging) noise. The noise must
	// hide the key-dependent noise of the aggregate (about √M·236 for M fresh encryptions,
	// i.e. 2^13 at M = 1000); 2^20 keeps at least 7 bits of margin, the default 2^30 about 17.
	MinFloodingSigma = 1 << 20
	// MaxCommitteeSize bounds K, the number of key holders.
	MaxCommitteeSize = 256
	// MaxDim bounds the length of an update vector.
	MaxDim = 1 << 31
	// overflowMarginBits is the safety margin of the overflow budget: the largest possible
	// |sum|·Δ plus noise must stay below Q/2 divided by 2^overflowMarginBits.
	overflowMarginBits = 2
)

// ParametersLiteral is the unchecked description of a secure-aggregation parameter set, as
// filled from a config file or flags. Zero fields take the Default… values above.
// NewParameters validates it.
type ParametersLiteral struct {
	// LogN is log2 of the ring degree N: each ciphertext carries N values (coefficient
	// encoding). 12…16; default 14.
	LogN int
	// LogQ is the bit size of the single ciphertext prime. 40…60; default 60.
	LogQ int
	// LogScale is log2 of the encoding scale Δ. Larger is more precise but leaves less room
	// for the sum (see the overflow budget). Default 45.
	LogScale int
	// FloodingSigma is the standard deviation of the flooding noise each committee member
	// adds to its decryption shares. ≥ MinFloodingSigma; default 2^30.
	FloodingSigma float64
	// ClipBound is the largest |u_j| a client may submit (clients clip before encrypting).
	// Default 1.
	ClipBound float64
	// MaxWeight is the largest aggregation weight a client may carry. Default 1 (normalise
	// weights, e.g. n_i / n_max, or keep them all 1 for a plain sum).
	MaxWeight float64
	// MaxContributors is the largest number of updates one aggregate may hold. Default 1000.
	MaxContributors int
	// ValueBits selects the packed integer encoding when non-zero (packing.go): every
	// value is clipped, scaled and stochastically rounded to an integer of ValueBits bits,
	// and several values share a coefficient of a Primes-prime modulus, with headroom for
	// the sum of MaxContributors updates and room below for the decryption noise, which
	// decoding removes exactly. 0, the default, is the float encoding: one value per
	// coefficient of the single LogQ-bit prime at scale 2^LogScale. ChoosePacking picks
	// ValueBits and Primes from ClipBound, MaxContributors and a target error. 1…24.
	ValueBits int
	// Primes is the number of 60-bit primes of the packed encoding's modulus, 2…7 at
	// LogN 14 (the 128-bit security bound on log2 Q: 438 bits at LogN 14, 218 at 13, 881
	// at 15). Only with ValueBits; 0 takes the count with the fewest bytes per value
	// (Literal reports it).
	Primes int
	// NoiseVariance, with the packed encoding, is the variance σ_z² (an integer, in squared
	// quantisation steps) of the discrete Gaussian N_Z(0, σ_z²) every client adds to each of
	// its update values after rounding: its share of the distributed discrete Gaussian of
	// user-level DP (Kairouz, Liu and Steinke 2021; dp.DiscreteGaussian, accounted by
	// accountant.DistributedDiscreteGaussianRDP). A share is redrawn beyond ±14σ_z
	// (probability below 10^−43 a draw), and the slots make room for it. 0: no noise.
	NoiseVariance uint64
}

// Parameters is a validated, immutable parameter set. It is safe to share between goroutines.
type Parameters struct {
	lit    ParametersLiteral
	he     hefloat.Parameters
	moduli []uint64
	pack   *packing // nil for the float encoding
	digest [32]byte
}

// NewParameters validates lit (after filling its zero fields with the defaults) and builds
// the CKKS parameters. Every error names the field at fault and how to fix it; the checks of
// the fields' ranges and of the overflow budget return FieldErrors.
func NewParameters(lit ParametersLiteral) (Parameters, error) {
	return newParameters(lit, false)
}

// newParameters allows tiny, insecure ring degrees when insecure is true; only tests use it,
// to keep fuzz corpora small.
func newParameters(lit ParametersLiteral, insecure bool) (Parameters, error) {
	packed := lit.ValueBits != 0 || lit.Primes != 0 || lit.NoiseVariance != 0
	logScale := lit.LogScale // the packed encoding derives it
	lit = lit.withDefaults()
	minLogN := 12
	if insecure {
		minLogN = 4
	}
	if lit.LogN < minLogN || lit.LogN > 16 {
		return Parameters{}, fieldError(FieldLogN, lit.LogN, "%s %d out of range: use %d…16 (ring degree 2^%s values per ciphertext; default %d)", FieldLogN, lit.LogN, minLogN, FieldLogN, DefaultLogN)
	}
	if lit.LogQ < 40 || lit.LogQ > 60 {
		return Parameters{}, fieldError(FieldLogQ, lit.LogQ, "%s %d out of range: use 40…60 (bits of the single ciphertext prime; default %d)", FieldLogQ, lit.LogQ, DefaultLogQ)
	}
	if lit.LogScale < 20 || lit.LogScale > lit.LogQ-4 {
		return Parameters{}, fieldError(FieldLogScale, lit.LogScale, "%s %d out of range: use 20…%s-4 = %d (log2 of the encoding scale; default %d)", FieldLogScale, lit.LogScale, FieldLogQ, lit.LogQ-4, DefaultLogScale)
	}
	if math.IsNaN(lit.FloodingSigma) || math.IsInf(lit.FloodingSigma, 0) || lit.FloodingSigma < MinFloodingSigma {
		return Parameters{}, fieldError(FieldFloodingSigma, lit.FloodingSigma, "%s %g too small: use at least 2^20 = %d so decryption shares hide the key-dependent noise (default 2^30)", FieldFloodingSigma, lit.FloodingSigma, MinFloodingSigma)
	}
	if !(lit.ClipBound > 0) || math.IsInf(lit.ClipBound, 0) {
		return Parameters{}, fieldError(FieldClipBound, lit.ClipBound, "%s %g: must be a positive finite bound on |u_j| (default %g)", FieldClipBound, lit.ClipBound, DefaultClipBound)
	}
	if !(lit.MaxWeight > 0) || math.IsInf(lit.MaxWeight, 0) {
		return Parameters{}, fieldError(FieldMaxWeight, lit.MaxWeight, "%s %g: must be a positive finite bound on client weights (default %g)", FieldMaxWeight, lit.MaxWeight, DefaultMaxWeight)
	}
	if lit.MaxContributors < 1 || lit.MaxContributors > 1<<30 {
		return Parameters{}, fieldError(FieldMaxContributors, lit.MaxContributors, "%s %d: must be 1…2^30 (default %d)", FieldMaxContributors, lit.MaxContributors, DefaultMaxContributors)
	}
	if packed {
		return newPackedParameters(lit, logScale, insecure)
	}
	he, err := hefloat.NewParametersFromLiteral(hefloat.ParametersLiteral{
		LogN:            lit.LogN,
		LogQ:            []int{lit.LogQ},
		LogDefaultScale: lit.LogScale,
	})
	if err != nil {
		return Parameters{}, fmt.Errorf("secagg: building CKKS parameters (LogN %d, LogQ %d, LogScale %d): %w", lit.LogN, lit.LogQ, lit.LogScale, err)
	}
	p := Parameters{lit: lit, he: he, moduli: he.Q()}
	if err := p.checkOverflowBudget(); err != nil {
		return Parameters{}, err
	}
	p.digest = p.computeDigest()
	return p, nil
}

func (lit ParametersLiteral) withDefaults() ParametersLiteral {
	if lit.LogN == 0 {
		lit.LogN = DefaultLogN
	}
	if lit.LogQ == 0 {
		lit.LogQ = DefaultLogQ
	}
	if lit.LogScale == 0 {
		lit.LogScale = DefaultLogScale
	}
	if lit.FloodingSigma == 0 {
		lit.FloodingSigma = DefaultFloodingSigma
	}
	if lit.ClipBound == 0 {
		lit.ClipBound = DefaultClipBound
	}
	if lit.MaxWeight == 0 {
		lit.MaxWeight = DefaultMaxWeight
	}
	if lit.MaxContributors == 0 {
		lit.MaxContributors = DefaultMaxContributors
	}
	return lit
}

// slotBound is the largest magnitude one client puts in any coefficient: w·u_j ≤ W·C in the
// data slots, w ≤ W in the weight slot and 1 in the count slot.
func (p Parameters) slotBound() float64 {
	return math.Max(math.Max(p.lit.ClipBound*p.lit.MaxWeight, p.lit.MaxWeight), 1)
}

// checkOverflowBudget refuses parameter sets whose largest possible sum could wrap around
// the modulus. A coefficient holds round(x·Δ) mod Q, centred, so the sum is decoded
// correctly while |Σx|·Δ + noise < Q/2 (the notes' rule logΔ + log2(max|sum|) + 1 ≤ logQ);
// we keep overflowMarginBits more.
func (p Parameters) checkOverflowBudget() error {
	q := float64(p.Modulus())
	maxSum := float64(p.lit.MaxContributors) * p.slotBound()
	noise := MaxCommitteeSize * 6 * p.floodingSigmaEffective()
	need := maxSum*math.Exp2(float64(p.lit.LogScale)) + noise
	limit := q / 2 / math.Exp2(overflowMarginBits)
	if need > limit {
		return fieldError(FieldMaxContributors, p.lit.MaxContributors, "overflow budget exceeded: %s %d × per-client bound %g (max of %s×%s, %s, 1) × 2^%s (2^%d) needs %.1f bits, but a %d-bit modulus allows %.1f (Q/2 with %d bits margin); lower %s, %s, %s or %s (each bit of %s costs a bit of precision)",
			FieldMaxContributors, p.lit.MaxContributors, p.slotBound(), FieldClipBound, FieldMaxWeight, FieldMaxWeight, FieldLogScale, p.lit.LogScale, math.Log2(need), p.lit.LogQ, math.Log2(limit), overflowMarginBits,
			FieldMaxContributors, FieldClipBound, FieldMaxWeight, FieldLogScale, FieldLogScale)
	}
	return nil
}

// floodingSigmaEffective is the standard deviation lattigo's key-switch protocol uses for a
// share: the flooding noise combined with the fresh secret-key noise.
func (p Parameters) floodingSigmaEffective() float64 {
	f := p.he.NoiseFreshSK()
	return math.Sqrt(p.lit.FloodingSigma*p.lit.FloodingSigma + f*f)
}

func (p Parameters) computeDigest() [32]byte {
	h := sha256.New()
	h.Write([]byte("confide-secagg-v1 parameters\x00"))
	var b [8]byte
	for _, v := range []uint64{
		uint64(p.lit.LogN), uint64(p.lit.LogQ), uint64(p.lit.LogScale),
		math.Float64bits(p.lit.FloodingSigma), math.Float64bits(p.lit.ClipBound),
		math.Float64bits(p.lit.MaxWeight), uint64(p.lit.MaxContributors), p.Modulus(),
	} {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	if p.pack != nil {
		// The packed encoding's fields (the float encoding's digest is unchanged, so
		// member states and keys of earlier versions still match).
		h.Write([]byte("packed\x00"))
		for _, v := range append([]uint64{uint64(p.lit.ValueBits), uint64(p.lit.Primes)}, p.moduli...) {
			binary.LittleEndian.PutUint64(b[:], v)
			h.Write(b[:])
		}
		if p.lit.NoiseVariance != 0 {
			binary.LittleEndian.PutUint64(b[:], p.lit.NoiseVariance)
			h.Write([]byte("discrete noise\x00"))
			h.Write(b[:])
		}
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Literal returns the literal the parameters were built from, with defaults filled in.
func (p Parameters) Literal() ParametersLiteral { return p.lit }

// HE returns the underlying lattigo CKKS parameters.
func (p Parameters) HE() hefloat.Parameters { return p.he }

// N returns the number of values a ciphertext carries (the ring degree).
func (p Parameters) N() int { return p.he.N() }

// LogN returns log2 of the ring degree.
func (p Parameters) LogN() int { return p.lit.LogN }

// Modulus returns the ciphertext prime Q (the first prime with the packed encoding).
func (p Parameters) Modulus() uint64 { return p.moduli[0] }

// Moduli returns the primes of the ciphertext modulus: one for the float encoding,
// Primes for the packed one. The caller must not modify the slice.
func (p Parameters) Moduli() []uint64 { return p.moduli }

// Levels returns the number of primes of the ciphertext modulus.
func (p Parameters) Levels() int { return len(p.moduli) }

// Packed reports whether the parameters use the packed integer encoding.
func (p Parameters) Packed() bool { return p.pack != nil }

// EncodingName describes the encoding, e.g. "float encoding (LogScale 45)" or "packed
// encoding (11-bit values, 15 per coefficient, 6 primes)".
func (p Parameters) EncodingName() string {
	if p.pack == nil {
		return fmt.Sprintf("float encoding (LogScale %d)", p.lit.LogScale)
	}
	noise := ""
	if p.lit.NoiseVariance != 0 {
		noise = fmt.Sprintf(", discrete noise shares of variance %d", p.lit.NoiseVariance)
	}
	return fmt.Sprintf("packed encoding (%d-bit values, %d per coefficient, %d primes%s)", p.pack.valueBits, p.pack.perCoeff, len(p.moduli), noise)
}

// Digest identifies the parameter set; parties refuse messages made under another one.
func (p Parameters) Digest() [32]byte { return p.digest }

// NumChunks returns how many ciphertexts an update of dim values needs: the dim values
// followed by the weight slot and the count slot, N to a ciphertext.
func (p Parameters) NumChunks(dim int) int {
	if p.pack != nil {
		return p.pack.numChunks(dim, p.N())
	}
	return floatChunks(dim, p.N())
}

// UpdateBytes returns the size of a marshalled EncryptedUpdate of dim values for a client id
// of idLen bytes, made without a Signer (no task id, certificate or signature).
func (p Parameters) UpdateBytes(dim, idLen int) int {
	return updateSize(p.N(), p.Levels(), p.NumChunks(dim), idLen, 0, 0, 0)
}

// SignedUpdateBytes bounds a signed EncryptedUpdate of dim values for a client id, task id
// and DER certificate of the given lengths: exact but for the signature, counted at
// MaxSignatureBytes (64 bytes for Ed25519, at most 72 for ECDSA P-256). A server can refuse
// larger uploads before reading them.
func (p Parameters) SignedUpdateBytes(dim, idLen, taskIDLen, certLen int) int {
	return updateSize(p.N(), p.Levels(), p.NumChunks(dim), idLen, taskIDLen, certLen, MaxSignatureBytes)
}

// updateSize is the exact size of a marshalled EncryptedUpdate.
func updateSize(n, levels, chunks, idLen, taskLen, certLen, sigLen int) int {
	return updateHeaderSize + ringDescSize(levels) + idLen + taskLen + certLen + sigLen + chunks*chunkWireSize(n, levels)
}

// ErrorStd predicts the standard deviation of the error of every decoded coordinate of a sum
// decrypted by threshold members. Float encoding: sqrt(t·(σ² + σ_fresh²))/Δ (the
// encryption noise of the summed ciphertexts is negligible next to the flooding noise).
// Packed encoding: decoding removes the decryption noise exactly and what is left is the
// stochastic rounding, at most sqrt(M)·step/2 for a sum of M = MaxContributors updates
// (SumErrorStd for fewer). The largest error over d coordinates is about sqrt(2·ln d)
// times this.
func (p Parameters) ErrorStd(threshold int) float64 {
	return p.SumErrorStd(threshold, p.lit.MaxContributors)
}

// SumErrorStd is ErrorStd for a sum of contributors updates: the same for the float
// encoding; sqrt(contributors·(1/4 + σ_z²))·step for the packed encoding (each update's
// rounding error is unbiased, within one step, so of variance at most step²/4; its
// discrete noise share, if any, adds σ_z² steps²). Divide by contributors for the error of
// the mean.
func (p Parameters) SumErrorStd(threshold, contributors int) float64 {
	if p.pack != nil {
		return math.Sqrt(float64(contributors)*(0.25+float64(p.lit.NoiseVariance))) * p.QuantisationStep()
	}
	return math.Sqrt(float64(threshold)) * p.floodingSigmaEffective() / p.scale()
}

// QuantisationStep is the grid of the packed encoding's values w·u_j: 2·ClipBound·MaxWeight
// / (2^ValueBits − 1); 0 for the float encoding.
func (p Parameters) QuantisationStep() float64 {
	if p.pack == nil {
		return 0
	}
	return p.pack.dataStep
}

// ValuesPerCoefficient is the number of values one ciphertext coefficient carries: 1 for
// the float encoding.
func (p Parameters) ValuesPerCoefficient() int {
	if p.pack == nil {
		return 1
	}
	return p.pack.perCoeff
}

// BytesPerValue is the upload's ciphertext bytes per value: 2 polynomials × 8 bytes ×
// primes / values per coefficient.
func (p Parameters) BytesPerValue() float64 {
	return 16 * float64(p.Levels()) / float64(p.ValuesPerCoefficient())
}

func (p Parameters) scale() float64 { return math.Exp2(float64(p.lit.LogScale)) }

// refScale is the scale every ciphertext must carry.
func (p Parameters) refScale() rlwe.Scale { return p.he.DefaultScale() }

// extraSlots are the two values appended to every update: the weight and the count (1).
const extraSlots = 2

// CommitteeConfig describes the key committee: K members with ids 1…K, any Threshold of
// which can decrypt, and the smallest number of contributions a member agrees to decrypt.
// Every member is configured with it and checks that the server's roster matches, so the
// server cannot lower the threshold or the minimum.
type CommitteeConfig struct {
	Size             int // K, MinThreshold…MaxCommitteeSize
	Threshold        int // t, above K/2 and MinThreshold…K: members needed to decrypt (2t > K: any two sets of t share a member)
	MinContributions int // m ≥ MinContributions: members refuse aggregates reported to hold fewer updates
}

// Floors of a committee, enforced by CommitteeConfig.Validate.
const (
	// MinContributions is the smallest m: an "aggregate" of one update is that client's
	// update, so decrypting it would reveal exactly what secure aggregation hides.
	MinContributions = 2
	// MinThreshold is the smallest t: with t = 1 every single member (or the server with
	// one member's share) can decrypt any ciphertext, including an individual update.
	MinThreshold = 2
)

// Validate checks the committee against the parameters. Its errors are FieldErrors, so
// callers can name the fields by their own keys.
func (c CommitteeConfig) Validate(p Parameters) error {
	if c.Size < MinThreshold || c.Size > MaxCommitteeSize {
		return fieldError(FieldCommitteeSize, c.Size, "%s %d: must be %d…%d (a committee needs at least %s ≥ %d members)", FieldCommitteeSize, c.Size, MinThreshold, MaxCommitteeSize, FieldThreshold, MinThreshold)
	}
	if c.Threshold < MinThreshold || c.Threshold > c.Size {
		return fieldError(FieldThreshold, c.Threshold, "%s %d: must be %d…%s (%d); with t = 1 any single member could decrypt an individual update", FieldThreshold, c.Threshold, MinThreshold, FieldCommitteeSize, c.Size)
	}
	if 2*c.Threshold <= c.Size {
		// A member refuses a second aggregate only for the rounds it decrypted itself: with
		// 2t ≤ K two disjoint sets of t members could open the round's sum and the sum
		// without one client, whose difference is that client's upload.
		return fieldError(FieldThreshold, c.Threshold, "%s %d: must exceed half of %s %d (at least %d), so that any two sets of t members share one, who decrypts at most one aggregate a round: with two disjoint sets the server could open a sum with and without a client", FieldThreshold, c.Threshold, FieldCommitteeSize, c.Size, c.Size/2+1)
	}
	if c.MinContributions < MinContributions || c.MinContributions > p.lit.MaxContributors {
		return fieldError(FieldMinContributions, c.MinContributions, "%s %d: must be %d…%s (%d); an aggregate of one update is that client's update", FieldMinContributions, c.MinContributions, MinContributions, FieldMaxContributors, p.lit.MaxContributors)
	}
	return nil
}

// AnnouncementBytes is the size of a marshalled KeyAnnouncement made without a Signer.
func (p Parameters) AnnouncementBytes() int { return announcementSize }

// SignedAnnouncementBytes bounds a signed KeyAnnouncement with a DER certificate of certLen
// bytes (the signature counted at MaxSignatureBytes).
func (p Parameters) SignedAnnouncementBytes(certLen int) int {
	return announcementSize + certLen + MaxSignatureBytes
}

// DealingBytes is the size of a marshalled Dealing for a committee of size members, made
// without a Signer: the public-key share and one sealed Shamir share per member.
func (p Parameters) DealingBytes(size int) int {
	n := p.N()
	nl := n * p.Levels()
	return dealingHeaderSize + ringDescSize(p.Levels()) + 8*nl + size*sealedShareSize(nl)
}

// SignedDealingBytes bounds a signed Dealing (the signature counted at MaxSignatureBytes).
func (p Parameters) SignedDealingBytes(size int) int { return p.DealingBytes(size) + MaxSignatureBytes }

// ChallengeBytes bounds a Challenge (MaxSpotChecks leaves); a member's is
// ChallengeBytes() − 4·(MaxSpotChecks − SpotChecks).
func (p Parameters) ChallengeBytes() int { return challengeHeaderSize + 4*MaxSpotChecks }

// OpeningBytes is the size of the Opening of spotChecks leaves of an aggregate of dim values
// summing uploads updates: per upload 32 bytes and, per leaf, the leaf's coefficients (at
// least one per chunk) and its Merkle path.
func (p Parameters) OpeningBytes(dim, uploads, spotChecks int) int {
	chunks := p.NumChunks(dim) * p.Levels()
	width, leaves, depth := leafLayout(p.N(), chunks)
	s := min(spotChecks, leaves)
	return openingHeaderSize + 4*s + uploads*openingUploadSize(s, chunks, width, depth)
}

// DecryptionShareBytes is the size of a marshalled DecryptionShare of an aggregate of dim
// values decrypted by threshold members.
func (p Parameters) DecryptionShareBytes(dim, threshold int) int {
	return 4 + 16 + 8 + 32 + 2 + 2 + 2*threshold + ringDescSize(p.Levels()) + 4 + 8*p.N()*p.Levels()*p.NumChunks(dim)
}
