package secagg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/confide-fl/confide/secagg/identitytest"
)

// Streaming over ciphertext chunks: Encryptor.EncryptBinary writes each chunk into the
// marshalled upload as it is encrypted, and Aggregator.AddBinary checks and adds an upload
// chunk by chunk from its bytes. These tests pin that both produce what the whole-update
// path produces (bytes, sums, commitments, openings), that a tampered upload leaves the
// aggregate untouched, and what each allocates.

// streamLiterals are the encodings the streaming tests run under.
var streamLiterals = map[string]ParametersLiteral{
	"float":  {LogN: 10},
	"packed": {LogN: 10, ValueBits: 12, Primes: 3},
}

// TestEncryptBinaryMatchesMarshal: EncryptBinary returns Encrypt's upload marshalled, byte
// for byte, under the same randomness, with and without a Signer, on one or two workers.
func TestEncryptBinaryMatchesMarshal(t *testing.T) {
	for name, lit := range streamLiterals {
		p := testParams(t, lit)
		for _, auth := range []bool{false, true} {
			var f *federation
			if auth {
				f = newAuthFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1)
			} else {
				f = newFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1)
			}
			for _, workers := range []int{1, 2} {
				for _, dim := range []int{1, 3000} {
					t.Run(fmt.Sprintf("%s/auth=%v/workers=%d/dim=%d", name, auth, workers, dim), func(t *testing.T) {
						enc := func() *Encryptor {
							cfg := EncryptorConfig{ClientID: "client-1", Workers: workers, Randomness: DeterministicRandomness(7, "stream")}
							if auth {
								cfg.Signer, cfg.Verifier = testSigner(t, f.ca, "client-1"), f.verifier
							}
							e, err := NewEncryptor(p, f.pk, cfg)
							if err != nil {
								t.Fatal(err)
							}
							return e
						}
						ctx := UploadContext{Round: 3, Purpose: PurposeFit, TaskID: "task-3", TaskDigest: [32]byte{9}}
						vec := randomUpdates(5, 1, dim, 1)[0]
						u, err := enc().Encrypt(ctx, vec, 0.5)
						if err != nil {
							t.Fatal(err)
						}
						want, err := u.MarshalBinary()
						if err != nil {
							t.Fatal(err)
						}
						got, err := enc().EncryptBinary(ctx, vec, 0.5)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("EncryptBinary differs from Encrypt + MarshalBinary (%d and %d bytes)", len(got), len(want))
						}
					})
				}
			}
		}
	}
}

