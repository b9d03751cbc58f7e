package secagg

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCoeffAboveAndAddCoeffs checks the byte-level loops AddBinary runs (coeffAbove,
// checkAddCoeffs and subCoeffs, which undoes it) against their
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
		if m := checkAddCoeffs(got, b, q); m != n || !slices.Equal(got, want) {
			t.Fatalf("n=%d: checkAddCoeffs of coefficients below q added %d, sums equal: %v", n, m, slices.Equal(got, want))
		}
		if !subCoeffs(got, b, q) || !slices.Equal(got, sum) {
			t.Fatalf("n=%d: subCoeffs did not undo checkAddCoeffs", n)
		}
		for bad := range n {
			for _, v := range []uint64{q, q + 1, 1<<64 - 1} {
				c := append([]byte(nil), b...)
				binary.LittleEndian.PutUint64(c[8*bad:], v)
				if at := coeffAbove(c, q); at != bad {
					t.Fatalf("n=%d: coefficient %d = %d: coeffAbove = %d", n, bad, v, at)
				}
				// checkAddCoeffs adds a prefix that stops before the bad coefficient, within
				// one group of 32, and leaves the rest as it was; subCoeffs of the prefix
				// undoes it, and refuses a range holding the bad coefficient.
				got := append([]uint64(nil), sum...)
				m := checkAddCoeffs(got, c, q)
				if m > bad || m <= bad-32 || !slices.Equal(got[:m], want[:m]) || !slices.Equal(got[m:], sum[m:]) {
					t.Fatalf("n=%d: coefficient %d = %d: checkAddCoeffs added %d (sums as wanted: %v, rest untouched: %v)", n, bad, v, m, slices.Equal(got[:m], want[:m]), slices.Equal(got[m:], sum[m:]))
				}
				if !subCoeffs(got[:m], c, q) || !slices.Equal(got, sum) {
					t.Fatalf("n=%d: coefficient %d = %d: subCoeffs of the %d added did not undo them", n, bad, v, m)
				}
				if subCoeffs(append([]uint64(nil), sum[:bad+1]...), c, q) {
					t.Fatalf("n=%d: coefficient %d = %d: subCoeffs did not report it", n, bad, v)
				}
			}
		}
	}
	// The extremes of the addition, q−1 + q−1 and 0 + 0, at 64 positions (the vector loops'
	// too).
	var b []byte
	var got []uint64
	for range 32 {
		b = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, q-1), 0)
		got = append(got, q-1, 0)
	}
	if m := checkAddCoeffs(got, b, q); m != len(got) {
		t.Fatalf("checkAddCoeffs refused q−1 (added %d)", m)
	}
	for i, g := range got {
		if want := [2]uint64{q - 2, 0}[i%2]; g != want {
			t.Fatalf("checkAddCoeffs of q−1 + q−1, 0 + 0: coefficient %d = %d, want %d", i, g, want)
		}
	}
	t.Logf("vector loops: %v", haveVecCoeffs)
}
