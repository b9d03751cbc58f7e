package dp

import (
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/confide-fl/confide/internal/linalg"
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

// Gaussian draws use the ziggurat method of Marsaglia and Tsang (2000) — math/rand/v2's
// NormFloat64 algorithm and tables, exact up to floating-point rounding, with the tail
// beyond 3.44 sampled by exponential rejection so it is not truncated (ziggurat.go) — on
// the keystream of AES-128 in counter mode (crypto/aes, crypto/cipher; AES-NI on amd64 and
// arm64), keyed from crypto/rand, with fast key erasure every 64 KiB and a reseed from
// crypto/rand every 8 MiB (secureStream): a 128-bit security level. The keystream is
// generated 64 KiB at a time into a word buffer; five words carry eight draws, whose fast
// path (97.2% of draws) runs sixteen at a time in AVX-512 or eight in AVX2 (zigvec.go), and
// the rest finish with a squeeze deciding most without an exponential and without a branch
// (gaussStream.finishSlow): on one core of this machine (AMD EPYC, AVX-512), 1.40–1.58 ns a
// draw, 2.10–2.19 with the AVX2 kernel (go test ./dp -bench 'AddNormals' -cpu 1; the scalar
// code of two sessions before: 2.9–3.0 ns), against 8.0 ns for NormFloat64 on a ChaCha8
// source (-bench NormFloat64). What remains is mostly the keystream (about 0.5 ns a draw).
// It matters because DP-SGD
// draws one variate per parameter per step; fills of long vectors also draw ahead on idle
// helpers (SecureNoise).
//
// Limitation: this is floating-point sampling. Mironov 2012 showed that textbook
// floating-point Laplace samplers leak through the irregular set of floats they can output,
// and the same mechanism applies in principle to Gaussian noise added in float64. Confide's
// noise protects updates of real-valued gradients and is not hardened against that attack
// (a discrete Gaussian, Canonne, Kamath and Steinke 2020, is: DiscreteGaussian, for
// integer-encoded updates); the secure source only guarantees that the noise cannot be
// predicted or replayed.

// secureReseedWords is how many 64-bit words a secure stream produces before it reseeds
// from crypto/rand (besides the key erasure at every refill).
const secureReseedWords = 1 << 20

// streamWords is the size of a stream's keystream buffer, in 64-bit words (64 KiB). Each
// refill also re-keys (a new AES key schedule and counter): with 16 KiB buffers that took
// about a tenth of a fill's time (crypto/aes.NewCipher, cipher.NewCTR and their
// allocations, in a CPU profile of go test ./dp -bench AddNormals/avx512 -cpu 1), and the
// fill took 1.61 ns a draw against 1.40 with 64 KiB ones and the zero block, one run each.
const streamWords = 8192

// secureStream is a source of uniform 64-bit words: the AES-128-CTR keystream under a key
// and initial counter from crypto/rand, with fast key erasure (Bernstein 2017): every refill
// of the buffer also draws 32 more bytes of keystream that become the next key and counter,
// and the key that produced the buffer is dropped, so the process state never holds a key
// that regenerates words already handed out (only the current buffer holds them, until its
// refill; Go cannot zero the dropped key schedule, it becomes unreachable). Every
// secureReseedWords words it reseeds from crypto/rand. It is not safe for concurrent use.
type secureStream struct {
	ctr   cipher.Stream
	buf   [streamWords]uint64
	pos   int // next unread word of buf
	words int // words produced since the last seed from crypto/rand
}

var _ rand.Source = (*secureStream)(nil)

func newSecureStream() (*secureStream, error) {
	s := &secureStream{}
	if err := s.reseed(); err != nil {
		return nil, err
	}
	return s, nil
}

// reseed keys the stream from crypto/rand.
func (s *secureStream) reseed() error {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return fmt.Errorf("dp: seeding from crypto/rand: %w", err)
	}
	err := s.setKey(&seed)
	s.words, s.pos = 0, streamWords
	return err
}

// setKey keys the stream with seed (an AES-128 key, then the initial counter) and erases seed.
func (s *secureStream) setKey(seed *[32]byte) error {
	blk, err := aes.NewCipher(seed[:16]) // AES-128
	if err == nil {
		s.ctr = cipher.NewCTR(blk, seed[16:])
	}
	clear(seed[:])
	if err != nil {
		return fmt.Errorf("dp: AES key: %w", err)
	}
	return nil
}

