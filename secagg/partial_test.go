package secagg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/cryptotest"
)

// hierarchy is a round of hierarchical aggregation in memory: direct uploads to the root
// and two intermediate aggregators a and b, each with its subtotal.
type hierarchy struct {
	root    *HierarchicalAggregator
	subs    map[string]*Subtotal
	uploads map[string][]*EncryptedUpdate // by where they went: "root", "agg-a", "agg-b"
	values  map[string][][]float64        // their plaintexts, likewise
	exact   []float64
}

// newHierarchy encrypts n updates for round: the first two go to the root directly, the
// rest alternate between aggregators "agg-a" and "agg-b", which forward their partial sums
// (through the wire format). It returns the hierarchy and the flat aggregate of the same
// uploads.
func newHierarchy(t *testing.T, f *federation, round uint64, dim, n int) (*hierarchy, *Aggregator) {
	t.Helper()
	cfg := AggregatorConfig{Session: f.session, Round: round, Dim: dim, Committee: f.cfg, Workers: 2, Purpose: PurposeFit, Verifier: f.verifier}
	root, err := NewHierarchicalAggregator(f.params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &hierarchy{root: root, subs: map[string]*Subtotal{}, uploads: map[string][]*EncryptedUpdate{}, values: map[string][][]float64{}, exact: make([]float64, dim)}
	for _, name := range []string{"agg-a", "agg-b"} {
		if h.subs[name], err = NewSubtotal(f.params, cfg, name); err != nil {
			t.Fatal(err)
		}
	}
	flat := f.newAggregator(t, round, PurposeFit, dim)
	for i, u := range randomUpdates(round, n, dim, 1) {
		eu := f.upload(t, fmt.Sprint("client-", i), round, PurposeFit, u)
		if err := flat.Add(eu); err != nil {
			t.Fatal(err)
		}
		to := "root"
		switch {
		case i < 2:
			err = root.Add(eu)
		case i%2 == 0:
			to, err = "agg-a", h.subs["agg-a"].Add(roundTrip(t, eu, &EncryptedUpdate{}))
		default:
			to, err = "agg-b", h.subs["agg-b"].Add(roundTrip(t, eu, &EncryptedUpdate{}))
		}
		if err != nil {
			t.Fatal(err)
		}
		h.uploads[to], h.values[to] = append(h.uploads[to], eu), append(h.values[to], u)
		for j, x := range u {
			h.exact[j] += x
		}
	}
	return h, flat
}

// forward sends the partial sum of aggregator name to the root through the wire.
func (h *hierarchy) forward(t *testing.T, name string) error {
	t.Helper()
	p, err := h.subs[name].Partial()
	if err != nil {
		t.Fatal(err)
	}
	return h.root.AddPartial(roundTrip(t, p, &PartialSum{}), name)
}

// forwardedHierarchy seeds crypto/rand, builds an authenticated federation of size
// members (t = 3, m = 3), a hierarchy of n uploads of dim values for round with both
// aggregators' partial sums forwarded, and the flat aggregate of the same uploads.
func forwardedHierarchy(t *testing.T, seed uint64, size int, round uint64, dim, n int) (*federation, *hierarchy, *Aggregator) {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	f := newAuthFederation(t, testParams(t, ParametersLiteral{LogN: 12}), CommitteeConfig{Size: size, Threshold: 3, MinContributions: 3}, 2)
	h, flat := newHierarchy(t, f, round, dim, n)
	for _, name := range []string{"agg-a", "agg-b"} {
		if err := h.forward(t, name); err != nil {
			t.Fatal(err)
		}
	}
	return f, h, flat
}

// decrypt runs the members of set over the root's request: each challenges, the root
// relays the challenge to every source and merges their openings, the member checks the
// merged opening and answers with its share.
func (h *hierarchy) decrypt(t *testing.T, f *federation, set []MemberID, open func(name string, ch *Challenge) *Opening) (*AggregateResult, error) {
	t.Helper()
	req, err := h.root.DecryptionRequest(set)
	if err != nil {
		return nil, err
	}
	req = roundTrip(t, req, &DecryptionRequest{})
	var shares []*DecryptionShare
	for _, id := range req.Members {
		m := f.members[id-1]
		ch, err := m.Challenge(req)
		if err != nil {
			return nil, err
		}
		subs := map[string]*Opening{}
		for _, name := range h.root.Sources() {
			if o := open(name, roundTrip(t, ch, &Challenge{})); o != nil {
				subs[name] = roundTrip(t, o, &Opening{})
			}
		}
		o, err := h.root.Open(ch, subs)
		if err != nil {
			return nil, err
		}
		s, err := m.DecryptionShare(req, roundTrip(t, o, &Opening{}))
		if err != nil {
			return nil, err
		}
		shares = append(shares, s)
	}
	return h.root.Combine(shares)
}

// honest opens with the subtotal itself.
func (h *hierarchy) honest(t *testing.T) func(string, *Challenge) *Opening {
	return func(name string, ch *Challenge) *Opening {
		o, err := h.subs[name].Open(ch)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
}

// TestHierarchicalAggregateEqualsFlat: two direct uploads and two aggregators' partial
// sums of three uploads each decrypt, through members' spot checks of every contributor,
// to the sum of the eight updates, and to what the flat aggregate of the same uploads
// decrypts to (by another set of the committee, from the members' state before the
// hierarchical decryption) within the secure-aggregation error. A partial sum is no larger
// than one upload.
func TestHierarchicalAggregateEqualsFlat(t *testing.T) {
	f, h, flat := forwardedHierarchy(t, 41, 5, 7, 5000, 8)
	if h.root.Count() != 8 || len(h.root.Sources()) != 2 {
		t.Fatalf("root holds %d contributors from sources %v, want 8 from 2", h.root.Count(), h.root.Sources())
	}
	// Any two sets of t = 3 of the K = 5 members share one, which decrypts one aggregate of
	// a round: the flat aggregate goes to a copy of the committee that never saw the
	// hierarchical one.
	fresh := f.snapshot(t)
	res, err := h.decrypt(t, f, []MemberID{1, 2, 3}, h.honest(t))
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(res.WeightedSum, h.exact); e > 1e-3 || res.Count != 8 || res.TotalWeight < 7.99 || res.TotalWeight > 8.01 {
		t.Fatalf("hierarchical: max error %.3g, count %d, weight %g", e, res.Count, res.TotalWeight)
	}
	if _, err := f.decrypt(t, flat, []MemberID{3, 4, 5}); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Fatalf("member 3 decrypted a second aggregate of round 7: err = %v, want ErrAlreadyDecrypted", err)
	}
	flatRes, err := fresh.decrypt(t, flat, []MemberID{3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	// Two decryptions each with error std ErrorStd(3) per coordinate (doc.go).
	if e := maxAbsDiff(res.WeightedSum, flatRes.WeightedSum); e > 1e-3 || flatRes.Count != 8 {
		t.Fatalf("hierarchical and flat sums differ by up to %.3g (flat count %d)", e, flatRes.Count)
	}
	ps, err := h.subs["agg-a"].Partial()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := ps.Sum.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	up, err := h.uploads["agg-a"][0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) > len(up) {
		t.Fatalf("a partial sum of %d bytes, an upload of %d: a partial sum must be no larger than one upload", len(sum), len(up))
	}
	t.Logf("partial sum %d bytes (an upload %d); hierarchical vs flat max difference %.3g", len(sum), len(up), maxAbsDiff(res.WeightedSum, flatRes.WeightedSum))
}

// TestHierarchicalAggregateCatchesALyingAggregator: an aggregator whose partial sum leaves
// out one of the uploads it lists, or adds one it does not list, is named by the root's
// check of its opening (ErrSpotCheck), and a member given the merged opening anyway refuses.
func TestHierarchicalAggregateCatchesALyingAggregator(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 42)
	p := testParams(t, ParametersLiteral{LogN: 12})
	f := newAuthFederation(t, p, CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 3}, 2)
	const dim = 3000
	for _, tc := range []struct {
		name  string
		round uint64
		lie   func(t *testing.T, h *hierarchy) *PartialSum
	}{
		{"sum leaves an upload out", 11, func(t *testing.T, h *hierarchy) *PartialSum {
			// agg-a lists its three uploads but forwards the sum of the first alone.
			honest, _ := h.subs["agg-a"].Partial()
			short, err := NewSubtotal(f.params, h.subs["agg-a"].agg.cfg, "agg-a")
			if err != nil {
				t.Fatal(err)
			}
			if err := short.Add(h.uploads["agg-a"][0]); err != nil {
				t.Fatal(err)
			}
			ps, err := short.Partial()
			if err != nil {
				t.Fatal(err)
			}
			return &PartialSum{Sum: ps.Sum, Commitments: honest.Commitments}
		}},
		{"sum adds an unlisted upload", 12, func(t *testing.T, h *hierarchy) *PartialSum {
			honest, _ := h.subs["agg-a"].Partial()
			extra := f.upload(t, "client-99", 12, PurposeFit, randomUpdates(99, 1, dim, 1)[0])
			sum := &PartialSum{Sum: roundTrip(t, honest.Sum, &EncryptedUpdate{}), Commitments: honest.Commitments}
			for k := range sum.Sum.chunks {
				if err := h.root.agg.evals[0].Add(sum.Sum.chunks[k], extra.chunks[k], sum.Sum.chunks[k]); err != nil {
					t.Fatal(err)
				}
			}
			return sum
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHierarchy(t, f, tc.round, dim, 8)
			if err := h.root.AddPartial(tc.lie(t, h), "agg-a"); err != nil {
				t.Fatalf("the root cannot tell a wrong sum from the signatures, yet AddPartial refused: %v", err)
			}
			if err := h.forward(t, "agg-b"); err != nil {
				t.Fatal(err)
			}
			req, err := h.root.DecryptionRequest([]MemberID{1, 3, 5})
			if err != nil {
				t.Fatal(err)
			}
			m := f.members[0]
			ch, err := m.Challenge(req)
			if err != nil {
				t.Fatal(err)
			}
			subs := map[string]*Opening{}
			for _, name := range h.root.Sources() {
				subs[name] = h.honest(t)(name, ch)
			}
			// The liar opens its uploads truthfully (their signed roots leave it no choice)
			// and names the partial sum it forwarded.
			for _, s := range h.root.sources {
				subs[s.name].Aggregate = s.id
			}
			_, err = h.root.Open(ch, subs)
			var pe *PartialSourceError
			if !errors.As(err, &pe) || pe.Source != "agg-a" || !errors.Is(err, ErrSpotCheck) {
				t.Fatalf("root's check of the openings: %v, want a PartialSourceError naming agg-a wrapping ErrSpotCheck", err)
			}
			// Bypass the root's check: the member's own spot check refuses the merged opening.
			merged := h.mergeUnchecked(t, ch, subs)
			if _, err := m.DecryptionShare(req, merged); !errors.Is(err, ErrSpotCheck) {
				t.Fatalf("member given the lying aggregator's opening: %v, want ErrSpotCheck", err)
			}
		})
	}
}

// mergeUnchecked merges the openings as HierarchicalAggregator.Open does, without its check
// of the sources (what a root that forwards blindly would send).
func (h *hierarchy) mergeUnchecked(t *testing.T, ch *Challenge, subs map[string]*Opening) *Opening {
	t.Helper()
	direct, err := h.root.agg.Open(ch)
	if err != nil {
		t.Fatal(err)
	}
	merged := *direct
	merged.uploads = make([]uploadOpening, len(h.root.refs))
	for i, r := range h.root.refs {
		if r.source < 0 {
			merged.uploads[i] = direct.uploads[r.index]
		} else {
			merged.uploads[i] = subs[h.root.sources[r.source].name].uploads[r.index]
		}
	}
	return &merged
}

// TestPartialSumRefusals: the root refuses partial sums that would count a client twice,
// come twice from one aggregator, belong to another round, name another aggregator or list
// an upload not signed for the aggregate, each leaving the aggregate unchanged; a subtotal
// refuses uploads once forwarded; both refuse to run without identities.
func TestPartialSumRefusals(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 43)
	p := testParams(t, ParametersLiteral{LogN: 12})
	f := newAuthFederation(t, p, CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 3}, 1)
	const dim = 100
	h, _ := newHierarchy(t, f, 21, dim, 6)
	honest, err := h.subs["agg-a"].Partial()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newHierarchy(t, f, 22, dim, 6)
	stale, err := other.subs["agg-a"].Partial()
	if err != nil {
		t.Fatal(err)
	}
	forged := &PartialSum{Sum: honest.Sum, Commitments: append([]UploadCommitment(nil), honest.Commitments...)}
	forged.Commitments[0].Signature = append([]byte(nil), forged.Commitments[0].Signature...)
	forged.Commitments[0].Signature[0] ^= 1
	twice := &PartialSum{Sum: honest.Sum, Commitments: append(append([]UploadCommitment(nil), honest.Commitments...), honest.Commitments[0])}
	direct := &PartialSum{Sum: honest.Sum, Commitments: append(append([]UploadCommitment(nil), honest.Commitments...), h.uploads["root"][0].commitment())}
	for _, tc := range []struct {
		name    string
		partial *PartialSum
		source  string
		want    error
	}{
		{"another round", stale, "agg-a", ErrWrongSession},
		{"another aggregator's name", honest, "agg-b", ErrUnauthenticated},
		{"forged signature", forged, "agg-a", ErrUnauthenticated},
		{"a client twice", twice, "agg-a", ErrDuplicate},
		{"a client who uploaded directly", direct, "agg-a", ErrDuplicate},
	} {
		if err := h.root.AddPartial(tc.partial, tc.source); !errors.Is(err, tc.want) || h.root.Count() != 2 {
			t.Errorf("%s: %v (count %d), want %v and the 2 direct uploads alone", tc.name, err, h.root.Count(), tc.want)
		}
	}
	if err := h.root.AddPartial(honest, "agg-a"); err != nil {
		t.Fatal(err)
	}
	if err := h.root.AddPartial(honest, "agg-a"); !errors.Is(err, ErrDuplicate) || h.root.Count() != 4 {
		t.Errorf("second partial sum of agg-a: %v (count %d), want ErrDuplicate and 4", err, h.root.Count())
	}
	if err := h.subs["agg-a"].Add(h.uploads["agg-b"][0]); !errors.Is(err, ErrFrozen) {
		t.Errorf("upload to a forwarded subtotal: %v, want ErrFrozen", err)
	}
	cfg := AggregatorConfig{Session: f.session, Round: 1, Dim: dim, Committee: f.cfg, Purpose: PurposeFit}
	if _, err := NewSubtotal(p, cfg, "agg-c"); err == nil {
		t.Error("a subtotal without a Verifier was accepted")
	}
	if _, err := NewHierarchicalAggregator(p, cfg); err == nil {
		t.Error("a hierarchical aggregate without a Verifier was accepted")
	}
}

