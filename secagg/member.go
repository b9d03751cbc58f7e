package secagg

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// MemberConfig configures a committee member. The committee settings come from the
// federation's configuration, not from the server: the member checks the roster against them.
type MemberConfig struct {
	Session   SessionID
	ID        MemberID // 1…Committee.Size
	Committee CommitteeConfig
	// Workers is the number of goroutines used to compute decryption shares (default 1).
	Workers int
	// Randomness is the source of the member's identity key, flooding-noise key, secret key,
	// key-generation noise, Shamir polynomial and sealing nonces; nil (the default, and the
	// only choice in production) is crypto/rand. It is not part of the persisted state:
	// restore with LoadMemberWithConfig to keep using it.
	Randomness *Randomness
	// Signer and Verifier make the member hold against an active server (doc.go, "Trust
	// model"): it signs its announcement and dealing, verifies every roster entry against
	// the CA, and decrypts only aggregates of at least MinContributions signed uploads that
	// it spot-checks (Challenge, then DecryptionShare with the server's Opening). Give both
	// or neither; without them (nil) the member trusts the server as in the passive model.
	// They are not part of the persisted state (the state records the certificate, and
	// LoadMemberWithConfig requires the same Signer again).
	Signer   *Signer
	Verifier *Verifier
	// SpotChecks is the number s of commitment leaves the member asks the server to open
	// per aggregate; each leaf covers at least one coefficient of every ciphertext chunk.
	// 1…MaxSpotChecks, default DefaultSpotChecks; only with a Verifier. See doc.go for the
	// detection probability and the bytes it costs.
	SpotChecks int
}

// Spot-check counts (MemberConfig.SpotChecks).
const (
	DefaultSpotChecks = 8
	MaxSpotChecks     = 256
)

// Member is a key-committee member: a single-threaded state machine with no I/O. Its methods
// take a message and return the message to send. State that must survive a crash changes in
// NewMember, Deal, ReceiveShares, Challenge and DecryptionShare: after each successful call,
// write MarshalBinary() durably (e.g. internal/atomicfile) before sending the returned
// message, and restore with LoadMemberWithConfig.
type Member struct {
	params   Parameters
	cfg      MemberConfig
	identity *ecdh.PrivateKey
	noiseKey [32]byte // keys the flooding noise and spot-check PRFs
	announce []byte   // the signature of the announcement (re-made after a restart)

	roster  *Roster
	dealers []MemberID
	share   *mhe.ShamirSecretShare
	cmb     *mhe.Combiner

	records map[AggregateID]decryptionRecord
	rounds  map[Purpose]roundRecord
}

// decryptionRecord says with which member set an aggregate was decrypted.
type decryptionRecord struct {
	Round   uint64
	Members []MemberID
}

// roundRecord is what a verifying member last agreed to decrypt for a purpose: the round,
// the aggregate and its binding to the listed uploads, and the member set.
type roundRecord struct {
	Round     uint64
	Binding   [32]byte
	Aggregate AggregateID
	Members   []MemberID
}

// NewMember creates a member with a fresh identity key. Persist MarshalBinary() before
// sending the announcement.
func NewMember(params Parameters, cfg MemberConfig) (*Member, error) {
	if err := cfg.Committee.Validate(params); err != nil {
		return nil, err
	}
	if cfg.ID < 1 || int(cfg.ID) > cfg.Committee.Size {
		return nil, fmt.Errorf("secagg: member id %d out of range 1…%d", cfg.ID, cfg.Committee.Size)
	}
	if err := cfg.checkIdentity(); err != nil {
		return nil, err
	}
	who := [][]byte{cfg.Session[:], u64(uint64(cfg.ID))}
	id, err := cfg.Randomness.x25519Key("member identity key", who...)
	if err != nil {
		return nil, fmt.Errorf("secagg: generating identity key: %w", err)
	}
	m := &Member{params: params, cfg: cfg, identity: id, records: map[AggregateID]decryptionRecord{}, rounds: map[Purpose]roundRecord{}}
	if err := cfg.Randomness.read(m.noiseKey[:], "member flooding-noise key", who...); err != nil {
		return nil, err
	}
	if err := m.signAnnouncement(); err != nil {
		return nil, err
	}
	return m, nil
}

