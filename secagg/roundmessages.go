package secagg

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// ---------------------------------------------------------------------------------------
// Round messages.

// wellFormed reports whether ct is a degree-1 ciphertext with metadata whose two
// polynomials have levels RNS levels of the same degree.
func wellFormed(ct *rlwe.Ciphertext, levels int) bool {
	return ct != nil && ct.MetaData != nil && len(ct.Value) == 2 && ct.Value[0].N() > 0 &&
		shaped(ct.Value[0], ct.Value[0].N(), levels) && shaped(ct.Value[1], ct.Value[0].N(), levels)
}

// shaped reports whether p has exactly levels RNS levels of n coefficients each.
func shaped(p ring.Poly, n, levels int) bool {
	if len(p.Coeffs) != levels || levels < 1 {
		return false
	}
	for _, c := range p.Coeffs {
		if len(c) != n {
			return false
		}
	}
	return true
}

// allShaped reports whether ps is not empty and every polynomial has levels levels of n
// coefficients.
func allShaped(ps []ring.Poly, n, levels int) bool {
	for _, p := range ps {
		if !shaped(p, n, levels) {
			return false
		}
	}
	return len(ps) > 0
}

// floatChunks is the number of ciphertexts of a dim-value update in the float encoding:
// one value per coefficient, the weight and count slots included.
func floatChunks(dim, n int) int { return (dim + extraSlots + n - 1) / max(n, 1) }

// plausibleChunks is the decoder's check of a message's ciphertext count before the party
// that knows the parameters checks it exactly (Parameters.NumChunks): with one prime it is
// the float encoding's count; with more, the packed encoding needs at least one and at
// most that many.
func plausibleChunks(dim, n, levels, k int) bool {
	if levels == 1 {
		return k == floatChunks(dim, n)
	}
	return k >= 1 && k <= floatChunks(dim, n)
}

// chunkWireSize is the encoded size of one ciphertext: degree, level, scale, flags, then
// the two polynomials of levels primes.
func chunkWireSize(n, levels int) int { return 1 + 1 + 8 + 1 + 16*n*levels }

// updateHeaderSize is the size of an EncryptedUpdate without its ring descriptor, client id,
// task id, certificate, signature and chunks.
const updateHeaderSize = 4 + 16 + 8 + 1 + 2 + 2 + 32 + 8 + 4 + 2 + 32 + 2

const (
	flagNTT        = 1
	flagBatched    = 2
	flagMontgomery = 4
)

// EncryptedUpdate is a client's upload: its weighted update vector, weight and a count of 1,
// encrypted under the collective public key in NumChunks(Dim) ciphertexts.
//
// A client with a Signer commits to the ciphertexts (Commitment: the Merkle root of
// commitment.go, over every c1 coefficient and a digest of the c0 polynomials) and signs
// (session, round, purpose, task id, task digest, dimension, commitment); the certificate
// names the client, so the upload can be neither altered nor replayed into another round,
// purpose or session, a committee member can count the certified identities behind an
// aggregate, and it can check that they all trained under one task (TaskDigest).
type EncryptedUpdate struct {
	Session     SessionID
	Round       uint64
	Purpose     Purpose
	ClientID    string   // the certificate's identity, when signed
	TaskID      string   // the server's task this answers (signed, not interpreted here)
	TaskDigest  [32]byte // the client's digest of its task's settings (UploadContext.TaskDigest)
	Dim         int
	Certificate []byte   // DER; empty without a Signer
	Commitment  [32]byte // Merkle root of the ciphertexts; zero without a Signer
	Signature   []byte   // over uploadDigest; empty without a Signer
	q           []uint64 // the primes of the modulus
	chunks      []*rlwe.Ciphertext
}

// uploadDigest is what a client signs for an upload.
func uploadDigest(session SessionID, round uint64, purpose Purpose, taskID string, task [32]byte, dim int, root [32]byte) [32]byte {
	return transcriptDigest(domainUpload, session[:], le64(round), []byte{byte(purpose)}, []byte(taskID), task[:], le64(uint64(dim)), root[:])
}

