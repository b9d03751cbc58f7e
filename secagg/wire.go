package secagg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/tuneinsight/lattigo/v5/ring"
)

// Wire format. Every message starts with a 4-byte magic ("cs", a type byte, a version byte)
// and is a fixed sequence of little-endian fields; variable parts carry their count or
// length first. Polynomials are written as N raw uint64 coefficients after a ring descriptor
// (log2 N, Q), so a decoder checks that the bytes are there before it allocates anything
// (a message can make a decoder allocate no more than its own length) and rejects
// coefficients ≥ Q. Nothing here calls lattigo's own decoders, which trust their input.
//
// Versions are per message type. Version 2 of the announcement, roster, dealing, public
// key, update, request and member state added the identity fields of the active-server
// model (certificates, signatures, commitments); those fields are empty for parties run
// without a Signer. Version-1 messages of those types are refused (they came from an older
// confide: restart its key setup), except the member state, which still loads. Version 3
// of the update and the request, and version 2 of the partial sum, added the task digest
// to every upload and listed commitment (signed: UploadContext.TaskDigest); older ones are
// refused (a client or server of another confide version).

const (
	typeAnnouncement  = 'A'
	typeRoster        = 'R'
	typeDealing       = 'D'
	typeDelivery      = 'V'
	typePublicKey     = 'P'
	typeUpdate        = 'U'
	typeRequest       = 'Q'
	typeShare         = 'S'
	typeChallenge     = 'C'
	typeOpening       = 'O'
	typeMemberState   = 'M'
	typePartial       = 'T'
	maxLogN           = 17
	maxLevels         = 8 // primes of a modulus: 3 bits of a ring descriptor
	maxClientIDLength = 256
	maxTaskIDLength   = 256
)

// wireVersions is the version each message type is written in.
var wireVersions = map[byte]byte{
	typeAnnouncement: 2,
	typeRoster:       2,
	typeDealing:      2,
	typeDelivery:     1,
	typePublicKey:    2,
	typeUpdate:       3,
	typeRequest:      3,
	typeShare:        1,
	typeChallenge:    1,
	typeOpening:      1,
	typeMemberState:  2,
	typePartial:      2,
}

// errTruncated is returned (wrapped) when a message ends early.
var errTruncated = errors.New("message truncated")

type writer struct{ b []byte }

func newWriter(size int, typ byte) *writer {
	w := &writer{b: make([]byte, 0, size)}
	w.b = append(w.b, 'c', 's', typ, wireVersions[typ])
	return w
}

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) raw(p []byte) { w.b = append(w.b, p...) }
func (w *writer) str(s string) {
	w.u16(uint16(len(s)))
	w.b = append(w.b, s...)
}

// bytes writes a byte string with a 16-bit length.
func (w *writer) bytes(p []byte) {
	w.u16(uint16(len(p)))
	w.b = append(w.b, p...)
}

func (w *writer) members(ids []MemberID) {
	w.u16(uint16(len(ids)))
	for _, id := range ids {
		w.u16(uint16(id))
	}
}

// ringDesc writes the ring descriptor that precedes a message's polynomials: a byte with
// log2 N in its low 5 bits and the number of RNS primes minus one in its top 3, then the
// primes. With one prime (the float encoding) it is the (log2 N, Q) of earlier versions,
// byte for byte.
func (w *writer) ringDesc(logN int, q []uint64) {
	w.u8(uint8(logN) | uint8(len(q)-1)<<5)
	for _, qi := range q {
		w.u64(qi)
	}
}

// ringDescSize is the size of a ring descriptor of the given number of primes.
func ringDescSize(levels int) int { return 1 + 8*levels }

// coeffs writes the coefficients of p, prime after prime (level 0 first).
func (w *writer) coeffs(p ring.Poly) {
	for _, cs := range p.Coeffs {
		for _, c := range cs {
			w.b = binary.LittleEndian.AppendUint64(w.b, c)
		}
	}
}

// reader decodes with a sticky error: after the first failure every read returns zero
// values and r.err says what went wrong first.
type reader struct {
	b       []byte
	off     int
	err     error
	msg     string // message name, for errors
	version byte
}

// newReader starts decoding a message of type typ in its current version.
func newReader(p []byte, typ byte, msg string) *reader {
	return newReaderVersions(p, typ, msg, wireVersions[typ])
}