// zeroKeystream is the plaintext a refill encrypts: zeros, read-only, shared by every stream.
var zeroKeystream [8 * streamWords]byte

// refill replaces the buffer with the next streamWords words of keystream and replaces the
// key with the 32 bytes of keystream after them.
func (s *secureStream) refill() {
	if s.words >= secureReseedWords {
		// crypto/rand.Read does not fail on supported platforms (Go 1.24+ aborts the
		// process instead); if it ever did, keep the current, still secure, key.
		_ = s.reseed()
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&s.buf[0])), 8*streamWords)
	s.ctr.XORKeyStream(raw, zeroKeystream[:]) // the keystream itself, without clearing buf first
	var next [32]byte
	s.ctr.XORKeyStream(next[:], next[:])
	_ = s.setKey(&next) // a 16-byte key: NewCipher cannot fail
	s.pos, s.words = 0, s.words+streamWords
}

// Uint64 returns the next word of the stream.
func (s *secureStream) Uint64() uint64 {
	if s.pos == streamWords {
		s.refill()
	}
	u := s.buf[s.pos]
	s.pos++
	return u
}

// gaussStream turns two secure streams into normal variates for long fills: the groups of
// eight draws (zigvec.go) read main's words, and the draws that miss the fast path take
// their further words from spare, so that the vector kernel never stops for them.
type gaussStream struct {
	main, spare *secureStream
	refused     []uint32   // scratch for zigGroups
	later       []slowDraw // scratch for the draws the squeeze does not accept
}

// slowDraw is a draw that missed the fast path and was not accepted by the squeeze: it
// starts over from its word u (the tail strip), tests its level l against the exponential
// (unsure), or starts over from a fresh word (rejected).
type slowDraw struct {
	x    float64 // the variate tested
	u    uint64  // the draw's first word
	at   int32   // its index in the batch
	l    float32 // its level
	kind uint8
}

// The kinds of slowDraw; finishSlow computes a kind arithmetically (unsure less one when
// rejected), so the order matters.
const (
	slowRejected = iota
	slowUnsure   // = slowRejected + 1
	slowTail
)

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func newGaussStream() (*gaussStream, error) {
	main, err := newSecureStream()
	if err != nil {
		return nil, err
	}
	spare, err := newSecureStream()
	if err != nil {
		return nil, err
	}
	return &gaussStream{main: main, spare: spare}, nil
}

// addNormals sets dst[i] += std·N(0, 1) for every i: the whole groups of each buffer of
// main's keystream in one call of the vector kernel, then the refused lanes (finishSlow),
// then the last len(dst) mod 8 one at a time.
func (g *gaussStream) addNormals(dst []float64, std float64) {
	s := g.main
	k := 0
	for k+8 <= len(dst) {
		if s.pos > streamWords-groupWords {
			s.refill() // drops at most four words
		}
		n := min((len(dst)-k)/8, (streamWords-s.pos)/groupWords)
		buf, d := s.buf[s.pos:s.pos+groupWords*n], dst[k:k+8*n]
		g.refused = zigGroups(d, buf, std, g.refused)
		g.finishSlow(d, buf, std)
		k, s.pos = k+8*n, s.pos+groupWords*n
	}
	for ; k < len(dst); k++ {
		dst[k] += std * s.normal()
	}
}