// TestEncryptBinaryECDSA: with an ECDSA signature (of variable length, drawn at random) the
// marshalled upload still decodes, its ciphertexts are Encrypt's and an aggregate accepts it.
func TestEncryptBinaryECDSA(t *testing.T) {
	p := testParams(t, streamLiterals["packed"])
	f := newAuthFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1)
	id, err := f.ca.IssueECDSA("client-ec")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(id.Certificate, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	vec := randomUpdates(6, 1, 2000, 1)[0]
	ctx := UploadContext{Round: 1, Purpose: PurposeFit, TaskID: "t"}
	var us [2]*EncryptedUpdate
	for i := range us {
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{Signer: s, Verifier: f.verifier, Randomness: DeterministicRandomness(1, "ec")})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			us[i], err = enc.Encrypt(ctx, vec, 1)
		} else {
			var b []byte
			if b, err = enc.EncryptBinary(ctx, vec, 1); err == nil {
				us[i] = &EncryptedUpdate{}
				err = us[i].UnmarshalBinary(b)
			}
			agg := newStreamAggregator(t, f, 1, nil)
			if err := agg.AddBinary(b, nil); err != nil {
				t.Fatalf("an ECDSA-signed streamed upload is refused: %v", err)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if us[0].Commitment != us[1].Commitment || len(us[0].chunks) != len(us[1].chunks) {
		t.Fatal("the streamed upload's commitment differs")
	}
	for k := range us[0].chunks {
		if !us[0].chunks[k].Equal(us[1].chunks[k]) {
			t.Fatalf("ciphertext %d differs", k)
		}
	}
}

// newStreamAggregator is an aggregate of f's round with f's verifier (if any), purpose fit.
func newStreamAggregator(t testing.TB, f *federation, round uint64, store LeafStore) *Aggregator {
	t.Helper()
	cfg := AggregatorConfig{Session: f.session, Round: round, Dim: 0, Committee: f.cfg, Verifier: f.verifier, Store: store}
	if f.verifier != nil {
		cfg.Purpose = PurposeFit
	}
	cfg.Dim = streamDim
	a, err := NewAggregator(f.params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const streamDim = 2000

// sumBytes is the aggregate's running sums, marshalled (nil before the first add).
func sumBytes(t testing.TB, a *Aggregator) []byte {
	t.Helper()
	if a.sum == nil {
		return nil
	}
	var b []byte
	for _, ct := range a.sum {
		p, err := ct.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, p...)
	}
	return b
}

// TestAddBinaryMatchesAdd: an aggregate built with AddBinary holds Add's sums, lists the
// same commitments, opens the members' spot checks byte for byte as Add's does (in memory
// and from a Store) and decrypts.
func TestAddBinaryMatchesAdd(t *testing.T) {
	for name, lit := range streamLiterals {
		t.Run(name, func(t *testing.T) {
			f := attackFederationWith(t, lit, 61)
			vecs := randomUpdates(2, 3, streamDim, 1)
			var blobs [][]byte
			var ups []*EncryptedUpdate
			for i, v := range vecs {
				u := f.upload(t, fmt.Sprint("client-", i), 1, PurposeFit, v)
				b, err := u.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				ups, blobs = append(ups, u), append(blobs, b)
			}
			whole := newStreamAggregator(t, f, 1, nil)
			for _, u := range ups {
				if err := whole.Add(u); err != nil {
					t.Fatal(err)
				}
			}
			file, err := os.CreateTemp(t.TempDir(), "leaves")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			for _, store := range []LeafStore{nil, file} {
				streamed := newStreamAggregator(t, f, 1, store)
				for i, b := range blobs {
					if err := streamed.AddBinary(b, nil); err != nil {
						t.Fatalf("upload %d: %v", i, err)
					}
				}
				if !bytes.Equal(sumBytes(t, streamed), sumBytes(t, whole)) {
					t.Fatal("AddBinary's sums differ from Add's")
				}
				set := []MemberID{1, 2, 3}
				var req *DecryptionRequest
				sameBytes(t, "decryption request", streamed, whole, func(a *Aggregator) (binaryMessage, error) {
					r, err := a.DecryptionRequest(set)
					req = r
					return r, err
				})
				ch := &Challenge{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: req.Aggregate, From: 1, Leaves: []uint32{0, 5, 17}}
				sameBytes(t, "opening", streamed, whole, func(a *Aggregator) (binaryMessage, error) { return a.Open(ch) })
				if store != nil && streamed.StoredBytes() == 0 {
					t.Fatal("nothing was written to the store")
				}
			}
			// The members' own spot checks pass on the streamed aggregate, and it decrypts.
			streamed := newStreamAggregator(t, f, 1, nil)
			for _, b := range blobs {
				if err := streamed.AddBinary(b, nil); err != nil {
					t.Fatal(err)
				}
			}
			res, err := f.snapshot(t).decrypt(t, streamed, []MemberID{1, 2, 3})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, streamDim)
			for _, v := range vecs {
				for j, x := range v {
					want[j] += x
				}
			}
			if d := maxAbsDiff(res.WeightedSum, want); d > 1e-2 || res.Count != len(vecs) {
				t.Fatalf("decrypted %d updates with max error %g", res.Count, d)
			}
		})
	}
}

// sameBytes fails t unless msg gives, for aggregates a and b, messages that marshal to the
// same bytes (msg's result for b last).
func sameBytes(t *testing.T, what string, a, b *Aggregator, msg func(*Aggregator) (binaryMessage, error)) {
	t.Helper()
	var bs [2][]byte
	for i, agg := range []*Aggregator{a, b} {
		m, err := msg(agg)
		if err != nil {
			t.Fatal(err)
		}
		if bs[i], err = m.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(bs[0], bs[1]) {
		t.Fatalf("the %ss differ", what)
	}
}

// attackFederationWith is attackFederation under lit.
func attackFederationWith(t *testing.T, lit ParametersLiteral, seed uint64) *federation {
	t.Helper()
	old := attackLiteral
	attackLiteral = lit
	defer func() { attackLiteral = old }()
	return attackFederation(t, seed)
}

// TestAddBinaryRejectsTampered: an upload whose signature, commitment, ciphertext bytes,
// metadata, header or client does not check out is refused, after which the aggregate's
// sums, contributors and kept commitments are as before and it takes the genuine upload.
// The passive aggregate (no commitment), which adds an upload as it reads it, refuses a
// bad last chunk after adding the ones before it and subtracts them again
// (addwire_test.go tests that further).
func TestAddBinaryRejectsTampered(t *testing.T) {
	for name, lit := range streamLiterals {
		t.Run(name, func(t *testing.T) {
			f := attackFederationWith(t, lit, 62)
			marshal := func(u *EncryptedUpdate) []byte {
				b, err := u.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			first := marshal(f.upload(t, "client-0", 1, PurposeFit, randomUpdates(3, 1, streamDim, 1)[0]))
			good := marshal(f.upload(t, "client-1", 1, PurposeFit, randomUpdates(4, 1, streamDim, 1)[0]))
			other := marshal(f.upload(t, "client-1", 2, PurposeFit, randomUpdates(4, 1, streamDim, 1)[0]))
			var u EncryptedUpdate
			if err := u.UnmarshalBinary(good); err != nil {
				t.Fatal(err)
			}
			n, levels := f.params.N(), f.params.Levels()
			cw := chunkWireSize(n, levels)
			body := len(good) - len(u.chunks)*cw // where the ciphertexts start
			last := body + (len(u.chunks)-1)*cw
			c0At, c1At := last+chunkMetaSize, last+chunkMetaSize+8*n*levels
			sigAt := body - len(u.Signature)
			old := func(at int) uint64 { return binary.LittleEndian.Uint64(good[at:]) }
			coeff := func(at int, v uint64) []byte {
				b := slices.Clone(good)
				binary.LittleEndian.PutUint64(b[at:], v)
				return b
			}
			flip := func(at int) []byte {
				b := slices.Clone(good)
				b[at] ^= 1
				return b
			}
			q0 := f.params.Moduli()[0]
			cases := []struct {
				name     string
				b        []byte
				accept   func(string, string) error
				identity bool // detected only by the signature or the commitment
			}{
				{"signature", flip(sigAt + 3), nil, true},
				{"commitment", flip(sigAt - 2 - 1), nil, true},
				{"c1 coefficient", coeff(c1At+8*5, (old(c1At+8*5)+1)%q0), nil, true},
				{"c0 coefficient", coeff(c0At+8*7, (old(c0At+8*7)+1)%q0), nil, true},
				{"coefficient not below its prime", coeff(c1At+8*(n-1), q0), nil, false},
				{"scale", coeff(last+2, 0x3ff0000000000000), nil, false},
				{"flags", flip(last + 10), nil, false},
				{"degree", flip(last), nil, false},
				{"truncated", good[:len(good)-1], nil, false},
				{"another round", other, nil, false},
				{"refused by accept", good, func(id, task string) error {
					if id != "client-1" {
						t.Errorf("accept saw client %q", id)
					}
					return errors.New("not this task")
				}, false},
			}
			for _, verified := range []bool{true, false} {
				g := *f
				if !verified {
					g.verifier = nil
				}
				agg := newStreamAggregator(t, &g, 1, nil)
				if err := agg.AddBinary(first, nil); err != nil {
					t.Fatal(err)
				}
				before, kept := sumBytes(t, agg), agg.KeptBytes()
				for _, c := range cases {
					if !verified && c.identity {
						continue // nothing binds them without identities
					}
					if err := agg.AddBinary(c.b, c.accept); err == nil {
						t.Fatalf("verified=%v: the upload with a tampered %s was added", verified, c.name)
					}
					if !bytes.Equal(sumBytes(t, agg), before) || agg.Count() != 1 || agg.KeptBytes() != kept || agg.broken != nil {
						t.Fatalf("verified=%v: refusing the upload with a tampered %s changed the aggregate", verified, c.name)
					}
				}
				if err := agg.AddBinary(good, nil); err != nil {
					t.Fatalf("verified=%v: the genuine upload after the tampered ones: %v", verified, err)
				}
				if agg.Count() != 2 || bytes.Equal(sumBytes(t, agg), before) {
					t.Fatal("the genuine upload was not added")
				}
			}
		})
	}
}

// totalAlloc returns the bytes the process allocated on the heap so far.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// allocated returns the fewest bytes f allocated over tries runs, each after setup (another
// goroutine of the test binary allocating meanwhile can only raise a run's count).
func allocated(tries int, setup, f func()) uint64 {
	best := ^uint64(0)
	for range tries {
		if setup != nil {
			setup()
		}
		runtime.GC()
		before := totalAlloc()
		f()
		best = min(best, totalAlloc()-before)
	}
	return best
}

// TestStreamingAllocation bounds, at d = 10^6 under both encodings (float: 62 chunks of one
// prime; packed at the federations' default 14 bits: 5 chunks of 6 primes), what the
// client's EncryptBinary and the server's AddBinary allocate, counted as every byte
// allocated during the call (TotalAlloc): a bound on their peak that no scheduling or
// machine load changes.
//
//   - EncryptBinary: the marshalled upload, plus an allowance of 2 chunks (one ciphertext
//     per worker, here 1), 64 bytes per ring coefficient (the commitment tree's hashes), 2
//     bytes per coefficient of every chunk (lattigo's encryptor draws each chunk's ternary
//     secret into N fresh bytes, garbage at once) and 64 KiB. Encrypt followed by
//     MarshalBinary allocates every ciphertext and then the upload: about twice the upload.
//   - AddBinary into an aggregate that holds an upload already (its sums allocated): what
//     the aggregate keeps of the upload (the c1 copy and tree levels of a verifying
//     aggregate, written to its Store after the add when it has one), plus the same
//     allowance. UnmarshalBinary and Add allocate the decoded upload as well.
func TestStreamingAllocation(t *testing.T) {
	if testing.Short() {
		t.Skip("d = 10^6 under two encodings")
	}
	const dim = 1_000_000
	for _, name := range []string{"float", "packed"} {
		t.Run(name, func(t *testing.T) {
			if raceEnabled && name == "float" {
				t.Skip("62 chunks of 10^6 values: slow under the race detector, which the packed case runs")
			}
			p := testParams(t, ParametersLiteral{})
			if name == "packed" {
				var err error
				if p, err = PackedForDimension(ParametersLiteral{ValueBits: DefaultValueBits}, dim); err != nil {
					t.Fatal(err)
				}
			}
			ca, err := identitytest.NewCA(1)
			if err != nil {
				t.Fatal(err)
			}
			f := buildFederation(t, p, CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}, 1, ca)
			n := p.N()
			cw := uint64(chunkWireSize(n, p.Levels()))
			allowance := 2*cw + 64*uint64(n) + 2*uint64(n*p.NumChunks(dim)) + 64<<10
			vec := randomUpdates(8, 1, dim, 1)[0]
			ctx := UploadContext{Round: 1, Purpose: PurposeFit, TaskID: "task"}
			var blobs [2][]byte
			var encs [2]*Encryptor
			for i := range blobs {
				encs[i] = f.encryptor(t, fmt.Sprint("client-", i))
				if blobs[i], err = encs[i].EncryptBinary(ctx, vec, 1); err != nil {
					t.Fatal(err)
				}
			}
			size := uint64(len(blobs[1]))
			chunks := func(b uint64) float64 { return float64(b) / float64(cw) }
			got := allocated(2, nil, func() {
				if _, err := encs[1].EncryptBinary(ctx, vec, 1); err != nil {
					t.Fatal(err)
				}
			})
			whole := allocated(1, nil, func() {
				u, err := encs[1].Encrypt(ctx, vec, 1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := u.MarshalBinary(); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%s: upload %d bytes, %d chunks of %d; EncryptBinary allocated the upload + %.2f chunks, Encrypt + MarshalBinary the upload + %.2f chunks",
				name, size, p.NumChunks(dim), cw, chunks(got-min(got, size)), chunks(whole-min(whole, size)))
			if got > size+allowance {
				t.Errorf("EncryptBinary allocated %d bytes, above the upload (%d) + %d", got, size, allowance)
			}

			file, err := os.CreateTemp(t.TempDir(), "leaves")
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			var u EncryptedUpdate
			if err := u.UnmarshalBinary(blobs[1]); err != nil {
				t.Fatal(err)
			}
			kept := uint64(commitUpload(n, p.Moduli(), u.chunks, 1, true, nil).memoryBytes())
			u = EncryptedUpdate{}
			for _, store := range []LeafStore{nil, file} {
				cfg := AggregatorConfig{Session: f.session, Round: 1, Dim: dim, Committee: f.cfg, Verifier: f.verifier, Purpose: PurposeFit, Store: store}
				var agg *Aggregator
				setup := func() {
					var err error
					if agg, err = NewAggregator(p, cfg); err != nil {
						t.Fatal(err)
					}
					if err := agg.AddBinary(blobs[0], nil); err != nil {
						t.Fatal(err)
					}
				}
				add := allocated(2, setup, func() {
					if err := agg.AddBinary(blobs[1], nil); err != nil {
						t.Fatal(err)
					}
				})
				old := allocated(1, setup, func() {
					var u EncryptedUpdate
					if err := u.UnmarshalBinary(blobs[1]); err != nil {
						t.Fatal(err)
					}
					if err := agg.Add(&u); err != nil {
						t.Fatal(err)
					}
				})
				t.Logf("%s, store %v: AddBinary allocated what the aggregate keeps (%d) + %.2f chunks, UnmarshalBinary + Add the kept + %.2f chunks",
					name, store != nil, kept, chunks(add-min(add, kept)), chunks(old-min(old, kept)))
				if add > kept+allowance {
					t.Errorf("store %v: AddBinary allocated %d bytes, above what the aggregate keeps (%d) + %d", store != nil, add, kept, allowance)
				}
			}
		})
	}
}

// Bytes changed after AddBinary checked them (another goroutine writing the server's
// buffer between the check and the add of a verifying aggregate, which adds nothing before
// the whole upload passed) are caught by the add's re-check: the upload is not counted and
// the half-updated aggregate is discarded, refusing further uploads. (The passive
// aggregate checks each group of coefficients in the registers it adds them from;
// TestAddBinaryBreaksOnBytesChangedDuringTheUndo covers its undo.)
func TestAddBinaryCatchesBytesChangedAfterTheCheck(t *testing.T) {
	for name, lit := range streamLiterals {
		t.Run(name, func(t *testing.T) {
			f := attackFederationWith(t, lit, 63)
			good, err := f.upload(t, "client-1", 1, PurposeFit, randomUpdates(4, 1, streamDim, 1)[0]).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var u EncryptedUpdate
			if err := u.UnmarshalBinary(good); err != nil {
				t.Fatal(err)
			}
			n, levels := f.params.N(), f.params.Levels()
			cw := chunkWireSize(n, levels)
			last := len(good) - cw
			at := last + chunkMetaSize + 8*n*levels + 8*(n-1) // a c1 coefficient of the last chunk
			agg := newStreamAggregator(t, f, 1, nil)
			checked, err := agg.checkBinary(good, nil)
			if err != nil {
				t.Fatal(err)
			}
			binary.LittleEndian.PutUint64(good[at:], f.params.Moduli()[0]) // not below its prime
			if err := agg.add(checked); err == nil {
				t.Fatal("an upload whose bytes changed after the check was added")
			}
			if agg.Count() != 0 || agg.broken == nil {
				t.Fatalf("after a failed add: %d uploads counted, aggregate broken = %v; want 0 and discarded", agg.Count(), agg.broken)
			}
			other, err := f.upload(t, "client-2", 1, PurposeFit, randomUpdates(5, 1, streamDim, 1)[0]).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := agg.AddBinary(other, nil); err == nil {
				t.Fatal("a discarded aggregate took another upload")
			}
		})
	}
}
