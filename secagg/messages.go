package secagg

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
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

// sealedShareSize is the size of a Shamir share sealed for its recipient: the nonce, N
// coefficients and the AEAD tag.
func sealedShareSize(n int) int { return sealNonceSize + 8*n + sealTagSize }

// ---------------------------------------------------------------------------------------
// Key setup messages.

// KeyAnnouncement is a member's first message: its identity key (X25519), to which the
// other members seal their Shamir shares.
type KeyAnnouncement struct {
	Session     SessionID
	Member      MemberID
	IdentityKey [32]byte
}

// MarshalBinary encodes the announcement.
func (a *KeyAnnouncement) MarshalBinary() ([]byte, error) {
	w := newWriter(54, typeAnnouncement)
	w.raw(a.Session[:])
	w.u16(uint16(a.Member))
	w.raw(a.IdentityKey[:])
	return w.b, nil
}

// UnmarshalBinary decodes an announcement; it never panics on malformed input.
func (a *KeyAnnouncement) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeAnnouncement, "key announcement")
	var out KeyAnnouncement
	r.fixed(out.Session[:])
	out.Member = MemberID(r.u16())
	r.fixed(out.IdentityKey[:])
	if err := r.done(); err != nil {
		return err
	}
	*a = out
	return nil
}

// Roster is the server's list of the committee's identity keys, sent to every member before
// dealing. IdentityKeys[i] belongs to member i+1. The common random seed of the collective
// key generation is derived from the roster's encoding, so every party that holds the same
// roster samples the same common polynomial.
type Roster struct {
	Session      SessionID
	ParamsDigest [32]byte
	Committee    CommitteeConfig
	IdentityKeys [][32]byte
}

