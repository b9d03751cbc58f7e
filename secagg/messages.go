package secagg

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// SessionID names one key-setup session (one committee and its collective key). Every
// message carries it and every party refuses messages of another session.
type SessionID [16]byte

// NewSessionID returns a random session id.
func NewSessionID() SessionID {
	var s SessionID
	rand.Read(s[:])
	return s
}

func (s SessionID) String() string { return hex.EncodeToString(s[:]) }

// MemberID identifies a committee member: 1…K. It is also the member's Shamir point.
type MemberID uint16

// AggregateID identifies the content of an aggregate: a SHA-256 digest over the session and
// the c1 polynomials of its ciphertexts, which is all a decryption share depends on. Members
// keep a record of the member set each AggregateID was decrypted with.
type AggregateID [32]byte

func (a AggregateID) String() string { return hex.EncodeToString(a[:8]) }

// Purpose says what an aggregate of a round is: a round may have one aggregate of each
// purpose (the fit updates and the evaluation statistics), and a member decrypts at most one
// aggregate per round and purpose. Uploads sign their purpose, so one cannot be replayed
// into an aggregate of the other.
type Purpose uint8

const (
	// PurposeUnspecified is the purpose of passive-mode messages (no Signer); members
	// that verify refuse it.
	PurposeUnspecified Purpose = 0
	// PurposeFit: the round's model updates.
	PurposeFit Purpose = 1
	// PurposeEvaluation: the round's evaluation statistics.
	PurposeEvaluation Purpose = 2
	// PurposeStatistics: the dataset's column statistics, summed once before the first
	// round (the server's statistics round).
	PurposeStatistics Purpose = 3
)

func (p Purpose) String() string {
	switch p {
	case PurposeUnspecified:
		return "unspecified"
	case PurposeFit:
		return "fit"
	case PurposeEvaluation:
		return "evaluation"
	case PurposeStatistics:
		return "statistics"
	}
	return fmt.Sprintf("purpose(%d)", uint8(p))
}

// valid reports whether p is one a verifying party accepts.
func (p Purpose) valid() bool {
	return p == PurposeFit || p == PurposeEvaluation || p == PurposeStatistics
}

// sealedShareSize is the size of a Shamir share sealed for its recipient: the nonce, N
// coefficients and the AEAD tag.
func sealedShareSize(n int) int { return sealNonceSize + 8*n + sealTagSize }

// le16, le64 and committeeBytes encode signed fields.
func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func committeeBytes(c CommitteeConfig) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(c.Size))
	b = binary.LittleEndian.AppendUint16(b, uint16(c.Threshold))
	return binary.LittleEndian.AppendUint32(b, uint32(c.MinContributions))
}

// polyBytes is the little-endian encoding of a polynomial's coefficients, prime after
// prime.
func polyBytes(p ring.Poly) []byte {
	b := make([]byte, 0, 8*p.N()*len(p.Coeffs))
	for _, cs := range p.Coeffs {
		for _, c := range cs {
			b = binary.LittleEndian.AppendUint64(b, c)
		}
	}
	return b
}

// ---------------------------------------------------------------------------------------
// Key setup messages.

// KeyAnnouncement is a member's first message: its identity key (X25519), to which the
// other members seal their Shamir shares. A member with a Signer adds its certificate and
// signs (session, parameters digest, committee, member id, identity key), so the server
// can neither substitute the key nor move it to another member, session or committee.
type KeyAnnouncement struct {
	Session     SessionID
	Member      MemberID
	IdentityKey [32]byte
	Certificate []byte // DER, issued by the federation's CA; empty without a Signer
	Signature   []byte // over announcementDigest; empty without a Signer
}

// announcementDigest is what a member signs in its announcement.
func announcementDigest(session SessionID, params [32]byte, c CommitteeConfig, member MemberID, key [32]byte) [32]byte {
	return transcriptDigest(domainAnnouncement, session[:], params[:], committeeBytes(c), le16(uint16(member)), key[:])
}

// announcementSize is the size of an announcement without certificate and signature.
const announcementSize = 4 + 16 + 2 + 32 + 2 + 2

