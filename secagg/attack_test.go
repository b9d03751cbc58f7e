package secagg

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/confide-fl/confide/secagg/identitytest"
)

// Attack tests: a server (and network) that drops, replays, forges or substitutes what it
// relays, against clients and members that verify. Every attack must be refused by the
// party it targets, and nothing may be decrypted or encrypted under a key the client
// cannot trace to the committee.

// attackLiteral is the parameter set of the attack federations: the float encoding, or the
// packed one while TestAttacksPackedEncoding runs the attacks again.
var attackLiteral = ParametersLiteral{LogN: 10}

// TestAttacksPackedEncoding runs every attack against the packed encoding (three primes,
// 12-bit values): the commitments, spot checks, request and share checks must hold for
// multi-prime ciphertexts as they do for one prime.
func TestAttacksPackedEncoding(t *testing.T) {
	attackLiteral = ParametersLiteral{LogN: 10, ValueBits: 12, Primes: 3}
	defer func() { attackLiteral = ParametersLiteral{LogN: 10} }()
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"SubstitutedPublicKey", TestAttackSubstitutedPublicKey},
		{"RewrittenRoster", TestAttackRewrittenRoster},
		{"UnsignedDealing", TestAttackUnsignedDealing},
		{"DecryptionRequests", TestAttackDecryptionRequests},
		{"SecondAggregate", TestAttackSecondAggregate},
		{"MixedTasks", TestAttackMixedTasks},
		{"DisjointDecryptingSets", TestAttackDisjointDecryptingSets},
		{"ForeignCiphertexts", TestAttackForeignCiphertexts},
		{"ReplayedUploads", TestAttackReplayedUploads},
		{"TamperedOpening", TestAttackTamperedOpening},
		{"SpotCheckDetectsWhatItOpens", TestSpotCheckDetectsWhatItOpens},
	} {
		t.Run(tc.name, tc.test)
	}
}

// levelModulus is the prime of coefficient j of an opened leaf of the given width.
func levelModulus(p Parameters, width, j int) uint64 { return p.Moduli()[j/width%p.Levels()] }

// attackFederation is a ready authenticated federation: K = 4, t = 3, m = 3, N = 2^10.
func attackFederation(t *testing.T, seed uint64) *federation {
	t.Helper()
	cryptotest.SetGlobalRandom(t, seed)
	p := testParams(t, attackLiteral)
	return newAuthFederation(t, p, CommitteeConfig{Size: 4, Threshold: 3, MinContributions: 3}, 1)
}

// clientEncryptor is what a verifying client does with the key the server hands it.
func (f *federation) clientEncryptor(pk *PublicKey, floors CommitteeConfig) (*Encryptor, error) {
	id, err := f.ca.Issue("client-x")
	if err != nil {
		return nil, err
	}
	s, err := NewSigner(id.Certificate, id.Key)
	if err != nil {
		return nil, err
	}
	return NewEncryptor(f.params, pk, EncryptorConfig{Signer: s, Verifier: f.verifier, Floors: floors})
}

// clonePublicKey deep-copies a public key so an attack can edit it.
func clonePublicKey(t *testing.T, pk *PublicKey) *PublicKey {
	t.Helper()
	return roundTrip(t, pk, &PublicKey{})
}

func TestAttackSubstitutedPublicKey(t *testing.T) {
	f := attackFederation(t, 40)
	if _, err := f.clientEncryptor(f.pk, f.cfg); err != nil {
		t.Fatalf("the honest key is refused: %v", err)
	}
	// The server's own committee: members it runs itself, certified by its own CA.
	evilCA, err := identitytest.NewCA(666)
	if err != nil {
		t.Fatal(err)
	}
	evil := buildFederation(t, f.params, f.cfg, 1, evilCA)
	evil.session = f.session
	// The same, but run without identities (what a passive server publishes).
	plain := newFederation(t, f.params, f.cfg, 1)
	for _, tc := range []struct {
		name   string
		pk     func() *PublicKey
		floors CommitteeConfig
		is     error
	}{
		{"key of a committee certified by another CA", func() *PublicKey { return evil.pk }, f.cfg, ErrUnauthenticated},
		{"key of an unsigned committee", func() *PublicKey { return plain.pk }, f.cfg, ErrUnauthenticated},
		{"a dealer's share replaced", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.dealings[0].pkShare = *evil.pk.dealings[0].pkShare.CopyNew()
			return k
		}, f.cfg, ErrUnauthenticated},
		{"a dealer's share altered in one coefficient", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.dealings[1].pkShare.Coeffs[0][3] = (k.dealings[1].pkShare.Coeffs[0][3] + 1) % f.params.Modulus()
			return k
		}, f.cfg, ErrUnauthenticated},
		{"a dealer's share signed by another member", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.dealings[0].signature = k.dealings[1].signature
			return k
		}, f.cfg, ErrUnauthenticated},
		{"a roster identity key replaced", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.Roster.Announcements[2].IdentityKey = evil.roster.Announcements[2].IdentityKey
			return k
		}, f.cfg, ErrUnauthenticated},
		{"a roster entry replaced by another CA's", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			a := evil.roster.Announcements[2]
			a.Session = k.Session
			k.Roster.Announcements[2] = a
			return k
		}, f.cfg, ErrUnauthenticated},
		{"the committee's threshold lowered", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.Roster.Committee.MinContributions = 2
			return k
		}, CommitteeConfig{}, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := f.clientEncryptor(tc.pk(), tc.floors)
			if enc != nil || !errors.Is(err, tc.is) {
				t.Errorf("client accepted the key (err = %v, want %v)", err, tc.is)
			}
		})
	}
	for _, tc := range []struct {
		name   string
		pk     func() *PublicKey
		floors CommitteeConfig
	}{
		{"fewer than t dealers", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.Dealers, k.dealings = k.Dealers[:2], k.dealings[:2]
			return k
		}, f.cfg},
		{"a dealer listed twice", func() *PublicKey {
			k := clonePublicKey(t, f.pk)
			k.Dealers[1], k.dealings[1] = k.Dealers[0], k.dealings[0]
			return k
		}, f.cfg},
		{"a committee below the client's floors", func() *PublicKey { return f.pk }, CommitteeConfig{Size: 5}},
		{"a minimum below the client's floor", func() *PublicKey { return f.pk }, CommitteeConfig{MinContributions: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if enc, err := f.clientEncryptor(tc.pk(), tc.floors); enc != nil || err == nil {
				t.Error("client accepted the key")
			}
		})
	}
}