// signedDigest is the digest the update's signature covers.
func (u *EncryptedUpdate) signedDigest() [32]byte {
	return uploadDigest(u.Session, u.Round, u.Purpose, u.TaskID, u.TaskDigest, u.Dim, u.Commitment)
}

// commitment returns what the update's signature commits to.
func (u *EncryptedUpdate) commitment() UploadCommitment {
	return UploadCommitment{Certificate: u.Certificate, TaskID: u.TaskID, TaskDigest: u.TaskDigest, Root: u.Commitment, Signature: u.Signature}
}

// NumChunks returns the number of ciphertexts the update holds.
func (u *EncryptedUpdate) NumChunks() int { return len(u.chunks) }

// MarshalBinary encodes the update.
func (u *EncryptedUpdate) MarshalBinary() ([]byte, error) {
	levels := len(u.q)
	if len(u.chunks) == 0 || !wellFormed(u.chunks[0], levels) {
		return nil, fmt.Errorf("secagg: encrypted update holds no well-formed ciphertexts")
	}
	n := u.chunks[0].Value[0].N()
	w, err := u.header(n, len(u.chunks), len(u.chunks)*chunkWireSize(n, levels))
	if err != nil {
		return nil, err
	}
	for i, ct := range u.chunks {
		if !wellFormed(ct, levels) || ct.Value[0].N() != n {
			return nil, fmt.Errorf("secagg: ciphertext %d is not a degree-1, level-%d ciphertext of degree %d", i, levels-1, n)
		}
		off := len(w.b)
		w.b = w.b[:off+chunkWireSize(n, levels)]
		putChunk(w.b[off:], ct)
	}
	return w.b, nil
}

// header writes everything of the update before its ciphertexts (of ring degree n, chunks of
// them) into a new writer with room for extra more bytes.
func (u *EncryptedUpdate) header(n, chunks, extra int) (*writer, error) {
	if len(u.ClientID) > maxClientIDLength || len(u.TaskID) > maxTaskIDLength {
		return nil, fmt.Errorf("secagg: client id of %d bytes or task id of %d bytes exceeds %d", len(u.ClientID), len(u.TaskID), maxClientIDLength)
	}
	if err := checkIdentityFields(u.Certificate, u.Signature); err != nil {
		return nil, err
	}
	w := newWriter(updateSize(n, len(u.q), 0, len(u.ClientID), len(u.TaskID), len(u.Certificate), len(u.Signature))+extra, typeUpdate)
	w.raw(u.Session[:])
	w.u64(u.Round)
	w.u8(uint8(u.Purpose))
	w.str(u.ClientID)
	w.str(u.TaskID)
	w.raw(u.TaskDigest[:])
	w.u64(uint64(u.Dim))
	w.ringDesc(logNOf(n), u.q)
	w.u32(uint32(chunks))
	w.bytes(u.Certificate)
	w.raw(u.Commitment[:])
	w.bytes(u.Signature)
	return w, nil
}

// putChunk writes a well-formed ciphertext into dst, chunkWireSize bytes, as the wire
// format holds a chunk of an update: degree, level, scale, flags, c0, c1.
func putChunk(dst []byte, ct *rlwe.Ciphertext) {
	dst[0] = 1
	dst[1] = uint8(ct.Level())
	binary.LittleEndian.PutUint64(dst[2:], math.Float64bits(ct.Scale.Float64()))
	dst[10] = chunkFlags(ct.MetaData)
	off := chunkMetaSize
	for _, p := range ct.Value {
		for _, cs := range p.Coeffs {
			if littleEndian {
				copy(dst[off:], coeffBytes(cs))
			} else {
				for i, c := range cs {
					binary.LittleEndian.PutUint64(dst[off+8*i:], c)
				}
			}
			off += 8 * len(cs)
		}
	}
}

// chunkMetaSize is the size of a chunk's degree, level, scale and flags on the wire.
const chunkMetaSize = 1 + 1 + 8 + 1

