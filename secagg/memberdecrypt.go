package secagg

import (
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

// checkRequest makes the checks every decryption request must pass: session, ring, a member
// set of exactly Threshold members including this one, the chunk count of the dimension,
// the AggregateID of the content, and that the content was not decrypted for another set.
func (m *Member) checkRequest(req *DecryptionRequest) error {
	if m.share == nil {
		return fmt.Errorf("secagg: member %d: %w", m.cfg.ID, ErrNotReady)
	}
	c := m.cfg.Committee
	if req.Session != m.cfg.Session {
		return fmt.Errorf("secagg: member %d: request of session %s: %w", m.cfg.ID, req.Session, ErrWrongSession)
	}
	if !allShaped(req.c1, m.params.N(), m.params.Levels()) {
		return fmt.Errorf("secagg: member %d: request for aggregate %s holds no ciphertexts of ring degree %d", m.cfg.ID, req.Aggregate, m.params.N())
	}
	if err := checkRing(m.params, req.c1[0].N(), req.q, "decryption request"); err != nil {
		return err
	}
	if req.Count < c.MinContributions {
		return fmt.Errorf("secagg: member %d refuses aggregate %s of round %d: %d contributions, minimum %d: %w", m.cfg.ID, req.Aggregate, req.Round, req.Count, c.MinContributions, ErrTooFewContributions)
	}
	if req.Count > m.params.lit.MaxContributors {
		return fmt.Errorf("secagg: member %d refuses aggregate %s: %d contributions exceed MaxContributors %d (the sum may have wrapped)", m.cfg.ID, req.Aggregate, req.Count, m.params.lit.MaxContributors)
	}
	if err := checkMemberSet(req.Members, c.Size, c.Threshold, int(m.cfg.ID)); err != nil {
		return fmt.Errorf("secagg: member %d refuses aggregate %s: %w", m.cfg.ID, req.Aggregate, err)
	}
	if len(req.Members) != c.Threshold {
		return fmt.Errorf("secagg: member %d refuses aggregate %s: %d members asked, want exactly the threshold %d", m.cfg.ID, req.Aggregate, len(req.Members), c.Threshold)
	}
	if len(req.c1) != m.params.NumChunks(req.Dim) {
		return fmt.Errorf("secagg: member %d: request holds %d ciphertexts for dimension %d, want %d", m.cfg.ID, len(req.c1), req.Dim, m.params.NumChunks(req.Dim))
	}
	if id := aggregateID(req.Session, req.Dim, m.params, req.c1); id != req.Aggregate {
		return fmt.Errorf("secagg: member %d: request claims aggregate %s but its content is aggregate %s: %w", m.cfg.ID, req.Aggregate, id, ErrWrongSession)
	}
	if rec, ok := m.records[req.Aggregate]; ok && !slices.Equal(rec.Members, req.Members) {
		return fmt.Errorf("secagg: member %d refuses aggregate %s for members %v: decrypted in round %d for %v: %w", m.cfg.ID, req.Aggregate, req.Members, rec.Round, rec.Members, ErrAlreadyDecrypted)
	}
	return nil
}

// Challenge is the first step of a verifying member's decryption (MemberConfig.Verifier
// set). It checks the request as DecryptionShare does, then that it lists the signed
// commitments of at least MinContributions uploads by distinct identities certified by the
// CA, each signed for this session, round, purpose and dimension, all under one task
// digest (ErrMixedTasks), and that Count is their number. It refuses a round earlier than the last one it was challenged on for the purpose
// (ErrStaleRound) and, for the same round and purpose, any other aggregate, commitment list
// or member set (ErrAlreadyDecrypted). It then records the aggregate as the one it will
// decrypt for (round, purpose) and returns the commitment leaves the server must open.
// Asked again for the same request it returns the same challenge. Persist MarshalBinary()
// before sending the challenge: the record is what stops the server from trying another
// aggregate once it knows the leaves.
func (m *Member) Challenge(req *DecryptionRequest) (*Challenge, error) {
	if !m.authenticated() {
		return nil, fmt.Errorf("secagg: member %d has no Verifier: it trusts the server's count and does not spot-check (passive model); call DecryptionShare(req) alone", m.cfg.ID)
	}
	if err := m.checkRequest(req); err != nil {
		return nil, err
	}
	c := m.cfg.Committee
	if !req.Purpose.valid() {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: purpose %s (want fit, evaluation or statistics)", m.cfg.ID, req.Aggregate, req.Purpose)
	}
	if len(req.Commitments) != req.Count {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: it reports %d contributions but lists %d signed uploads", m.cfg.ID, req.Aggregate, req.Count, len(req.Commitments))
	}
	binding := bindingDigest(req)
	if rec, ok := m.rounds[req.Purpose]; ok {
		switch {
		case req.Round < rec.Round:
			return nil, fmt.Errorf("secagg: member %d refuses the %s aggregate of round %d: it already decrypted round %d: %w", m.cfg.ID, req.Purpose, req.Round, rec.Round, ErrStaleRound)
		case req.Round == rec.Round && (rec.Binding != binding || !slices.Equal(rec.Members, req.Members)):
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: it already agreed to decrypt aggregate %s for the %s of round %d (members %v): %w", m.cfg.ID, req.Aggregate, rec.Aggregate, req.Purpose, req.Round, rec.Members, ErrAlreadyDecrypted)
		case req.Round == rec.Round:
			return m.challenge(req, binding) // the same request again
		}
	}
	seen := make(map[string]int, len(req.Commitments))
	for i := range req.Commitments {
		id, err := req.Commitments[i].verify(m.cfg.Verifier, req.Session, req.Round, req.Purpose, req.Dim)
		if err != nil {
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: upload %d is not signed for session %s, round %d, %s: %w", m.cfg.ID, req.Aggregate, i, req.Session, req.Round, req.Purpose, err)
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: uploads %d and %d are both %q: %w", m.cfg.ID, req.Aggregate, j, i, id, ErrDuplicate)
		}
		seen[id] = i
		// One task for all: a server that gave some clients settings that shrink their
		// updates and noise shares (a tiny learning rate, clip or weight scale) would leave
		// the others' uploads in the sum with a fraction of the noise their ledgers record.
		if d0 := req.Commitments[0].TaskDigest; req.Commitments[i].TaskDigest != d0 {
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: upload %d (%q) was made under task digest %x, upload 0 under %x: the server gave the clients of one %s aggregate different settings: %w", m.cfg.ID, req.Aggregate, i, id, req.Commitments[i].TaskDigest[:6], d0[:6], req.Purpose, ErrMixedTasks)
		}
	}
	if len(seen) < c.MinContributions {
		return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: %d certified uploaders, minimum %d: %w", m.cfg.ID, req.Aggregate, len(seen), c.MinContributions, ErrTooFewContributions)
	}
	m.rounds[req.Purpose] = roundRecord{Round: req.Round, Binding: binding, Aggregate: req.Aggregate, Members: slices.Clone(req.Members)}
	if _, ok := m.records[req.Aggregate]; !ok {
		m.records[req.Aggregate] = decryptionRecord{Round: req.Round, Members: slices.Clone(req.Members)}
	}
	return m.challenge(req, binding)
}

func (m *Member) challenge(req *DecryptionRequest, binding [32]byte) (*Challenge, error) {
	_, leaves, _ := leafLayout(m.params.N(), len(req.c1)*m.params.Levels())
	ls, err := m.spotLeaves(binding, leaves)
	if err != nil {
		return nil, fmt.Errorf("secagg: member %d: spot-check leaves: %w", m.cfg.ID, err)
	}
	return &Challenge{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: req.Aggregate, From: m.cfg.ID, Leaves: ls}, nil
}

// DecryptionShare answers a decryption request with one key-switch share per ciphertext.
//
// A passive member (no Verifier) takes the request alone. It refuses
// (ErrTooFewContributions) an aggregate reported to hold fewer than the committee's
// MinContributions updates, a set that is not exactly Threshold members including itself,
// a request whose AggregateID does not match its content, and (ErrAlreadyDecrypted) an
// aggregate it already decrypted for another member set. It trusts the server's count.
//
// A verifying member takes the request it was challenged on (Challenge) and the server's
// Opening of its challenge. It refuses a request it has not recorded for this round and
// purpose, and any opening whose paths do not lead to the signed commitments or whose
// uploads do not sum to the aggregate at the opened positions (ErrSpotCheck).
//
// For the same request it returns the identical share again: the flooding noise is derived
// from a member-secret PRF of (aggregate, set, chunk), so repeats reveal nothing new.
// Persist MarshalBinary() (it records the aggregate) before sending the share.
func (m *Member) DecryptionShare(req *DecryptionRequest, opening ...*Opening) (*DecryptionShare, error) {
	if err := m.checkRequest(req); err != nil {
		return nil, err
	}
	if !m.authenticated() {
		if len(opening) != 0 {
			return nil, fmt.Errorf("secagg: member %d has no Verifier and takes no opening", m.cfg.ID)
		}
	} else {
		if len(opening) != 1 || opening[0] == nil {
			return nil, fmt.Errorf("secagg: member %d spot-checks aggregates: call Challenge(req), then DecryptionShare(req, opening) with the server's opening of the challenge", m.cfg.ID)
		}
		binding := bindingDigest(req)
		rec, ok := m.rounds[req.Purpose]
		switch {
		case !ok || req.Round > rec.Round:
			return nil, fmt.Errorf("secagg: member %d was not challenged on the %s aggregate of round %d (call Challenge first): %w", m.cfg.ID, req.Purpose, req.Round, ErrNotReady)
		case req.Round < rec.Round:
			return nil, fmt.Errorf("secagg: member %d refuses the %s aggregate of round %d: it already decrypted round %d: %w", m.cfg.ID, req.Purpose, req.Round, rec.Round, ErrStaleRound)
		case rec.Binding != binding || !slices.Equal(rec.Members, req.Members):
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: it agreed to decrypt aggregate %s for the %s of round %d (members %v): %w", m.cfg.ID, req.Aggregate, rec.Aggregate, req.Purpose, req.Round, rec.Members, ErrAlreadyDecrypted)
		}
		_, leaves, _ := leafLayout(m.params.N(), len(req.c1)*m.params.Levels())
		ls, err := m.spotLeaves(binding, leaves)
		if err != nil {
			return nil, fmt.Errorf("secagg: member %d: spot-check leaves: %w", m.cfg.ID, err)
		}
		if err := verifyOpening(m.params, req, m.cfg.ID, ls, opening[0]); err != nil {
			return nil, fmt.Errorf("secagg: member %d refuses aggregate %s: %w", m.cfg.ID, req.Aggregate, err)
		}
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
	out := &DecryptionShare{Session: req.Session, Round: req.Round, Aggregate: req.Aggregate, From: m.cfg.ID, Members: slices.Clone(req.Members), q: m.params.Moduli(), shares: make([]ring.Poly, len(req.c1))}
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
	if params.Levels() > 1 {
		// The packed encoding's further primes (the float encoding's digest is unchanged).
		for _, q := range params.Moduli()[1:] {
			binary.LittleEndian.PutUint64(b[:], q)
			h.Write(b[:])
		}
	}
	for _, p := range c1 {
		for _, cs := range p.Coeffs {
			for len(cs) > 0 {
				k := min(len(cs), 4096)
				for i, c := range cs[:k] {
					binary.LittleEndian.PutUint64(buf[8*i:], c)
				}
				h.Write(buf[:8*k])
				cs = cs[k:]
			}
		}
	}
	var id AggregateID
	h.Sum(id[:0])
	return id
}