// TestDropAggregatorLosesItsSubtreeOnly: an aggregator that stops answering before the
// aggregate is frozen is dropped; the round decrypts the rest (direct uploads and the other
// aggregator's subtree), and nothing can be dropped once members are asked.
func TestDropAggregatorLosesItsSubtreeOnly(t *testing.T) {
	const dim = 2000
	f, h, _ := forwardedHierarchy(t, 44, 5, 31, dim, 8)
	if err := h.root.Drop("agg-b"); err != nil {
		t.Fatal(err)
	}
	if err := h.root.Drop("agg-b"); err == nil {
		t.Fatal("dropping agg-b twice was accepted")
	}
	if got := h.root.Sources(); len(got) != 1 || got[0] != "agg-a" || h.root.Count() != 5 {
		t.Fatalf("after dropping agg-b: sources %v, %d contributors; want [agg-a] and 5", got, h.root.Count())
	}
	want := make([]float64, dim)
	for _, to := range []string{"root", "agg-a"} {
		for _, u := range h.values[to] {
			for j, x := range u {
				want[j] += x
			}
		}
	}
	res, err := h.decrypt(t, f, []MemberID{2, 3, 4}, h.honest(t))
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(res.WeightedSum, want); e > 1e-3 || res.Count != 5 {
		t.Fatalf("without agg-b: max error %.3g, count %d; want the 5 others' sum", e, res.Count)
	}
	if err := h.root.Drop("agg-a"); !errors.Is(err, ErrFrozen) {
		t.Fatalf("drop after the request: %v, want ErrFrozen", err)
	}
}