// checkIdentity checks the Signer, Verifier and SpotChecks fields and fills the default.
func (cfg *MemberConfig) checkIdentity() error {
	if (cfg.Signer == nil) != (cfg.Verifier == nil) {
		return fmt.Errorf("secagg: member %d: give both a Signer and a Verifier (active-server model) or neither (passive)", cfg.ID)
	}
	if cfg.Verifier == nil {
		if cfg.SpotChecks != 0 {
			return fmt.Errorf("secagg: member %d: SpotChecks %d without a Verifier: only a verifying member spot-checks", cfg.ID, cfg.SpotChecks)
		}
		return nil
	}
	if cfg.SpotChecks == 0 {
		cfg.SpotChecks = DefaultSpotChecks
	}
	if cfg.SpotChecks < 1 || cfg.SpotChecks > MaxSpotChecks {
		return fmt.Errorf("secagg: member %d: SpotChecks %d: must be 1…%d", cfg.ID, cfg.SpotChecks, MaxSpotChecks)
	}
	return nil
}

// authenticated reports whether the member works in the active-server model.
func (m *Member) authenticated() bool { return m.cfg.Verifier != nil }

// signAnnouncement signs the member's announcement (when it has a Signer).
func (m *Member) signAnnouncement() error {
	if m.cfg.Signer == nil {
		return nil
	}
	a := m.unsignedAnnouncement()
	sig, err := m.cfg.Signer.sign(announcementDigest(a.Session, m.params.digest, m.cfg.Committee, a.Member, a.IdentityKey))
	if err != nil {
		return fmt.Errorf("secagg: member %d: %w", m.cfg.ID, err)
	}
	m.announce = sig
	return nil
}

// ID returns the member's id.
func (m *Member) ID() MemberID { return m.cfg.ID }

// Identity returns the member's certified identity ("" without a Signer).
func (m *Member) Identity() string {
	if m.cfg.Signer == nil {
		return ""
	}
	return m.cfg.Signer.Identity()
}

// Ready reports whether the member holds its threshold share and can decrypt.
func (m *Member) Ready() bool { return m.share != nil }

func (m *Member) unsignedAnnouncement() *KeyAnnouncement {
	a := &KeyAnnouncement{Session: m.cfg.Session, Member: m.cfg.ID}
	copy(a.IdentityKey[:], m.identity.PublicKey().Bytes())
	return a
}

// Announcement returns the message that publishes the member's identity key, signed when
// the member has a Signer.
func (m *Member) Announcement() *KeyAnnouncement {
	a := m.unsignedAnnouncement()
	if m.cfg.Signer != nil {
		a.Certificate = slices.Clone(m.cfg.Signer.Certificate())
		a.Signature = slices.Clone(m.announce)
	}
	return a
}

