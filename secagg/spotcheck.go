package secagg

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// Spot checks. A verifying member decrypts in two steps. Challenge records the aggregate as
// the one it will decrypt for the round and purpose (durably, before it answers), then
// returns s leaf indices of the upload commitments (commitment.go) drawn by a PRF keyed by
// the member's secret noise key over the aggregate's binding: the server cannot predict
// them before it has committed to the aggregate, and the member recomputes them after a
// restart. The server answers with an Opening: for every listed upload, the coefficients of
// each challenged leaf and their Merkle path to the upload's signed root. DecryptionShare
// then checks every path and that, at every opened position, the aggregate's c1 is the sum
// mod Q of the uploads' c1: otherwise it refuses (ErrSpotCheck).

// Challenge is a member's answer to a DecryptionRequest before it decrypts: the commitment
// leaves it wants opened (ascending).
type Challenge struct {
	Session   SessionID
	Round     uint64
	Purpose   Purpose
	Aggregate AggregateID
	From      MemberID
	Leaves    []uint32
}

// MarshalBinary encodes the challenge.
func (c *Challenge) MarshalBinary() ([]byte, error) {
	if len(c.Leaves) == 0 || len(c.Leaves) > MaxSpotChecks {
		return nil, fmt.Errorf("secagg: challenge of %d leaves: must be 1…%d", len(c.Leaves), MaxSpotChecks)
	}
	w := newWriter(challengeHeaderSize+4*len(c.Leaves), typeChallenge)
	w.raw(c.Session[:])
	w.u64(c.Round)
	w.u8(uint8(c.Purpose))
	w.raw(c.Aggregate[:])
	w.u16(uint16(c.From))
	w.leaves(c.Leaves)
	return w.b, nil
}

const challengeHeaderSize = 4 + 16 + 8 + 1 + 32 + 2 + 2

// UnmarshalBinary decodes a challenge; it never panics on malformed input.
func (c *Challenge) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeChallenge, "challenge")
	var out Challenge
	r.fixed(out.Session[:])
	out.Round = r.u64()
	out.Purpose = Purpose(r.u8())
	r.fixed(out.Aggregate[:])
	out.From = MemberID(r.u16())
	out.Leaves = r.leaves()
	if err := r.done(); err != nil {
		return err
	}
	*c = out
	return nil
}

// leaves writes an ascending leaf list.
func (w *writer) leaves(ls []uint32) {
	w.u16(uint16(len(ls)))
	for _, l := range ls {
		w.u32(l)
	}
}

// leaves reads 1…MaxSpotChecks strictly ascending leaf indices.
func (r *reader) leaves() []uint32 {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n < 1 || n > MaxSpotChecks || 4*n > r.remaining() {
		r.failf("%d leaves: must be 1…%d", n, MaxSpotChecks)
		return nil
	}
	ls := make([]uint32, n)
	for i := range ls {
		ls[i] = r.u32()
		if i > 0 && ls[i] <= ls[i-1] {
			r.failf("leaves not strictly ascending")
			return nil
		}
	}
	return ls
}

// Opening is the server's answer to a Challenge: for every upload the request lists (in its
// order), the challenged leaves' coefficients and Merkle paths, and the digest of the
// upload's c0 polynomials (the last input of its root).
type Opening struct {
	Session   SessionID
	Round     uint64
	Purpose   Purpose
	Aggregate AggregateID
	To        MemberID
	Leaves    []uint32
	chunks    int
	width     int
	depth     int
	uploads   []uploadOpening
}

// uploadOpening opens the challenged leaves of one upload.
type uploadOpening struct {
	c0     [32]byte
	coeffs []uint64   // leaf after leaf, chunks·width coefficients each
	path   [][32]byte // leaf after leaf, depth siblings each, bottom up
}

const openingHeaderSize = 4 + 16 + 8 + 1 + 32 + 2 + 4 + 4 + 1 + 2 + 4

// openingUploadSize is the encoded size of one upload's part of an Opening.
func openingUploadSize(leaves, chunks, width, depth int) int {
	return 32 + leaves*(8*chunks*width+32*depth)
}