// checkIdentityFields bounds a certificate and signature before they are encoded.
func checkIdentityFields(cert, sig []byte) error {
	if len(cert) > MaxCertificateBytes || len(sig) > MaxSignatureBytes {
		return fmt.Errorf("secagg: certificate of %d bytes or signature of %d bytes exceeds %d or %d", len(cert), len(sig), MaxCertificateBytes, MaxSignatureBytes)
	}
	return nil
}

// MarshalBinary encodes the announcement.
func (a *KeyAnnouncement) MarshalBinary() ([]byte, error) {
	if err := checkIdentityFields(a.Certificate, a.Signature); err != nil {
		return nil, err
	}
	w := newWriter(announcementSize+len(a.Certificate)+len(a.Signature), typeAnnouncement)
	w.raw(a.Session[:])
	w.u16(uint16(a.Member))
	w.raw(a.IdentityKey[:])
	w.bytes(a.Certificate)
	w.bytes(a.Signature)
	return w.b, nil
}

// UnmarshalBinary decodes an announcement; it never panics on malformed input.
func (a *KeyAnnouncement) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeAnnouncement, "key announcement")
	var out KeyAnnouncement
	r.fixed(out.Session[:])
	out.Member = MemberID(r.u16())
	r.fixed(out.IdentityKey[:])
	out.Certificate = r.bytes(MaxCertificateBytes, "certificate")
	out.Signature = r.bytes(MaxSignatureBytes, "signature")
	if err := r.done(); err != nil {
		return err
	}
	*a = out
	return nil
}

// verify checks the announcement's certificate and signature for the given parameters and
// committee and returns the certified identity.
func (a *KeyAnnouncement) verify(v *Verifier, params [32]byte, c CommitteeConfig) (string, error) {
	id, err := v.verify(a.Certificate, announcementDigest(a.Session, params, c, a.Member, a.IdentityKey), a.Signature)
	if err != nil {
		return "", fmt.Errorf("secagg: announcement of member %d: %w", a.Member, err)
	}
	return id, nil
}

// Roster is the server's list of the committee's signed announcements, sent to every member
// before dealing: Announcements[i] is member i+1's. The common random seed of the collective
// key generation and the binding of every dealing derive from its digest, so every party
// that holds the same roster samples the same common polynomial.
type Roster struct {
	Session       SessionID
	ParamsDigest  [32]byte
	Committee     CommitteeConfig
	Announcements []KeyAnnouncement
}

// identityKey returns member id's identity key.
func (ro *Roster) identityKey(id MemberID) [32]byte { return ro.Announcements[id-1].IdentityKey }

// clone returns a deep copy.
func (ro *Roster) clone() *Roster {
	c := *ro
	c.Announcements = slices.Clone(ro.Announcements)
	return &c
}

// digest identifies the roster: session, parameters, committee, and every member's identity
// key and certificate (not the signatures, so a member that re-signs its announcement after
// a restart changes nothing).
func (ro *Roster) digest() [32]byte {
	fields := [][]byte{ro.Session[:], ro.ParamsDigest[:], committeeBytes(ro.Committee)}
	for _, a := range ro.Announcements {
		fields = append(fields, a.IdentityKey[:], a.Certificate)
	}
	return transcriptDigest("roster", fields...)
}

// crs derives the common random seed of the collective key generation from the roster.
func (ro *Roster) crs() (*sampling.KeyedPRNG, error) {
	d := ro.digest()
	seed := transcriptDigest("crs", d[:])
	return sampling.NewKeyedPRNG(seed[:])
}

