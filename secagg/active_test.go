package secagg

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"testing/cryptotest"
)

// Tests of the active-server model: every party signs and verifies, members spot-check.
// The attack tests (attack_test.go) each drive a misbehaving server.

// TestAuthenticatedEndToEnd runs a round with a fit and an evaluation aggregate through the
// wire format (every message marshalled and decoded, the challenge and opening included),
// with dealers absent and members restarted between challenge and share.
func TestAuthenticatedEndToEnd(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 30)
	p := testParams(t, ParametersLiteral{LogN: 12})
	cfg := CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 3}
	f := newAuthFederation(t, p, cfg, 2, 4)
	const round = 9
	for _, tc := range []struct {
		purpose Purpose
		dim     int
	}{{PurposeFit, 9000}, {PurposeEvaluation, 5}} {
		t.Run(tc.purpose.String(), func(t *testing.T) {
			agg := f.newAggregator(t, round, tc.purpose, tc.dim)
			exact := make([]float64, tc.dim)
			for i, u := range randomUpdates(uint64(tc.dim), 4, tc.dim, 1) {
				eu := f.upload(t, fmt.Sprint("client-", i), round, tc.purpose, u)
				if err := agg.Add(roundTrip(t, eu, &EncryptedUpdate{})); err != nil {
					t.Fatal(err)
				}
				for j, x := range u {
					exact[j] += x
				}
			}
			req, err := agg.DecryptionRequest([]MemberID{1, 3, 5})
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Commitments) != 4 || req.Purpose != tc.purpose {
				t.Fatalf("request lists %d commitments for %s", len(req.Commitments), req.Purpose)
			}
			req = roundTrip(t, req, &DecryptionRequest{})
			var shares []*DecryptionShare
			for _, id := range req.Members {
				m := f.members[id-1]
				ch, err := m.Challenge(req)
				if err != nil {
					t.Fatal(err)
				}
				state, err := m.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				restored, err := LoadMemberWithConfig(p, state, MemberConfig{Workers: 2, Signer: m.cfg.Signer, Verifier: f.verifier})
				if err != nil {
					t.Fatal(err)
				}
				o, err := agg.Open(roundTrip(t, ch, &Challenge{}))
				if err != nil {
					t.Fatal(err)
				}
				s, err := restored.DecryptionShare(req, roundTrip(t, o, &Opening{}))
				if err != nil {
					t.Fatal(err)
				}
				shares = append(shares, roundTrip(t, s, &DecryptionShare{}))
				f.members[id-1] = restored
			}
			res, err := agg.Combine(shares)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 || res.Count != 4 {
				t.Errorf("max error %.3g, count %d", e, res.Count)
			}
		})
	}
}

// TestAuthenticatedAccuracy: the authenticated path decrypts every 3-of-5 set as
// accurately as the passive one, one round after the other.
func TestAuthenticatedAccuracy(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 31)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 5, Threshold: 3, MinContributions: 2}
	f := newAuthFederation(t, p, cfg, 1)
	round := uint64(0)
	for _, set := range [][]MemberID{{1, 2, 3}, {2, 4, 5}, {1, 3, 5}, {3, 4, 5}} {
		round++
		agg, exact := smallRound(t, f, round, 3, 2500)
		res, err := f.decrypt(t, agg, set)
		if err != nil {
			t.Fatalf("set %v: %v", set, err)
		}
		if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3 {
			t.Errorf("set %v: max error %.3g", set, e)
		}
	}
}

