package secagg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
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
	// restore with LoadMemberWithRandomness to keep using it.
	Randomness *Randomness
}

// Member is a key-committee member: a single-threaded state machine with no I/O. Its methods
// take a message and return the message to send. State that must survive a crash changes in
// NewMember, Deal, ReceiveShares and DecryptionShare: after each successful call, write
// MarshalBinary() durably (e.g. internal/atomicfile) before sending the returned message,
// and restore with LoadMember.
type Member struct {
	params   Parameters
	cfg      MemberConfig
	identity *ecdh.PrivateKey
	noiseKey [32]byte // keys the flooding noise PRF, so a repeated request gets the same share

	roster  *Roster
	dealers []MemberID
	share   *mhe.ShamirSecretShare
	cmb     *mhe.Combiner

	records map[AggregateID]decryptionRecord
}

// decryptionRecord says with which member set an aggregate was decrypted.
type decryptionRecord struct {
	Round   uint64
	Members []MemberID
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
	who := [][]byte{cfg.Session[:], u64(uint64(cfg.ID))}
	id, err := cfg.Randomness.x25519Key("member identity key", who...)
	if err != nil {
		return nil, fmt.Errorf("secagg: generating identity key: %w", err)
	}
	m := &Member{params: params, cfg: cfg, identity: id, records: map[AggregateID]decryptionRecord{}}
	if err := cfg.Randomness.read(m.noiseKey[:], "member flooding-noise key", who...); err != nil {
		return nil, err
	}
	return m, nil
}

// ID returns the member's id.
func (m *Member) ID() MemberID { return m.cfg.ID }

// Ready reports whether the member holds its threshold share and can decrypt.
func (m *Member) Ready() bool { return m.share != nil }

// Announcement returns the message that publishes the member's identity key.
func (m *Member) Announcement() *KeyAnnouncement {
	a := &KeyAnnouncement{Session: m.cfg.Session, Member: m.cfg.ID}
	copy(a.IdentityKey[:], m.identity.PublicKey().Bytes())
	return a
}

// checkRoster verifies that the server's roster matches the member's own configuration and
// holds the member's own identity key.
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
	if len(ro.IdentityKeys) != m.cfg.Committee.Size {
		return fmt.Errorf("secagg: member %d: roster lists %d keys for a committee of %d", m.cfg.ID, len(ro.IdentityKeys), m.cfg.Committee.Size)
	}
	if !bytes.Equal(ro.IdentityKeys[m.cfg.ID-1][:], m.identity.PublicKey().Bytes()) {
		return fmt.Errorf("secagg: member %d: roster holds another identity key for this member (announce again)", m.cfg.ID)
	}
	return nil
}

// crsFor derives the common random seed of the collective key generation from the roster, so
// every party holding the same roster samples the same common polynomial.
func crsFor(ro *Roster) (*sampling.KeyedPRNG, error) {
	b, err := ro.MarshalBinary()
	if err != nil {
		return nil, err
	}
	seed := sha256.Sum256(append([]byte("confide-secagg-v1 crs\x00"), b...))
	return sampling.NewKeyedPRNG(seed[:])
}

// rosterDigest identifies a roster in the context of deterministic draws.
func rosterDigest(ro *Roster) ([]byte, error) {
	b, err := ro.MarshalBinary()
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(b)
	return d[:], nil
}

