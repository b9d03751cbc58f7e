package secagg

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestCoeffAboveAndAddCoeffs checks the byte-level loops AddBinary runs against their
// one-coefficient-at-a-time definitions, at lengths around their unrolling and with an
// offending coefficient at every position: the Go loops, and the AVX-512 ones where the
// machine has them.
func TestCoeffAboveAndAddCoeffs(t *testing.T) {
	vec := haveVecCoeffs
	t.Cleanup(func() { haveVecCoeffs = vec })
	for _, haveVecCoeffs = range []bool{false, vec} {
		testCoeffLoops(t)
	}
}

func testCoeffLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const q = 1<<60 - 93 // any modulus below 2^61
	lengths := []int{255, 256, 257, 263, 515}
	for n := 0; n <= 41; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		b := make([]byte, 8*n)
		sum := make([]uint64, n)
		for i := range n {
			binary.LittleEndian.PutUint64(b[8*i:], rng.Uint64N(q))
			sum[i] = rng.Uint64N(q)
		}
		if at := coeffAbove(b, q); at != -1 {
			t.Fatalf("n=%d: coeffAbove of coefficients below q = %d", n, at)
		}
		want := make([]uint64, n)
		for i := range n {
			want[i] = (sum[i] + binary.LittleEndian.Uint64(b[8*i:])) % q
		}
		got := append([]uint64(nil), sum...)
		if !addCoeffs(got, b, q) {
			t.Fatalf("n=%d: addCoeffs refused coefficients below q", n)
		}
		for i := range n {
			if got[i] != want[i] {
				t.Fatalf("n=%d: addCoeffs coefficient %d = %d, want %d", n, i, got[i], want[i])
			}
		}
		for bad := range n {
			for _, v := range []uint64{q, q + 1, 1<<64 - 1} {
				c := append([]byte(nil), b...)
				binary.LittleEndian.PutUint64(c[8*bad:], v)
				if at := coeffAbove(c, q); at != bad {
					t.Fatalf("n=%d: coefficient %d = %d: coeffAbove = %d", n, bad, v, at)
				}
				if addCoeffs(append([]uint64(nil), sum...), c, q) {
					t.Fatalf("n=%d: coefficient %d = %d: addCoeffs did not report it", n, bad, v)
				}
			}
		}
	}
	// The extremes of the addition, q−1 + q−1 and 0 + 0, at 16 positions (the vector loop's
	// too).
	var b []byte
	var got []uint64
	for range 8 {
		b = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, q-1), 0)
		got = append(got, q-1, 0)
	}
	if !addCoeffs(got, b, q) {
		t.Fatal("addCoeffs refused q−1")
	}
	for i, g := range got {
		if want := [2]uint64{q - 2, 0}[i%2]; g != want {
			t.Fatalf("addCoeffs of q−1 + q−1, 0 + 0: coefficient %d = %d, want %d", i, g, want)
		}
	}
	t.Logf("vector loops: %v", haveVecCoeffs)
}
