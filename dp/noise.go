package dp

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
)

// NoiseSource draws standard normal variates for the Gaussian mechanism.
type NoiseSource interface {
	// Normal returns a draw from N(0, 1).
	Normal() float64
	// Secure reports whether the draws are unpredictable to anyone without access to the
	// process: true for SecureNoise, false for DeterministicNoise. Code that releases
	// noised results outside tests and simulations should require it.
	Secure() bool
}

var (
	_ NoiseSource = (*SecureNoise)(nil)
	_ NoiseSource = (*DeterministicNoise)(nil)
)

// The Gaussian sampler shared by both sources: the Box–Muller transform
// z = sqrt(−2 ln u₁)·cos(2πu₂) (and sin for a second draw), on uniforms from a ChaCha8
// stream. u₂ has 53 random bits. u₁ ∈ (0, 1) carries full floating-point precision at
// every scale: its binary exponent comes from the position of the first 1 in a stream of
// random bits, then 52 fresh bits fill the mantissa, so small u₁ — which produce the
// tails — are as finely resolved as large ones; the tail is cut at |z| ≈ 38.6 (u₁ ≥ 2^−1074)
// instead of the 8.6 of a 53-bit uniform.
//
// Limitation: this is floating-point sampling. Mironov 2012 showed that textbook
// floating-point Laplace samplers leak through the irregular set of floats they can output,
// and the same mechanism applies in principle to Gaussian noise added in float64. Confide's
// noise protects updates of real-valued gradients and is not hardened against that attack
// (a discrete Gaussian, Canonne, Kamath and Steinke 2020, would be); the secure source only
// guarantees that the noise cannot be predicted or replayed.
type gaussian struct {
	spare    float64
	hasSpare bool
}

func (g *gaussian) normal(next func() uint64) float64 {
	if g.hasSpare {
		g.hasSpare = false
		return g.spare
	}
	u1 := uniformFullPrecision(next)
	u2 := float64(next()>>11) * 0x1p-53
	r := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	g.spare, g.hasSpare = r*s, true
	return r * c
}

// uniformFullPrecision returns a uniform variate in (0, 1) whose every representable
// binade is reached with its exact probability: the value lies in [2^−k, 2^−k+1) with
// probability 2^−k, k the position of the first 1 bit, and is uniform on a 2^52 grid there.
func uniformFullPrecision(next func() uint64) float64 {
	exp := 0
	for {
		w := next()
		if w != 0 {
			exp -= bits.LeadingZeros64(w) + 1
			break
		}
		exp -= 64
		if exp < -1074 {
			return 0x1p-1074
		}
	}
	mant := next() >> 12 // 52 bits
	return math.Ldexp(1+float64(mant)*0x1p-52, exp)
}

// secureReseedDraws is how many 64-bit words SecureNoise takes from one ChaCha8 key before
// rekeying from crypto/rand, so that a compromise of the process state exposes at most
// that many future words.
const secureReseedDraws = 1 << 20

// SecureNoise is the production noise source: a ChaCha8 stream (math/rand/v2, a
// cryptographically strong generator with forward secrecy) keyed from crypto/rand and
// rekeyed from crypto/rand every 2^20 words. It is safe for concurrent use.
type SecureNoise struct {
	mu  sync.Mutex
	src secureSource
	g   gaussian
}

// NewSecureNoise returns a SecureNoise keyed from the operating system's CSPRNG.
func NewSecureNoise() (*SecureNoise, error) {
	s := &SecureNoise{}
	if err := s.src.rekey(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SecureNoise) next() uint64 { return s.src.Uint64() }

// Normal returns a draw from N(0, 1).
func (s *SecureNoise) Normal() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g.normal(s.next)
}

// fill sets dst[i] += std·N(0, 1) for every i under one lock (faster than calling Normal
// per element).
func (s *SecureNoise) fill(dst []float64, std float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range dst {
		dst[i] += std * s.g.normal(s.next)
	}
}

