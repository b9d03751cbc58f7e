package secagg

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
)

// KeySetup is the server's side of the key setup: it collects the members' announcements
// into a roster, then their dealings, and finally combines the public-key shares into the
// collective public key and routes every sealed Shamir share to its recipient. It is a
// single-threaded state machine with no I/O; its state is exactly the messages it accepted,
// so to survive a restart persist each accepted message and replay them into a new KeySetup.
type KeySetup struct {
	params    Parameters
	session   SessionID
	committee CommitteeConfig

	keys     map[MemberID][32]byte
	roster   *Roster
	dealings map[MemberID]*Dealing
	final    bool
}

// NewKeySetup starts the key setup of a session.
func NewKeySetup(params Parameters, session SessionID, committee CommitteeConfig) (*KeySetup, error) {
	if err := committee.Validate(params); err != nil {
		return nil, err
	}
	return &KeySetup{params: params, session: session, committee: committee, keys: map[MemberID][32]byte{}, dealings: map[MemberID]*Dealing{}}, nil
}

// AddAnnouncement records a member's identity key. Announcing the same key again is a no-op;
// another key for the same member is ErrDuplicate.
func (s *KeySetup) AddAnnouncement(a *KeyAnnouncement) error {
	if a.Session != s.session {
		return fmt.Errorf("secagg: key setup: announcement of session %s: %w", a.Session, ErrWrongSession)
	}
	if a.Member < 1 || int(a.Member) > s.committee.Size {
		return fmt.Errorf("secagg: key setup: announcement from member %d, committee has 1…%d", a.Member, s.committee.Size)
	}
	if old, ok := s.keys[a.Member]; ok {
		if old == a.IdentityKey {
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
	s.keys[a.Member] = a.IdentityKey
	return nil
}

// Missing returns the members that have not announced yet, or (after the roster) not dealt.
func (s *KeySetup) Missing() []MemberID {
	var out []MemberID
	for id := MemberID(1); int(id) <= s.committee.Size; id++ {
		if _, ok := s.keys[id]; !ok && s.roster == nil {
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
		if len(s.keys) != s.committee.Size {
			return nil, fmt.Errorf("secagg: key setup: members %v have not announced: %w", s.Missing(), ErrNotReady)
		}
		ro := &Roster{Session: s.session, ParamsDigest: s.params.digest, Committee: s.committee, IdentityKeys: make([][32]byte, s.committee.Size)}
		for id, k := range s.keys {
			ro.IdentityKeys[id-1] = k
		}
		s.roster = ro
	}
	out := *s.roster
	out.IdentityKeys = slices.Clone(s.roster.IdentityKeys)
	return &out, nil
}

// AddDealing accepts a member's dealing after checking its shape. A byte-identical repeat is
// a no-op; a different second dealing from the same member is ErrDuplicate (the first one
// counts, and the member needs nothing from it to receive its shares later).
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
	if len(d.pkShare.Coeffs) != 1 {
		return fmt.Errorf("secagg: key setup: dealing from member %d has no public-key share", d.From)
	}
	if err := checkRing(s.params, d.pkShare.N(), d.q, "dealing"); err != nil {
		return err
	}
	if len(d.sealed) != s.committee.Size {
		return fmt.Errorf("secagg: key setup: dealing from member %d holds %d sealed shares, want %d", d.From, len(d.sealed), s.committee.Size)
	}
	for j, b := range d.sealed {
		if len(b) != sealedShareSize(s.params.N()) {
			return fmt.Errorf("secagg: key setup: dealing from member %d: sealed share for member %d has %d bytes, want %d", d.From, j+1, len(b), sealedShareSize(s.params.N()))
		}
	}
	if old, ok := s.dealings[d.From]; ok {
		a, _ := old.MarshalBinary()
		b, _ := d.MarshalBinary()
		if bytes.Equal(a, b) {
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

// Finalize combines the dealings received so far (at least Threshold of them; the caller
// decides whether to wait for all K) into the collective public key, and returns it with one
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
	crs, err := crsFor(s.roster)
	if err != nil {
		return nil, nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(s.params.he)
	crp := ckg.SampleCRP(crs)
	agg := ckg.AllocateShare()
	for _, id := range dealers {
		ckg.AggregateShares(agg, mhe.PublicKeyGenShare{Value: ringqp.Poly{Q: s.dealings[id].pkShare}}, &agg)
	}
	pk := rlwe.NewPublicKey(s.params.he)
	ckg.GenPublicKey(agg, crp, pk)
	s.final = true

	pub := &PublicKey{Session: s.session, ParamsDigest: s.params.digest, Dealers: dealers, q: s.params.Modulus(), p0: pk.Value[0].Q, p1: pk.Value[1].Q}
	deliveries := make([]*ShareDelivery, s.committee.Size)
	for j := range deliveries {
		v := &ShareDelivery{Session: s.session, To: MemberID(j + 1), Dealers: slices.Clone(dealers), n: s.params.N(), sealed: make([][]byte, len(dealers))}
		for i, id := range dealers {
			v.sealed[i] = s.dealings[id].sealed[j]
		}
		deliveries[j] = v
	}
	return pub, deliveries, nil
}
