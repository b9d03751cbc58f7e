package secagg

import (
	"bytes"
	"fmt"
	"slices"
)

// KeySetup is the server's side of the key setup: it collects the members' announcements
// into a roster, then their dealings, and finally publishes the collective public key (the
// roster and the dealers' public-key shares, from which anyone recomputes it) and routes
// every sealed Shamir share to its recipient. It is a single-threaded state machine with no
// I/O; its state is exactly the messages it accepted, so to survive a restart persist each
// accepted message and replay them into a new KeySetup.
//
// Made by NewAuthenticatedKeySetup it refuses announcements without a certificate of the
// federation's CA and a valid signature, two members with one identity, and dealings not
// signed by the certificate the roster holds for their member, so that one misbehaving
// member cannot make the honest ones refuse the roster. (The members and clients check all
// of it again themselves: against an active server this is only the honest server's
// courtesy.)
type KeySetup struct {
	params    Parameters
	session   SessionID
	committee CommitteeConfig
	verifier  *Verifier

	announcements map[MemberID]*KeyAnnouncement
	identities    map[MemberID]string
	roster        *Roster
	rosterDigest  [32]byte
	dealings      map[MemberID]*Dealing
	final         bool
}

// NewKeySetup starts the key setup of a session. It checks no identities: passive-only (see
// NewAuthenticatedKeySetup).
func NewKeySetup(params Parameters, session SessionID, committee CommitteeConfig) (*KeySetup, error) {
	if err := committee.Validate(params); err != nil {
		return nil, err
	}
	return &KeySetup{params: params, session: session, committee: committee, announcements: map[MemberID]*KeyAnnouncement{}, identities: map[MemberID]string{}, dealings: map[MemberID]*Dealing{}}, nil
}

// NewAuthenticatedKeySetup starts the key setup of a session whose members sign with
// certificates of the CA that v trusts.
func NewAuthenticatedKeySetup(params Parameters, session SessionID, committee CommitteeConfig, v *Verifier) (*KeySetup, error) {
	if v == nil {
		return nil, fmt.Errorf("secagg: an authenticated key setup needs a Verifier")
	}
	s, err := NewKeySetup(params, session, committee)
	if err != nil {
		return nil, err
	}
	s.verifier = v
	return s, nil
}

// AddAnnouncement records a member's identity key. Announcing the same key and certificate
// again is a no-op (the first signature is kept); another key for the same member is
// ErrDuplicate, and so (when authenticated) is an identity that already holds another
// seat.
func (s *KeySetup) AddAnnouncement(a *KeyAnnouncement) error {
	if a.Session != s.session {
		return fmt.Errorf("secagg: key setup: announcement of session %s: %w", a.Session, ErrWrongSession)
	}
	if a.Member < 1 || int(a.Member) > s.committee.Size {
		return fmt.Errorf("secagg: key setup: announcement from member %d, committee has 1…%d", a.Member, s.committee.Size)
	}
	if old, ok := s.announcements[a.Member]; ok {
		if old.IdentityKey == a.IdentityKey && bytes.Equal(old.Certificate, a.Certificate) {
			return nil
		}
		return fmt.Errorf("secagg: key setup: member %d announced a second identity key: %w", a.Member, ErrDuplicate)
	}
	if s.roster != nil {
		return fmt.Errorf("secagg: key setup: roster already sent; member %d cannot join", a.Member)
	}
	if err := checkIdentityKey(a.IdentityKey); err != nil {
		return fmt.Errorf("secagg: key setup: member %d: %w (the member must generate a new key)", a.Member, err)
	}
	if s.verifier != nil {
		id, err := a.verify(s.verifier, s.params.digest, s.committee)
		if err != nil {
			return fmt.Errorf("secagg: key setup: %w", err)
		}
		for other, oid := range s.identities {
			if oid == id {
				return fmt.Errorf("secagg: key setup: member %d is %q, who already holds seat %d: %w", a.Member, id, other, ErrDuplicate)
			}
		}
		s.identities[a.Member] = id
	}
	c := *a
	c.Certificate, c.Signature = slices.Clone(a.Certificate), slices.Clone(a.Signature)
	s.announcements[a.Member] = &c
	return nil
}

// Identity returns the certified identity of member id ("" before its announcement, or
// without a Verifier), so the server can check that each seat went to the client it chose.
func (s *KeySetup) Identity(id MemberID) string { return s.identities[id] }

// Missing returns the members that have not announced yet, or (after the roster) not dealt.
func (s *KeySetup) Missing() []MemberID {
	var out []MemberID
	for id := MemberID(1); int(id) <= s.committee.Size; id++ {
		if _, ok := s.announcements[id]; !ok && s.roster == nil {
			out = append(out, id)
		} else if _, ok := s.dealings[id]; !ok && s.roster != nil {
			out = append(out, id)
		}
	}
	return out
}