// c1Bytes returns the c1 coefficients of the chunks marshalled in p from offset base on
// (chunks ciphertexts of ring degree n and levels primes), one slice of p per chunk-prime:
// the commitment's c1, as commitTree takes it.
func c1Bytes(p []byte, base, chunks, n, levels int) [][]byte {
	cw := chunkWireSize(n, levels)
	c1 := make([][]byte, 0, chunks*levels)
	for k := 0; k < chunks; k++ {
		at := base + k*cw + chunkMetaSize + 8*n*levels // chunk k's c1, prime after prime
		for l := 0; l < levels; l++ {
			c1 = append(c1, p[at+8*n*l:at+8*n*(l+1)])
		}
	}
	return c1
}

// UnmarshalBinary decodes an update. It checks every ciphertext's degree, level, scale
// encoding and byte length, and every coefficient against the modulus; it never panics on
// malformed input. Aggregator.Add then checks the metadata against the parameters.
func (u *EncryptedUpdate) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeUpdate, "encrypted update")
	out, n, k := r.updateHeader()
	if r.err == nil {
		out.chunks = make([]*rlwe.Ciphertext, k)
	}
	for i := range out.chunks {
		out.chunks[i] = r.ciphertext(nil, i, n, out.q)
	}
	if err := r.done(); err != nil {
		return err
	}
	*u = out
	return nil
}

// updateHeader reads an update up to its ciphertexts, which it checks are exactly what is
// left: the update without chunks, the ring degree and the number of ciphertexts.
func (r *reader) updateHeader() (out EncryptedUpdate, n, k int) {
	r.fixed(out.Session[:])
	out.Round = r.u64()
	out.Purpose = Purpose(r.u8())
	out.ClientID = r.str(maxClientIDLength)
	out.TaskID = r.str(maxTaskIDLength)
	r.fixed(out.TaskDigest[:])
	dim := r.u64()
	n, q := r.ringDesc()
	k = int(r.u32())
	out.Certificate = r.bytes(MaxCertificateBytes, "certificate")
	r.fixed(out.Commitment[:])
	out.Signature = r.bytes(MaxSignatureBytes, "signature")
	if r.err == nil && (dim < 1 || dim > MaxDim) {
		r.failf("dimension %d out of range 1…%d", dim, MaxDim)
	}
	out.Dim = int(dim)
	if r.err == nil && !plausibleChunks(out.Dim, n, len(q), k) {
		r.failf("%d ciphertexts for dimension %d at N=%d with %d primes, want %d", k, dim, n, len(q), floatChunks(out.Dim, n))
	}
	r.expectRemaining(k*chunkWireSize(n, len(q)), "ciphertexts")
	out.q = q
	return out, n, k
}

// ciphertext reads one chunk of an EncryptedUpdate, into ct's polynomials (n coefficients per
// prime of q) and metadata if ct is not nil, else into a new ciphertext.
func (r *reader) ciphertext(ct *rlwe.Ciphertext, i, n int, q []uint64) *rlwe.Ciphertext {
	md, ok := r.chunkMeta(i, n, len(q))
	if !ok {
		return nil
	}
	if ct == nil {
		c0 := r.poly(n, q)
		c1 := r.poly(n, q)
		if r.err != nil {
			return nil
		}
		ct = &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{Value: []ring.Poly{c0, c1}, MetaData: &rlwe.MetaData{}}}
	} else {
		r.polyInto(ct.Value[0], n, q)
		r.polyInto(ct.Value[1], n, q)
		if r.err != nil {
			return nil
		}
	}
	*ct.MetaData = md
	return ct
}

