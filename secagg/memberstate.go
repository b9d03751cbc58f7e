package secagg

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/mhe"
)

// Member state, version 2 (version 1, written before the active-server model, still loads
// as a member without identity):
//
//	session, id, committee (size, threshold, minimum), parameters digest
//	X25519 private key, noise key
//	certificate (u16 length; empty without a Signer), spot checks (u16)
//	roster: flag, then (u32 length, roster message)
//	threshold share: flag, then dealers, ring descriptor, coefficients
//	decryption records: count, then (aggregate id, round, member set), ascending ids
//	round records: count, then (purpose, round, binding, aggregate id, member set), ascending purposes
//
// Version 1 stored the roster as K identity keys and had no certificate, spot-check count
// or round records.

// MarshalBinary encodes the member's persistent state: configuration, identity and noise
// keys, certificate, roster, threshold share, the record of decrypted aggregates and, for a
// verifying member, the aggregate it agreed to decrypt for the latest round of each
// purpose. It holds secrets: store it with owner-only permissions.
func (m *Member) MarshalBinary() ([]byte, error) {
	n := m.params.N()
	var ro []byte
	if m.roster != nil {
		var err error
		if ro, err = m.roster.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	var cert []byte
	if m.cfg.Signer != nil {
		cert = m.cfg.Signer.Certificate()
	}
	t := m.cfg.Committee.Threshold
	w := newWriter(256+len(cert)+len(ro)+8*n*m.params.Levels()+len(m.records)*(44+2*t)+len(m.rounds)*(109+2*t), typeMemberState)
	w.raw(m.cfg.Session[:])
	w.u16(uint16(m.cfg.ID))
	w.u16(uint16(m.cfg.Committee.Size))
	w.u16(uint16(m.cfg.Committee.Threshold))
	w.u32(uint32(m.cfg.Committee.MinContributions))
	w.raw(m.params.digest[:])
	w.raw(m.identity.Bytes())
	w.raw(m.noiseKey[:])
	w.bytes(cert)
	w.u16(uint16(m.cfg.SpotChecks))
	if m.roster == nil {
		w.u8(0)
	} else {
		w.u8(1)
		w.u32(uint32(len(ro)))
		w.raw(ro)
	}
	if m.share == nil {
		w.u8(0)
	} else {
		w.u8(1)
		w.members(m.dealers)
		w.ringDesc(m.params.LogN(), m.params.Moduli())
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
	purposes := make([]Purpose, 0, len(m.rounds))
	for p := range m.rounds {
		purposes = append(purposes, p)
	}
	slices.Sort(purposes)
	w.u8(uint8(len(purposes)))
	for _, p := range purposes {
		rec := m.rounds[p]
		w.u8(uint8(p))
		w.u64(rec.Round)
		w.raw(rec.Binding[:])
		w.raw(rec.Aggregate[:])
		w.members(rec.Members)
	}
	return w.b, nil
}

// LoadMember restores a member without identity (a passive one) from MarshalBinary output,
// with crypto/rand as its source of randomness for a later Deal. See LoadMemberWithConfig.
func LoadMember(params Parameters, state []byte, workers int) (*Member, error) {
	return LoadMemberWithConfig(params, state, MemberConfig{Workers: workers})
}

// LoadMemberWithRandomness is LoadMember for a member created with MemberConfig.Randomness
// rnd (which the state does not record): its later draws (a Deal) come from rnd, nil being
// crypto/rand.
func LoadMemberWithRandomness(params Parameters, state []byte, workers int, rnd *Randomness) (*Member, error) {
	return LoadMemberWithConfig(params, state, MemberConfig{Workers: workers, Randomness: rnd})
}

// LoadMemberWithConfig restores a member from MarshalBinary output. The state records the
// session, id, committee, spot-check count and certificate; cfg gives what it does not
// (Workers, Randomness, Signer, Verifier). Non-zero Session, ID, Committee and SpotChecks
// of cfg must match the state. A state made with a Signer loads only with the Signer of the
// same certificate and a Verifier, one made without only without (a member cannot change
// model within a session). It checks that the state was made under params and never
// panics on corrupted input.
func LoadMemberWithConfig(params Parameters, state []byte, cfg MemberConfig) (*Member, error) {
	m, cert, err := decodeMemberState(params, state, cfg.Workers, cfg.Randomness)
	if err != nil {
		return nil, err
	}
	var zero SessionID
	switch {
	case cfg.Session != zero && cfg.Session != m.cfg.Session:
		return nil, fmt.Errorf("secagg: member state of session %s, want %s: %w", m.cfg.Session, cfg.Session, ErrWrongSession)
	case cfg.ID != 0 && cfg.ID != m.cfg.ID:
		return nil, fmt.Errorf("secagg: member state of member %d, want %d", m.cfg.ID, cfg.ID)
	case cfg.Committee != CommitteeConfig{} && cfg.Committee != m.cfg.Committee:
		return nil, fmt.Errorf("secagg: member state of committee %+v, want %+v", m.cfg.Committee, cfg.Committee)
	case cfg.SpotChecks != 0 && cfg.SpotChecks != m.cfg.SpotChecks:
		return nil, fmt.Errorf("secagg: member state spot-checks %d leaves, want %d (the count is fixed for a session)", m.cfg.SpotChecks, cfg.SpotChecks)
	}
	switch {
	case len(cert) == 0 && (cfg.Signer != nil || cfg.Verifier != nil):
		return nil, fmt.Errorf("secagg: member %d's state was made without a Signer (passive); load it without Signer and Verifier, or start a new session", m.cfg.ID)
	case len(cert) > 0 && (cfg.Signer == nil || cfg.Verifier == nil):
		return nil, fmt.Errorf("secagg: member %d's state was made with a Signer: load it with the same Signer and a Verifier", m.cfg.ID)
	case len(cert) > 0 && !bytes.Equal(cert, cfg.Signer.Certificate()):
		return nil, fmt.Errorf("secagg: member %d's state was made with the certificate of another identity than %q", m.cfg.ID, cfg.Signer.Identity())
	}
	if m.roster != nil && len(cert) > 0 && !bytes.Equal(m.roster.Announcements[m.cfg.ID-1].Certificate, cert) {
		return nil, fmt.Errorf("secagg: member %d's state holds a roster with another certificate for it", m.cfg.ID)
	}
	m.cfg.Signer, m.cfg.Verifier = cfg.Signer, cfg.Verifier
	if err := m.signAnnouncement(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeMemberState decodes a version-1 or version-2 state and returns the member (without
// Signer and Verifier) and the certificate it recorded.
func decodeMemberState(params Parameters, state []byte, workers int, rnd *Randomness) (*Member, []byte, error) {
	r := newReaderVersions(state, typeMemberState, "member state", 1, 2)
	m := &Member{params: params, records: map[AggregateID]decryptionRecord{}, rounds: map[Purpose]roundRecord{}}
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
	var cert []byte
	if r.version >= 2 {
		cert = r.bytes(MaxCertificateBytes, "certificate")
		m.cfg.SpotChecks = int(r.u16())
		if r.err == nil && ((len(cert) == 0) != (m.cfg.SpotChecks == 0) || m.cfg.SpotChecks > MaxSpotChecks) {
			r.failf("spot-check count %d with a certificate of %d bytes", m.cfg.SpotChecks, len(cert))
		}
	}
	hasRoster := r.u8()
	if r.err == nil && hasRoster > 1 {
		r.failf("bad roster flag %d", hasRoster)
	}
	if hasRoster == 1 && r.err == nil {
		m.roster = r.stateRoster(m.cfg, params.digest)
		if r.err == nil && !bytes.Equal(m.roster.Announcements[m.cfg.ID-1].IdentityKey[:], m.identity.PublicKey().Bytes()) {
			r.failf("roster holds another identity key for this member")
		}
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
	if r.version >= 2 {
		nr := int(r.u8())
		if r.err == nil && nr > 0 && len(cert) == 0 {
			r.failf("round records without a certificate")
		}
		var prevP Purpose
		for i := 0; i < nr && r.err == nil; i++ {
			p := Purpose(r.u8())
			var rec roundRecord
			rec.Round = r.u64()
			r.fixed(rec.Binding[:])
			r.fixed(rec.Aggregate[:])
			rec.Members = r.members(MaxCommitteeSize)
			if r.err != nil {
				break
			}
			if _, dup := m.rounds[p]; !p.valid() || dup {
				r.failf("round record %d: purpose %s invalid or repeated", i, p)
				break
			}
			if i > 0 && p <= prevP {
				r.failf("round records not in ascending purpose order")
				break
			}
			prevP = p
			if err := checkMemberSet(rec.Members, m.cfg.Committee.Size, m.cfg.Committee.Threshold, int(m.cfg.ID)); err != nil {
				r.failf("round record %d: %v", i, err)
				break
			}
			m.rounds[p] = rec
		}
	}
	if err := r.done(); err != nil {
		return nil, nil, err
	}
	return m, cert, nil
}

// stateRoster reads the roster of a member state: K identity keys in version 1, a roster
// message in version 2 (which must match the member's session, parameters and committee).
func (r *reader) stateRoster(cfg MemberConfig, params [32]byte) *Roster {
	ro := &Roster{Session: cfg.Session, ParamsDigest: params, Committee: cfg.Committee}
	if r.version == 1 {
		ro.Announcements = make([]KeyAnnouncement, cfg.Committee.Size)
		for i := range ro.Announcements {
			ro.Announcements[i].Session, ro.Announcements[i].Member = cfg.Session, MemberID(i+1)
			r.fixed(ro.Announcements[i].IdentityKey[:])
		}
		return ro
	}
	b := r.take(int(r.u32()))
	if r.err != nil {
		return nil
	}
	if err := ro.UnmarshalBinary(b); err != nil {
		r.fail(err)
		return nil
	}
	if ro.Session != cfg.Session || ro.ParamsDigest != params || ro.Committee != cfg.Committee {
		r.failf("roster of another session, parameters or committee")
		return nil
	}
	return ro
}