// Roster returns the roster to send to every member, once all K members have announced.
func (s *KeySetup) Roster() (*Roster, error) {
	if s.roster == nil {
		if len(s.announcements) != s.committee.Size {
			return nil, fmt.Errorf("secagg: key setup: members %v have not announced: %w", s.Missing(), ErrNotReady)
		}
		ro := &Roster{Session: s.session, ParamsDigest: s.params.digest, Committee: s.committee, Announcements: make([]KeyAnnouncement, s.committee.Size)}
		for id, a := range s.announcements {
			ro.Announcements[id-1] = *a
		}
		s.roster = ro
		s.rosterDigest = ro.digest()
	}
	return s.roster.clone(), nil
}

// AddDealing accepts a member's dealing after checking its shape and (when authenticated)
// its signature by the roster's certificate for that member. A repeat of the same content
// is a no-op; a different second dealing from the same member is ErrDuplicate (the first
// one counts, and the member needs nothing from it to receive its shares later).
func (s *KeySetup) AddDealing(d *Dealing) error {
	if s.roster == nil {
		return fmt.Errorf("secagg: key setup: dealing before the roster: %w", ErrNotReady)
	}
	if s.final {
		return fmt.Errorf("secagg: key setup: dealing from member %d after the key was finalised", d.From)
	}
	if d.Session != s.session {
		return fmt.Errorf("secagg: key setup: dealing of session %s: %w", d.Session, ErrWrongSession)
	}
	if d.From < 1 || int(d.From) > s.committee.Size {
		return fmt.Errorf("secagg: key setup: dealing from member %d, committee has 1…%d", d.From, s.committee.Size)
	}
	if !shaped(d.pkShare, s.params.N(), s.params.Levels()) {
		return fmt.Errorf("secagg: key setup: dealing from member %d has no public-key share", d.From)
	}
	if err := checkRing(s.params, d.pkShare.N(), d.q, "dealing"); err != nil {
		return err
	}
	if len(d.sealed) != s.committee.Size {
		return fmt.Errorf("secagg: key setup: dealing from member %d holds %d sealed shares, want %d", d.From, len(d.sealed), s.committee.Size)
	}
	for j, b := range d.sealed {
		if len(b) != sealedShareSize(s.params.N()*s.params.Levels()) {
			return fmt.Errorf("secagg: key setup: dealing from member %d: sealed share for member %d has %d bytes, want %d", d.From, j+1, len(b), sealedShareSize(s.params.N()*s.params.Levels()))
		}
	}
	if s.verifier != nil {
		dd := dealingDigest(s.session, s.rosterDigest, d.From, d.pkShare, sealedDigest(d.sealed))
		if _, err := s.verifier.verify(s.roster.Announcements[d.From-1].Certificate, dd, d.Signature); err != nil {
			return fmt.Errorf("secagg: key setup: dealing of member %d is not signed by its certificate: %w", d.From, err)
		}
	}
	if old, ok := s.dealings[d.From]; ok {
		a, b := *old, *d
		a.Signature, b.Signature = nil, nil
		ab, _ := a.MarshalBinary()
		bb, _ := b.MarshalBinary()
		if bytes.Equal(ab, bb) {
			return nil
		}
		return fmt.Errorf("secagg: key setup: member %d dealt twice: %w", d.From, ErrDuplicate)
	}
	s.dealings[d.From] = d
	return nil
}

// Dealers returns the members whose dealings were accepted, ascending.
func (s *KeySetup) Dealers() []MemberID {
	ids := make([]MemberID, 0, len(s.dealings))
	for id := range s.dealings {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Finalize publishes the dealings received so far (at least Threshold of them; the caller
// decides whether to wait for all K) as the collective public key, and returns it with one
// ShareDelivery per member, absent dealers included: a member that missed the dealing still
// receives the shares of those who dealt and can decrypt. It may be called again and returns
// the same result.
func (s *KeySetup) Finalize() (*PublicKey, []*ShareDelivery, error) {
	if s.roster == nil {
		return nil, nil, fmt.Errorf("secagg: key setup: no roster yet: %w", ErrNotReady)
	}
	dealers := s.Dealers()
	if len(dealers) < s.committee.Threshold {
		return nil, nil, fmt.Errorf("secagg: key setup: %d dealings, need at least the threshold %d (missing %v): %w", len(dealers), s.committee.Threshold, s.Missing(), ErrNotReady)
	}
	pub := &PublicKey{Session: s.session, ParamsDigest: s.params.digest, Dealers: dealers, Roster: s.roster.clone(), q: s.params.Moduli(), memo: &publicKeyMemo{}}
	for _, id := range dealers {
		d := s.dealings[id]
		pub.dealings = append(pub.dealings, publicDealing{pkShare: *d.pkShare.CopyNew(), sealed: sealedDigest(d.sealed), signature: slices.Clone(d.Signature)})
	}
	s.final = true
	deliveries := make([]*ShareDelivery, s.committee.Size)
	for j := range deliveries {
		v := &ShareDelivery{Session: s.session, To: MemberID(j + 1), Dealers: slices.Clone(dealers), n: s.params.N(), levels: s.params.Levels(), sealed: make([][]byte, len(dealers))}
		for i, id := range dealers {
			v.sealed[i] = s.dealings[id].sealed[j]
		}
		deliveries[j] = v
	}
	return pub, deliveries, nil
}