// finishSlow completes the draws of the groups of buf that zigGroups refused (g.refused),
// whose values go to d, in two passes. The first takes each refused lane, in group and lane
// order, with one word of spare for its level l and decides what the squeeze decides
// without branching on it (the outcome is a coin toss, which a branch would mispredict
// half the time): about half are accepted and added, the others are kept. The second goes
// through those in the same order, as zigSlow would go on from there: the unsure ones
// test l against the exponential and start over from a fresh word of spare if it
// fails, the rejected ones start over from a fresh word, and the tail strip's (layer 0,
// whose level word is not used) start over from their own word. Every variate is still
// exactly math/rand/v2's NormFloat64 of its words; only which words of spare a draw gets
// differs from drawing them one after another.
func (g *gaussStream) finishSlow(d []float64, buf []uint64, std float64) {
	count := 0
	for _, e := range g.refused {
		count += bits.OnesCount32(e & 0xFF)
	}
	if count == 0 {
		return
	}
	later := slices.Grow(g.later[:0], count)[:count]
	n := 0
	for _, e := range g.refused {
		grp, lanes := int(e>>8), e&0xFF
		w := (*[groupWords]uint64)(buf[groupWords*grp:])
		for ; lanes != 0; lanes &= lanes - 1 {
			lane := bits.TrailingZeros32(lanes)
			u := groupWord(w, lane)
			i := u >> 32 & 0x7F
			x := float64(int32(u)) * float64(zigW[i])
			l := zigF[i] + float32(unitFloat(g.spare.Uint64()))*(zigF[(i-1)&0x7F]-zigF[i])
			c := &zigSqueeze[i]
			ax := math.Abs(x)
			accept := float64(l) < c.lo0+ax*c.lo1 // never for layer 0: lo0 = lo1 = 0 < l
			reject := float64(l) > c.hi0+ax*c.hi1
			at := 8*grp + lane
			// Added when accepted, as a selection of bits rather than a branch.
			old := math.Float64bits(d[at])
			mask := -b2u(accept)
			d[at] = math.Float64frombits(math.Float64bits(d[at]+float64(std*x))&mask | old&^mask)
			kind := slowUnsure - b2u(reject) + b2u(i == 0)*(slowTail-slowUnsure+b2u(reject))
			p := &later[n] // field by field: a composite literal goes through the stack
			p.x, p.u, p.at, p.l, p.kind = x, u, int32(at), l, uint8(kind)
			n += int(1 - b2u(accept))
		}
	}
	for _, p := range later[:n] {
		var z float64
		switch {
		case p.kind == slowTail:
			z = zigSlow(p.u, g.spare)
		case p.kind == slowUnsure && p.l < float32(math.Exp(-.5*p.x*p.x)):
			z = p.x
		default:
			z = zigSlow(g.spare.Uint64(), g.spare)
		}
		d[p.at] += float64(std * z)
	}
	g.later = later
}

// draw returns the variate of word u (only its low 39 bits matter unless the slow path
// draws more words from the stream).
func (s *secureStream) draw(u uint64) float64 {
	if z, ok := zigFast(u); ok {
		return z
	}
	return zigSlow(u, s)
}

// normal returns one N(0, 1) draw.
func (s *secureStream) normal() float64 { return s.draw(s.Uint64()) }

// SecureNoise is the production noise source: AES-CTR keystreams keyed from crypto/rand with
// fast key erasure (secureStream), turned into normal variates by the ziggurat. Large fills are
// split across one independent stream per core, and draw first on variates drawn ahead by
// linalg's idle helpers (ahead). It is safe for concurrent use.
type SecureNoise struct {
	mu      sync.Mutex
	streams []*gaussStream // one per worker; streams[0] also serves Normal
	ahead   *ahead         // set up by the first parallel fill
}

// parallelNoiseMin is the length below which a fill stays on one stream.
const parallelNoiseMin = 1 << 15

// parallel reports whether n draws are split across streams and workers (and drawn ahead):
// long enough, with more than one stream and more than one worker (not in the simulator).
func (s *SecureNoise) parallel(n int) bool {
	return len(s.streams) > 1 && n >= parallelNoiseMin && linalg.Workers >= 2
}

// aheadMax bounds the variates drawn ahead for one SecureNoise (8 MiB of float64).
const aheadMax = 1 << 20

// aheadSlice is how many variates one slice of idle work draws: about a microsecond.
const aheadSlice = 512

// ahead holds standard normal variates drawn ahead of the fill that will use them, by
// linalg's helpers in the time they would otherwise spend polling for their next job
// (linalg.AddIdleWork): a DP-SGD step's serial parts leave a helper much of that time. There
// are two buffers, so that the helpers draw into one while a DP-SGD update holds the other
// (UseNormals). Each variate is used once and drawn from its own stream (g), not one of the
// fill's.
type ahead struct {
	mu     sync.Mutex
	g      *gaussStream
	bufs   [2]aheadBuf
	lent   int    // the buffer UseNormals holds, or −1
	remove func() // unregisters the idle work
}

// aheadBuf is one buffer: z[:n] are drawn and unused, z[n:] are zero.
type aheadBuf struct {
	z []float64
	n int
}