// BenchmarkRootIngress compares what the server receives and does for a subtree of 50
// uploads (d = 10^5, default parameters, Ed25519 identities): 50 uploads added one by one
// (flat) against one partial sum listing 50 commitments (hierarchical). It reports the
// bytes each way (the partial's Sum plus its commitments as DecryptionRequest encodes
// them) and the server's time per subtree.
func BenchmarkRootIngress(b *testing.B) {
	const (
		dim     = 100_000
		subtree = 50
	)
	f := authBenchFederation(b)
	cfg := AggregatorConfig{Session: f.session, Round: 1, Dim: dim, Committee: benchCommittee, Purpose: PurposeFit, Verifier: f.verifier}
	sub, err := NewSubtotal(f.params, cfg, "agg-a")
	if err != nil {
		b.Fatal(err)
	}
	var ups []*EncryptedUpdate
	flatBytes := 0
	for i, u := range randomUpdates(1, subtree, dim, 1) {
		eu := f.upload(b, fmt.Sprint("client-", i), 1, PurposeFit, u)
		if err := sub.Add(eu); err != nil {
			b.Fatal(err)
		}
		bs, err := eu.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		flatBytes += len(bs)
		ups = append(ups, eu)
	}
	partial, err := sub.Partial()
	if err != nil {
		b.Fatal(err)
	}
	sum, err := partial.Sum.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	partialBytes := len(sum)
	for _, c := range partial.Commitments {
		partialBytes += commitmentWireSize(len(c.Certificate), len(c.TaskID), len(c.Signature))
	}
	b.Run("flat", func(b *testing.B) {
		for b.Loop() {
			root, err := NewAggregator(f.params, cfg)
			if err != nil {
				b.Fatal(err)
			}
			for _, u := range ups {
				if err := root.Add(u); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(flatBytes), "ingress-bytes")
	})
	b.Run("hierarchical", func(b *testing.B) {
		for b.Loop() {
			root, err := NewHierarchicalAggregator(f.params, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if err := root.AddPartial(partial, "agg-a"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(partialBytes), "ingress-bytes")
	})
}

// FuzzPartialSum decodes arbitrary bytes as a partial sum: malformed input is an error,
// never a panic; what decodes re-encodes identically and goes through AddPartial's checks.
// The seed is a valid partial sum of two signed uploads.
func FuzzPartialSum(f *testing.F) {
	fz := newFuzzFederation(f)
	cfg := AggregatorConfig{Session: fuzzSession, Round: 1, Dim: fuzzDim, Committee: fz.cfg, Purpose: PurposeFit, Verifier: fz.verifier}
	sub, err := NewSubtotal(fz.params, cfg, "agg-a")
	if err != nil {
		f.Fatal(err)
	}
	for i := range 2 {
		if err := sub.Add(fz.upload(f, fmt.Sprint("client", i), 1, PurposeFit, randomUpdates(uint64(i), 1, fuzzDim, 1)[0])); err != nil {
			f.Fatal(err)
		}
	}
	p, err := sub.Partial()
	if err != nil {
		f.Fatal(err)
	}
	seed, err := p.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps PartialSum
		if fuzzDecode(t, &ps, b) {
			root, err := NewHierarchicalAggregator(fz.params, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_ = root.AddPartial(&ps, ps.Sum.ClientID)
		}
	})
}

// TestPartialSumWire: a partial sum survives the wire, and every truncation of it, and a
// commitment count beyond the message, is an error.
func TestPartialSumWire(t *testing.T) {
	_, h, _ := forwardedHierarchy(t, 45, 5, 41, 300, 6)
	p, err := h.subs["agg-b"].Partial()
	if err != nil {
		t.Fatal(err)
	}
	b := roundTripBytes(t, p)
	var back PartialSum
	if err := back.UnmarshalBinary(b); err != nil || len(back.Commitments) != len(p.Commitments) || back.Sum.ClientID != "agg-b" {
		t.Fatalf("decoded %d commitments from %q (%v), want %d from agg-b", len(back.Commitments), back.Sum.ClientID, err, len(p.Commitments))
	}
	for _, n := range []int{0, 3, 9, len(b) / 2, len(b) - 40, len(b) - 1} {
		if err := new(PartialSum).UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("a partial sum cut to %d of %d bytes decoded", n, len(b))
		}
	}
	// The commitment count sits right after the sum.
	at := 4 + 4 + len(roundTripBytes(t, p.Sum))
	bad := bytes.Clone(b)
	binary.LittleEndian.PutUint32(bad[at:], 1<<30)
	if err := new(PartialSum).UnmarshalBinary(bad); err == nil || !strings.Contains(err.Error(), "cannot fit") {
		t.Errorf("a commitment count of 2^30: %v, want an error saying they cannot fit", err)
	}
}

// TestSubtotalCheckThenAdd: the aggregator's two-step path (Check, forward the result as
// held, AddChecked once the server accepted it) gives the partial sum Add gives; a checked
// upload is refused once its client was added or the subtotal forwarded; the root wraps
// an aggregate of direct uploads (HierarchicalOf) and lists each source's uploads with
// their clients, tasks and roots (SourceUploads).
// Check takes the decoded upload, CheckBinary its bytes (what the aggregator of package
// aggregator uses): both must give the same subtotal, and CheckBinary must refuse a tampered
// upload and one its accept callback refuses without changing it.
func TestSubtotalCheckThenAdd(t *testing.T) {
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprintf("binary=%v", binary), func(t *testing.T) { testSubtotalCheckThenAdd(t, binary) })
	}
}