// chunkMeta reads chunk i's degree, level, scale and flags (chunkMetaSize bytes), checks
// them as the wire format allows them (degree 1, level levels−1, a positive finite scale,
// known flags) and returns the metadata of a ciphertext of ring degree n that they give.
func (r *reader) chunkMeta(i, n, levels int) (rlwe.MetaData, bool) {
	degree, level := r.u8(), r.u8()
	scale := r.f64()
	flags := r.u8()
	if r.err != nil {
		return rlwe.MetaData{}, false
	}
	if degree != 1 || int(level) != levels-1 {
		r.failf("ciphertext %d has degree %d, level %d; want degree 1, level %d", i, degree, level, levels-1)
		return rlwe.MetaData{}, false
	}
	if !(scale > 0) || math.IsInf(scale, 0) {
		r.failf("ciphertext %d has scale %g; want a positive finite scale", i, scale)
		return rlwe.MetaData{}, false
	}
	if flags&^(flagNTT|flagBatched|flagMontgomery) != 0 {
		r.failf("ciphertext %d has unknown flags %#x", i, flags)
		return rlwe.MetaData{}, false
	}
	return rlwe.MetaData{
		PlaintextMetaData: rlwe.PlaintextMetaData{
			Scale:         rlwe.NewScale(scale),
			LogDimensions: ring.Dimensions{Rows: 0, Cols: logNOf(n) - 1},
			IsBatched:     flags&flagBatched != 0,
		},
		CiphertextMetaData: rlwe.CiphertextMetaData{
			IsNTT:        flags&flagNTT != 0,
			IsMontgomery: flags&flagMontgomery != 0,
		},
	}, true
}

// UploadCommitment is the signed commitment of one upload, as a decryption request lists
// it: the uploader's certificate, the task id, the task digest, the Merkle root of its
// ciphertexts and the signature over (session, round, purpose, task id, task digest,
// dimension, root).
type UploadCommitment struct {
	Certificate []byte
	TaskID      string
	TaskDigest  [32]byte
	Root        [32]byte
	Signature   []byte
}

// verify checks the commitment's certificate and signature for an upload of the given
// session, round, purpose and dimension, and returns the certified identity.
func (c *UploadCommitment) verify(v *Verifier, session SessionID, round uint64, purpose Purpose, dim int) (string, error) {
	return v.verify(c.Certificate, uploadDigest(session, round, purpose, c.TaskID, c.TaskDigest, dim, c.Root), c.Signature)
}

// DecryptionRequest asks each member of Members (exactly t ids, ascending) for decryption
// shares of an aggregate. All members of the set receive the same request. It carries the
// c1 polynomials, which is all a share depends on, the server's count of the updates the
// aggregate holds and, against an active server, the signed commitments of those uploads
// (Count is then their number), which members verify and spot-check (Member.Challenge).
type DecryptionRequest struct {
	Session     SessionID
	Round       uint64
	Purpose     Purpose
	Aggregate   AggregateID
	Dim         int
	Count       int
	Members     []MemberID
	Commitments []UploadCommitment // sorted by certificate; empty without a Verifier
	q           []uint64
	c1          []ring.Poly
}

// MarshalBinary encodes the request.
func (q *DecryptionRequest) MarshalBinary() ([]byte, error) {
	if len(q.c1) == 0 || !allShaped(q.c1, q.c1[0].N(), len(q.q)) {
		return nil, fmt.Errorf("secagg: decryption request holds no well-formed polynomials")
	}
	n := q.c1[0].N()
	cs, err := commitmentsSize(q.Commitments)
	if err != nil {
		return nil, err
	}
	w := newWriter(4+16+8+1+32+8+4+2+2*len(q.Members)+cs+ringDescSize(len(q.q))+4+8*n*len(q.q)*len(q.c1), typeRequest)
	w.raw(q.Session[:])
	w.u64(q.Round)
	w.u8(uint8(q.Purpose))
	w.raw(q.Aggregate[:])
	w.u64(uint64(q.Dim))
	w.u32(uint32(q.Count))
	w.members(q.Members)
	w.commitments(q.Commitments)
	w.polys(q.q, q.c1)
	return w.b, nil
}