// Secure reports true.
func (s *SecureNoise) Secure() bool { return true }

// AddGaussian adds N(0, std²) noise to every element of dst (the dpsgd.Noise method).
// std must be finite and ≥ 0, as a validated configuration guarantees; anything else is a
// programming error and panics. Use AddGaussianNoise to get an error instead.
func (s *SecureNoise) AddGaussian(dst []float64, std float64) { mustAddGaussian(dst, std, s) }

// SecureRand returns a *rand.Rand for the random choices DP depends on besides noise, such
// as Poisson sampling of batches: a ChaCha8 stream keyed from crypto/rand and rekeyed from
// it every 2^20 words. Like any *rand.Rand it is not safe for concurrent use.
func SecureRand() (*rand.Rand, error) {
	s := &secureSource{}
	if err := s.rekey(); err != nil {
		return nil, err
	}
	return rand.New(s), nil
}

type secureSource struct {
	rng   *rand.ChaCha8
	words int
}

var _ rand.Source = (*secureSource)(nil)

func (s *secureSource) rekey() error {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return fmt.Errorf("dp: seeding from crypto/rand: %w", err)
	}
	s.rng, s.words = rand.NewChaCha8(seed), 0
	return nil
}

func (s *secureSource) Uint64() uint64 {
	if s.words >= secureReseedDraws {
		// crypto/rand.Read does not fail on supported platforms (Go 1.24+ aborts the
		// process instead); if it ever did, keep the current, still secure, stream.
		_ = s.rekey()
	}
	s.words++
	return s.rng.Uint64()
}

// DeterministicNoise is a seeded, reproducible noise source for tests and reproducible
// simulations ONLY: anyone who knows the seed can subtract the noise. Secure reports
// false. It is not safe for concurrent use.
type DeterministicNoise struct {
	rng *rand.ChaCha8
	g   gaussian
}

// NewDeterministicNoise returns a DeterministicNoise whose stream is fixed by seed.
func NewDeterministicNoise(seed uint64) *DeterministicNoise {
	var key [32]byte
	copy(key[:], "confide deterministic noise\x00\x00\x00\x00\x00")
	binary.LittleEndian.PutUint64(key[24:], seed)
	return &DeterministicNoise{rng: rand.NewChaCha8(key)}
}

// Normal returns a draw from N(0, 1).
func (d *DeterministicNoise) Normal() float64 { return d.g.normal(d.rng.Uint64) }

// Secure reports false: the stream is determined by its seed.
func (d *DeterministicNoise) Secure() bool { return false }

// AddGaussian adds N(0, std²) noise to every element of dst (the dpsgd.Noise method); it
// panics if std is not finite and ≥ 0 (see SecureNoise.AddGaussian).
func (d *DeterministicNoise) AddGaussian(dst []float64, std float64) { mustAddGaussian(dst, std, d) }

func mustAddGaussian(dst []float64, std float64, src NoiseSource) {
	if err := AddGaussianNoise(dst, std, src); err != nil {
		panic(err)
	}
}

// AddGaussianNoise adds independent N(0, std²) noise to every element of dst, in place.
// std must be finite and ≥ 0 (0 adds nothing). For the Gaussian mechanism on a sum of
// vectors clipped to L2 norm C with noise multiplier σ, std is σ·C.
func AddGaussianNoise(dst []float64, std float64, src NoiseSource) error {
	if math.IsNaN(std) || std < 0 || math.IsInf(std, 0) {
		return fmt.Errorf("dp: noise standard deviation %v: must be finite and ≥ 0", std)
	}
	if src == nil {
		return fmt.Errorf("dp: no noise source (use NewSecureNoise, or NewDeterministicNoise in tests)")
	}
	if std == 0 {
		return nil
	}
	if s, ok := src.(*SecureNoise); ok {
		s.fill(dst, std)
		return nil
	}
	for i := range dst {
		dst[i] += std * src.Normal()
	}
	return nil
}