func testSubtotalCheckThenAdd(t *testing.T, binary bool) {
	cryptotest.SetGlobalRandom(t, 47)
	p := testParams(t, ParametersLiteral{LogN: 12})
	f := newAuthFederation(t, p, CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 3}, 1)
	const dim, round = 50, 5
	cfg := AggregatorConfig{Session: f.session, Round: round, Dim: dim, Committee: f.cfg, Workers: 2, Purpose: PurposeFit, Verifier: f.verifier}
	viaAdd, err := NewSubtotal(p, cfg, "agg-a")
	if err != nil {
		t.Fatal(err)
	}
	viaCheck, err := NewSubtotal(p, cfg, "agg-a")
	if err != nil {
		t.Fatal(err)
	}
	direct := f.newAggregator(t, round, PurposeFit, dim)
	check := func(eu *EncryptedUpdate) (*CheckedUpload, error) {
		if !binary {
			return viaCheck.Check(eu)
		}
		b, err := eu.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return viaCheck.CheckBinary(b, func(clientID, taskID string) error {
			if clientID != eu.ClientID || taskID != eu.TaskID {
				t.Fatalf("CheckBinary's callback got %s, %s; want %s, %s", clientID, taskID, eu.ClientID, eu.TaskID)
			}
			return nil
		})
	}
	var checked []*CheckedUpload
	var last *EncryptedUpdate
	for i, u := range randomUpdates(round, 4, dim, 1) {
		eu := f.upload(t, fmt.Sprint("client-", i), round, PurposeFit, u)
		if i == 0 {
			if err := direct.Add(eu); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := viaAdd.Add(eu); err != nil {
			t.Fatal(err)
		}
		if binary {
			b, err := eu.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			refused := errors.New("not this client's task")
			if _, err := viaCheck.CheckBinary(b, func(string, string) error { return refused }); !errors.Is(err, refused) {
				t.Fatalf("CheckBinary when accept refuses: %v", err)
			}
			b[len(b)-1] ^= 1 // the last byte of the last ciphertext, which the commitment covers
			if _, err := viaCheck.CheckBinary(b, nil); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("CheckBinary of a tampered upload: %v, want ErrUnauthenticated", err)
			}
		}
		c, err := check(eu)
		if err != nil {
			t.Fatal(err)
		}
		last = eu
		if c.ClientID() != eu.ClientID || c.TaskID() != eu.TaskID || c.Root() != eu.commitment().Root {
			t.Fatalf("checked upload names %s, %s, %x; want %s, %s, %x", c.ClientID(), c.TaskID(), c.Root(), eu.ClientID, eu.TaskID, eu.commitment().Root)
		}
		checked = append(checked, c)
	}
	if viaCheck.Count() != 0 {
		t.Fatalf("Check added %d uploads, want none", viaCheck.Count())
	}
	for _, c := range checked {
		if err := viaCheck.AddChecked(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := viaCheck.AddChecked(checked[0]); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a checked upload added twice: %v, want ErrDuplicate", err)
	}
	want, err := viaAdd.Partial()
	if err != nil {
		t.Fatal(err)
	}
	got, err := viaCheck.Partial()
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := want.MarshalBinary()
	gb, _ := got.MarshalBinary()
	if !bytes.Equal(wb, gb) {
		t.Error("the partial sum of checked-then-added uploads differs from Add's")
	}
	if _, err := check(last); !errors.Is(err, ErrFrozen) {
		t.Errorf("Check after Partial: %v, want ErrFrozen", err)
	}
	root, err := HierarchicalOf(direct)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.AddPartial(roundTrip(t, got, &PartialSum{}), "agg-a"); err != nil {
		t.Fatal(err)
	}
	if root.Count() != 4 {
		t.Errorf("root holds %d contributors, want 4", root.Count())
	}
	listed := root.SourceUploads("agg-a")
	if len(listed) != len(checked) {
		t.Fatalf("SourceUploads lists %d uploads, want %d", len(listed), len(checked))
	}
	for i, u := range listed {
		if c := checked[i]; u.ClientID != c.ClientID() || u.TaskID != c.TaskID() || u.Root != c.Root() {
			t.Errorf("listed upload %d is %+v, want %s %s", i, u, c.ClientID(), c.TaskID())
		}
	}
	if root.SourceUploads("agg-b") != nil {
		t.Error("SourceUploads of an aggregator that forwarded nothing is not nil")
	}
	passive := f.newAggregator(t, round, PurposeFit, dim)
	passive.cfg.Verifier = nil
	if _, err := HierarchicalOf(passive); err == nil {
		t.Error("HierarchicalOf accepted an aggregate without a Verifier")
	}
}