func TestAttackRewrittenRoster(t *testing.T) {
	f := attackFederation(t, 41)
	other := attackFederation(t, 42) // another session of the same CA: its announcements are genuine
	// Fresh members who have not dealt, with f's roster.
	fresh := func() *Member {
		m, err := NewMember(f.params, MemberConfig{Session: f.session, ID: 1, Committee: f.cfg, Signer: f.members[0].cfg.Signer, Verifier: f.verifier})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		edit func(ro *Roster)
		is   error
	}{
		{"an X25519 key replaced", func(ro *Roster) { ro.Announcements[2].IdentityKey[0] ^= 1 }, ErrUnauthenticated},
		{"a certificate replaced by another member's", func(ro *Roster) { ro.Announcements[2].Certificate = ro.Announcements[3].Certificate }, ErrUnauthenticated},
		{"an announcement of another session", func(ro *Roster) {
			a := other.roster.Announcements[2]
			a.Session = ro.Session
			ro.Announcements[2] = a
		}, ErrUnauthenticated},
		{"a signature removed", func(ro *Roster) { ro.Announcements[1].Signature = nil }, ErrUnauthenticated},
		{"an unsigned roster", func(ro *Roster) {
			for i := range ro.Announcements {
				ro.Announcements[i].Certificate, ro.Announcements[i].Signature = nil, nil
			}
		}, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fresh()
			ro := f.roster.clone()
			ro.Announcements[0] = *m.Announcement()
			tc.edit(ro)
			if d, err := m.Deal(ro); d != nil || !errors.Is(err, tc.is) {
				t.Errorf("member dealt (err = %v, want %v)", err, tc.is)
			}
		})
	}
	t.Run("one identity in two seats", func(t *testing.T) {
		// member-2 runs a second instance for seat 3: both announcements are genuine.
		second, err := NewMember(f.params, MemberConfig{Session: f.session, ID: 3, Committee: f.cfg, Signer: f.members[1].cfg.Signer, Verifier: f.verifier})
		if err != nil {
			t.Fatal(err)
		}
		m := fresh()
		ro := f.roster.clone()
		ro.Announcements[0] = *m.Announcement()
		ro.Announcements[2] = *second.Announcement()
		if _, err := m.Deal(ro); !errors.Is(err, ErrDuplicate) {
			t.Errorf("err = %v, want ErrDuplicate", err)
		}
		ks, _ := NewAuthenticatedKeySetup(f.params, f.session, f.cfg, f.verifier)
		if err := ks.AddAnnouncement(f.members[1].Announcement()); err != nil {
			t.Fatal(err)
		}
		if err := ks.AddAnnouncement(second.Announcement()); !errors.Is(err, ErrDuplicate) {
			t.Errorf("key setup: err = %v, want ErrDuplicate", err)
		}
	})
	t.Run("own entry with another certificate", func(t *testing.T) {
		m := fresh()
		ro := f.roster.clone()
		a := *m.Announcement()
		a.Certificate = f.roster.Announcements[1].Certificate
		ro.Announcements[0] = a
		if _, err := m.Deal(ro); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("err = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("key setup refuses unsigned and foreign announcements", func(t *testing.T) {
		ks, _ := NewAuthenticatedKeySetup(f.params, f.session, f.cfg, f.verifier)
		a := f.members[0].Announcement()
		a.Signature = nil
		if err := ks.AddAnnouncement(a); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("unsigned: err = %v", err)
		}
		evilCA, _ := identitytest.NewCA(666)
		em, _ := NewMember(f.params, MemberConfig{Session: f.session, ID: 1, Committee: f.cfg, Signer: testSigner(t, evilCA, "member-1"), Verifier: f.verifier})
		if err := ks.AddAnnouncement(em.Announcement()); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("foreign CA: err = %v", err)
		}
	})
}