// Deal generates the member's secret key and returns its dealing: a share of the collective
// public key and a Shamir share of the secret sealed to every member (itself included, so it
// need keep no secret between dealing and delivery). The secret itself is not kept. Persist
// MarshalBinary() (it now holds the roster) before sending.
func (m *Member) Deal(ro *Roster) (*Dealing, error) {
	if m.share != nil {
		return nil, fmt.Errorf("secagg: member %d already holds its threshold share; a new dealing needs a new session", m.cfg.ID)
	}
	if err := m.checkRoster(ro); err != nil {
		return nil, err
	}
	if m.roster != nil && !slices.Equal(m.roster.IdentityKeys, ro.IdentityKeys) {
		return nil, fmt.Errorf("secagg: member %d: roster changed within the session", m.cfg.ID)
	}
	he := *m.params.he.GetRLWEParameters()
	crs, err := crsFor(ro)
	if err != nil {
		return nil, err
	}
	rd, err := rosterDigest(ro)
	if err != nil {
		return nil, err
	}
	// One stream for the secret key, its key-generation noise and its Shamir polynomial,
	// drawn in that order (deterministic mode only, see sampling.go), and one for
	// the sealing nonces. Deterministic streams depend on the roster, so dealing again for
	// the same roster gives the same dealing and a nonce never seals two plaintexts.
	who := [][]byte{m.cfg.Session[:], u64(uint64(m.cfg.ID)), rd}
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
	d := &Dealing{Session: m.cfg.Session, From: m.cfg.ID, q: m.params.Modulus(), pkShare: pkShare.Value.Q, sealed: make([][]byte, len(ro.IdentityKeys))}
	sh := thr.AllocateThresholdSecretShare()
	defer clearPoly(sh.Q)
	plain := make([]byte, 8*m.params.N())
	defer clear(plain)
	for j := range ro.IdentityKeys {
		to := MemberID(j + 1)
		thr.GenShamirSecretShare(mhe.ShamirPublicPoint(to), poly, &sh)
		for i, c := range sh.Q.Coeffs[0] {
			binary.LittleEndian.PutUint64(plain[8*i:], c)
		}
		aead, err := shareAEAD(m.identity, ro.IdentityKeys[j], m.cfg.Session, m.params.digest, m.cfg.ID, to)
		if err != nil {
			return nil, fmt.Errorf("secagg: member %d: sealing the share for member %d: %w", m.cfg.ID, to, err)
		}
		if d.sealed[j], err = seal(aead, shareAD(m.cfg.Session, m.params.digest, m.cfg.ID, to), plain, nonces); err != nil {
			return nil, fmt.Errorf("secagg: member %d: sealing the share for member %d: %w", m.cfg.ID, to, err)
		}
	}
	rc := *ro
	rc.IdentityKeys = slices.Clone(ro.IdentityKeys)
	m.roster = &rc
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
	if v.n != m.params.N() {
		return fmt.Errorf("secagg: member %d: delivery for ring degree %d, want %d", m.cfg.ID, v.n, m.params.N())
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
	q := m.params.Modulus()
	for i, from := range v.Dealers {
		aead, err := shareAEAD(m.identity, m.roster.IdentityKeys[from-1], m.cfg.Session, m.params.digest, from, m.cfg.ID)
		if err != nil {
			return fmt.Errorf("secagg: member %d: share from member %d: %w", m.cfg.ID, from, err)
		}
		plain, err := open(aead, shareAD(m.cfg.Session, m.params.digest, from, m.cfg.ID), v.sealed[i])
		if err != nil {
			return fmt.Errorf("secagg: member %d: share from member %d does not authenticate (corrupted, or not sealed for this member): %w", m.cfg.ID, from, err)
		}
		if len(plain) != 8*m.params.N() {
			return fmt.Errorf("secagg: member %d: share from member %d has %d bytes, want %d", m.cfg.ID, from, len(plain), 8*m.params.N())
		}
		for j := range tmp.Q.Coeffs[0] {
			c := binary.LittleEndian.Uint64(plain[8*j:])
			if c >= q {
				return fmt.Errorf("secagg: member %d: share from member %d has coefficient %d not below the modulus", m.cfg.ID, from, j)
			}
			tmp.Q.Coeffs[0][j] = c
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

// DecryptionShare answers a decryption request with one key-switch share per ciphertext.
//
// It refuses (ErrTooFewContributions) an aggregate reported to hold fewer than the
// committee's MinContributions updates, a set that is not exactly Threshold members
// including itself, a request whose AggregateID does not match its content, and
// (ErrAlreadyDecrypted) an aggregate it already decrypted for another member set. For the
// same set it returns the identical share again: the flooding noise is derived from a
// member-secret PRF of (aggregate, set, chunk), so repeats reveal nothing new.
// Persist MarshalBinary() (it records the aggregate) before sending the share.
func (m *Member) DecryptionShare(req *DecryptionRequest) (*DecryptionShare, error) {
	if m.share == nil {
		return nil, fmt.Errorf("secagg: member %d: %w", m.cfg.ID, ErrNotReady)
	}
	c := m.cfg.Committee
	if req.Session != m.cfg.Session {
		return nil, fmt.Errorf("secagg: member %d: request of session %s: %w", m.cfg.ID, req.Session, ErrWrongSession)
	}
	if !allSingleLevel(req.c1, m.params.N()) {
		return nil, fmt.Errorf("secagg: member %d: request for aggregate %s holds no ciphertexts of ring degree %d", m.cfg.ID, req.Aggregate, m.params.N())
	}
	if err := checkRing(m.params, req.c1[0].N(), req.q, "decryption request"); err != nil {
		return nil, err
	}
	if req.Count < c.MinContributions {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s of round %d: %d contributions, minimum %d: %w", m.cfg.ID, req.Aggregate, req.Round, req.Count, c.MinContributions, ErrTooFewContributions)
	}
	if req.Count > m.params.lit.MaxContributors {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: %d contributions exceed MaxContributors %d (the sum may have wrapped)", m.cfg.ID, req.Aggregate, req.Count, m.params.lit.MaxContributors)
	}
	if err := checkMemberSet(req.Members, c.Size, c.Threshold, int(m.cfg.ID)); err != nil {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: %w", m.cfg.ID, req.Aggregate, err)
	}
	if len(req.Members) != c.Threshold {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: %d members asked, want exactly the threshold %d", m.cfg.ID, req.Aggregate, len(req.Members), c.Threshold)
	}
	if len(req.c1) != m.params.NumChunks(req.Dim) {
		return nil, fmt.Errorf("secagg: member %d: request holds %d ciphertexts for dimension %d, want %d", m.cfg.ID, len(req.c1), req.Dim, m.params.NumChunks(req.Dim))
	}
	if id := aggregateID(req.Session, req.Dim, m.params, req.c1); id != req.Aggregate {
		return nil, fmt.Errorf("secagg: member %d: request claims aggregate %s but its content is aggregate %s: %w", m.cfg.ID, req.Aggregate, id, ErrWrongSession)
	}
	if rec, ok := m.records[req.Aggregate]; ok && !slices.Equal(rec.Members, req.Members) {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s for members %v: decrypted in round %d for %v: %w", m.cfg.ID, req.Aggregate, req.Members, rec.Round, rec.Members, ErrAlreadyDecrypted)
	}

	points := make([]mhe.ShamirPublicPoint, len(req.Members))
	for i, id := range req.Members {
		points[i] = mhe.ShamirPublicPoint(id)
	}
	addSk := rlwe.NewSecretKey(m.params.he)
	defer clearPoly(addSk.Value.Q)
	if err := m.cmb.GenAdditiveShare(points, mhe.ShamirPublicPoint(m.cfg.ID), *m.share, addSk); err != nil {
		return nil, fmt.Errorf("secagg: member %d: additive share: %w", m.cfg.ID, err)
	}

	ringQ := m.params.he.RingQ()
	sigma := m.params.floodingSigmaEffective()
	noise := ring.DiscreteGaussian{Sigma: sigma, Bound: 6 * sigma}
	workers := clampWorkers(m.cfg.Workers)
	bufs := make([]ring.Poly, workers)
	for i := range bufs {
		bufs[i] = ringQ.NewPoly()
	}
	out := &DecryptionShare{Session: req.Session, Round: req.Round, Aggregate: req.Aggregate, From: m.cfg.ID, Members: slices.Clone(req.Members), q: m.params.Modulus(), shares: make([]ring.Poly, len(req.c1))}
	errs := make([]error, len(req.c1))
	parallelFor(workers, len(req.c1), func(w, k int) {
		// lattigo mhe.KeySwitchProtocol.GenShare for NTT ciphertexts and target key 0:
		// h = c1·s_i + NTT(e), e ~ DiscreteGaussian(σ'), with e drawn from a keyed PRNG.
		prng, err := sampling.NewKeyedPRNG(m.floodSeed(req.Aggregate, req.Members, k))
		if err != nil {
			errs[k] = err
			return
		}
		sampler, err := ring.NewSampler(prng, ringQ, noise, false)
		if err != nil {
			errs[k] = err
			return
		}
		h := ringQ.NewPoly()
		ringQ.MulCoeffsMontgomery(req.c1[k], addSk.Value.Q, h)
		sampler.Read(bufs[w])
		ringQ.NTT(bufs[w], bufs[w])
		ringQ.Add(h, bufs[w], h)
		out.shares[k] = h
	})
	if err := firstError(errs); err != nil {
		return nil, fmt.Errorf("secagg: member %d: decryption share: %w", m.cfg.ID, err)
	}
	if _, ok := m.records[req.Aggregate]; !ok {
		m.records[req.Aggregate] = decryptionRecord{Round: req.Round, Members: slices.Clone(req.Members)}
	}
	return out, nil
}

// floodSeed keys the flooding noise of one chunk: HMAC-SHA256 under the member's noise key
// of (aggregate, member set, chunk index).
func (m *Member) floodSeed(agg AggregateID, members []MemberID, chunk int) []byte {
	mac := hmac.New(sha256.New, m.noiseKey[:])
	mac.Write([]byte("confide-secagg-v1 flooding"))
	mac.Write(agg[:])
	var b [8]byte
	for _, id := range members {
		binary.LittleEndian.PutUint16(b[:2], uint16(id))
		mac.Write(b[:2])
	}
	binary.LittleEndian.PutUint64(b[:], uint64(chunk))
	mac.Write(b[:])
	return mac.Sum(nil)
}

// aggregateID digests what a decryption share depends on: the session, the dimension and
// the c1 polynomials.
func aggregateID(session SessionID, dim int, params Parameters, c1 []ring.Poly) AggregateID {
	h := sha256.New()
	h.Write([]byte("confide-secagg-v1 aggregate\x00"))
	h.Write(session[:])
	var b [8]byte
	for _, v := range []uint64{uint64(dim), uint64(params.N()), params.Modulus(), uint64(len(c1))} {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	buf := make([]byte, 8*4096)
	for _, p := range c1 {
		cs := p.Coeffs[0]
		for len(cs) > 0 {
			k := min(len(cs), 4096)
			for i, c := range cs[:k] {
				binary.LittleEndian.PutUint64(buf[8*i:], c)
			}
			h.Write(buf[:8*k])
			cs = cs[k:]
		}
	}
	var id AggregateID
	h.Sum(id[:0])
	return id
}

func clearPoly(p ring.Poly) {
	for _, c := range p.Coeffs {
		clear(c)
	}
}

// MarshalBinary encodes the member's persistent state: configuration, identity and noise
// keys, roster, threshold share and the record of decrypted aggregates. It holds secrets:
// store it with owner-only permissions.
func (m *Member) MarshalBinary() ([]byte, error) {
	n := m.params.N()
	w := newWriter(256+32*m.cfg.Committee.Size+8*n+len(m.records)*(48+2*m.cfg.Committee.Threshold), typeMemberState)
	w.raw(m.cfg.Session[:])
	w.u16(uint16(m.cfg.ID))
	w.u16(uint16(m.cfg.Committee.Size))
	w.u16(uint16(m.cfg.Committee.Threshold))
	w.u32(uint32(m.cfg.Committee.MinContributions))
	w.raw(m.params.digest[:])
	w.raw(m.identity.Bytes())
	w.raw(m.noiseKey[:])
	if m.roster == nil {
		w.u8(0)
	} else {
		w.u8(1)
		for _, k := range m.roster.IdentityKeys {
			w.raw(k[:])
		}
	}
	if m.share == nil {
		w.u8(0)
	} else {
		w.u8(1)
		w.members(m.dealers)
		w.ringDesc(m.params.LogN(), m.params.Modulus())
		w.coeffs(m.share.Q)
	}
	ids := make([]AggregateID, 0, len(m.records))
	for id := range m.records {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b AggregateID) int { return bytes.Compare(a[:], b[:]) })
	w.u32(uint32(len(ids)))
	for _, id := range ids {
		rec := m.records[id]
		w.raw(id[:])
		w.u64(rec.Round)
		w.members(rec.Members)
	}
	return w.b, nil
}

// LoadMember restores a member from MarshalBinary output, with crypto/rand as its source of
// randomness for a later Deal. It checks that the state was made under params and never
// panics on corrupted input.
func LoadMember(params Parameters, state []byte, workers int) (*Member, error) {
	return LoadMemberWithRandomness(params, state, workers, nil)
}

// LoadMemberWithRandomness is LoadMember for a member created with MemberConfig.Randomness
// rnd (which the state does not record): its later draws (a Deal) come from rnd, nil being
// crypto/rand.
func LoadMemberWithRandomness(params Parameters, state []byte, workers int, rnd *Randomness) (*Member, error) {
	r := newReader(state, typeMemberState, "member state")
	m := &Member{params: params, records: map[AggregateID]decryptionRecord{}}
	m.cfg.Randomness = rnd
	r.fixed(m.cfg.Session[:])
	m.cfg.ID = MemberID(r.u16())
	m.cfg.Committee.Size = int(r.u16())
	m.cfg.Committee.Threshold = int(r.u16())
	m.cfg.Committee.MinContributions = int(r.u32())
	m.cfg.Workers = workers
	var digest [32]byte
	r.fixed(digest[:])
	var priv [32]byte
	r.fixed(priv[:])
	r.fixed(m.noiseKey[:])
	if r.err == nil {
		if digest != params.digest {
			r.failf("state was made under other parameters (load it with the same ParametersLiteral)")
		} else if err := m.cfg.Committee.Validate(params); err != nil {
			r.fail(err)
		} else if m.cfg.ID < 1 || int(m.cfg.ID) > m.cfg.Committee.Size {
			r.failf("member id %d out of range 1…%d", m.cfg.ID, m.cfg.Committee.Size)
		}
	}
	if r.err == nil {
		id, err := ecdh.X25519().NewPrivateKey(priv[:])
		if err != nil {
			r.fail(err)
		}
		m.identity = id
	}
	clear(priv[:])
	hasRoster := r.u8()
	if r.err == nil && hasRoster > 1 {
		r.failf("bad roster flag %d", hasRoster)
	}
	if hasRoster == 1 && r.err == nil {
		ro := &Roster{Session: m.cfg.Session, ParamsDigest: params.digest, Committee: m.cfg.Committee, IdentityKeys: make([][32]byte, m.cfg.Committee.Size)}
		for i := range ro.IdentityKeys {
			r.fixed(ro.IdentityKeys[i][:])
		}
		if r.err == nil && !bytes.Equal(ro.IdentityKeys[m.cfg.ID-1][:], m.identity.PublicKey().Bytes()) {
			r.failf("roster holds another identity key for this member")
		}
		m.roster = ro
	}
	if hasShare := r.u8(); hasShare == 1 && r.err == nil {
		if m.roster == nil {
			r.failf("threshold share without a roster")
		}
		dealers := r.members(MaxCommitteeSize)
		if r.err == nil {
			if err := checkMemberSet(dealers, m.cfg.Committee.Size, m.cfg.Committee.Threshold, -1); err != nil {
				r.fail(err)
			}
		}
		n, q := r.ringDesc()
		if r.err == nil {
			if err := checkRing(params, n, q, "threshold share"); err != nil {
				r.fail(err)
			}
		}
		p := r.poly(n, q)
		if r.err == nil {
			thr := mhe.NewThresholdizer(params.he)
			s := thr.AllocateThresholdSecretShare()
			s.Q.Copy(p)
			clearPoly(p)
			m.setShare(&s, dealers)
		}
	} else if r.err == nil && hasShare != 0 {
		r.failf("bad share flag %d", hasShare)
	}
	nrec := int(r.u32())
	if r.err == nil && nrec > r.remaining()/(32+8+2) {
		r.failf("%d decryption records cannot fit in %d bytes", nrec, r.remaining())
	}
	var prev AggregateID
	for i := 0; i < nrec && r.err == nil; i++ {
		var id AggregateID
		r.fixed(id[:])
		rec := decryptionRecord{Round: r.u64(), Members: r.members(MaxCommitteeSize)}
		if r.err != nil {
			break
		}
		if err := checkMemberSet(rec.Members, m.cfg.Committee.Size, m.cfg.Committee.Threshold, int(m.cfg.ID)); err != nil {
			r.failf("decryption record %d: %v", i, err)
			break
		}
		if i > 0 && bytes.Compare(prev[:], id[:]) >= 0 {
			r.failf("decryption records not in ascending aggregate order at record %d", i)
			break
		}
		prev = id
		m.records[id] = rec
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return m, nil
}