// TestChallengeIsStableAndPrivate: the same request gets the same challenge (also after a
// restart), different members get different leaves, and a request listing other
// commitments gets other leaves.
func TestChallengeIsStableAndPrivate(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 32)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newAuthFederation(t, p, cfg, 1)
	agg, _ := smallRound(t, f, 1, 3, 3000)
	req, err := agg.DecryptionRequest([]MemberID{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := f.members[0].Challenge(req)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := f.members[0].Challenge(req)
	if !bytes.Equal(roundTripBytes(t, c1), roundTripBytes(t, again)) {
		t.Error("the same request got another challenge")
	}
	c2, err := f.members[1].Challenge(req)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c1.Leaves) == fmt.Sprint(c2.Leaves) {
		t.Error("two members chose the same leaves")
	}
	_, leaves, _ := leafLayout(p.N(), len(req.c1))
	if len(c1.Leaves) != min(DefaultSpotChecks, leaves) {
		t.Errorf("%d leaves, want %d", len(c1.Leaves), min(DefaultSpotChecks, leaves))
	}
}

// TestMemberStateKeepsRoundRecords: the records of a verifying member survive a restart (a
// different aggregate of the same round is still refused) and its state round-trips.
func TestMemberStateKeepsRoundRecords(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 33)
	p := testParams(t, ParametersLiteral{LogN: 10})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newAuthFederation(t, p, cfg, 1)
	agg, _ := smallRound(t, f, 5, 2, 100)
	req, _ := agg.DecryptionRequest([]MemberID{1, 2})
	if _, err := f.members[0].Challenge(req); err != nil {
		t.Fatal(err)
	}
	state, err := f.members[0].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	signer := f.members[0].cfg.Signer
	m, err := LoadMemberWithConfig(p, state, MemberConfig{Signer: signer, Verifier: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	state2, _ := m.MarshalBinary()
	if !bytes.Equal(state, state2) {
		t.Error("member state does not round-trip")
	}
	other, _ := smallRound(t, f, 5, 3, 100)
	req2, _ := other.DecryptionRequest([]MemberID{1, 2})
	if _, err := m.Challenge(req2); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Errorf("after a restart, a second aggregate of round 5: err = %v, want ErrAlreadyDecrypted", err)
	}
	for _, tc := range []struct {
		name string
		cfg  MemberConfig
	}{
		{"without signer", MemberConfig{}},
		{"without verifier", MemberConfig{Signer: signer}},
		{"another identity", MemberConfig{Signer: testSigner(t, f.ca, "someone-else"), Verifier: f.verifier}},
		{"another member id", MemberConfig{ID: 2, Signer: signer, Verifier: f.verifier}},
		{"other spot-check count", MemberConfig{SpotChecks: 3, Signer: signer, Verifier: f.verifier}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadMemberWithConfig(p, state, tc.cfg); err == nil {
				t.Error("loaded")
			}
		})
	}
	plain := newFederation(t, p, cfg, 1)
	ps, _ := plain.members[0].MarshalBinary()
	if _, err := LoadMemberWithConfig(p, ps, MemberConfig{Signer: signer, Verifier: f.verifier}); err == nil {
		t.Error("a passive state loaded with a Signer")
	}
}