func TestAttackUnsignedDealing(t *testing.T) {
	f := attackFederation(t, 43)
	newSetup := func() *KeySetup {
		ks, err := NewAuthenticatedKeySetup(f.params, f.session, f.cfg, f.verifier)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.members {
			if err := ks.AddAnnouncement(&f.roster.Announcements[m.ID()-1]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ks.Roster(); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	forge := map[string]func() *Dealing{
		"signature removed": func() *Dealing { d := *f.dealings[0]; d.Signature = nil; return &d },
		"dealing of member 1 presented as member 2's": func() *Dealing {
			d := *f.dealings[0]
			d.From = 2
			return &d
		},
		"signature of another member": func() *Dealing { d := *f.dealings[0]; d.Signature = f.dealings[1].Signature; return &d },
		"public-key share replaced": func() *Dealing {
			d := *f.dealings[0]
			d.pkShare = *f.dealings[1].pkShare.CopyNew()
			return &d
		},
		"sealed share replaced": func() *Dealing {
			d := *f.dealings[0]
			d.sealed = slices.Clone(d.sealed)
			d.sealed[2] = f.dealings[1].sealed[2]
			return &d
		},
	}
	for name, dealing := range forge {
		t.Run(name, func(t *testing.T) {
			if err := newSetup().AddDealing(dealing()); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("key setup accepted it: err = %v", err)
			}
			// A server that skips its own check (a passive KeySetup) and publishes the
			// forged dealing: clients refuse the key.
			ks, _ := NewKeySetup(f.params, f.session, f.cfg)
			for i := range f.roster.Announcements {
				_ = ks.AddAnnouncement(&f.roster.Announcements[i])
			}
			_, _ = ks.Roster()
			d := dealing()
			for _, g := range f.dealings {
				if g.From != d.From {
					_ = ks.AddDealing(g)
				}
			}
			if err := ks.AddDealing(d); err != nil {
				t.Fatal(err)
			}
			pk, _, err := ks.Finalize()
			if err != nil {
				t.Fatal(err)
			}
			if enc, err := f.clientEncryptor(pk, f.cfg); enc != nil || !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("client accepted the key (err = %v)", err)
			}
		})
	}
}

// evilServer sums whatever ciphertexts it likes (a passive aggregator) and lists whatever
// signed commitments it likes in its request, then opens the challenges with the listed
// uploads' trees (honest opening) or with the coefficients it actually summed (forged).
type evilServer struct {
	f       *federation
	round   uint64
	purpose Purpose
	agg     *Aggregator
	summed  []*EncryptedUpdate
	listed  []*EncryptedUpdate
}

func newEvilServer(t *testing.T, f *federation, round uint64, purpose Purpose, dim int) *evilServer {
	t.Helper()
	// A passive aggregator adds anything of the right shape; MaxContributors is the only
	// limit it keeps.
	agg, err := NewAggregator(f.params, AggregatorConfig{Session: f.session, Round: round, Dim: dim, Committee: f.cfg})
	if err != nil {
		t.Fatal(err)
	}
	return &evilServer{f: f, round: round, purpose: purpose, agg: agg}
}

// sum adds an upload's ciphertexts to the aggregate whatever it is signed for.
func (e *evilServer) sum(t *testing.T, u *EncryptedUpdate) {
	t.Helper()
	v := *u
	v.Session, v.Round = e.f.session, e.round
	v.ClientID = fmt.Sprint(u.ClientID, "#", len(e.summed))
	if err := e.agg.Add(&v); err != nil {
		t.Fatal(err)
	}
	e.summed = append(e.summed, u)
}

// request lists the commitments of e.listed and reports their number.
func (e *evilServer) request(t *testing.T, set []MemberID) *DecryptionRequest {
	t.Helper()
	e.agg.cfg.Committee.MinContributions = 2 // the server's own minimum is its own business
	req, err := e.agg.DecryptionRequest(set)
	if err != nil {
		t.Fatal(err)
	}
	r := *req
	r.Purpose = e.purpose
	r.Commitments = nil
	for _, u := range e.listed {
		r.Commitments = append(r.Commitments, u.commitment())
	}
	r.Count = len(r.Commitments)
	return &r
}

// open answers ch honestly from the listed uploads' trees.
func (e *evilServer) open(req *DecryptionRequest, ch *Challenge) *Opening {
	return openFrom(e.f.params, req, ch, e.listed)
}

// openFrom opens ch's leaves of each of ups (in order) as an honest aggregator would.
func openFrom(p Parameters, req *DecryptionRequest, ch *Challenge, ups []*EncryptedUpdate) *Opening {
	width, _, depth := leafLayout(p.N(), len(req.c1)*p.Levels())
	o := &Opening{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: req.Aggregate, To: ch.From, Leaves: slices.Clone(ch.Leaves), chunks: len(req.c1) * p.Levels(), width: width, depth: depth}
	for _, u := range ups {
		tree := commitUpload(p.N(), p.Moduli(), u.chunks, 1, true, nil)
		uo, err := openUpload(tree, ch.Leaves, o.chunks, width, depth)
		if err != nil {
			panic(err) // an in-memory tree has nothing to fail
		}
		o.uploads = append(o.uploads, uo)
	}
	return o
}

// answer runs member id on the request with the given opening maker and returns its share
// or error.
func answer(f *federation, id MemberID, req *DecryptionRequest, open func(*Challenge) *Opening) (*DecryptionShare, error) {
	m := f.members[id-1]
	ch, err := m.Challenge(req)
	if err != nil {
		return nil, err
	}
	return m.DecryptionShare(req, open(ch))
}

// uploads returns n signed uploads of clients "client-<first>"… for round and purpose.
func uploads(t *testing.T, f *federation, round uint64, purpose Purpose, first, n, dim int) []*EncryptedUpdate {
	t.Helper()
	var out []*EncryptedUpdate
	for i, u := range randomUpdates(round*100+uint64(first), n, dim, 1) {
		out = append(out, f.upload(t, fmt.Sprint("client-", first+i), round, purpose, u))
	}
	return out
}

func TestAttackDecryptionRequests(t *testing.T) {
	const dim = 1500
	set := []MemberID{1, 2, 3}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *federation) (*evilServer, func(req *DecryptionRequest))
		is    error
	}{
		{"fewer than m identities", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			for _, u := range uploads(t, f, 2, PurposeFit, 0, 2, dim) {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrTooFewContributions},
		{"fewer than m identities, count inflated", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			for _, u := range uploads(t, f, 2, PurposeFit, 0, 2, dim) {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, func(r *DecryptionRequest) { r.Count = 3 }
		}, nil},
		{"a duplicated identity", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			ups := uploads(t, f, 2, PurposeFit, 0, 2, dim)
			again := uploads(t, f, 2, PurposeFit, 0, 1, dim)[0] // client-0 signs a second upload
			for _, u := range append(ups, again) {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrDuplicate},
		{"one commitment listed twice", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			ups := uploads(t, f, 2, PurposeFit, 0, 2, dim)
			for _, u := range []*EncryptedUpdate{ups[0], ups[1], ups[1]} {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrDuplicate},
		{"an upload of the previous round", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			ups := append(uploads(t, f, 2, PurposeFit, 0, 2, dim), uploads(t, f, 1, PurposeFit, 5, 1, dim)...)
			for _, u := range ups {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrUnauthenticated},
		{"an upload of the other purpose", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			ups := append(uploads(t, f, 2, PurposeFit, 0, 2, dim), uploads(t, f, 2, PurposeEvaluation, 5, 1, dim)...)
			for _, u := range ups {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrUnauthenticated},
		{"an upload whose signature was altered", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			for _, u := range uploads(t, f, 2, PurposeFit, 0, 3, dim) {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, func(r *DecryptionRequest) {
				r.Commitments[1].Signature = slices.Clone(r.Commitments[1].Signature)
				r.Commitments[1].Signature[5] ^= 1
			}
		}, ErrUnauthenticated},
		{"an upload of a client certified by another CA", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			ups := uploads(t, f, 2, PurposeFit, 0, 2, dim)
			evilCA, _ := identitytest.NewCA(666)
			sybil := *f
			sybil.ca = evilCA
			ups = append(ups, sybil.uploadUnverified(t, "sybil", 2, PurposeFit, make([]float64, dim)))
			for _, u := range ups {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, nil
		}, ErrUnauthenticated},
		{"an unspecified purpose", func(t *testing.T, f *federation) (*evilServer, func(*DecryptionRequest)) {
			e := newEvilServer(t, f, 2, PurposeFit, dim)
			for _, u := range uploads(t, f, 2, PurposeFit, 0, 3, dim) {
				e.sum(t, u)
				e.listed = append(e.listed, u)
			}
			return e, func(r *DecryptionRequest) { r.Purpose = PurposeUnspecified }
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := attackFederation(t, 44)
			e, edit := tc.setup(t, f)
			req := e.request(t, set)
			if edit != nil {
				edit(req)
			}
			for _, id := range set {
				s, err := answer(f, id, req, func(ch *Challenge) *Opening { return e.open(req, ch) })
				if s != nil || err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Errorf("member %d answered (err = %v, want %v)", id, err, tc.is)
				}
			}
		})
	}
}

// uploadUnverified signs an upload under f.ca without verifying the key (a Sybil of
// another CA can encrypt under any key).
func (f *federation) uploadUnverified(t *testing.T, name string, round uint64, purpose Purpose, u []float64) *EncryptedUpdate {
	t.Helper()
	enc, err := NewEncryptor(f.params, f.pk, EncryptorConfig{ClientID: name})
	if err != nil {
		t.Fatal(err)
	}
	eu, err := enc.Encrypt(UploadContext{Round: round, Purpose: purpose, TaskID: "t"}, u, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner(t, f.ca, name)
	eu.Commitment = commitUpload(f.params.N(), f.params.Moduli(), eu.chunks, 1, false, nil).root
	eu.Certificate = s.Certificate()
	if eu.Signature, err = s.sign(eu.signedDigest()); err != nil {
		t.Fatal(err)
	}
	return eu
}

// TestAttackSecondAggregate: after agreeing to decrypt one aggregate of a round and purpose,
// a member refuses any other (A minus one client, another set, another list), and any
// earlier round; the other purpose of the same round is a separate aggregate.
func TestAttackSecondAggregate(t *testing.T) {
	f := attackFederation(t, 45)
	const dim = 800
	ups := uploads(t, f, 3, PurposeFit, 0, 4, dim)
	agg := f.newAggregator(t, 3, PurposeFit, dim)
	for _, u := range ups {
		if err := agg.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.decrypt(t, agg, []MemberID{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	minusOne := f.newAggregator(t, 3, PurposeFit, dim)
	for _, u := range ups[:3] {
		if err := minusOne.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	req, err := minusOne.DecryptionRequest([]MemberID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []MemberID{1, 2, 3} {
		if _, err := answer(f, id, req, func(ch *Challenge) *Opening { o, _ := minusOne.Open(ch); return o }); !errors.Is(err, ErrAlreadyDecrypted) {
			t.Errorf("A minus one client, member %d: err = %v, want ErrAlreadyDecrypted", id, err)
		}
	}
	// The same aggregate for another set: member 1 is bound to {1, 2, 3}.
	again, _ := agg.DecryptionRequest([]MemberID{1, 3, 4})
	if _, err := f.members[0].Challenge(again); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Errorf("the same aggregate for another set: err = %v, want ErrAlreadyDecrypted", err)
	}
	// Round 3's evaluation aggregate is allowed; round 2 of either purpose is not anymore.
	eval, _ := smallRoundFor(t, f, 3, PurposeEvaluation, 3, 5)
	if _, err := f.decrypt(t, eval, []MemberID{1, 2, 3}); err != nil {
		t.Errorf("evaluation aggregate of the same round: %v", err)
	}
	old, _ := smallRound(t, f, 2, 3, dim)
	oldReq, _ := old.DecryptionRequest([]MemberID{1, 2, 3})
	if _, err := f.members[0].Challenge(oldReq); !errors.Is(err, ErrStaleRound) {
		t.Errorf("an earlier round: err = %v, want ErrStaleRound", err)
	}
	// The next round goes ahead.
	next, exact := smallRound(t, f, 4, 3, dim)
	res, err := f.decrypt(t, next, []MemberID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	// The float encoding's flooding error, or the packed one's rounding (< one step each).
	if e := maxAbsDiff(res.WeightedSum, exact); e > 1e-3+3*f.params.QuantisationStep() {
		t.Errorf("max error %.3g", e)
	}
}

// TestAttackDisjointDecryptingSets: a member refuses a second aggregate only of a round
// and purpose it decrypted itself, so with 2t ≤ K the server could have two disjoint sets
// of t members open the round's sum and the sum without one client (both of ≥ m signed
// uploads, both passing every check) and subtract them: that client's upload. A committee
// with 2t ≤ K is refused by validation, wherever one is made or checked; with 2t > K
// every other set of t members shares one with the set that opened the round's sum, and
// that member refuses the sum without one client, so it never gathers t shares.
func TestAttackDisjointDecryptingSets(t *testing.T) {
	p := testParams(t, attackLiteral)
	for _, c := range []CommitteeConfig{{Size: 4, Threshold: 2, MinContributions: 3}, {Size: 6, Threshold: 3, MinContributions: 3}} {
		var fe *FieldError
		if err := c.Validate(p); !errors.As(err, &fe) || fe.Field != FieldThreshold || !strings.Contains(err.Error(), "must exceed half") {
			t.Errorf("%+v: Validate = %v, want a FieldError on the threshold", c, err)
		}
		if _, err := NewMember(p, MemberConfig{Session: NewSessionID(), ID: 1, Committee: c}); err == nil {
			t.Errorf("%+v: a member joined the committee", c)
		}
		if _, err := NewKeySetup(p, NewSessionID(), c); err == nil {
			t.Errorf("%+v: the key setup started", c)
		}
		if _, err := NewAggregator(p, AggregatorConfig{Session: NewSessionID(), Round: 1, Dim: 10, Committee: c}); err == nil {
			t.Errorf("%+v: an aggregator started", c)
		}
	}
	const dim = 600
	for _, c := range []CommitteeConfig{{Size: 4, Threshold: 3, MinContributions: 3}, {Size: 5, Threshold: 3, MinContributions: 3}} {
		t.Run(fmt.Sprintf("K=%d,t=%d", c.Size, c.Threshold), func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, 50)
			f := newAuthFederation(t, p, c, 1)
			ups := uploads(t, f, 5, PurposeFit, 0, 4, dim)
			all := f.newAggregator(t, 5, PurposeFit, dim)
			minusOne := f.newAggregator(t, 5, PurposeFit, dim)
			for i, u := range ups {
				if err := all.Add(u); err != nil {
					t.Fatal(err)
				}
				if i < len(ups)-1 {
					if err := minusOne.Add(u); err != nil {
						t.Fatal(err)
					}
				}
			}
			first := make([]MemberID, c.Threshold)
			for i := range first {
				first[i] = MemberID(i + 1)
			}
			if _, err := f.decrypt(t, all, first); err != nil {
				t.Fatal(err)
			}
			for _, set := range thresholdSets(c.Size, c.Threshold) {
				if slices.Equal(set, first) {
					continue
				}
				// Each try meets the members as the first decryption left them.
				g := f.snapshot(t)
				req, err := minusOne.DecryptionRequest(set)
				if err != nil {
					t.Fatal(err)
				}
				shares := 0
				for _, id := range set {
					_, err := answer(g, id, req, func(ch *Challenge) *Opening { o, _ := minusOne.Open(ch); return o })
					switch shared := slices.Contains(first, id); {
					case shared && !errors.Is(err, ErrAlreadyDecrypted):
						t.Errorf("set %v: member %d, which decrypted the round's sum, answered the sum without client-3 (err = %v, want ErrAlreadyDecrypted)", set, id, err)
					case !shared && err != nil:
						t.Errorf("set %v: member %d, which decrypted nothing this round: %v", set, id, err)
					case err == nil:
						shares++
					}
				}
				if shares >= c.Threshold {
					t.Errorf("set %v: %d shares of the sum without client-3, threshold %d", set, shares, c.Threshold)
				}
			}
		})
	}
}

// thresholdSets lists every set of t of the members 1…k, each ascending.
func thresholdSets(k, t int) [][]MemberID {
	if t == 0 {
		return [][]MemberID{nil}
	}
	var out [][]MemberID
	for last := MemberID(t); int(last) <= k; last++ {
		for _, s := range thresholdSets(int(last)-1, t-1) {
			out = append(out, append(s, last))
		}
	}
	return out
}

// TestAttackMixedTasks: the server gives client-0 the real task and client-1 and client-2
// settings that shrink their updates and noise shares to nothing (a tiny learning rate,
// clip or weight scale), so that the decrypted sum would be client-0's update with a third
// of the noise. Each client signs its own task's digest into its upload; every member
// refuses the sum of uploads made under two digests (ErrMixedTasks), and a digest altered
// in the listed commitments breaks the signature. The same uploads under one task decrypt.
func TestAttackMixedTasks(t *testing.T) {
	const dim = 700
	realTask, tinyTask := [32]byte{1}, [32]byte{2}
	for _, tc := range []struct {
		name    string
		digests [3][32]byte
		edit    func(r *DecryptionRequest)
		is      error
	}{
		{"one client under the real task, two under tiny settings", [3][32]byte{realTask, tinyTask, tinyTask}, nil, ErrMixedTasks},
		{"the last client under another task", [3][32]byte{realTask, realTask, tinyTask}, nil, ErrMixedTasks},
		{"a listed digest rewritten to match", [3][32]byte{realTask, tinyTask, tinyTask}, func(r *DecryptionRequest) {
			r.Commitments[1].TaskDigest, r.Commitments[2].TaskDigest = realTask, realTask
		}, ErrUnauthenticated},
		{"one task", [3][32]byte{tinyTask, tinyTask, tinyTask}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := attackFederation(t, 51)
			agg := f.newAggregator(t, 2, PurposeFit, dim)
			for i, u := range randomUpdates(51, 3, dim, 1) {
				name := fmt.Sprint("client-", i)
				eu, err := f.encryptor(t, name).Encrypt(UploadContext{Round: 2, Purpose: PurposeFit, TaskID: "fit-2-" + name, TaskDigest: tc.digests[i]}, u, 1)
				if err != nil {
					t.Fatal(err)
				}
				if err := agg.Add(eu); err != nil {
					t.Fatal(err)
				}
			}
			req, err := agg.DecryptionRequest([]MemberID{1, 2, 3})
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(req)
			}
			for _, id := range req.Members {
				s, err := answer(f, id, req, func(ch *Challenge) *Opening { o, _ := agg.Open(ch); return o })
				switch {
				case tc.is == nil && err != nil:
					t.Errorf("member %d refused uploads of one task: %v", id, err)
				case tc.is != nil && (s != nil || !errors.Is(err, tc.is)):
					t.Errorf("member %d answered (err = %v, want %v)", id, err, tc.is)
				}
			}
		})
	}
}

// TestAttackForeignCiphertexts: the server sums one honest upload with ciphertexts it
// encrypted itself under the public key (or with an honest upload it does not list), and
// lists m genuine signed commitments. Opening the listed uploads honestly shows a sum that
// differs from the aggregate; opening what it summed does not match the commitments. Either
// way every member refuses.
func TestAttackForeignCiphertexts(t *testing.T) {
	const dim = 1500
	for _, tc := range []struct {
		name   string
		summed func(genuine []*EncryptedUpdate, own []*EncryptedUpdate) []*EncryptedUpdate
	}{
		{"one honest upload and the server's own", func(g, own []*EncryptedUpdate) []*EncryptedUpdate { return append([]*EncryptedUpdate{g[0]}, own...) }},
		{"the listed uploads and one more", func(g, own []*EncryptedUpdate) []*EncryptedUpdate { return append(slices.Clone(g), own[0]) }},
		{"the listed uploads but one", func(g, own []*EncryptedUpdate) []*EncryptedUpdate { return g[1:] }},
	} {
		for _, forged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/forged opening=%v", tc.name, forged), func(t *testing.T) {
				f := attackFederation(t, 46)
				genuine := uploads(t, f, 2, PurposeFit, 0, 3, dim)
				var own []*EncryptedUpdate
				plain := *f
				plain.verifier = nil // the server encrypts like a passive client
				for i := range 2 {
					own = append(own, plain.upload(t, fmt.Sprint("server-", i), 2, PurposeFit, make([]float64, dim)))
				}
				e := newEvilServer(t, f, 2, PurposeFit, dim)
				for _, u := range tc.summed(genuine, own) {
					e.sum(t, u)
				}
				e.listed = genuine
				req := e.request(t, []MemberID{1, 2, 3})
				open := func(ch *Challenge) *Opening { return e.open(req, ch) }
				if forged {
					// The coefficients the server actually summed, spread so that the
					// opened sums match the aggregate, under the genuine paths.
					open = func(ch *Challenge) *Opening {
						o := e.open(req, ch)
						actual := openFrom(f.params, req, ch, e.summed)
						for i := range o.uploads {
							clear(o.uploads[i].coeffs)
						}
						for _, a := range actual.uploads {
							for j, c := range a.coeffs {
								o.uploads[0].coeffs[j] = (o.uploads[0].coeffs[j] + c) % levelModulus(f.params, o.width, j%(o.chunks*o.width))
							}
						}
						return o
					}
				}
				for _, id := range req.Members {
					if s, err := answer(f, id, req, open); s != nil || !errors.Is(err, ErrSpotCheck) {
						t.Errorf("member %d answered (err = %v, want ErrSpotCheck)", id, err)
					}
				}
			})
		}
	}
}

// TestAttackReplayedUploads: the aggregator of an authenticated server refuses an upload
// signed for another round, purpose or session, one whose ciphertexts were altered after
// signing (by the network), one naming another client, and one of another CA.
func TestAttackReplayedUploads(t *testing.T) {
	f := attackFederation(t, 47)
	const dim = 300
	agg := f.newAggregator(t, 2, PurposeFit, dim)
	fresh := func() *EncryptedUpdate { return uploads(t, f, 2, PurposeFit, 0, 1, dim)[0] }
	evilCA, _ := identitytest.NewCA(666)
	sybil := *f
	sybil.ca = evilCA
	for _, tc := range []struct {
		name string
		u    func() *EncryptedUpdate
		is   error
	}{
		{"previous round", func() *EncryptedUpdate { u := uploads(t, f, 1, PurposeFit, 0, 1, dim)[0]; u.Round = 2; return u }, ErrUnauthenticated},
		{"other purpose", func() *EncryptedUpdate { return uploads(t, f, 2, PurposeEvaluation, 0, 1, dim)[0] }, ErrWrongSession},
		{"other purpose relabelled", func() *EncryptedUpdate {
			u := uploads(t, f, 2, PurposeEvaluation, 0, 1, dim)[0]
			u.Purpose = PurposeFit
			return u
		}, ErrUnauthenticated},
		{"c0 altered in transit", func() *EncryptedUpdate {
			u := fresh()
			c0 := u.chunks[0].Value[0]
			c0.Coeffs[0][0] = (c0.Coeffs[0][0] + 1) % f.params.Modulus()
			return u
		}, ErrUnauthenticated},
		{"c1 altered in transit", func() *EncryptedUpdate {
			u := fresh()
			c1 := u.chunks[0].Value[1]
			c1.Coeffs[0][7] = (c1.Coeffs[0][7] + 1) % f.params.Modulus()
			return u
		}, ErrUnauthenticated},
		{"task id altered", func() *EncryptedUpdate { u := fresh(); u.TaskID = "other"; return u }, ErrUnauthenticated},
		{"task digest altered", func() *EncryptedUpdate { u := fresh(); u.TaskDigest[0] ^= 1; return u }, ErrUnauthenticated},
		{"another client's name", func() *EncryptedUpdate { u := fresh(); u.ClientID = "client-9"; return u }, ErrUnauthenticated},
		{"unsigned", func() *EncryptedUpdate { u := fresh(); u.Certificate, u.Signature = nil, nil; return u }, ErrUnauthenticated},
		{"another CA", func() *EncryptedUpdate {
			return sybil.uploadUnverified(t, "client-0", 2, PurposeFit, make([]float64, dim))
		}, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := agg.Add(tc.u()); !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
		})
	}
	if agg.Count() != 0 {
		t.Fatalf("%d updates added", agg.Count())
	}
	if err := agg.Add(fresh()); err != nil {
		t.Fatalf("a genuine upload: %v", err)
	}
}

// TestAttackTamperedOpening: openings that do not answer the challenge, or whose
// coefficients or paths were altered, are refused.
func TestAttackTamperedOpening(t *testing.T) {
	f := attackFederation(t, 48)
	agg, _ := smallRound(t, f, 1, 3, 2000)
	req, err := agg.DecryptionRequest([]MemberID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	m := f.members[0]
	ch, err := m.Challenge(req)
	if err != nil {
		t.Fatal(err)
	}
	ch2, _ := f.members[1].Challenge(req)
	for _, tc := range []struct {
		name string
		edit func(o *Opening) *Opening
	}{
		{"opening of another member's challenge", func(*Opening) *Opening { o, _ := agg.Open(ch2); o.To = 1; return o }},
		{"opening addressed to another member", func(o *Opening) *Opening { o.To = 2; return o }},
		{"other leaves", func(o *Opening) *Opening { o.Leaves[0]++; return o }},
		{"a coefficient altered", func(o *Opening) *Opening { o.uploads[1].coeffs[3]++; return o }},
		{"a path node altered", func(o *Opening) *Opening { o.uploads[2].path[1][0] ^= 1; return o }},
		{"a c0 digest altered", func(o *Opening) *Opening { o.uploads[0].c0[0] ^= 1; return o }},
		{"an upload missing", func(o *Opening) *Opening { o.uploads = o.uploads[1:]; return o }},
		{"uploads reordered", func(o *Opening) *Opening { o.uploads[0], o.uploads[1] = o.uploads[1], o.uploads[0]; return o }},
		{"a coefficient not below Q", func(o *Opening) *Opening {
			o.uploads[0].coeffs[0] += f.params.Modulus()
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := agg.Open(ch)
			if err != nil {
				t.Fatal(err)
			}
			if s, err := m.DecryptionShare(req, tc.edit(o)); s != nil || err == nil {
				t.Error("member answered")
			}
		})
	}
	if _, err := m.DecryptionShare(req); err == nil {
		t.Error("member answered without an opening")
	}
	o, _ := agg.Open(ch)
	if _, err := m.DecryptionShare(req, o); err != nil {
		t.Errorf("the honest opening: %v", err)
	}
}

// TestSpotCheckDetectsWhatItOpens pins the detection model doc.go states: the server
// alters one coefficient of the aggregate's c1 (in the last chunk), and a member refuses
// exactly when one of its leaves covers that coefficient. Over all leaf positions this
// also measures the per-member detection rate s/L.
func TestSpotCheckDetectsWhatItOpens(t *testing.T) {
	f := attackFederation(t, 49)
	const dim = 3000 // 3 chunks at N = 1024: leaf width 16, 64 leaves
	genuine := uploads(t, f, 2, PurposeFit, 0, 3, dim)
	width, leaves, _ := leafLayout(f.params.N(), f.params.NumChunks(dim)*f.params.Levels())
	detected := 0
	for l := range leaves {
		e := newEvilServer(t, f, 2, PurposeFit, dim)
		for _, u := range genuine {
			e.sum(t, u)
		}
		e.listed = genuine
		last := e.agg.sum[len(e.agg.sum)-1].Value[1]
		pos := l*width + width/2
		last.Coeffs[0][pos] = (last.Coeffs[0][pos] + 1) % f.params.Modulus()
		req := e.request(t, []MemberID{1, 2, 3})
		// A fresh member state each time, as if every attempt were a new round.
		state, _ := f.members[0].MarshalBinary()
		m, _ := LoadMemberWithConfig(f.params, state, MemberConfig{Signer: f.members[0].cfg.Signer, Verifier: f.verifier})
		m.rounds = map[Purpose]roundRecord{}
		ch, err := m.Challenge(req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.DecryptionShare(req, e.open(req, ch))
		hit := slices.Contains(ch.Leaves, uint32(l))
		if hit != errors.Is(err, ErrSpotCheck) || (!hit && err != nil) {
			t.Errorf("leaf %d (challenged %v): err = %v", l, ch.Leaves, err)
		}
		if hit {
			detected++
		}
	}
	t.Logf("one altered coefficient detected by one member in %d of %d positions (s/L = %d/%d)", detected, leaves, DefaultSpotChecks, leaves)
	if detected == 0 || detected == leaves {
		t.Errorf("detected at %d of %d positions: the spot checks are not sampling", detected, leaves)
	}
}

// TestVerifierRejects: certificates the verifier must refuse, and its cache honours the
// clock.
func TestVerifierRejects(t *testing.T) {
	ca, _ := identitytest.NewCA(1)
	v := testVerifier(t, ca)
	good, _ := ca.Issue("alice")
	if id, err := v.Certify(good.Certificate); err != nil || id != "alice" {
		t.Fatalf("Certify = %q, %v", id, err)
	}
	ecdsaID, _ := ca.IssueECDSA("bob")
	if id, err := v.Certify(ecdsaID.Certificate); err != nil || id != "bob" {
		t.Fatalf("ECDSA P-256 certificate: %q, %v", id, err)
	}
	other, _ := identitytest.NewCA(2)
	foreign, _ := other.Issue("alice")
	server, _ := ca.IssueWith("srv", good.Key, identitytest.Options{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	expired, _ := ca.IssueWith("old", good.Key, identitytest.Options{NotAfter: identitytest.NotBefore.AddDate(1, 0, 0)})
	longName, _ := ca.IssueWith(strings.Repeat("n", maxClientIDLength+1), good.Key, identitytest.Options{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaID, err := ca.IssueWith("rsa", rsaKey, identitytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(rsaID.Certificate, rsaKey); err == nil {
		t.Error("NewSigner accepted an RSA key")
	}
	for name, der := range map[string][]byte{"another CA": foreign.Certificate, "server certificate": server.Certificate, "expired": expired.Certificate,
		"name too long": longName.Certificate, "RSA key": rsaID.Certificate, "garbage": []byte("not a certificate"), "empty": nil} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Certify(der); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("err = %v", err)
			}
		})
	}
	// Signatures: Ed25519 and ECDSA verify; a signature by another key or over another
	// digest does not.
	d := transcriptDigest("test", []byte("x"))
	for _, id := range []identitytest.Identity{good, ecdsaID} {
		s, err := NewSigner(id.Certificate, id.Key)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.sign(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.verify(id.Certificate, d, sig); err != nil {
			t.Errorf("%s: %v", s.Identity(), err)
		}
		if _, err := v.verify(id.Certificate, transcriptDigest("test", []byte("y")), sig); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: signature over another digest accepted", s.Identity())
		}
		if _, err := v.verify(foreign.Certificate, d, sig); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: signature accepted under another certificate", s.Identity())
		}
	}
	if _, err := NewSigner(good.Certificate, ecdsaID.Key); err == nil {
		t.Error("NewSigner accepted a key of another certificate")
	}
	// The cache keeps the chain's validity: a verified certificate expires with the clock.
	now := identitytest.NotBefore.AddDate(0, 6, 0)
	cv, _ := NewVerifier([]*x509.Certificate{ca.Certificate()}, func() time.Time { return now })
	if _, err := cv.Certify(expired.Certificate); err != nil {
		t.Fatalf("within validity: %v", err)
	}
	now = now.AddDate(1, 0, 0)
	if _, err := cv.Certify(expired.Certificate); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("cached certificate after expiry: err = %v", err)
	}
}

// TestTranscriptDigestSeparates: domains and field boundaries change the digest.
func TestTranscriptDigestSeparates(t *testing.T) {
	base := transcriptDigest("a", []byte("xy"), []byte("z"))
	for name, d := range map[string][32]byte{
		"other domain":   transcriptDigest("b", []byte("xy"), []byte("z")),
		"other split":    transcriptDigest("a", []byte("x"), []byte("yz")),
		"joined":         transcriptDigest("a", []byte("xyz")),
		"extra empty":    transcriptDigest("a", []byte("xy"), []byte("z"), nil),
		"domain in data": transcriptDigest("", []byte("a"), []byte("xy"), []byte("z")),
	} {
		if d == base {
			t.Errorf("%s: same digest", name)
		}
	}
}