// MarshalBinary encodes the opening.
func (o *Opening) MarshalBinary() ([]byte, error) {
	s := len(o.Leaves)
	if s == 0 || s > MaxSpotChecks || len(o.uploads) == 0 || o.chunks < 1 || o.width < 1 || o.depth > maxLogN {
		return nil, fmt.Errorf("secagg: opening is empty or malformed")
	}
	per := openingUploadSize(s, o.chunks, o.width, o.depth)
	w := newWriter(openingHeaderSize+4*s+len(o.uploads)*per, typeOpening)
	w.raw(o.Session[:])
	w.u64(o.Round)
	w.u8(uint8(o.Purpose))
	w.raw(o.Aggregate[:])
	w.u16(uint16(o.To))
	w.u32(uint32(o.chunks))
	w.u32(uint32(o.width))
	w.u8(uint8(o.depth))
	w.leaves(o.Leaves)
	w.u32(uint32(len(o.uploads)))
	for i, u := range o.uploads {
		if len(u.coeffs) != s*o.chunks*o.width || len(u.path) != s*o.depth {
			return nil, fmt.Errorf("secagg: opening of upload %d is malformed", i)
		}
		w.raw(u.c0[:])
		for _, c := range u.coeffs {
			w.u64(c)
		}
		for _, p := range u.path {
			w.raw(p[:])
		}
	}
	return w.b, nil
}