// newReaderVersions starts decoding a message of type typ in any of the given versions
// (r.version says which).
func newReaderVersions(p []byte, typ byte, msg string, versions ...byte) *reader {
	r := &reader{b: p, msg: msg}
	hdr := r.take(4)
	if r.err != nil {
		return r
	}
	if hdr[0] != 'c' || hdr[1] != 's' || hdr[2] != typ {
		r.fail(fmt.Errorf("not a %s (magic %q)", msg, hdr[:3]))
		return r
	}
	r.version = hdr[3]
	if !slices.Contains(versions, r.version) {
		r.fail(fmt.Errorf("%s version %d not supported (want %d; a message of another confide version: run the key setup again with matching versions)", msg, hdr[3], wireVersions[typ]))
	}
	return r
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) failf(format string, args ...any) { r.fail(fmt.Errorf(format, args...)) }

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.remaining() {
		r.fail(fmt.Errorf("%w at byte %d (need %d more, have %d)", errTruncated, r.off, n, r.remaining()))
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8() uint8 {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) u16() uint16 {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(p)
}

func (r *reader) u32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

func (r *reader) u64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *reader) fixed(dst []byte) {
	if p := r.take(len(dst)); p != nil {
		copy(dst, p)
	}
}

func (r *reader) str(max int) string {
	n := int(r.u16())
	if r.err == nil && n > max {
		r.failf("string of %d bytes exceeds the limit of %d", n, max)
		return ""
	}
	return string(r.take(n))
}