// checkRoster verifies that the server's roster matches the member's own configuration and
// holds the member's own identity key (and, when verifying, that every entry is signed by
// a distinct identity certified by the CA, and that its own entry holds its certificate).
func (m *Member) checkRoster(ro *Roster) error {
	if ro.Session != m.cfg.Session {
		return fmt.Errorf("secagg: member %d: roster of session %s, want %s: %w", m.cfg.ID, ro.Session, m.cfg.Session, ErrWrongSession)
	}
	if ro.ParamsDigest != m.params.digest {
		return fmt.Errorf("secagg: member %d: roster made under other parameters; every party must use the same ParametersLiteral", m.cfg.ID)
	}
	if ro.Committee != m.cfg.Committee {
		return fmt.Errorf("secagg: member %d: roster committee %+v differs from the configured %+v", m.cfg.ID, ro.Committee, m.cfg.Committee)
	}
	if len(ro.Announcements) != m.cfg.Committee.Size {
		return fmt.Errorf("secagg: member %d: roster lists %d keys for a committee of %d", m.cfg.ID, len(ro.Announcements), m.cfg.Committee.Size)
	}
	for i, a := range ro.Announcements {
		if a.Session != ro.Session || a.Member != MemberID(i+1) {
			return fmt.Errorf("secagg: member %d: roster entry %d is member %d's of session %s: %w", m.cfg.ID, i+1, a.Member, a.Session, ErrWrongSession)
		}
	}
	own := ro.Announcements[m.cfg.ID-1]
	if !bytes.Equal(own.IdentityKey[:], m.identity.PublicKey().Bytes()) {
		return fmt.Errorf("secagg: member %d: roster holds another identity key for this member (announce again)", m.cfg.ID)
	}
	if !m.authenticated() {
		return nil
	}
	if !bytes.Equal(own.Certificate, m.cfg.Signer.Certificate()) {
		return fmt.Errorf("secagg: member %d: roster holds another certificate for this member: %w", m.cfg.ID, ErrUnauthenticated)
	}
	if _, err := ro.verify(m.cfg.Verifier); err != nil {
		return fmt.Errorf("secagg: member %d: %w", m.cfg.ID, err)
	}
	return nil
}