// MarshalBinary encodes the roster.
func (ro *Roster) MarshalBinary() ([]byte, error) {
	if len(ro.IdentityKeys) > MaxCommitteeSize {
		return nil, fmt.Errorf("secagg: roster of %d members exceeds %d", len(ro.IdentityKeys), MaxCommitteeSize)
	}
	w := newWriter(64+32*len(ro.IdentityKeys), typeRoster)
	w.raw(ro.Session[:])
	w.raw(ro.ParamsDigest[:])
	w.u16(uint16(ro.Committee.Size))
	w.u16(uint16(ro.Committee.Threshold))
	w.u32(uint32(ro.Committee.MinContributions))
	w.u16(uint16(len(ro.IdentityKeys)))
	for _, k := range ro.IdentityKeys {
		w.raw(k[:])
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
		r.failf("%d identity keys for a committee of %d (max %d)", n, out.Committee.Size, MaxCommitteeSize)
	}
	r.expectRemaining(32*n, "identity keys")
	if r.err == nil {
		out.IdentityKeys = make([][32]byte, n)
		for i := range out.IdentityKeys {
			r.fixed(out.IdentityKeys[i][:])
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
// included), each sealed to its recipient's identity key.
type Dealing struct {
	Session SessionID
	From    MemberID
	q       uint64
	pkShare ring.Poly
	sealed  [][]byte // sealed[j] is for member j+1
}

// MarshalBinary encodes the dealing.
func (d *Dealing) MarshalBinary() ([]byte, error) {
	if !singleLevel(d.pkShare) {
		return nil, fmt.Errorf("secagg: dealing holds no public-key share")
	}
	n := len(d.pkShare.Coeffs[0])
	w := newWriter(4+16+2+9+2+8*n+len(d.sealed)*sealedShareSize(n), typeDealing)
	w.raw(d.Session[:])
	w.u16(uint16(d.From))
	w.ringDesc(logNOf(n), d.q)
	w.u16(uint16(len(d.sealed)))
	w.coeffs(d.pkShare)
	for _, s := range d.sealed {
		w.raw(s)
	}
	return w.b, nil
}

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
	r.expectRemaining(8*n+k*sealedShareSize(n), "public-key share and sealed shares")
	out.pkShare = r.poly(n, q)
	out.q = q
	if r.err == nil {
		out.sealed = make([][]byte, k)
		for i := range out.sealed {
			out.sealed[i] = append([]byte(nil), r.take(sealedShareSize(n))...)
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
	sealed  [][]byte // sealed[i] comes from Dealers[i]
}

// MarshalBinary encodes the delivery.
func (v *ShareDelivery) MarshalBinary() ([]byte, error) {
	if v.n < 2 || len(v.sealed) != len(v.Dealers) {
		return nil, fmt.Errorf("secagg: share delivery is empty or inconsistent")
	}
	w := newWriter(4+16+2+1+2+2*len(v.Dealers)+len(v.sealed)*sealedShareSize(v.n), typeDelivery)
	w.raw(v.Session[:])
	w.u16(uint16(v.To))
	w.u8(uint8(logNOf(v.n)))
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
	logN := int(r.u8())
	if r.err == nil && (logN < 1 || logN > maxLogN) {
		r.failf("ring degree 2^%d out of range", logN)
	}
	out.n = 1 << logN
	out.Dealers = r.members(MaxCommitteeSize)
	r.expectRemaining(len(out.Dealers)*sealedShareSize(out.n), "sealed shares")
	if r.err == nil {
		out.sealed = make([][]byte, len(out.Dealers))
		for i := range out.sealed {
			out.sealed[i] = append([]byte(nil), r.take(sealedShareSize(out.n))...)
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*v = out
	return nil
}

// PublicKey is the committee's collective public key, published to the clients. Dealers
// lists the members whose secrets it combines.
type PublicKey struct {
	Session      SessionID
	ParamsDigest [32]byte
	Dealers      []MemberID
	q            uint64
	p0, p1       ring.Poly
}

// MarshalBinary encodes the public key.
func (k *PublicKey) MarshalBinary() ([]byte, error) {
	if !singleLevel(k.p0) || !allSingleLevel([]ring.Poly{k.p1}, len(k.p0.Coeffs[0])) {
		return nil, fmt.Errorf("secagg: public key is empty")
	}
	n := len(k.p0.Coeffs[0])
	w := newWriter(4+16+32+2+2*len(k.Dealers)+9+16*n, typePublicKey)
	w.raw(k.Session[:])
	w.raw(k.ParamsDigest[:])
	w.members(k.Dealers)
	w.ringDesc(logNOf(n), k.q)
	w.coeffs(k.p0)
	w.coeffs(k.p1)
	return w.b, nil
}

// UnmarshalBinary decodes a public key; it never panics on malformed input.
func (k *PublicKey) UnmarshalBinary(p []byte) error {
	r := newReader(p, typePublicKey, "public key")
	var out PublicKey
	r.fixed(out.Session[:])
	r.fixed(out.ParamsDigest[:])
	out.Dealers = r.members(MaxCommitteeSize)
	n, q := r.ringDesc()
	r.expectRemaining(16*n, "public-key polynomials")
	out.q = q
	out.p0 = r.poly(n, q)
	out.p1 = r.poly(n, q)
	if err := r.done(); err != nil {
		return err
	}
	*k = out
	return nil
}

// rlwe returns the key as a lattigo public key for params (which must match its ring).
func (k *PublicKey) rlwe(params Parameters) (*rlwe.PublicKey, error) {
	if k == nil || !singleLevel(k.p0) || !singleLevel(k.p1) {
		return nil, fmt.Errorf("secagg: public key is empty (decode it or finish the key setup first)")
	}
	if err := checkRing(params, len(k.p0.Coeffs[0]), k.q, "public key"); err != nil {
		return nil, err
	}
	if k.ParamsDigest != params.Digest() {
		return nil, fmt.Errorf("secagg: public key was made under other parameters (digest %x, want %x)", k.ParamsDigest[:6], params.digest[:6])
	}
	pk := rlwe.NewPublicKey(params.he)
	pk.Value[0].Q.Copy(k.p0)
	pk.Value[1].Q.Copy(k.p1)
	return pk, nil
}

// ---------------------------------------------------------------------------------------
// Round messages.

// wellFormed reports whether ct is a degree-1 ciphertext of level-0 polynomials with metadata.
func wellFormed(ct *rlwe.Ciphertext) bool {
	return ct != nil && ct.MetaData != nil && len(ct.Value) == 2 && singleLevel(ct.Value[0]) && singleLevel(ct.Value[1]) && ct.Value[0].N() > 0
}

// singleLevel reports whether p has exactly one RNS level.
func singleLevel(p ring.Poly) bool { return len(p.Coeffs) == 1 }

// allSingleLevel reports whether every polynomial of ps has one level of n coefficients.
func allSingleLevel(ps []ring.Poly, n int) bool {
	for _, p := range ps {
		if !singleLevel(p) || len(p.Coeffs[0]) != n {
			return false
		}
	}
	return len(ps) > 0
}

// chunkWireSize is the encoded size of one ciphertext: degree, level, scale, flags, then
// the two polynomials.
func chunkWireSize(n int) int { return 1 + 1 + 8 + 1 + 16*n }

// updateHeaderSize is the size of an EncryptedUpdate without its client id and chunks.
const updateHeaderSize = 4 + 16 + 8 + 2 + 8 + 9 + 4

const (
	flagNTT        = 1
	flagBatched    = 2
	flagMontgomery = 4
)

// EncryptedUpdate is a client's upload: its weighted update vector, weight and a count of 1,
// encrypted under the collective public key in NumChunks(Dim) ciphertexts.
type EncryptedUpdate struct {
	Session  SessionID
	Round    uint64
	ClientID string
	Dim      int
	q        uint64
	chunks   []*rlwe.Ciphertext
}

// NumChunks returns the number of ciphertexts the update holds.
func (u *EncryptedUpdate) NumChunks() int { return len(u.chunks) }

// MarshalBinary encodes the update.
func (u *EncryptedUpdate) MarshalBinary() ([]byte, error) {
	if len(u.ClientID) > maxClientIDLength {
		return nil, fmt.Errorf("secagg: client id of %d bytes exceeds %d", len(u.ClientID), maxClientIDLength)
	}
	if len(u.chunks) == 0 || !wellFormed(u.chunks[0]) {
		return nil, fmt.Errorf("secagg: encrypted update holds no well-formed ciphertexts")
	}
	n := u.chunks[0].Value[0].N()
	w := newWriter(updateHeaderSize+len(u.ClientID)+len(u.chunks)*chunkWireSize(n), typeUpdate)
	w.raw(u.Session[:])
	w.u64(u.Round)
	w.str(u.ClientID)
	w.u64(uint64(u.Dim))
	w.ringDesc(logNOf(n), u.q)
	w.u32(uint32(len(u.chunks)))
	for i, ct := range u.chunks {
		if !wellFormed(ct) || ct.Value[0].N() != n || ct.Value[1].N() != n {
			return nil, fmt.Errorf("secagg: ciphertext %d is not a degree-1, level-0 ciphertext of degree %d", i, n)
		}
		w.u8(1)
		w.u8(0)
		w.f64(ct.Scale.Float64())
		var flags uint8
		if ct.IsNTT {
			flags |= flagNTT
		}
		if ct.IsBatched {
			flags |= flagBatched
		}
		if ct.IsMontgomery {
			flags |= flagMontgomery
		}
		w.u8(flags)
		w.coeffs(ct.Value[0])
		w.coeffs(ct.Value[1])
	}
	return w.b, nil
}

// UnmarshalBinary decodes an update. It checks every ciphertext's degree, level, scale
// encoding and byte length, and every coefficient against the modulus; it never panics on
// malformed input. Aggregator.Add then checks the metadata against the parameters.
func (u *EncryptedUpdate) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeUpdate, "encrypted update")
	var out EncryptedUpdate
	r.fixed(out.Session[:])
	out.Round = r.u64()
	out.ClientID = r.str(maxClientIDLength)
	dim := r.u64()
	n, q := r.ringDesc()
	k := int(r.u32())
	if r.err == nil && (dim < 1 || dim > MaxDim) {
		r.failf("dimension %d out of range 1…%d", dim, MaxDim)
	}
	out.Dim = int(dim)
	if want := (out.Dim + extraSlots + n - 1) / max(n, 1); r.err == nil && k != want {
		r.failf("%d ciphertexts for dimension %d at N=%d, want %d", k, dim, n, want)
	}
	r.expectRemaining(k*chunkWireSize(n), "ciphertexts")
	out.q = q
	if r.err == nil {
		out.chunks = make([]*rlwe.Ciphertext, k)
	}
	for i := range out.chunks {
		out.chunks[i] = r.ciphertext(i, n, q)
	}
	if err := r.done(); err != nil {
		return err
	}
	*u = out
	return nil
}

// ciphertext reads one chunk of an EncryptedUpdate.
func (r *reader) ciphertext(i, n int, q uint64) *rlwe.Ciphertext {
	degree, level := r.u8(), r.u8()
	scale := r.f64()
	flags := r.u8()
	if r.err != nil {
		return nil
	}
	if degree != 1 || level != 0 {
		r.failf("ciphertext %d has degree %d, level %d; want degree 1, level 0", i, degree, level)
		return nil
	}
	if !(scale > 0) || math.IsInf(scale, 0) {
		r.failf("ciphertext %d has scale %g; want a positive finite scale", i, scale)
		return nil
	}
	if flags&^(flagNTT|flagBatched|flagMontgomery) != 0 {
		r.failf("ciphertext %d has unknown flags %#x", i, flags)
		return nil
	}
	c0 := r.poly(n, q)
	c1 := r.poly(n, q)
	if r.err != nil {
		return nil
	}
	return &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{
		Value: []ring.Poly{c0, c1},
		MetaData: &rlwe.MetaData{
			PlaintextMetaData: rlwe.PlaintextMetaData{
				Scale:         rlwe.NewScale(scale),
				LogDimensions: ring.Dimensions{Rows: 0, Cols: logNOf(n) - 1},
				IsBatched:     flags&flagBatched != 0,
			},
			CiphertextMetaData: rlwe.CiphertextMetaData{
				IsNTT:        flags&flagNTT != 0,
				IsMontgomery: flags&flagMontgomery != 0,
			},
		},
	}}
}

// DecryptionRequest asks each member of Members (exactly t ids, ascending) for decryption
// shares of an aggregate. All members of the set receive the same request. It carries only
// the c1 polynomials, which is all a share depends on, and the server's report of how many
// updates the aggregate holds.
type DecryptionRequest struct {
	Session   SessionID
	Round     uint64
	Aggregate AggregateID
	Dim       int
	Count     int
	Members   []MemberID
	q         uint64
	c1        []ring.Poly
}

// MarshalBinary encodes the request.
func (q *DecryptionRequest) MarshalBinary() ([]byte, error) {
	if len(q.c1) == 0 || !singleLevel(q.c1[0]) || !allSingleLevel(q.c1, q.c1[0].N()) {
		return nil, fmt.Errorf("secagg: decryption request holds no well-formed polynomials")
	}
	n := q.c1[0].N()
	w := newWriter(4+16+8+32+8+4+2+2*len(q.Members)+9+4+8*n*len(q.c1), typeRequest)
	w.raw(q.Session[:])
	w.u64(q.Round)
	w.raw(q.Aggregate[:])
	w.u64(uint64(q.Dim))
	w.u32(uint32(q.Count))
	w.members(q.Members)
	w.polys(q.q, q.c1)
	return w.b, nil
}

// polys writes the ring descriptor, the count and the coefficients of a list of
// polynomials of the same degree.
func (w *writer) polys(q uint64, ps []ring.Poly) {
	w.ringDesc(logNOf(ps[0].N()), q)
	w.u32(uint32(len(ps)))
	for _, p := range ps {
		w.coeffs(p)
	}
}

// polys reads what writer.polys wrote: they must be the last field of the message. With
// dim > 0 the count must be the number of chunks of a dim-value update.
func (r *reader) polys(dim int, what string) (uint64, []ring.Poly) {
	n, q := r.ringDesc()
	k := int(r.u32())
	if r.err != nil {
		return 0, nil
	}
	if want := (dim + extraSlots + n - 1) / n; dim > 0 && k != want {
		r.failf("%d polynomials for dimension %d at N=%d, want %d", k, dim, n, want)
	} else if k < 1 || k > MaxDim {
		r.failf("%d polynomials out of range", k)
	}
	r.expectRemaining(8*n*k, what)
	if r.err != nil {
		return 0, nil
	}
	ps := make([]ring.Poly, k)
	for i := range ps {
		ps[i] = r.poly(n, q)
	}
	return q, ps
}

// UnmarshalBinary decodes a request; it never panics on malformed input.
func (q *DecryptionRequest) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeRequest, "decryption request")
	var out DecryptionRequest
	r.fixed(out.Session[:])
	out.Round = r.u64()
	r.fixed(out.Aggregate[:])
	dim := r.u64()
	out.Count = int(r.u32())
	out.Members = r.members(MaxCommitteeSize)
	if r.err == nil && (dim < 1 || dim > MaxDim) {
		r.failf("dimension %d out of range 1…%d", dim, MaxDim)
	}
	out.Dim = int(dim)
	out.q, out.c1 = r.polys(out.Dim, "c1 polynomials")
	if err := r.done(); err != nil {
		return err
	}
	*q = out
	return nil
}

// DecryptionShare is one member's answer to a DecryptionRequest: one key-switch share per
// ciphertext of the aggregate, each carrying fresh flooding noise.
type DecryptionShare struct {
	Session   SessionID
	Round     uint64
	Aggregate AggregateID
	From      MemberID
	Members   []MemberID
	q         uint64
	shares    []ring.Poly
}

// MarshalBinary encodes the share.
func (s *DecryptionShare) MarshalBinary() ([]byte, error) {
	if len(s.shares) == 0 || !singleLevel(s.shares[0]) || !allSingleLevel(s.shares, s.shares[0].N()) {
		return nil, fmt.Errorf("secagg: decryption share holds no well-formed polynomials")
	}
	n := s.shares[0].N()
	w := newWriter(4+16+8+32+2+2+2*len(s.Members)+9+4+8*n*len(s.shares), typeShare)
	w.raw(s.Session[:])
	w.u64(s.Round)
	w.raw(s.Aggregate[:])
	w.u16(uint16(s.From))
	w.members(s.Members)
	w.polys(s.q, s.shares)
	return w.b, nil
}

// UnmarshalBinary decodes a share; it never panics on malformed input.
func (s *DecryptionShare) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeShare, "decryption share")
	var out DecryptionShare
	r.fixed(out.Session[:])
	out.Round = r.u64()
	r.fixed(out.Aggregate[:])
	out.From = MemberID(r.u16())
	out.Members = r.members(MaxCommitteeSize)
	out.q, out.shares = r.polys(0, "share polynomials")
	if err := r.done(); err != nil {
		return err
	}
	*s = out
	return nil
}
