package secagg

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"
)

// TestStoredAggregateMemory: with a Store, an authenticated aggregate keeps nothing of its
// uploads in memory whatever their number, writes the same bytes per upload, answers the
// members' spot checks with openings byte-identical to those of an aggregate that keeps its
// uploads in memory, and decrypts.
func TestStoredAggregateMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		lit  ParametersLiteral
	}{{"float", ParametersLiteral{LogN: 10}}, {"packed", ParametersLiteral{LogN: 10, ValueBits: 12, Primes: 3}}} {
		t.Run(tc.name, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, 40)
			p := testParams(t, tc.lit)
			f := newAuthFederation(t, p, CommitteeConfig{Size: 4, Threshold: 3, MinContributions: 2}, 1)
			const dim = 2500
			var perUpload int64
			for round, clients := range []int{2, 5} {
				t.Run(fmt.Sprint("clients=", clients), func(t *testing.T) {
					file, err := os.Create(filepath.Join(t.TempDir(), "leaves"))
					if err != nil {
						t.Fatal(err)
					}
					inMemory := f.newAggregator(t, uint64(round+1), PurposeFit, dim)
					stored, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: uint64(round + 1), Dim: dim, Committee: f.cfg, Purpose: PurposeFit, Verifier: f.verifier, Store: file})
					if err != nil {
						t.Fatal(err)
					}
					exact := make([]float64, dim)
					for i, u := range randomUpdates(uint64(round), clients, dim, 1) {
						eu := f.upload(t, fmt.Sprint("client-", i), uint64(round+1), PurposeFit, u)
						for _, a := range []*Aggregator{inMemory, stored} {
							if err := a.Add(eu); err != nil {
								t.Fatal(err)
							}
						}
						for j, x := range u {
							exact[j] += x
						}
					}
					if stored.KeptBytes() != 0 || inMemory.KeptBytes() == 0 {
						t.Errorf("kept in memory: %d bytes with a store, %d without", stored.KeptBytes(), inMemory.KeptBytes())
					}
					if got := stored.StoredBytes() / int64(clients); perUpload == 0 {
						perUpload = got
					} else if got != perUpload {
						t.Errorf("%d bytes stored per upload, %d with fewer clients", got, perUpload)
					}
					set := []MemberID{1, 2, 4}
					reqM, err := inMemory.DecryptionRequest(set)
					if err != nil {
						t.Fatal(err)
					}
					req, err := stored.DecryptionRequest(set)
					if err != nil {
						t.Fatal(err)
					}
					var shares []*DecryptionShare
					for _, id := range set {
						ch, err := f.members[id-1].Challenge(req)
						if err != nil {
							t.Fatal(err)
						}
						o, err := stored.Open(ch)
						if err != nil {
							t.Fatal(err)
						}
						chM := *ch
						chM.Aggregate = reqM.Aggregate // the same sum; the in-memory aggregate's id
						oM, err := inMemory.Open(&chM)
						if err != nil {
							t.Fatal(err)
						}
						o.Aggregate = oM.Aggregate
						got, want := mustMarshal(t, o), mustMarshal(t, oM)
						if !bytes.Equal(got, want) {
							t.Fatalf("member %d: the stored aggregate's opening differs from the in-memory one", id)
						}
						o.Aggregate = req.Aggregate
						s, err := f.members[id-1].DecryptionShare(req, o)
						if err != nil {
							t.Fatal(err)
						}
						shares = append(shares, s)
					}
					res, err := stored.Combine(shares)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxAbsDiff(res.WeightedSum, exact); e > 0.05 || res.Count != clients {
						t.Errorf("max error %.3g, count %d", e, res.Count)
					}
					if err := stored.Release(); err != nil {
						t.Fatal(err)
					}
					if _, err := file.Stat(); !errors.Is(err, os.ErrClosed) {
						t.Errorf("after Release the store is still open (Stat: %v)", err)
					}
					if _, err := stored.Open(&Challenge{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: req.Aggregate, From: set[0], Leaves: []uint32{0}}); err == nil {
						t.Error("a released aggregate opened a challenge")
					}
					if _, err := stored.Combine(shares); err == nil {
						t.Error("a released aggregate combined shares")
					}
				})
			}
		})
	}
}

// failingStore refuses every write.
type failingStore struct{}

func (failingStore) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk full") }
func (failingStore) ReadAt([]byte, int64) (int, error)  { return 0, errors.New("nothing written") }

// TestStoreFailureRefusesUpload: an upload whose tree cannot be stored is refused with the
// store's error and leaves the aggregate unchanged.
func TestStoreFailureRefusesUpload(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 41)
	p := testParams(t, ParametersLiteral{LogN: 10})
	f := newAuthFederation(t, p, CommitteeConfig{Size: 4, Threshold: 3, MinContributions: 2}, 1)
	agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: 100, Committee: f.cfg, Purpose: PurposeFit, Verifier: f.verifier, Store: failingStore{}})
	if err != nil {
		t.Fatal(err)
	}
	err = agg.Add(f.upload(t, "client-0", 1, PurposeFit, make([]float64, 100)))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
		t.Fatalf("Add with a failing store: %v, want the store's error", err)
	}
	if agg.Count() != 0 || agg.StoredBytes() != 0 {
		t.Errorf("after a refused upload: count %d, %d bytes stored", agg.Count(), agg.StoredBytes())
	}
}