// verify checks every entry of the roster (certificate chains to the CA, signature over the
// roster's session, parameters and committee) and that the identities are distinct; it
// returns them, [i] for member i+1.
func (ro *Roster) verify(v *Verifier) ([]string, error) {
	if len(ro.Announcements) != ro.Committee.Size {
		return nil, fmt.Errorf("secagg: roster lists %d members for a committee of %d", len(ro.Announcements), ro.Committee.Size)
	}
	ids := make([]string, len(ro.Announcements))
	seen := map[string]MemberID{}
	for i := range ro.Announcements {
		a := &ro.Announcements[i]
		if a.Session != ro.Session || a.Member != MemberID(i+1) {
			return nil, fmt.Errorf("secagg: roster entry %d is member %d's of session %s: %w", i+1, a.Member, a.Session, ErrWrongSession)
		}
		id, err := a.verify(v, ro.ParamsDigest, ro.Committee)
		if err != nil {
			return nil, fmt.Errorf("secagg: roster: %w", err)
		}
		if other, dup := seen[id]; dup {
			return nil, fmt.Errorf("secagg: roster: members %d and %d are both %q (one identity may hold one seat): %w", other, i+1, id, ErrDuplicate)
		}
		seen[id] = MemberID(i + 1)
		ids[i] = id
	}
	return ids, nil
}