// commitmentWireSize is the encoded size of an UploadCommitment.
func commitmentWireSize(certLen, taskLen, sigLen int) int {
	return 2 + certLen + 2 + taskLen + 32 + 32 + 2 + sigLen
}

// commitmentsSize checks a list of upload commitments for encoding and returns its encoded
// size (writer.commitments).
func commitmentsSize(cs []UploadCommitment) (int, error) {
	size := 4
	for _, c := range cs {
		if err := checkIdentityFields(c.Certificate, c.Signature); err != nil {
			return 0, err
		}
		if len(c.TaskID) > maxTaskIDLength {
			return 0, fmt.Errorf("secagg: task id of %d bytes exceeds %d", len(c.TaskID), maxTaskIDLength)
		}
		size += commitmentWireSize(len(c.Certificate), len(c.TaskID), len(c.Signature))
	}
	return size, nil
}

// commitments writes a count and the upload commitments (checked by commitmentsSize).
func (w *writer) commitments(cs []UploadCommitment) {
	w.u32(uint32(len(cs)))
	for _, c := range cs {
		w.bytes(c.Certificate)
		w.str(c.TaskID)
		w.raw(c.TaskDigest[:])
		w.raw(c.Root[:])
		w.bytes(c.Signature)
	}
}

// commitments reads what writer.commitments wrote (nil for none), allocating no more than
// the message's length allows.
func (r *reader) commitments() []UploadCommitment {
	nc := int(r.u32())
	if r.err == nil && nc > r.remaining()/commitmentWireSize(0, 0, 0) {
		r.failf("%d upload commitments cannot fit in %d bytes", nc, r.remaining())
	}
	if r.err != nil || nc == 0 {
		return nil
	}
	cs := make([]UploadCommitment, nc)
	for i := range cs {
		c := &cs[i]
		c.Certificate = r.bytes(MaxCertificateBytes, "certificate")
		c.TaskID = r.str(maxTaskIDLength)
		r.fixed(c.TaskDigest[:])
		r.fixed(c.Root[:])
		c.Signature = r.bytes(MaxSignatureBytes, "signature")
	}
	return cs
}

// polys writes the ring descriptor, the count and the coefficients of a list of
// polynomials of the same degree.
func (w *writer) polys(q []uint64, ps []ring.Poly) {
	w.ringDesc(logNOf(ps[0].N()), q)
	w.u32(uint32(len(ps)))
	for _, p := range ps {
		w.coeffs(p)
	}
}

// polys reads what writer.polys wrote: they must be the last field of the message. With
// dim > 0 the count must be the number of chunks of a dim-value update.
func (r *reader) polys(dim int, what string) ([]uint64, []ring.Poly) {
	n, q := r.ringDesc()
	k := int(r.u32())
	if r.err != nil {
		return nil, nil
	}
	if dim > 0 && !plausibleChunks(dim, n, len(q), k) {
		r.failf("%d polynomials for dimension %d at N=%d with %d primes, want %d", k, dim, n, len(q), floatChunks(dim, n))
	} else if k < 1 || k > MaxDim {
		r.failf("%d polynomials out of range", k)
	}
	r.expectRemaining(8*n*len(q)*k, what)
	if r.err != nil {
		return nil, nil
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
	out.Purpose = Purpose(r.u8())
	r.fixed(out.Aggregate[:])
	dim := r.u64()
	out.Count = int(r.u32())
	out.Members = r.members(MaxCommitteeSize)
	out.Commitments = r.commitments()
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
	q         []uint64
	shares    []ring.Poly
}

// MarshalBinary encodes the share.
func (s *DecryptionShare) MarshalBinary() ([]byte, error) {
	if len(s.shares) == 0 || !allShaped(s.shares, s.shares[0].N(), len(s.q)) {
		return nil, fmt.Errorf("secagg: decryption share holds no well-formed polynomials")
	}
	n := s.shares[0].N()
	w := newWriter(4+16+8+32+2+2+2*len(s.Members)+ringDescSize(len(s.q))+4+8*n*len(s.q)*len(s.shares), typeShare)
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