// Deal generates the member's secret key and returns its dealing: a share of the collective
// public key and a Shamir share of the secret sealed to every member (itself included, so it
// need keep no secret between dealing and delivery), signed when the member has a Signer.
// The secret itself is not kept. It first checks the roster (checkRoster): a verifying
// member deals only for a roster whose every entry a distinct identity of the CA signed.
// Persist MarshalBinary() (it now holds the roster) before sending.
func (m *Member) Deal(ro *Roster) (*Dealing, error) {
	if m.share != nil {
		return nil, fmt.Errorf("secagg: member %d already holds its threshold share; a new dealing needs a new session", m.cfg.ID)
	}
	if err := m.checkRoster(ro); err != nil {
		return nil, err
	}
	rd := ro.digest()
	if m.roster != nil && m.roster.digest() != rd {
		return nil, fmt.Errorf("secagg: member %d: roster changed within the session", m.cfg.ID)
	}
	he := *m.params.he.GetRLWEParameters()
	crs, err := ro.crs()
	if err != nil {
		return nil, err
	}
	// One stream for the secret key, its key-generation noise and its Shamir polynomial,
	// drawn in that order (deterministic mode only, see sampling.go), and one for
	// the sealing nonces. Deterministic streams depend on the roster, so dealing again for
	// the same roster gives the same dealing and a nonce never seals two plaintexts.
	who := [][]byte{m.cfg.Session[:], u64(uint64(m.cfg.ID)), rd[:]}
	prng, err := m.cfg.Randomness.prng("member dealing", who...)
	if err != nil {
		return nil, err
	}
	nonces, err := m.cfg.Randomness.reader("member sealing nonces", who...)
	if err != nil {
		return nil, err
	}
	// Production draws the secret key, the key-generation noise and the Shamir polynomial
	// through lattigo's own KeyGenerator, PublicKeyGenProtocol and Thresholdizer (crypto/rand);
	// only deterministic randomness (simulations) takes the seeded re-derivations of
	// sampling.go, which lattigo v5 offers no hook for.
	deterministic := m.cfg.Randomness.Deterministic()
	ckg := mhe.NewPublicKeyGenProtocol(he)
	thr := mhe.NewThresholdizer(he)
	var sk *rlwe.SecretKey
	if deterministic {
		if sk, err = genSecretKey(he, prng); err != nil {
			return nil, fmt.Errorf("secagg: member %d: %w", m.cfg.ID, err)
		}
	} else {
		sk = rlwe.NewKeyGenerator(he).GenSecretKeyNew()
	}
	defer clearPoly(sk.Value.Q)

	crp := ckg.SampleCRP(crs)
	var pkShare mhe.PublicKeyGenShare
	if deterministic {
		if pkShare, err = genPublicKeyShare(he, prng, sk, crp); err != nil {
			return nil, fmt.Errorf("secagg: member %d: %w", m.cfg.ID, err)
		}
	} else {
		pkShare = ckg.AllocateShare()
		ckg.GenShare(sk, crp, &pkShare)
	}

	var poly mhe.ShamirPolynomial
	if deterministic {
		poly, err = genShamirPolynomial(he, prng, m.cfg.Committee.Threshold, sk)
	} else {
		poly, err = thr.GenShamirPolynomial(m.cfg.Committee.Threshold, sk)
	}
	if err != nil {
		return nil, fmt.Errorf("secagg: member %d: Shamir polynomial: %w", m.cfg.ID, err)
	}
	defer func() {
		for _, c := range poly.Value {
			clearPoly(c.Q)
		}
	}()
	d := &Dealing{Session: m.cfg.Session, From: m.cfg.ID, q: m.params.Moduli(), pkShare: pkShare.Value.Q, sealed: make([][]byte, len(ro.Announcements))}
	sh := thr.AllocateThresholdSecretShare()
	defer clearPoly(sh.Q)
	plain := make([]byte, 0, 8*m.params.N()*m.params.Levels())
	defer func() { clear(plain[:cap(plain)]) }()
	for j := range ro.Announcements {
		to := MemberID(j + 1)
		thr.GenShamirSecretShare(mhe.ShamirPublicPoint(to), poly, &sh)
		plain = plain[:0]
		for _, cs := range sh.Q.Coeffs {
			for _, c := range cs {
				plain = binary.LittleEndian.AppendUint64(plain, c)
			}
		}
		aead, err := shareAEAD(m.identity, ro.Announcements[j].IdentityKey, m.cfg.Session, m.params.digest, m.cfg.ID, to)
		if err != nil {
			return nil, fmt.Errorf("secagg: member %d: sealing the share for member %d: %w", m.cfg.ID, to, err)
		}
		if d.sealed[j], err = seal(aead, shareAD(m.cfg.Session, m.params.digest, m.cfg.ID, to), plain, nonces); err != nil {
			return nil, fmt.Errorf("secagg: member %d: sealing the share for member %d: %w", m.cfg.ID, to, err)
		}
	}
	if m.cfg.Signer != nil {
		if d.Signature, err = m.cfg.Signer.sign(dealingDigest(m.cfg.Session, rd, m.cfg.ID, d.pkShare, sealedDigest(d.sealed))); err != nil {
			return nil, fmt.Errorf("secagg: member %d: %w", m.cfg.ID, err)
		}
	}
	m.roster = ro.clone()
	return d, nil
}