// TestLoadVersion1MemberState: a state written before the active-server model (version 1,
// testdata/member-state-v1.bin: member 1 of the fuzz federation after one decryption, made
// by the code of commit fbb46d9) still loads as a passive member, keeps its record, and is
// written back as version 2.
func TestLoadVersion1MemberState(t *testing.T) {
	b, err := os.ReadFile("testdata/member-state-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if b[3] != 1 {
		t.Fatalf("golden state is version %d", b[3])
	}
	p := fuzzParams(t)
	m, err := LoadMember(p, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Ready() || len(m.records) != 1 || m.roster == nil || m.authenticated() {
		t.Fatalf("ready %v, %d records, roster %v, authenticated %v", m.Ready(), len(m.records), m.roster != nil, m.authenticated())
	}
	v2, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if v2[3] != 2 {
		t.Errorf("re-written as version %d", v2[3])
	}
	m2, err := LoadMember(p, v2, 1)
	if err != nil {
		t.Fatal(err)
	}
	v2b, _ := m2.MarshalBinary()
	if !bytes.Equal(v2, v2b) {
		t.Error("version-2 state does not round-trip")
	}
}

// TestAuthenticatedSizes: the sizes of signed messages are within the bounds a server
// enforces (exact but for the signature's length), and so are challenges and openings.
func TestAuthenticatedSizes(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 34)
	p := testParams(t, ParametersLiteral{LogN: 6})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newAuthFederation(t, p, cfg, 1)
	a := f.members[0].Announcement()
	bound := p.SignedAnnouncementBytes(len(a.Certificate))
	if got := len(roundTripBytes(t, a)); got != bound-MaxSignatureBytes+len(a.Signature) {
		t.Errorf("announcement of %d bytes (bound %d)", got, bound)
	}
	bound = p.SignedDealingBytes(cfg.Size)
	if got := len(roundTripBytes(t, f.dealings[0])); got != bound-MaxSignatureBytes+len(f.dealings[0].Signature) {
		t.Errorf("dealing of %d bytes (bound %d)", got, bound)
	}
	for _, dim := range []int{1, 40, 300} {
		agg := f.newAggregator(t, uint64(dim), PurposeFit, dim)
		for i := range 3 {
			u := f.upload(t, fmt.Sprint("client-", i), uint64(dim), PurposeFit, make([]float64, dim))
			bound := p.SignedUpdateBytes(dim, len(u.ClientID), len(u.TaskID), len(u.Certificate))
			if got := len(roundTripBytes(t, u)); got != bound-MaxSignatureBytes+len(u.Signature) {
				t.Errorf("dim %d: update of %d bytes, bound %d", dim, got, bound)
			}
			if err := agg.Add(u); err != nil {
				t.Fatal(err)
			}
		}
		req, _ := agg.DecryptionRequest([]MemberID{1, 2})
		ch, err := f.members[0].Challenge(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(roundTripBytes(t, ch)), p.ChallengeBytes()-4*(MaxSpotChecks-len(ch.Leaves)); got != want {
			t.Errorf("dim %d: challenge of %d bytes, predicted %d", dim, got, want)
		}
		o, err := agg.Open(ch)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(roundTripBytes(t, o)), p.OpeningBytes(dim, 3, DefaultSpotChecks); got != want {
			t.Errorf("dim %d: opening of %d bytes, predicted %d", dim, got, want)
		}
	}
}

// TestAuthenticatedMisuse: the configurations and calls the active-server API refuses.
func TestAuthenticatedMisuse(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 35)
	p := testParams(t, ParametersLiteral{LogN: 8})
	cfg := CommitteeConfig{Size: 3, Threshold: 2, MinContributions: 2}
	f := newAuthFederation(t, p, cfg, 1)
	signer := testSigner(t, f.ca, "client-0")
	for _, tc := range []struct {
		name string
		cfg  EncryptorConfig
	}{
		{"signer without verifier", EncryptorConfig{Signer: signer}},
		{"verifier without signer", EncryptorConfig{ClientID: "client-0", Verifier: f.verifier}},
		{"client id other than the certificate's", EncryptorConfig{ClientID: "client-1", Signer: signer, Verifier: f.verifier}},
		{"floors without verifier", EncryptorConfig{ClientID: "client-0", Floors: cfg}},
	} {
		t.Run("encryptor/"+tc.name, func(t *testing.T) {
			if _, err := NewEncryptor(p, f.pk, tc.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
	enc, err := NewEncryptor(p, f.pk, EncryptorConfig{Signer: signer, Verifier: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.EncryptUpdate(1, []float64{1}, 1); err == nil {
		t.Error("a signing encryptor encrypted an upload without a purpose")
	}
	if _, err := enc.Encrypt(UploadContext{Round: 1, Purpose: PurposeFit, TaskID: string(make([]byte, maxTaskIDLength+1))}, []float64{1}, 1); err == nil {
		t.Error("an over-long task id was accepted")
	}
	for _, tc := range []struct {
		name string
		cfg  MemberConfig
	}{
		{"signer without verifier", MemberConfig{Signer: signer}},
		{"verifier without signer", MemberConfig{Verifier: f.verifier}},
		{"spot checks without verifier", MemberConfig{SpotChecks: 4}},
		{"too many spot checks", MemberConfig{Signer: signer, Verifier: f.verifier, SpotChecks: MaxSpotChecks + 1}},
	} {
		t.Run("member/"+tc.name, func(t *testing.T) {
			mc := tc.cfg
			mc.Session, mc.ID, mc.Committee = f.session, 1, cfg
			if _, err := NewMember(p, mc); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := NewAggregator(p, AggregatorConfig{Session: f.session, Round: 1, Dim: 10, Committee: cfg, Verifier: f.verifier}); err == nil {
		t.Error("an aggregator with a Verifier and no purpose was made")
	}
	if _, err := NewAuthenticatedKeySetup(p, f.session, cfg, nil); err == nil {
		t.Error("an authenticated key setup without a Verifier was made")
	}
	ks, _ := NewAuthenticatedKeySetup(p, f.session, cfg, f.verifier)
	for i := range f.roster.Announcements {
		if err := ks.AddAnnouncement(&f.roster.Announcements[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := ks.Identity(2); got != "member-2" {
		t.Errorf("KeySetup.Identity(2) = %q, want member-2", got)
	}

	// Members: the two-step decryption is for verifying members only, in order.
	agg, _ := smallRound(t, f, 1, 2, 100)
	req, _ := agg.DecryptionRequest([]MemberID{1, 2})
	if _, err := f.members[0].DecryptionShare(req); err == nil {
		t.Error("a verifying member answered without an opening")
	}
	o := &Opening{}
	if _, err := f.members[0].DecryptionShare(req, o); !errors.Is(err, ErrNotReady) {
		t.Errorf("a verifying member answered before its challenge: err = %v, want ErrNotReady", err)
	}
	plain := newFederation(t, p, cfg, 1)
	pagg, _ := smallRound(t, plain, 1, 2, 100)
	preq, _ := pagg.DecryptionRequest([]MemberID{1, 2})
	if _, err := plain.members[0].Challenge(preq); err == nil {
		t.Error("a passive member issued a challenge")
	}
	if _, err := plain.members[0].DecryptionShare(preq, o); err == nil {
		t.Error("a passive member took an opening")
	}
	if _, err := pagg.Open(&Challenge{Session: preq.Session, Round: 1, Aggregate: preq.Aggregate, From: 1, Leaves: []uint32{0}}); err == nil {
		t.Error("an aggregator without a Verifier opened a challenge")
	}

	// The aggregator opens only valid challenges on its pending request.
	ch, err := f.members[0].Challenge(req)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := smallRound(t, f, 2, 2, 100)
	if _, err := fresh.Open(ch); err == nil {
		t.Error("Open without a pending request")
	}
	for name, edit := range map[string]func(c *Challenge){
		"other aggregate":    func(c *Challenge) { c.Aggregate[0] ^= 1 },
		"other purpose":      func(c *Challenge) { c.Purpose = PurposeEvaluation },
		"member not in set":  func(c *Challenge) { c.From = 3 },
		"leaf out of range":  func(c *Challenge) { c.Leaves = []uint32{1 << 20} },
		"leaves unsorted":    func(c *Challenge) { c.Leaves = []uint32{2, 1} },
		"no leaves":          func(c *Challenge) { c.Leaves = nil },
		"too many leaves":    func(c *Challenge) { c.Leaves = make([]uint32, MaxSpotChecks+1) },
		"another session":    func(c *Challenge) { c.Session[0] ^= 1 },
		"another round (+1)": func(c *Challenge) { c.Round++ },
	} {
		t.Run("open/"+name, func(t *testing.T) {
			c := *ch
			c.Leaves = slices.Clone(ch.Leaves)
			edit(&c)
			if _, err := agg.Open(&c); err == nil {
				t.Error("opened")
			}
		})
	}
}
