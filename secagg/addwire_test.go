package secagg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

// An aggregate without a Verifier reads an upload's bytes once (addWire): it adds each
// group of coefficients as it checks it, and undoes what it added of an upload that turns
// out to hold a coefficient not below its prime. These tests pin that a refused upload,
// wherever its bad coefficient lies and on any number of workers, leaves the sums bit for
// bit as an aggregate that never saw it holds them, with the error UnmarshalBinary and Add
// give, and that bytes changed during the undo break the aggregate.

// wireFederation is a passive federation (no identities) under lit, with a dimension of
// at least three ciphertexts, and the byte layout of its uploads.
type wireFederation struct {
	*federation
	dim, chunks, n, levels, cw int
}

func newWireFederation(t *testing.T, lit ParametersLiteral) *wireFederation {
	t.Helper()
	p := testParams(t, lit)
	f := newFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1)
	dim := 1000
	for p.NumChunks(dim) < 3 {
		dim *= 2
	}
	return &wireFederation{federation: f, dim: dim, chunks: p.NumChunks(dim), n: p.N(), levels: p.Levels(), cw: chunkWireSize(p.N(), p.Levels())}
}

func (w *wireFederation) aggregator(t *testing.T, workers int) *Aggregator {
	t.Helper()
	a, err := NewAggregator(w.params, AggregatorConfig{Session: w.session, Round: 1, Dim: w.dim, Committee: w.cfg, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (w *wireFederation) blob(t *testing.T, client string, vec []float64) []byte {
	t.Helper()
	b, err := w.upload(t, client, 1, PurposeFit, vec).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunkAt returns the offset of chunk k in the upload b, and blockAt that of coefficient i
// of block j (polynomial j/levels, prime j%levels) of chunk k.
func (w *wireFederation) chunkAt(b []byte, k int) int { return len(b) - (w.chunks-k)*w.cw }

func (w *wireFederation) blockAt(b []byte, k, j, i int) int {
	return w.chunkAt(b, k) + chunkMetaSize + 8*w.n*j + 8*i
}

// expectedError is the error UnmarshalBinary, or else Add into an empty aggregate, gives
// for b.
func (w *wireFederation) expectedError(t *testing.T, b []byte) error {
	t.Helper()
	var u EncryptedUpdate
	if err := u.UnmarshalBinary(b); err != nil {
		return err
	}
	return w.aggregator(t, 1).Add(&u)
}

// TestAddBinaryUndoesARefusedUpload: an upload with a coefficient not below its prime (in
// the last block of the last chunk, where everything else was added before it; in a middle
// chunk, on two workers; also behind a chunk whose metadata is wrong) is refused with the
// error UnmarshalBinary and Add give, and leaves the aggregate's sums bit for bit as those
// of an aggregate that never saw it (none, into an empty aggregate); the aggregate then
// takes the same client's genuine upload and another, into the same sums, and decrypts.
func TestAddBinaryUndoesARefusedUpload(t *testing.T) {
	for name, lit := range streamLiterals {
		t.Run(name, func(t *testing.T) {
			w := newWireFederation(t, lit)
			vecs := randomUpdates(9, 3, w.dim, 1)
			first, good, third := w.blob(t, "client-0", vecs[0]), w.blob(t, "client-1", vecs[1]), w.blob(t, "client-2", vecs[2])
			q := w.params.Moduli()
			last, mid := w.chunks-1, w.chunks/2
			lastBlock := 2*w.levels - 1 // c1 over the last prime
			edit := func(at int, v uint64) func([]byte) {
				return func(b []byte) { binary.LittleEndian.PutUint64(b[at:], v) }
			}
			cases := []struct {
				name  string
				edits []func([]byte)
			}{
				{"last coefficient of the last block", []func([]byte){edit(w.blockAt(good, last, lastBlock, w.n-1), q[w.levels-1])}},
				{"first coefficient of the last block", []func([]byte){edit(w.blockAt(good, last, lastBlock, 0), q[w.levels-1]+1)}},
				{"middle chunk, c0, first prime", []func([]byte){edit(w.blockAt(good, mid, 0, w.n/2+3), 1<<64-1)}},
				{"middle chunk, c1, middle prime", []func([]byte){edit(w.blockAt(good, mid, w.levels+w.levels/2, 40), q[w.levels/2])}},
				{"first chunk's last coefficient, last chunk's scale", []func([]byte){
					edit(w.blockAt(good, 0, lastBlock, w.n-1), q[w.levels-1]),
					edit(w.chunkAt(good, last)+2, 0x3ff0000000000000),
				}},
				{"middle chunk's flags, last chunk's coefficient", []func([]byte){
					func(b []byte) { b[w.chunkAt(b, mid)+10] |= 0x40 },
					edit(w.blockAt(good, last, lastBlock, w.n-1), q[w.levels-1]),
				}},
				{"middle chunk's scale and coefficient", []func([]byte){
					edit(w.chunkAt(good, mid)+2, 0x3ff0000000000000),
					edit(w.blockAt(good, mid, lastBlock, 7), q[w.levels-1]),
				}},
			}
			for _, c := range cases {
				bad := slices.Clone(good)
				for _, e := range c.edits {
					e(bad)
				}
				want := w.expectedError(t, bad)
				if want == nil {
					t.Fatalf("%s: UnmarshalBinary and Add accept the upload", c.name)
				}
				for _, workers := range []int{1, 2} {
					for _, fresh := range []bool{false, true} {
						t.Run(fmt.Sprintf("%s/workers=%d/empty=%v", c.name, workers, fresh), func(t *testing.T) {
							agg, ref := w.aggregator(t, workers), w.aggregator(t, workers)
							if !fresh {
								for _, a := range []*Aggregator{agg, ref} {
									if err := a.AddBinary(first, nil); err != nil {
										t.Fatal(err)
									}
								}
							}
							err := agg.AddBinary(bad, nil)
							if err == nil {
								t.Fatal("the upload was added")
							}
							if err.Error() != want.Error() {
								t.Fatalf("AddBinary: %v\nwant (UnmarshalBinary, Add): %v", err, want)
							}
							if !bytes.Equal(sumBytes(t, agg), sumBytes(t, ref)) || (agg.sum == nil) != (ref.sum == nil) || agg.broken != nil || !slices.Equal(agg.Contributors(), ref.Contributors()) {
								t.Fatal("refusing the upload changed the aggregate")
							}
							if fresh {
								return
							}
							for _, b := range [][]byte{good, third} {
								for _, a := range []*Aggregator{agg, ref} {
									if err := a.AddBinary(b, nil); err != nil {
										t.Fatalf("a genuine upload after the refused one: %v", err)
									}
								}
							}
							if !bytes.Equal(sumBytes(t, agg), sumBytes(t, ref)) {
								t.Fatal("the sums differ after two genuine uploads")
							}
							if workers == 2 {
								return // decrypted once per case
							}
							res, err := w.decrypt(t, agg, []MemberID{1, 2})
							if err != nil {
								t.Fatal(err)
							}
							exact := make([]float64, w.dim)
							for _, v := range vecs {
								for j, x := range v {
									exact[j] += x
								}
							}
							if res.Count != 3 || maxAbsDiff(res.WeightedSum, exact) > 0.01 {
								t.Fatalf("decrypted %d updates, max error %g", res.Count, maxAbsDiff(res.WeightedSum, exact))
							}
						})
					}
				}
			}
		})
	}
}

// TestAddBinaryBreaksOnBytesChangedDuringTheUndo: bytes of a refused upload changed during
// the call (a racing writer of the server's buffer, here addWire's test hook after the
// refused block) break the aggregate when a check sees the change: an added coefficient no
// longer below its prime when it is subtracted, or the refused coefficient put back, so
// that the upload now passes and the subtraction may have missed a change.
func TestAddBinaryBreaksOnBytesChangedDuringTheUndo(t *testing.T) {
	w := newWireFederation(t, streamLiterals["packed"])
	first := w.blob(t, "client-0", randomUpdates(10, 1, w.dim, 1)[0])
	good := w.blob(t, "client-1", randomUpdates(11, 1, w.dim, 1)[0])
	q := w.params.Moduli()
	last, lastBlock := w.chunks-1, 2*w.levels-1
	badAt := w.blockAt(good, last, lastBlock, w.n-1)
	t.Cleanup(func() { addWireHook = nil })
	for _, c := range []struct {
		name   string
		change func(b []byte)
	}{
		{"an added coefficient no longer below its prime", func(b []byte) {
			binary.LittleEndian.PutUint64(b[w.blockAt(b, 1, 2, 5):], q[2%w.levels])
		}},
		{"the refused coefficient put back", func(b []byte) { copy(b[badAt:badAt+8], good[badAt:]) }},
	} {
		agg := w.aggregator(t, 1)
		if err := agg.AddBinary(first, nil); err != nil {
			t.Fatal(err)
		}
		bad := slices.Clone(good)
		binary.LittleEndian.PutUint64(bad[badAt:], q[w.levels-1])
		addWireHook = func(k, j int) {
			if k == last && j == lastBlock {
				c.change(bad)
			}
		}
		err := agg.AddBinary(bad, nil)
		addWireHook = nil
		if err == nil || agg.broken == nil || agg.Count() != 1 {
			t.Fatalf("%s: AddBinary: %v; aggregate broken: %v, %d uploads; want an error, broken, 1", c.name, err, agg.broken, agg.Count())
		}
		if err := agg.AddBinary(good, nil); err == nil {
			t.Fatalf("%s: a discarded aggregate took another upload", c.name)
		}
	}
}

// TestAddBinaryStopsAtTheRefusedBlock: on one worker the add stops at the block holding
// the bad coefficient, so a refused upload costs no more than what came before it (and its
// undo).
func TestAddBinaryStopsAtTheRefusedBlock(t *testing.T) {
	w := newWireFederation(t, streamLiterals["packed"])
	good := w.blob(t, "client-1", randomUpdates(12, 1, w.dim, 1)[0])
	mid, blocks := w.chunks/2, 2*w.levels
	bad := slices.Clone(good)
	binary.LittleEndian.PutUint64(bad[w.blockAt(bad, mid, 1, 3):], 1<<64-1)
	agg := w.aggregator(t, 1)
	calls := 0
	addWireHook = func(k, j int) { calls++ }
	t.Cleanup(func() { addWireHook = nil })
	if err := agg.AddBinary(bad, nil); err == nil {
		t.Fatal("the upload was added")
	}
	if want := mid*blocks + 2; calls != want {
		t.Fatalf("the add went through %d blocks, want %d (up to the refused one)", calls, want)
	}
}