// ReceiveShares opens the Shamir shares the dealers sealed for this member and adds them
// into its threshold share. Receiving the same delivery again is a no-op. Persist
// MarshalBinary() afterwards.
func (m *Member) ReceiveShares(v *ShareDelivery) error {
	if m.roster == nil {
		return fmt.Errorf("secagg: member %d has no roster yet (call Deal first): %w", m.cfg.ID, ErrNotReady)
	}
	if v.Session != m.cfg.Session || v.To != m.cfg.ID {
		return fmt.Errorf("secagg: member %d: delivery for member %d of session %s: %w", m.cfg.ID, v.To, v.Session, ErrWrongSession)
	}
	if m.share != nil {
		if slices.Equal(v.Dealers, m.dealers) {
			return nil
		}
		return fmt.Errorf("secagg: member %d already combined the shares of dealers %v; refusing another set %v", m.cfg.ID, m.dealers, v.Dealers)
	}
	if v.n != m.params.N() || v.levels != m.params.Levels() {
		return fmt.Errorf("secagg: member %d: delivery for ring degree %d with %d primes, want %d with %d", m.cfg.ID, v.n, v.levels, m.params.N(), m.params.Levels())
	}
	if err := checkMemberSet(v.Dealers, m.cfg.Committee.Size, m.cfg.Committee.Threshold, -1); err != nil {
		return fmt.Errorf("secagg: member %d: delivery dealers: %w", m.cfg.ID, err)
	}
	if len(v.sealed) != len(v.Dealers) {
		return fmt.Errorf("secagg: member %d: delivery holds %d shares for %d dealers", m.cfg.ID, len(v.sealed), len(v.Dealers))
	}
	thr := mhe.NewThresholdizer(m.params.he)
	acc := thr.AllocateThresholdSecretShare()
	tmp := thr.AllocateThresholdSecretShare()
	defer clearPoly(tmp.Q)
	qs := m.params.Moduli()
	n := m.params.N()
	for i, from := range v.Dealers {
		aead, err := shareAEAD(m.identity, m.roster.identityKey(from), m.cfg.Session, m.params.digest, from, m.cfg.ID)
		if err != nil {
			return fmt.Errorf("secagg: member %d: share from member %d: %w", m.cfg.ID, from, err)
		}
		plain, err := open(aead, shareAD(m.cfg.Session, m.params.digest, from, m.cfg.ID), v.sealed[i])
		if err != nil {
			return fmt.Errorf("secagg: member %d: share from member %d does not authenticate (corrupted, or not sealed for this member): %w", m.cfg.ID, from, err)
		}
		if len(plain) != 8*n*len(qs) {
			return fmt.Errorf("secagg: member %d: share from member %d has %d bytes, want %d", m.cfg.ID, from, len(plain), 8*n*len(qs))
		}
		for l, q := range qs {
			for j := range tmp.Q.Coeffs[l] {
				c := binary.LittleEndian.Uint64(plain[8*(l*n+j):])
				if c >= q {
					return fmt.Errorf("secagg: member %d: share from member %d has coefficient %d of prime %d not below the modulus", m.cfg.ID, from, j, l)
				}
				tmp.Q.Coeffs[l][j] = c
			}
		}
		clear(plain)
		if err := thr.AggregateShares(acc, tmp, &acc); err != nil {
			return fmt.Errorf("secagg: member %d: adding the share of member %d: %w", m.cfg.ID, from, err)
		}
	}
	m.setShare(&acc, slices.Clone(v.Dealers))
	return nil
}

func (m *Member) setShare(s *mhe.ShamirSecretShare, dealers []MemberID) {
	m.share = s
	m.dealers = dealers
	points := make([]mhe.ShamirPublicPoint, m.cfg.Committee.Size)
	for i := range points {
		points[i] = mhe.ShamirPublicPoint(i + 1)
	}
	cmb := mhe.NewCombiner(*m.params.he.GetRLWEParameters(), mhe.ShamirPublicPoint(m.cfg.ID), points, m.cfg.Committee.Threshold)
	m.cmb = &cmb
}

// checkMemberSet checks that ids are ascending, distinct, within 1…size, at least min long,
// and contain must unless must < 0.
func checkMemberSet(ids []MemberID, size, min int, must int) error {
	if len(ids) < min {
		return fmt.Errorf("%d members, need at least %d", len(ids), min)
	}
	found := must < 0
	for i, id := range ids {
		if id < 1 || int(id) > size {
			return fmt.Errorf("member id %d out of range 1…%d", id, size)
		}
		if i > 0 && ids[i-1] >= id {
			return fmt.Errorf("member ids %v are not strictly ascending", ids)
		}
		if int(id) == must {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("member set %v does not include member %d", ids, must)
	}
	return nil
}

func clearPoly(p ring.Poly) {
	for _, c := range p.Coeffs {
		clear(c)
	}
}