// UnmarshalBinary decodes an opening; it never panics on malformed input.
func (o *Opening) UnmarshalBinary(p []byte) error {
	r := newReader(p, typeOpening, "opening")
	var out Opening
	r.fixed(out.Session[:])
	out.Round = r.u64()
	out.Purpose = Purpose(r.u8())
	r.fixed(out.Aggregate[:])
	out.To = MemberID(r.u16())
	chunks, width, depth := r.u32(), r.u32(), int(r.u8())
	if r.err == nil && (chunks < 1 || chunks > MaxDim || width < 1 || width > 1<<maxLogN || uint64(chunks)*uint64(width) > 1<<24 || depth > maxLogN) {
		r.failf("layout of %d chunks, leaf width %d, depth %d out of range", chunks, width, depth)
	}
	out.chunks, out.width, out.depth = int(chunks), int(width), depth
	out.Leaves = r.leaves()
	nu := int(r.u32())
	if r.err == nil {
		per := openingUploadSize(len(out.Leaves), out.chunks, out.width, out.depth)
		if nu < 1 || per > r.remaining() || nu > r.remaining()/per {
			r.failf("%d uploads of %d bytes each in %d bytes", nu, per, r.remaining())
		}
		r.expectRemaining(nu*per, "opened uploads")
	}
	if r.err == nil {
		s := len(out.Leaves)
		out.uploads = make([]uploadOpening, nu)
		for i := range out.uploads {
			u := &out.uploads[i]
			r.fixed(u.c0[:])
			u.coeffs = make([]uint64, s*out.chunks*out.width)
			for j := range u.coeffs {
				u.coeffs[j] = r.u64()
			}
			u.path = make([][32]byte, s*out.depth)
			for j := range u.path {
				r.fixed(u.path[j][:])
			}
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*o = out
	return nil
}

// bindingDigest binds an aggregate to its request: the aggregate's content and the signed
// commitments it claims to sum, for the session, round, purpose, dimension and count. A
// verifying member records it per (round, purpose) and keys its spot checks with it.
func bindingDigest(req *DecryptionRequest) [32]byte {
	fields := [][]byte{req.Aggregate[:], req.Session[:], le64(req.Round), {byte(req.Purpose)}, le64(uint64(req.Dim)), le64(uint64(req.Count))}
	for _, c := range req.Commitments {
		h := sha256.Sum256(c.Certificate)
		fields = append(fields, h[:], []byte(c.TaskID), c.TaskDigest[:], c.Root[:])
	}
	return transcriptDigest("aggregate binding", fields...)
}

// spotLeaves draws the member's s distinct leaves (ascending) of a tree of leaves leaves:
// a PRF of its noise key and the binding, so the server cannot predict them and the member
// recomputes them.
func (m *Member) spotLeaves(binding [32]byte, leaves int) ([]uint32, error) {
	mac := hmac.New(sha256.New, m.noiseKey[:])
	mac.Write([]byte("confide-secagg-v1 spot check"))
	mac.Write(binding[:])
	prng, err := sampling.NewKeyedPRNG(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	s := min(m.cfg.SpotChecks, leaves)
	picked := make([]uint32, 0, s)
	var b [8]byte
	for len(picked) < s {
		if _, err := prng.Read(b[:]); err != nil {
			return nil, err
		}
		// leaves ≤ 2^17: the modulo bias of a 64-bit draw is below 2^-47.
		l := uint32(binary.LittleEndian.Uint64(b[:]) % uint64(leaves))
		if !slices.Contains(picked, l) {
			picked = append(picked, l)
		}
	}
	slices.Sort(picked)
	return picked, nil
}

// verifyOpening checks the server's opening of the member's leaves: every path leads to the
// upload's signed root, and at every opened position the request's c1 is the sum mod Q of
// the uploads' coefficients. Errors wrap ErrSpotCheck.
func verifyOpening(params Parameters, req *DecryptionRequest, member MemberID, leaves []uint32, o *Opening) error {
	if o.Session != req.Session || o.Round != req.Round || o.Purpose != req.Purpose || o.Aggregate != req.Aggregate {
		return fmt.Errorf("opening for session %s round %d %s aggregate %s, not this request's: %w", o.Session, o.Round, o.Purpose, o.Aggregate, ErrWrongSession)
	}
	if o.To != member {
		return fmt.Errorf("opening for member %d: %w", o.To, ErrWrongSession)
	}
	if !slices.Equal(o.Leaves, leaves) {
		return fmt.Errorf("opening of leaves %v, challenged %v: %w", o.Leaves, leaves, ErrSpotCheck)
	}
	n, qs, levels := params.N(), params.Moduli(), params.Levels()
	q, chunks := qs[0], len(req.c1)*levels
	width, _, depth := leafLayout(n, chunks)
	if o.chunks != chunks || o.width != width || o.depth != depth {
		return fmt.Errorf("opening of layout (%d chunks, width %d, depth %d), want (%d, %d, %d): %w", o.chunks, o.width, o.depth, chunks, width, depth, ErrSpotCheck)
	}
	if len(o.uploads) != len(req.Commitments) {
		return fmt.Errorf("opening of %d uploads, the request lists %d: %w", len(o.uploads), len(req.Commitments), ErrSpotCheck)
	}
	leafLen := chunks * width
	sum := make([]uint64, len(leaves)*leafLen)
	for i, u := range o.uploads {
		if len(u.coeffs) != len(sum) || len(u.path) != len(leaves)*depth {
			return fmt.Errorf("opening of upload %d is malformed: %w", i, ErrSpotCheck)
		}
		for s, l := range leaves {
			cs := u.coeffs[s*leafLen : (s+1)*leafLen]
			for j, c := range cs {
				if c >= qs[j/width%levels] {
					return fmt.Errorf("upload %d: opened coefficient not below the modulus: %w", i, ErrSpotCheck)
				}
			}
			if pathRoot(n, q, chunks, int(l), cs, u.path[s*depth:(s+1)*depth], u.c0) != req.Commitments[i].Root {
				return fmt.Errorf("upload %d: leaf %d does not open to its signed commitment: %w", i, l, ErrSpotCheck)
			}
			acc := sum[s*leafLen : (s+1)*leafLen]
			for j, c := range cs {
				acc[j] += c
				if ql := qs[j/width%levels]; acc[j] >= ql {
					acc[j] -= ql
				}
			}
		}
	}
	for s, l := range leaves {
		for k := range chunks {
			got := req.c1[k/levels].Coeffs[k%levels][int(l)*width : (int(l)+1)*width]
			want := sum[s*leafLen+k*width : s*leafLen+(k+1)*width]
			if !slices.Equal(got, want) {
				return fmt.Errorf("the aggregate's c1 of chunk %d at leaf %d is not the sum of the %d listed uploads: %w", k, l, len(o.uploads), ErrSpotCheck)
			}
		}
	}
	return nil
}