func newAhead(g *gaussStream, n int) *ahead {
	return &ahead{g: g, bufs: [2]aheadBuf{{z: make([]float64, n)}, {z: make([]float64, n)}}, lent: -1}
}

// fuller returns the buffer other than skip (−1: none) with the most variates ready.
func (a *ahead) fuller(skip int) int {
	i := 0
	if skip == 0 || skip != 1 && a.bufs[1].n > a.bufs[0].n {
		i = 1
	}
	return i
}

// slice draws up to aheadSlice more variates, unless a fill holds the buffers or they are
// full, and reports whether it drew any. It completes the fuller buffer first.
func (a *ahead) slice() bool {
	if !a.mu.TryLock() {
		return false
	}
	defer a.mu.Unlock()
	for _, i := range [2]int{a.fuller(a.lent), 1 - a.fuller(a.lent)} {
		b := &a.bufs[i]
		if i == a.lent || b.n == len(b.z) {
			continue
		}
		m := min(len(b.z)-b.n, aheadSlice)
		a.g.addNormals(b.z[b.n:b.n+m], 1) // z[n:] is zero: what is used is cleared
		b.n += m
		return true
	}
	return false
}

// lock takes a.mu by polling: its other holders are a slice of idle work, about a
// microsecond, and a blocked goroutine would wait for a thread to wake instead (tens of
// microseconds on a virtual machine, longer when another process has the core meanwhile).
func (a *ahead) lock() {
	for !a.mu.TryLock() {
	}
}

// take adds std times the variates drawn ahead to dst, up to len(dst) of them, and returns
// how many it used; they are dropped from the buffers.
func (a *ahead) take(dst []float64, std float64) int {
	a.lock()
	defer a.mu.Unlock()
	done := 0
	for range a.bufs {
		b := &a.bufs[a.fuller(-1)]
		k := min(b.n, len(dst)-done)
		if k == 0 {
			break
		}
		// Used noise is not kept: with it, the noised result gives the exact one.
		linalg.AxpyClear(std, b.z[b.n-k:b.n], dst[done:done+k])
		b.n -= k
		done += k
	}
	return done
}

// NewSecureNoise returns a SecureNoise keyed from the operating system's CSPRNG.
func NewSecureNoise() (*SecureNoise, error) {
	s := &SecureNoise{streams: make([]*gaussStream, max(1, runtime.GOMAXPROCS(0)))}
	for i := range s.streams {
		r, err := newGaussStream()
		if err != nil {
			return nil, err
		}
		s.streams[i] = r
	}
	return s, nil
}

// Normal returns a draw from N(0, 1).
func (s *SecureNoise) Normal() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[0].main.normal()
}

// fill sets dst[i] += std·N(0, 1) for every i under one lock: first with the variates drawn
// ahead, if any, then splitting the rest of a long vector into contiguous chunks, each
// drawn from its own stream. The chunks run on linalg's helper goroutines (linalg.Workers
// of them), which poll for work between the multiplies of a training step: with a goroutine
// started per fill instead, which has to wait for a processor's thread to wake, the float32
// MLP's DP-SGD step at batch 256 on two cores ran at 79,500 examples/s against
// 85,000–88,000 (go test ./dp/dpsgd -bench 'StepMLP/float32/batch256' -cpu 2).
//
// The first parallel fill also sets up drawing ahead for the next ones (at most aheadMax
// variates), where there are helpers to do it: one computation per core (the simulator,
// Workers = 1) or a short vector leaves it off.
func (s *SecureNoise) fill(dst []float64, std float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.parallel(len(dst)) {
		s.streams[0].addNormals(dst, std)
		return
	}
	if s.ahead != nil {
		dst = dst[s.ahead.take(dst, std):]
	} else {
		s.drawAhead(min(len(dst), aheadMax))
	}
	s.addParallel(dst, std)
}

