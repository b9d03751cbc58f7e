package secagg

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/cryptotest"
)

// TestAcceptanceSum is the acceptance case: 100 clients, d = 100,000 values in
// [−1, 1], K = 10, t = 6, members 1…4 absent at decryption; every coordinate of the decoded
// sum must be within 1e-3 of the exact sum.
func TestAcceptanceSum(t *testing.T) {
	if raceEnabled {
		t.Skip("acceptance size takes minutes under -race; TestEndToEnd covers the same flow")
	}
	cryptotest.SetGlobalRandom(t, 1)
	const clients, dim = 100, 100_000
	p, err := NewParameters(ParametersLiteral{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := CommitteeConfig{Size: 10, Threshold: 6, MinContributions: 10}
	f := newFederation(t, p, cfg, 2)
	agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 7, Dim: dim, Committee: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	exact := make([]float64, dim)
	for i, u := range randomUpdates(7, clients, dim, 1) {
		enc, err := NewEncryptor(p, f.pk, EncryptorConfig{ClientID: fmt.Sprintf("client-%03d", i), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		eu, err := enc.EncryptUpdate(7, u, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.Add(eu); err != nil {
			t.Fatal(err)
		}
		for j, x := range u {
			exact[j] += x
		}
	}
	res, err := f.decrypt(t, agg, []MemberID{5, 6, 7, 8, 9, 10})
	if err != nil {
		t.Fatal(err)
	}
	maxErr := maxAbsDiff(res.WeightedSum, exact)
	t.Logf("d=%d clients=%d K=10 t=6 absent=4: max |error| = %.3g (predicted std %.3g)", dim, clients, maxErr, p.ErrorStd(6))
	if maxErr > 1e-3 {
		t.Errorf("max error %.3g exceeds 1e-3", maxErr)
	}
	if res.Count != clients || math.Abs(res.TotalWeight-clients) > 1e-3 {
		t.Errorf("count %d total weight %g, want %d and %d", res.Count, res.TotalWeight, clients, clients)
	}
}

// TestEndToEnd runs the full flow through the wire format with parallel workers everywhere
// (the race detector checks the per-worker ShallowCopies), weighted updates, two dealers
// absent at key setup and members absent at decryption, in both encodings: the float one
// (error: the flooding noise) and the packed one (decoding removes the decryption noise
// exactly; the error is the stochastic rounding, under one step per client). Every message
// has the size the Parameters predict.
func TestEndToEnd(t *testing.T) {
	for _, lit := range []ParametersLiteral{{LogN: 12}, packedLiteral} {
		p := testParams(t, lit)
		t.Run(p.EncodingName(), func(t *testing.T) { testEndToEnd(t, p) })
	}
}

func testEndToEnd(t *testing.T, p Parameters) {
	cryptotest.SetGlobalRandom(t, 2)
	cfg := CommitteeConfig{Size: 7, Threshold: 4, MinContributions: 3}
	f := newFederation(t, p, cfg, 2, 2, 5)
	const clients = 6
	dim := 2*p.N()*p.ValuesPerCoefficient() + 100 // 3 chunks, the last one mostly padding
	if got := p.NumChunks(dim); got != 3 {
		t.Fatalf("NumChunks(%d) = %d, want 3", dim, got)
	}
	agg, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 3, Dim: dim, Committee: cfg, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ups := randomUpdates(3, clients, dim, 1)
	wantSum := make([]float64, dim)
	wantWeight := 0.0
	for i, u := range ups {
		w := float64(i+1) / clients
		enc, err := NewEncryptor(p, roundTrip(t, f.pk, &PublicKey{}), EncryptorConfig{ClientID: fmt.Sprint("c", i), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		eu, err := enc.EncryptUpdate(3, u, w)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := eu.MarshalBinary(); len(b) != p.UpdateBytes(dim, len(eu.ClientID)) {
			t.Errorf("upload of %d bytes, UpdateBytes says %d", len(b), p.UpdateBytes(dim, len(eu.ClientID)))
		}
		if err := agg.Add(roundTrip(t, eu, &EncryptedUpdate{})); err != nil {
			t.Fatal(err)
		}
		for j, x := range u {
			wantSum[j] += w * x
		}
		wantWeight += w
	}
	req, err := agg.DecryptionRequest([]MemberID{7, 1, 3, 5})
	if err != nil {
		t.Fatal(err)
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.members[id-1].DecryptionShare(roundTrip(t, req, &DecryptionRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := s.MarshalBinary(); len(b) != p.DecryptionShareBytes(dim, cfg.Threshold) {
			t.Errorf("share of %d bytes, DecryptionShareBytes says %d", len(b), p.DecryptionShareBytes(dim, cfg.Threshold))
		}
		shares = append(shares, roundTrip(t, s, &DecryptionShare{}))
	}
	res, err := agg.Combine(shares)
	if err != nil {
		t.Fatal(err)
	}
	// Float: the flooding noise (std ≈ 4e-5 here); packed: under one step per client.
	tol := 1e-3
	if p.Packed() {
		tol = clients * p.QuantisationStep()
	}
	if e := maxAbsDiff(res.WeightedSum, wantSum); e >= tol {
		t.Errorf("weighted sum max error %.3g ≥ %.3g", e, tol)
	} else {
		t.Logf("max error %.3g (predicted std %.3g)", e, p.SumErrorStd(cfg.Threshold, clients))
	}
	if math.Abs(res.TotalWeight-wantWeight) >= tol || res.Count != clients {
		t.Errorf("total weight %g count %d, want %g and %d", res.TotalWeight, res.Count, wantWeight, clients)
	}
	mean, err := res.Mean()
	if err != nil {
		t.Fatal(err)
	}
	for j := range mean {
		if d := math.Abs(mean[j] - wantSum[j]/wantWeight); d > 2*tol/wantWeight {
			t.Fatalf("mean[%d] off by %.3g", j, d)
		}
	}
}

type binaryMessage interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip marshals in and decodes it into out, failing unless re-marshalling gives the
// same bytes.
func roundTrip[T binaryMessage](t testing.TB, in T, out T) T {
	t.Helper()
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, err := out.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("%T does not round-trip", in)
	}
	return out
}

// smallRound encrypts n random updates of dim values (weight 1) and returns the aggregator
// and the exact sum. In an authenticated federation the clients ("client-0"…) sign fit
// uploads and the aggregator verifies them.
func smallRound(t testing.TB, f *federation, round uint64, n, dim int) (*Aggregator, []float64) {
	t.Helper()
	return smallRoundFor(t, f, round, PurposeFit, n, dim)
}

// smallRoundFor is smallRound for an aggregate of the given purpose.
func smallRoundFor(t testing.TB, f *federation, round uint64, purpose Purpose, n, dim int) (*Aggregator, []float64) {
	t.Helper()
	agg := f.newAggregator(t, round, purpose, dim)
	exact := make([]float64, dim)
	for i, u := range randomUpdates(round+uint64(purpose)<<32, n, dim, 1) {
		eu := f.upload(t, fmt.Sprint("client-", i), round, purpose, u)
		if err := agg.Add(eu); err != nil {
			t.Fatal(err)
		}
		for j, x := range u {
			exact[j] += x
		}
	}
	return agg, exact
}

// newAggregator starts an aggregate of the federation (with its verifier, if any).
func (f *federation) newAggregator(t testing.TB, round uint64, purpose Purpose, dim int) *Aggregator {
	t.Helper()
	cfg := AggregatorConfig{Session: f.session, Round: round, Dim: dim, Committee: f.cfg}
	if f.authenticated() {
		cfg.Verifier, cfg.Purpose = f.verifier, purpose
	}
	agg, err := NewAggregator(f.params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

// encryptor returns client name's encryptor (signing, verifying the key, in an
// authenticated federation).
func (f *federation) encryptor(t testing.TB, name string) *Encryptor {
	t.Helper()
	cfg := EncryptorConfig{ClientID: name}
	if f.authenticated() {
		cfg.Signer, cfg.Verifier = testSigner(t, f.ca, name), f.verifier
	}
	enc, err := NewEncryptor(f.params, f.pk, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// upload encrypts u (weight 1) as client name's upload for round and purpose.
func (f *federation) upload(t testing.TB, name string, round uint64, purpose Purpose, u []float64) *EncryptedUpdate {
	t.Helper()
	ctx := UploadContext{Round: round}
	if f.authenticated() {
		ctx.Purpose, ctx.TaskID = purpose, fmt.Sprintf("task-%d-%s-%s", round, purpose, name)
		// One task for every client of a round and purpose, as an honest server sends.
		ctx.TaskDigest = transcriptDigest("test task", le64(round), []byte{byte(purpose)})
	}
	eu, err := f.encryptor(t, name).Encrypt(ctx, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	return eu
}

// TestAnyThresholdSetDecrypts decrypts the same kind of aggregate with every 3-member subset
// of a 5-member committee.
func TestAnyThresholdSetDecrypts(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 3)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	round := uint64(0)
	for a := MemberID(1); a <= 5; a++ {
		for b := a + 1; b <= 5; b++ {
			for c := b + 1; c <= 5; c++ {
				set := []MemberID{a, b, c}
				t.Run(fmt.Sprint(set), func(t *testing.T) {
					round++
					agg, exact := smallRound(t, f, round, 3, 1500)
					res, err := f.decrypt(t, agg, set)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 {
						t.Errorf("max error %.3g > 1e-3", e)
					}
				})
			}
		}
	}
}

// TestFewerThanThresholdCannotDecrypt checks that t−1 members cannot open an aggregate:
// neither through the protocol (members and the aggregator refuse sets of t−1) nor
// cryptographically (adding only t−1 of the t shares decodes to garbage).
func TestFewerThanThresholdCannotDecrypt(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 4)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	agg, exact := smallRound(t, f, 1, 3, 1000)

	if _, err := agg.DecryptionRequest([]MemberID{1, 2}); err == nil {
		t.Error("aggregator issued a request for t−1 members")
	}
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	short := *req
	short.Members = []MemberID{1, 2}
	if _, err := f.members[0].DecryptionShare(&short); err == nil {
		t.Error("member answered a request for a set of t−1 members")
	}
	var shares []*DecryptionShare
	for _, id := range req.Members {
		s, err := f.members[id-1].DecryptionShare(req)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	if _, err := agg.Combine(shares[:2]); err == nil {
		t.Error("Combine accepted t−1 shares")
	}
	ext, err := agg.decrypt(shares[:2])
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(ext[:len(exact)], exact); e < 1 {
		t.Errorf("t−1 shares decoded the sum to within %.3g", e)
	}
	if math.Abs(ext[len(exact)+1]-3) < 0.5 {
		t.Errorf("t−1 shares decoded the count slot to %g", ext[len(exact)+1])
	}
	res, err := agg.Combine(shares)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 {
		t.Errorf("all t shares: max error %.3g", e)
	}
}

// TestMemberRefusesTooFewContributions: a member configured with m = 4 refuses an aggregate
// reported to hold 3 updates, even when the server's own minimum would allow it.
func TestMemberRefusesTooFewContributions(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 5)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 4}
	f := newFederation(t, p, cfg, 1)
	lax := *f
	lax.cfg.MinContributions = 2
	agg, _ := smallRound(t, &lax, 1, 3, 100)
	req, err := agg.DecryptionRequest([]MemberID{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.members[0].DecryptionShare(req); !errors.Is(err, ErrTooFewContributions) {
		t.Errorf("member answered an aggregate of 3 < m = 4 contributions: err = %v", err)
	}
	strict, _ := smallRound(t, f, 2, 3, 100)
	if _, err := strict.DecryptionRequest([]MemberID{1, 2}); !errors.Is(err, ErrTooFewContributions) {
		t.Errorf("aggregator asked to decrypt 3 < m = 4 contributions: err = %v", err)
	}
}

// TestMemberDecryptsAnAggregateForOneSetOnly: a second set is refused, the same set gets the
// identical answer, also after a restart from the persisted state.
func TestMemberDecryptsAnAggregateForOneSetOnly(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 6)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	agg, _ := smallRound(t, f, 1, 2, 100)
	req12, err := agg.DecryptionRequest([]MemberID{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	m := f.members[0]
	first, err := m.DecryptionShare(req12)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.DecryptionShare(req12)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := roundTripBytes(t, first), roundTripBytes(t, again); !bytes.Equal(a, b) {
		t.Error("a repeated request got a different share (fresh noise would let the server average it away)")
	}
	req13, err := agg.DecryptionRequest([]MemberID{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if req13.Aggregate != req12.Aggregate {
		t.Fatal("aggregate id changed between requests")
	}
	if _, err := m.DecryptionShare(req13); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Errorf("second set: err = %v, want ErrAlreadyDecrypted", err)
	}
	state, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := LoadMember(p, state, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restored.DecryptionShare(req13); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Errorf("after restart, second set: err = %v, want ErrAlreadyDecrypted", err)
	}
	replay, err := restored.DecryptionShare(req12)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(roundTripBytes(t, first), roundTripBytes(t, replay)) {
		t.Error("after restart the same request got a different share")
	}
	state2, _ := restored.MarshalBinary()
	if !bytes.Equal(state, state2) {
		t.Error("member state does not round-trip")
	}
	// A request whose claimed id does not match its content is refused.
	forged := *req12
	forged.Aggregate[0] ^= 1
	if _, err := m.DecryptionShare(&forged); err == nil {
		t.Error("member answered a request whose AggregateID does not match its c1")
	}
}

func roundTripBytes(t testing.TB, m binaryMessage) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRequestValidation: members refuse requests that are not for exactly t members
// including themselves, and other sessions.
func TestRequestValidation(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 7)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 1)
	agg, _ := smallRound(t, f, 1, 2, 100)
	req, err := agg.DecryptionRequest([]MemberID{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		member MemberID
		edit   func(r *DecryptionRequest)
	}{
		{"member not in set", 3, func(r *DecryptionRequest) {}},
		{"set larger than t", 1, func(r *DecryptionRequest) { r.Members = []MemberID{1, 2, 3} }},
		{"unsorted set", 1, func(r *DecryptionRequest) { r.Members = []MemberID{2, 1} }},
		{"member id out of range", 1, func(r *DecryptionRequest) { r.Members = []MemberID{1, 9} }},
		{"other session", 1, func(r *DecryptionRequest) { r.Session[0] ^= 1 }},
		{"count above MaxContributors", 1, func(r *DecryptionRequest) { r.Count = p.lit.MaxContributors + 1 }},
		{"wrong dimension", 1, func(r *DecryptionRequest) { r.Dim = 5000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := *req
			tc.edit(&r)
			if _, err := f.members[tc.member-1].DecryptionShare(&r); err == nil {
				t.Error("member answered")
			}
		})
	}
}

// TestChunkBoundaries places the weight and count slots at every awkward position: in the
// last chunk's final coefficients, split across chunks, or alone in a chunk of their own.
func TestChunkBoundaries(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 8)
	p := testParams(t, ParametersLiteral{LogN: 4}) // N = 16
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newFederation(t, p, cfg, 2)
	for _, dim := range []int{1, 14, 15, 16, 17, 30, 31, 32} {
		t.Run(fmt.Sprint("dim=", dim), func(t *testing.T) {
			agg, exact := smallRound(t, f, uint64(dim), 3, dim)
			if got, want := len(agg.sum), (dim+2+15)/16; got != want {
				t.Fatalf("%d chunks, want %d", got, want)
			}
			res, err := f.decrypt(t, agg, []MemberID{1, 3})
			if err != nil {
				t.Fatal(err)
			}
			if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 || len(res.WeightedSum) != dim {
				t.Errorf("len %d, max error %.3g", len(res.WeightedSum), e)
			}
			if math.Abs(res.TotalWeight-3) > 1e-3 {
				t.Errorf("total weight %g, want 3", res.TotalWeight)
			}
		})
	}
}

// TestZeroMessagesDoNotPanic: marshalling an empty message is an error, not a panic, and
// decoding empty input fails.
func TestZeroMessagesDoNotPanic(t *testing.T) {
	for _, m := range []binaryMessage{&Dealing{}, &ShareDelivery{}, &PublicKey{}, &EncryptedUpdate{}, &DecryptionRequest{}, &DecryptionShare{}} {
		if _, err := m.MarshalBinary(); err == nil {
			t.Errorf("%T: empty message marshalled", m)
		}
	}
	for _, m := range []binaryMessage{&KeyAnnouncement{}, &Roster{}, &Dealing{}, &ShareDelivery{}, &PublicKey{}, &EncryptedUpdate{}, &DecryptionRequest{}, &DecryptionShare{}} {
		if err := m.UnmarshalBinary(nil); err == nil {
			t.Errorf("%T: empty input decoded", m)
		}
	}
}