// MarshalBinary encodes the roster.
func (ro *Roster) MarshalBinary() ([]byte, error) {
	if len(ro.Announcements) > MaxCommitteeSize {
		return nil, fmt.Errorf("secagg: roster of %d members exceeds %d", len(ro.Announcements), MaxCommitteeSize)
	}
	size := 64
	for i, a := range ro.Announcements {
		if a.Session != ro.Session || a.Member != MemberID(i+1) {
			return nil, fmt.Errorf("secagg: roster entry %d holds the announcement of member %d of session %s", i+1, a.Member, a.Session)
		}
		if err := checkIdentityFields(a.Certificate, a.Signature); err != nil {
			return nil, err
		}
		size += 36 + len(a.Certificate) + len(a.Signature)
	}
	w := newWriter(size, typeRoster)
	w.raw(ro.Session[:])
	w.raw(ro.ParamsDigest[:])
	w.u16(uint16(ro.Committee.Size))
	w.u16(uint16(ro.Committee.Threshold))
	w.u32(uint32(ro.Committee.MinContributions))
	w.u16(uint16(len(ro.Announcements)))
	for _, a := range ro.Announcements {
		w.raw(a.IdentityKey[:])
		w.bytes(a.Certificate)
		w.bytes(a.Signature)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a roster; it never panics on malformed input.
func (ro *Roster) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeRoster, "roster")
	var out Roster
	r.fixed(out.Session[:])
	r.fixed(out.ParamsDigest[:])
	out.Committee.Size = int(r.u16())
	out.Committee.Threshold = int(r.u16())
	out.Committee.MinContributions = int(r.u32())
	n := int(r.u16())
	if r.err == nil && (n > MaxCommitteeSize || n != out.Committee.Size) {
		r.failf("%d announcements for a committee of %d (max %d)", n, out.Committee.Size, MaxCommitteeSize)
	}
	if r.err == nil && 36*n > r.remaining() {
		r.failf("%d announcements cannot fit in %d bytes", n, r.remaining())
	}
	if r.err == nil {
		out.Announcements = make([]KeyAnnouncement, n)
		for i := range out.Announcements {
			a := &out.Announcements[i]
			a.Session, a.Member = out.Session, MemberID(i+1)
			r.fixed(a.IdentityKey[:])
			a.Certificate = r.bytes(MaxCertificateBytes, "certificate")
			a.Signature = r.bytes(MaxSignatureBytes, "signature")
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*ro = out
	return nil
}

// Dealing is what a member sends the server once it has the roster: its share of the
// collective public key and one Shamir share of its secret for every member (itself
// included), each sealed to its recipient's identity key. A member with a Signer signs
// (session, roster digest, its id, its public-key share, the digest of its sealed shares).
type Dealing struct {
	Session   SessionID
	From      MemberID
	Signature []byte // over dealingDigest; empty without a Signer
	q         []uint64
	pkShare   ring.Poly
	sealed    [][]byte // sealed[j] is for member j+1
}

// sealedDigest digests a dealing's sealed shares, in recipient order.
func sealedDigest(sealed [][]byte) [32]byte { return transcriptDigest("sealed shares", sealed...) }

// dealingDigest is what a dealer signs.
func dealingDigest(session SessionID, roster [32]byte, from MemberID, pkShare ring.Poly, sealed [32]byte) [32]byte {
	return transcriptDigest(domainDealing, session[:], roster[:], le16(uint16(from)), polyBytes(pkShare), sealed[:])
}

// MarshalBinary encodes the dealing.
func (d *Dealing) MarshalBinary() ([]byte, error) {
	if len(d.pkShare.Coeffs) == 0 || !shaped(d.pkShare, d.pkShare.N(), len(d.q)) {
		return nil, fmt.Errorf("secagg: dealing holds no public-key share")
	}
	if err := checkIdentityFields(nil, d.Signature); err != nil {
		return nil, err
	}
	n, nl := d.pkShare.N(), d.pkShare.N()*len(d.q)
	w := newWriter(dealingHeaderSize+ringDescSize(len(d.q))+len(d.Signature)+8*nl+len(d.sealed)*sealedShareSize(nl), typeDealing)
	w.raw(d.Session[:])
	w.u16(uint16(d.From))
	w.ringDesc(logNOf(n), d.q)
	w.u16(uint16(len(d.sealed)))
	w.bytes(d.Signature)
	w.coeffs(d.pkShare)
	for _, s := range d.sealed {
		w.raw(s)
	}
	return w.b, nil
}

// dealingHeaderSize is the size of a dealing without ring descriptor, signature, share and
// sealed shares.
const dealingHeaderSize = 4 + 16 + 2 + 2 + 2

// UnmarshalBinary decodes a dealing; it never panics on malformed input.
func (d *Dealing) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeDealing, "dealing")
	var out Dealing
	r.fixed(out.Session[:])
	out.From = MemberID(r.u16())
	n, q := r.ringDesc()
	k := int(r.u16())
	if r.err == nil && (k < 1 || k > MaxCommitteeSize) {
		r.failf("%d sealed shares: want 1…%d", k, MaxCommitteeSize)
	}
	out.Signature = r.bytes(MaxSignatureBytes, "signature")
	nl := n * len(q)
	r.expectRemaining(8*nl+k*sealedShareSize(nl), "public-key share and sealed shares")
	out.pkShare = r.poly(n, q)
	out.q = q
	if r.err == nil {
		out.sealed = make([][]byte, k)
		for i := range out.sealed {
			out.sealed[i] = append([]byte(nil), r.take(sealedShareSize(nl))...)
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*d = out
	return nil
}

// ShareDelivery carries to one member the Shamir shares sealed for it by the dealers the
// server kept (Dealers, ascending). The member adds them up into its threshold secret share.
type ShareDelivery struct {
	Session SessionID
	To      MemberID
	Dealers []MemberID
	n       int
	levels  int      // primes of the modulus; a sealed share holds n·levels coefficients
	sealed  [][]byte // sealed[i] comes from Dealers[i]
}

// MarshalBinary encodes the delivery.
func (v *ShareDelivery) MarshalBinary() ([]byte, error) {
	if v.n < 2 || v.levels < 1 || v.levels > maxLevels || len(v.sealed) != len(v.Dealers) {
		return nil, fmt.Errorf("secagg: share delivery is empty or inconsistent")
	}
	w := newWriter(4+16+2+1+2+2*len(v.Dealers)+len(v.sealed)*sealedShareSize(v.n*v.levels), typeDelivery)
	w.raw(v.Session[:])
	w.u16(uint16(v.To))
	w.u8(uint8(logNOf(v.n)) | uint8(v.levels-1)<<5) // as in a ring descriptor
	w.members(v.Dealers)
	for _, s := range v.sealed {
		w.raw(s)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a delivery; it never panics on malformed input.
func (v *ShareDelivery) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeDelivery, "share delivery")
	var out ShareDelivery
	r.fixed(out.Session[:])
	out.To = MemberID(r.u16())
	b := r.u8()
	logN := int(b & 31)
	if r.err == nil && (logN < 1 || logN > maxLogN) {
		r.failf("ring degree 2^%d out of range", logN)
	}
	out.n, out.levels = 1<<logN, int(b>>5)+1
	out.Dealers = r.members(MaxCommitteeSize)
	r.expectRemaining(len(out.Dealers)*sealedShareSize(out.n*out.levels), "sealed shares")
	if r.err == nil {
		out.sealed = make([][]byte, len(out.Dealers))
		for i := range out.sealed {
			out.sealed[i] = append([]byte(nil), r.take(sealedShareSize(out.n*out.levels))...)
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*v = out
	return nil
}

// PublicKey is the committee's collective public key, published to the clients. It carries
// what a client needs to recompute and check it: the roster (the members' signed
// announcements, from which the common polynomial p1 derives) and the public-key share
// of every dealer whose secret it combines (Dealers, ascending), each with the digest of
// the dealer's sealed shares and the dealer's signature. The key is p0 = Σ shares,
// p1 = the common polynomial; VerifyPublicKey checks the signatures against the CA.
type PublicKey struct {
	Session      SessionID // the roster's
	ParamsDigest [32]byte  // the roster's
	Dealers      []MemberID
	Roster       *Roster
	q            []uint64
	dealings     []publicDealing // [i] from Dealers[i]
	// memo keeps what is derived from the (immutable) key: the recomputed lattigo key and
	// the verifications that passed, so a key shared by many parties of one process (the
	// simulator) is recomputed and verified once. Copies of a PublicKey share it.
	memo *publicKeyMemo
}

// publicKeyMemo is a PublicKey's memo; nil on a zero PublicKey (nothing is memoised then).
type publicKeyMemo struct {
	mu       sync.Mutex
	digest   [32]byte // parameters of key
	key      *rlwe.PublicKey
	verified []verification
}

// verification is a VerifyPublicKey that passed.
type verification struct {
	v      *Verifier
	floors CommitteeConfig
	params [32]byte
}

// passed reports whether the key already verified under v, floors and params.
func (k *PublicKey) passed(v *Verifier, floors CommitteeConfig, params [32]byte) bool {
	if k.memo == nil {
		return false
	}
	k.memo.mu.Lock()
	defer k.memo.mu.Unlock()
	return slices.Contains(k.memo.verified, verification{v, floors, params})
}

// pass records a verification that passed.
func (k *PublicKey) pass(v *Verifier, floors CommitteeConfig, params [32]byte) {
	if k.memo == nil {
		return
	}
	k.memo.mu.Lock()
	defer k.memo.mu.Unlock()
	if len(k.memo.verified) < 8 {
		k.memo.verified = append(k.memo.verified, verification{v, floors, params})
	}
}

// publicDealing is the public part of a dealing, as a client sees it.
type publicDealing struct {
	pkShare   ring.Poly
	sealed    [32]byte // sealedDigest of the dealing
	signature []byte
}

// MarshalBinary encodes the public key.
func (k *PublicKey) MarshalBinary() ([]byte, error) {
	if k.Roster == nil || len(k.dealings) == 0 || len(k.dealings) != len(k.Dealers) || len(k.q) == 0 {
		return nil, fmt.Errorf("secagg: public key is empty")
	}
	ro, err := k.Roster.MarshalBinary()
	if err != nil {
		return nil, err
	}
	n := k.dealings[0].pkShare.N()
	size := 4 + 4 + len(ro) + ringDescSize(len(k.q)) + 2
	for _, d := range k.dealings {
		if !shaped(d.pkShare, n, len(k.q)) {
			return nil, fmt.Errorf("secagg: public key holds shares of different rings")
		}
		if err := checkIdentityFields(nil, d.signature); err != nil {
			return nil, err
		}
		size += 2 + 32 + 2 + len(d.signature) + 8*n*len(k.q)
	}
	w := newWriter(size, typePublicKey)
	w.u32(uint32(len(ro)))
	w.raw(ro)
	w.ringDesc(logNOf(n), k.q)
	w.u16(uint16(len(k.Dealers)))
	for i, d := range k.dealings {
		w.u16(uint16(k.Dealers[i]))
		w.raw(d.sealed[:])
		w.bytes(d.signature)
		w.coeffs(d.pkShare)
	}
	return w.b, nil
}

// UnmarshalBinary decodes a public key; it never panics on malformed input.
func (k *PublicKey) UnmarshalBinary(p []byte) error {
	r := newReader(p, typePublicKey, "public key")
	var out PublicKey
	rl := int(r.u32())
	rb := r.take(rl)
	if r.err == nil {
		out.Roster = new(Roster)
		if err := out.Roster.UnmarshalBinary(rb); err != nil {
			r.fail(err)
		}
	}
	n, q := r.ringDesc()
	nd := int(r.u16())
	if r.err == nil && (nd < 1 || nd > MaxCommitteeSize || nd*(36+8*n*len(q)) > r.remaining()) {
		r.failf("%d dealers in %d bytes", nd, r.remaining())
	}
	out.q = q
	for i := 0; i < nd && r.err == nil; i++ {
		out.Dealers = append(out.Dealers, MemberID(r.u16()))
		var d publicDealing
		r.fixed(d.sealed[:])
		d.signature = r.bytes(MaxSignatureBytes, "signature")
		d.pkShare = r.poly(n, q)
		out.dealings = append(out.dealings, d)
	}
	if err := r.done(); err != nil {
		return err
	}
	out.Session, out.ParamsDigest = out.Roster.Session, out.Roster.ParamsDigest
	out.memo = &publicKeyMemo{}
	*k = out
	return nil
}

// Committee returns the committee the key was made by (the roster's).
func (k *PublicKey) Committee() CommitteeConfig {
	if k == nil || k.Roster == nil {
		return CommitteeConfig{}
	}
	return k.Roster.Committee
}

// rlwe recomputes the key for params (which must match its ring): p1 is the common
// polynomial of the roster, p0 the sum of the dealers' shares. It checks the structure
// (at least Threshold distinct dealers of the committee), not the signatures.
func (k *PublicKey) rlwe(params Parameters) (*rlwe.PublicKey, error) {
	if k == nil || k.Roster == nil || len(k.dealings) == 0 || len(k.dealings) != len(k.Dealers) {
		return nil, fmt.Errorf("secagg: public key is empty (decode it or finish the key setup first)")
	}
	if k.memo != nil {
		k.memo.mu.Lock()
		defer k.memo.mu.Unlock()
		if k.memo.key != nil && k.memo.digest == params.Digest() {
			return k.memo.key, nil
		}
	}
	pk, err := k.derive(params)
	if err == nil && k.memo != nil {
		k.memo.digest, k.memo.key = params.Digest(), pk
	}
	return pk, err
}

// derive recomputes the lattigo key from the roster's common polynomial and the shares.
func (k *PublicKey) derive(params Parameters) (*rlwe.PublicKey, error) {
	for _, d := range k.dealings {
		if !shaped(d.pkShare, d.pkShare.N(), len(k.q)) {
			return nil, fmt.Errorf("secagg: public key holds a malformed share")
		}
		if err := checkRing(params, d.pkShare.N(), k.q, "public key"); err != nil {
			return nil, err
		}
	}
	ro := k.Roster
	if k.ParamsDigest != params.Digest() || ro.ParamsDigest != params.Digest() {
		return nil, fmt.Errorf("secagg: public key was made under other parameters (digest %x, want %x)", k.ParamsDigest[:6], params.digest[:6])
	}
	if k.Session != ro.Session {
		return nil, fmt.Errorf("secagg: public key of session %s holds the roster of session %s: %w", k.Session, ro.Session, ErrWrongSession)
	}
	if err := ro.Committee.Validate(params); err != nil {
		return nil, fmt.Errorf("secagg: public key's committee: %w", err)
	}
	if len(ro.Announcements) != ro.Committee.Size {
		return nil, fmt.Errorf("secagg: public key's roster lists %d members for a committee of %d", len(ro.Announcements), ro.Committee.Size)
	}
	if err := checkMemberSet(k.Dealers, ro.Committee.Size, ro.Committee.Threshold, -1); err != nil {
		return nil, fmt.Errorf("secagg: public key's dealers: %w", err)
	}
	crs, err := ro.crs()
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(params.he)
	crp := ckg.SampleCRP(crs)
	agg := ckg.AllocateShare()
	for _, d := range k.dealings {
		ckg.AggregateShares(agg, mhe.PublicKeyGenShare{Value: ringqp.Poly{Q: d.pkShare}}, &agg)
	}
	pk := rlwe.NewPublicKey(params.he)
	ckg.GenPublicKey(agg, crp, pk)
	return pk, nil
}