// addParallel sets dst[i] += std·N(0, 1) for every i, splitting a long vector into
// contiguous chunks, each drawn from its own stream on its own worker; s.mu is held.
func (s *SecureNoise) addParallel(dst []float64, std float64) {
	w := len(s.streams)
	if !s.parallel(len(dst)) {
		s.streams[0].addNormals(dst, std)
		return
	}
	chunk := (len(dst) + w - 1) / w
	parts := (len(dst) + chunk - 1) / chunk
	// One item per stream; each costs about chunk draws, so the work always passes
	// linalg's threshold for splitting.
	linalg.ParallelForChunks(parts, max(chunk, linalg.MinParallelFor), 1, func(_, lo, hi int) {
		for k := lo; k < hi; k++ {
			s.streams[k].addNormals(dst[k*chunk:min((k+1)*chunk, len(dst))], std)
		}
	})
}

// UseNormals calls use with z, n standard normal draws from the buffer SecureNoise draws
// ahead into (those ready, the rest drawn now), for a caller that adds the noise in a pass
// of its own instead of AddGaussian's (DP-SGD's update: model.Model.AccumulateWeightedStep).
// use must set every value of z to zero once it has used it and report whether it did
// (false: UseNormals zeroes them); z is valid only during the call. UseNormals returns false
// without calling use where fills do not draw ahead (one worker, n below 2^15 or above the
// buffer's length), and the caller then uses AddGaussian.
func (s *SecureNoise) UseNormals(n int, use func(z []float64) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.parallel(n) || n > aheadMax {
		return false
	}
	if s.ahead == nil {
		s.drawAhead(n)
	}
	a := s.ahead
	if a == nil || len(a.bufs[0].z) < n {
		return false
	}
	// The draws used are the top n of the fuller buffer's ready prefix, or all of its
	// first n with the rest drawn now, so that what is left keeps its layout (drawn, then
	// zeros). The helpers draw into the other buffer meanwhile.
	a.lock()
	i := a.fuller(-1)
	b := &a.bufs[i]
	ready, left := b.n, max(b.n-n, 0)
	a.lent = i
	a.mu.Unlock()
	var z []float64
	if ready >= n {
		z = b.z[ready-n : ready]
	} else {
		s.addParallel(b.z[ready:n], 1) // zero until now
		z = b.z[:n]
	}
	if !use(z) {
		clear(z)
	}
	a.lock()
	b.n, a.lent = left, -1
	a.mu.Unlock()
	return true
}

// drawAhead registers idle work that keeps n variates drawn ahead; the registration ends
// when s is collected. Without a stream (crypto/rand does not fail on supported platforms)
// fills go on without drawing ahead.
func (s *SecureNoise) drawAhead(n int) {
	g, err := newGaussStream()
	if err != nil {
		return
	}
	a := newAhead(g, n)
	a.remove = linalg.AddIdleWork(a.slice)
	s.ahead = a
	runtime.AddCleanup(s, func(a *ahead) { a.remove() }, a)
}

// Secure reports true.
func (s *SecureNoise) Secure() bool { return true }

// AddGaussian adds N(0, std²) noise to every element of dst (the dpsgd.Noise method).
// std must be finite and ≥ 0, as a validated configuration guarantees; anything else is a
// programming error and panics. Use AddGaussianNoise to get an error instead.
func (s *SecureNoise) AddGaussian(dst []float64, std float64) { mustAddGaussian(dst, std, s) }

// SecureRand returns a *rand.Rand for the random choices DP depends on besides noise, such
// as Poisson sampling of batches: the same AES-CTR stream as SecureNoise's (secureStream). Like any *rand.Rand it is not safe for concurrent use.
func SecureRand() (*rand.Rand, error) {
	s, err := newSecureStream()
	if err != nil {
		return nil, err
	}
	return rand.New(s), nil
}

// DeterministicNoise is a seeded, reproducible noise source for tests and reproducible
// simulations ONLY: anyone who knows the seed can subtract the noise. Secure reports
// false. It is not safe for concurrent use.
type DeterministicNoise struct {
	rng *rand.Rand
}

// NewDeterministicNoise returns a DeterministicNoise whose stream is fixed by seed.
func NewDeterministicNoise(seed uint64) *DeterministicNoise {
	var key [32]byte
	copy(key[:], "confide deterministic noise\x00\x00\x00\x00\x00")
	binary.LittleEndian.PutUint64(key[24:], seed)
	return &DeterministicNoise{rng: rand.New(rand.NewChaCha8(key))}
}

// Normal returns a draw from N(0, 1).
func (d *DeterministicNoise) Normal() float64 { return d.rng.NormFloat64() }

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