// bytes reads a byte string of at most max bytes written by writer.bytes; the result is a
// copy.
func (r *reader) bytes(max int, what string) []byte {
	n := int(r.u16())
	if r.err == nil && n > max {
		r.failf("%s of %d bytes exceeds the limit of %d", what, n, max)
		return nil
	}
	p := r.take(n)
	if p == nil || n == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// members reads a member list of at most max ids, each in 1…MaxCommitteeSize.
func (r *reader) members(max int) []MemberID {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n > max {
		r.failf("member list of %d entries exceeds the limit of %d", n, max)
		return nil
	}
	if 2*n > r.remaining() {
		r.fail(fmt.Errorf("%w: member list of %d entries", errTruncated, n))
		return nil
	}
	ids := make([]MemberID, n)
	for i := range ids {
		ids[i] = MemberID(r.u16())
		if ids[i] < 1 || ids[i] > MaxCommitteeSize {
			r.failf("member id %d out of range 1…%d", ids[i], MaxCommitteeSize)
			return nil
		}
	}
	return ids
}

// ringDesc reads a ring descriptor and returns N and the primes of Q.
func (r *reader) ringDesc() (n int, q []uint64) {
	b := r.u8()
	logN, levels := int(b&31), int(b>>5)+1
	if r.err != nil {
		return 0, nil
	}
	if logN < 1 || logN > maxLogN {
		r.failf("ring degree 2^%d out of range", logN)
		return 0, nil
	}
	q = make([]uint64, levels)
	for i := range q {
		q[i] = r.u64()
		if r.err != nil {
			return 0, nil
		}
		if q[i] < 2 || q[i] >= 1<<61 {
			r.failf("modulus %d out of range", q[i])
			return 0, nil
		}
	}
	return 1 << logN, q
}

// expectRemaining fails unless exactly n bytes are left; decoders call it before they
// allocate the polynomials, so a short message cannot make them allocate much.
func (r *reader) expectRemaining(n int, what string) {
	if r.err == nil && r.remaining() != n {
		r.failf("%s: %d bytes left, want exactly %d", what, r.remaining(), n)
	}
}

// poly reads N coefficients per prime of q, each below its prime, into a new polynomial of
// len(q) levels.
func (r *reader) poly(n int, q []uint64) ring.Poly {
	if r.err != nil || 8*n*len(q) > r.remaining() {
		r.take(8 * n * len(q)) // fails
		return ring.Poly{}
	}
	out := ring.NewPoly(n, len(q)-1)
	if r.polyInto(out, n, q); r.err != nil {
		return ring.Poly{}
	}
	return out
}

// polyInto reads N coefficients per prime of q, each below its prime, into out (len(q)
// levels of n coefficients).
func (r *reader) polyInto(out ring.Poly, n int, q []uint64) {
	p := r.take(8 * n * len(q))
	if p == nil {
		return
	}
	for l, ql := range q {
		b := p[8*n*l : 8*n*(l+1)]
		if i := coeffAbove(b, ql); i >= 0 {
			r.failCoeff(b, i, l, ql)
			return
		}
		putCoeffs(out.Coeffs[l][:n], b)
	}
}

// failCoeff fails with the error of coefficient i of prime l, in b, not below ql.
func (r *reader) failCoeff(b []byte, i, l int, ql uint64) {
	r.failf("coefficient %d = %d of prime %d not below the modulus %d", i, binary.LittleEndian.Uint64(b[8*i:]), l, ql)
}

// coeffAbove returns the index of the first little-endian uint64 of b (len(b) a multiple
// of 8) that is not below q, or −1 if there is none. It reads b eight coefficients at a
// time, with one comparison per eight and no bounds checks in the loop, or with AVX-512
// where the machine has it (coeffs_amd64.s).
func coeffAbove(b []byte, q uint64) int {
	le := binary.LittleEndian
	i := 0
	if v := len(b) / 8 &^ 31; haveVecCoeffs && v > 0 {
		if maxCoeffsVec(&b[0], v) < q {
			i = v // else the loops below find the first
		}
	}
	for ; len(b) >= 8*(i+8); i += 8 {
		c := b[8*i : 8*i+64]
		if max(le.Uint64(c[0:]), le.Uint64(c[8:]), le.Uint64(c[16:]), le.Uint64(c[24:]),
			le.Uint64(c[32:]), le.Uint64(c[40:]), le.Uint64(c[48:]), le.Uint64(c[56:])) >= q {
			break
		}
	}
	for ; len(b) >= 8*(i+1); i++ {
		if le.Uint64(b[8*i:]) >= q {
			return i
		}
	}
	return -1
}

// checkAddCoeffs adds the little-endian uint64s of b (8·len(dst) bytes) to dst modulo q,
// in place — the ring addition of lattigo's evaluator (each sum reduced once by q), read
// straight from the bytes, branch-free within a group — a group of coefficients at a time (32 with AVX-512, 8 in
// the Go loop, then one by one), each group checked below q in the registers it is added
// from: every byte is read once, and a coefficient that is not below q is never added. It
// stops before the first group holding one and returns the number of coefficients added,
// a prefix of dst (len(dst) if every coefficient of b was below q).
func checkAddCoeffs(dst []uint64, b []byte, q uint64) int {
	le := binary.LittleEndian
	b = b[:8*len(dst)]
	i := 0
	if v := len(dst) &^ 31; haveVecCoeffs && v > 0 {
		if i = checkAddCoeffsVec(&dst[0], &b[0], v, q); i < v {
			return i
		}
	}
	for ; len(dst) >= i+8; i += 8 {
		d, c := dst[i:i+8:i+8], b[8*i:8*i+64:8*i+64]
		c0, c1, c2, c3 := le.Uint64(c[0:]), le.Uint64(c[8:]), le.Uint64(c[16:]), le.Uint64(c[24:])
		c4, c5, c6, c7 := le.Uint64(c[32:]), le.Uint64(c[40:]), le.Uint64(c[48:]), le.Uint64(c[56:])
		if max(c0, c1, c2, c3, c4, c5, c6, c7) >= q {
			return i
		}
		d[0], d[1], d[2], d[3] = addMod(d[0], c0, q), addMod(d[1], c1, q), addMod(d[2], c2, q), addMod(d[3], c3, q)
		d[4], d[5], d[6], d[7] = addMod(d[4], c4, q), addMod(d[5], c5, q), addMod(d[6], c6, q), addMod(d[7], c7, q)
	}
	for ; i < len(dst); i++ {
		c := le.Uint64(b[8*i:])
		if c >= q {
			return i
		}
		dst[i] = addMod(dst[i], c, q)
	}
	return i
}

// subCoeffs subtracts the little-endian uint64s of b (8·len(dst) bytes or more) from dst
// modulo q, in place: it undoes checkAddCoeffs of the same bytes, bit for bit. It reports
// whether every coefficient of b it read was below q, and stops at the first that is not
// (dst is then partly updated). Only a refused upload runs it.
func subCoeffs(dst []uint64, b []byte, q uint64) bool {
	le := binary.LittleEndian
	b = b[:8*len(dst)]
	for i := range dst {
		c := le.Uint64(b[8*i:])
		if c >= q {
			return false
		}
		dst[i] = subMod(dst[i], c, q)
	}
	return true
}

// subMod returns a − b mod q for a, b < q, without a branch.
func subMod(a, b, q uint64) uint64 {
	d, borrow := bits.Sub64(a, b, 0)
	return d + q&-borrow
}

// addMod returns a + b mod q for a, b < q < 2^63, without a branch.
func addMod(a, b, q uint64) uint64 {
	s := a + b
	t, borrow := bits.Sub64(s, q, 0)
	return t + q&-borrow
}

// done fails if bytes are left over, and returns the first error wrapped with the message
// name.
func (r *reader) done() error {
	if r.err == nil && r.remaining() != 0 {
		r.failf("%d trailing bytes", r.remaining())
	}
	if r.err != nil {
		return fmt.Errorf("secagg: decode %s: %w", r.msg, r.err)
	}
	return nil
}

// logNOf returns log2 n for a power of two n.
func logNOf(n int) int {
	l := 0
	for 1<<l < n {
		l++
	}
	return l
}

// checkRing reports whether a decoded message was made for the parameters' ring.
func checkRing(p Parameters, n int, q []uint64, what string) error {
	if n != p.N() || !slices.Equal(q, p.Moduli()) {
		return fmt.Errorf("secagg: %s is for ring N=%d Q=%v, but the parameters have N=%d Q=%v (parties must share one ParametersLiteral)", what, n, q, p.N(), p.Moduli())
	}
	return nil
}
