package dp

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"unsafe"
)

// zigNormal draws one variate from src the way secureStream does.
func zigNormal(src wordSource) float64 {
	u := src.Uint64()
	if z, ok := zigFast(u); ok {
		return z
	}
	return zigSlow(u, src)
}

// The copied ziggurat consumes words exactly as math/rand/v2's NormFloat64 does and returns
// the same variates bit for bit, slow paths and tail included.
func TestZigguratMatchesStdlib(t *testing.T) {
	ours := rand.NewPCG(7, 11)
	std := rand.New(rand.NewPCG(7, 11))
	tails := 0
	for i := 0; i < 10_000_000; i++ {
		a, b := zigNormal(ours), std.NormFloat64()
		if math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("draw %d: ziggurat %v, math/rand/v2 %v", i, a, b)
		}
		if math.Abs(a) > zigR {
			tails++
		}
	}
	if tails == 0 {
		t.Fatal("no draw beyond the base strip: the tail path was not exercised")
	}
}

// The secure stream's variates follow N(0, 1): Kolmogorov–Smirnov against Φ, and the
// frequency of the tail beyond 3.44 (where the ziggurat switches method).
func TestSecureStreamNormal(t *testing.T) {
	s, err := newGaussStream()
	if err != nil {
		t.Fatal(err)
	}
	const n = 600_005 // whole groups and a remainder
	x := make([]float64, n)
	s.addNormals(x, 1)
	tail := 0
	for _, v := range x {
		if math.Abs(v) > zigR {
			tail++
		}
	}
	p := math.Erfc(zigR / math.Sqrt2) // P(|Z| > 3.44) ≈ 5.8e-4
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	if math.Abs(float64(tail)-mean) > 6*sd {
		t.Errorf("%d draws beyond ±%.2f, want %.0f ± %.0f", tail, zigR, mean, 6*sd)
	}
	// Each lane of a group (eight draws from five words, zigvec.go) is N(0, 1), and lanes
	// are uncorrelated: within a group, the pairs that share a word or sit in the same
	// layer word, and across neighbouring groups.
	const lanes = 8
	for pos := 0; pos < lanes; pos++ {
		var col []float64
		for i := pos; i+lanes <= n; i += lanes {
			col = append(col, x[i])
		}
		if d, crit := ksNormal(col), 2.6/math.Sqrt(float64(len(col))); d > crit {
			t.Errorf("lane %d of a group: KS distance %.5f > %.5f (level 1e-6)", pos, d, crit)
		}
	}
	for _, pair := range [][2]int{{0, 1}, {2, 3}, {6, 7}, {0, 4}, {3, 4}, {7, 8}, {0, 8}} {
		var sxy float64
		m := 0
		for i := 0; i+pair[1] < n-1; i += lanes {
			sxy += x[i+pair[0]] * x[i+pair[1]]
			m++
		}
		if r := sxy / float64(m); math.Abs(r) > 6/math.Sqrt(float64(m)) {
			t.Errorf("draws %d and %d of a group: correlation %.4f", pair[0], pair[1], r)
		}
	}
	if d, crit := ksNormal(x), 2.6/math.Sqrt(n); d > crit {
		t.Errorf("KS distance %.5f > %.5f", d, crit)
	}
}

// ksNormal returns the Kolmogorov–Smirnov distance of x (sorted in place) from N(0, 1).
func ksNormal(x []float64) float64 {
	sort.Float64s(x)
	n := float64(len(x))
	d := 0.0
	for i, v := range x {
		f := 0.5 * math.Erfc(-v/math.Sqrt2)
		d = max(d, math.Abs(f-float64(i)/n), math.Abs(f-float64(i+1)/n))
	}
	return d
}

// A stream's buffers are the AES-128-CTR keystream of its key, and every refill re-keys it
// from the 32 keystream bytes after the buffer (fast key erasure): checked against
// crypto/cipher directly.
func TestSecureStreamKeyErasure(t *testing.T) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	s := &secureStream{pos: streamWords}
	key := seed
	if err := s.setKey(&key); err != nil {
		t.Fatal(err)
	}
	if key != ([32]byte{}) {
		t.Error("setKey left the seed in memory")
	}
	want := func(seed [32]byte) (words []uint64, next [32]byte) {
		blk, err := aes.NewCipher(seed[:16])
		if err != nil {
			t.Fatal(err)
		}
		ks := make([]byte, 8*streamWords+32)
		cipher.NewCTR(blk, seed[16:]).XORKeyStream(ks, ks)
		for i := 0; i < streamWords; i++ {
			words = append(words, binary.LittleEndian.Uint64(ks[8*i:]))
		}
		copy(next[:], ks[8*streamWords:])
		return words, next
	}
	if !littleEndian() {
		t.Skip("the buffer holds the keystream in native byte order")
	}
	cur := seed
	for refill := 0; refill < 3; refill++ {
		words, next := want(cur)
		for i, w := range words {
			if got := s.Uint64(); got != w {
				t.Fatalf("buffer %d, word %d: %#x, want the keystream's %#x", refill, i, got, w)
			}
		}
		cur = next
	}
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// A stream reseeds from crypto/rand after secureReseedWords words; two streams have
// independent keys.
func TestSecureStreamReseeds(t *testing.T) {
	s, err := newSecureStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Uint64()
	if s.words != streamWords {
		t.Fatalf("words = %d after the first refill, want %d", s.words, streamWords)
	}
	s.words, s.pos = secureReseedWords, streamWords
	s.Uint64()
	if s.words != streamWords {
		t.Errorf("no reseed after %d words (words now %d)", secureReseedWords, s.words)
	}
	s2, err := newSecureStream()
	if err != nil {
		t.Fatal(err)
	}
	s2.Uint64()
	if s2.buf == s.buf {
		t.Error("two secure streams produced the same buffer")
	}
}

// The squeeze decides most wedge tests, and every decision it takes is the exponential's.
func TestZigguratSqueeze(t *testing.T) {
	src := rand.NewPCG(3, 5)
	tests, sure := 0, 0
	for n := 0; n < 20_000_000 && tests < 200_000; n++ {
		u := src.Uint64()
		i := u >> 32 & 0x7F
		if _, ok := zigFast(u); ok || i == 0 {
			continue
		}
		tests++
		x := float64(int32(u)) * float64(zigW[i])
		l := zigF[i] + float32(unitFloat(src.Uint64()))*(zigF[i-1]-zigF[i])
		accept, decided := zigSqueeze[i].test(math.Abs(x), float64(l))
		if !decided {
			continue
		}
		sure++
		if want := l < float32(math.Exp(-.5*x*x)); accept != want {
			t.Fatalf("layer %d, x = %v, l = %v: squeeze says %v, the exponential %v", i, x, l, accept, want)
		}
	}
	if frac := float64(sure) / float64(tests); frac < 0.8 {
		t.Errorf("the squeeze decided %.1f%% of %d wedge tests, want ≥ 80%%", 100*frac, tests)
	}
}
