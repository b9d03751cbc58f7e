package secagg

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"math"
	"unsafe"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// Upload commitments: a Merkle tree (SHA-256) over an upload's ciphertexts, whose root the
// client signs. A committee member cannot read the uploads an aggregate sums (8 bytes per
// value each), but it can ask the server to open a few random positions of every upload's
// c1 and check, position by position, that the aggregate's c1 is their sum (spot checks,
// spotcheck.go).
//
// Layout. Leaf j covers coefficients [j·w, (j+1)·w) of the c1 polynomial of every chunk,
// chunk after chunk (with several primes, the packed encoding, each chunk's primes one
// after the other: "chunks" below counts chunk-primes), so one leaf checks w positions in every chunk at once: a chunk's
// decryption depends on all its c1 coefficients (negacyclic product), so the server's
// useful manipulations are per chunk and every chunk must be checked. w is the smallest
// power of two with w·chunks ≥ minLeafCoefficients (w = 1 from 32 chunks up, i.e. at
// d = 10^6 and N = 2^14 a leaf is coefficient j of each of the 62 chunks), so a leaf is at
// least 256 bytes and hashing stays at SHA-256's full speed. The N/w leaves form a perfect
// binary tree. The c0 polynomials are not spot-checked (a decryption share does not depend
// on them), but the root binds them too, so a signed upload cannot be altered anywhere:
//
//	leaf_j  = SHA-256(0x00×8 ‖ c1_0[j·w…] ‖ c1_1[j·w…] ‖ … )        (uint64 little endian)
//	node    = SHA-256(0x01 ‖ left ‖ right)
//	c0_k    = SHA-256(0x03 ‖ k ‖ scale ‖ flags ‖ c0_k coefficients)
//	c0      = SHA-256(0x04 ‖ c0_0 ‖ c0_1 ‖ …)
//	root    = SHA-256(0x02 ‖ "confide-secagg-v1 upload commitment" ‖ N ‖ Q ‖ chunks ‖ c1 tree root ‖ c0)
//
// The prefixes keep leaves, nodes, digests and roots apart.

// minLeafCoefficients is the least number of coefficients a leaf covers.
const minLeafCoefficients = 32

// treeKeepFrom is the lowest tree level an Aggregator keeps: levels below it are recomputed
// from the kept coefficients when a path is opened (2^treeKeepFrom leaf hashes per opened
// leaf), which makes the kept tree 1/2^treeKeepFrom of the nodes.
const treeKeepFrom = 4

// leafLayout returns, for chunks ciphertexts of ring degree n, the coefficients per chunk a
// leaf covers, the number of leaves and the depth of the tree.
func leafLayout(n, chunks int) (width, leaves, depth int) {
	width = 1
	for width*chunks < minLeafCoefficients && width < n {
		width *= 2
	}
	leaves = n / width
	return width, leaves, logNOf(leaves)
}

// uploadTree is the commitment of one upload. An Aggregator keeps a copy of the c1
// coefficients, leaf after leaf, and the tree levels from keepFrom up, to open any leaf
// later: in memory, or written to its LeafStore (spill), where they are read back from
// when a leaf is opened.
type uploadTree struct {
	n, chunks            int    // chunks counts chunk-primes (ciphertexts × primes)
	q                    uint64 // the first prime
	width, leaves, depth int
	c1                   []uint64     // leaf j is c1[j·chunks·width:(j+1)·chunks·width]; kept trees only
	levels               [][][32]byte // levels[h] for h ≥ keepFrom (levels[depth] is the c1 root)
	keepFrom             int
	c0                   [32]byte
	root                 [32]byte
	// stored, when the tree was spilled: where c1 (at storedAt[0]) and the kept levels h ≥
	// keepFrom (at storedAt[1+h−keepFrom]) are.
	stored   io.ReaderAt
	storedAt []int64
}

// commitUpload computes the commitment of the ciphertexts (already checked to be well-formed
// level-0 ciphertexts of ring degree n), on workers goroutines. With keep it retains what
// opening a leaf needs. c0Digests, if not nil, are the chunks' c0 digests (chunkDigest)
// computed already, e.g. by the encryptor while each ciphertext was in cache.
func commitUpload(n int, q []uint64, chunks []*rlwe.Ciphertext, workers int, keep bool, c0Digests [][32]byte) *uploadTree {
	if c0Digests == nil {
		c0Digests = make([][32]byte, len(chunks))
		parallelFor(clampWorkers(workers), len(chunks), func(_, k int) { c0Digests[k] = chunkDigest(k, chunks[k]) })
	}
	var c1 [][]byte
	for _, cs := range c1Levels(chunks) {
		c1 = append(c1, coeffBytes(cs))
	}
	return commitTree(n, q[0], c1, c0Digests, workers, keep)
}

// commitTree computes the commitment of an upload from its c1 coefficients, as
// little-endian bytes (8n per chunk-prime, in the commitment's order: the wire format's,
// so a marshalled upload's bytes serve without a decoded copy), and its chunks' c0 digests
// (chunkDigest), on workers goroutines. With keep it retains what opening a leaf needs.
func commitTree(n int, q0 uint64, c1 [][]byte, c0Digests [][32]byte, workers int, keep bool) *uploadTree {
	t := &uploadTree{n: n, chunks: len(c1), q: q0}
	t.width, t.leaves, t.depth = leafLayout(n, t.chunks)
	leafLen := t.chunks * t.width
	workers = clampWorkers(workers)
	if keep {
		t.c1 = make([]uint64, t.chunks*n)
	}
	h := sha256.New()
	h.Write([]byte{0x04})
	for _, d := range c0Digests {
		h.Write(d[:])
	}
	h.Sum(t.c0[:0])

	// The leaves.
	leafHash := make([][32]byte, t.leaves)
	bufs := make([][]byte, workers)
	for w := range bufs {
		bufs[w] = make([]byte, 8, 8+8*leafLen) // the leaf prefix, eight zero bytes
	}
	// Kept coefficients are gathered straight into t.c1 and hashed from there (on a
	// little-endian machine they are the leaf's bytes), which saves a copy of every c1.
	var hs []hash.Hash
	if keep && littleEndian {
		hs = make([]hash.Hash, workers)
		for w := range hs {
			hs[w] = sha256.New()
		}
	}
	var leafPrefix [8]byte
	parallelFor(workers, t.leaves, func(w, j int) {
		if hs != nil {
			leaf := coeffBytes(t.c1[j*leafLen : (j+1)*leafLen])
			at := 0
			for _, cs := range c1 {
				at += copy(leaf[at:], cs[8*j*t.width:8*(j+1)*t.width])
			}
			h := hs[w]
			h.Reset()
			h.Write(leafPrefix[:])
			h.Write(leaf)
			h.Sum(leafHash[j][:0])
			return
		}
		buf := bufs[w][:8]
		for _, cs := range c1 {
			buf = append(buf, cs[8*j*t.width:8*(j+1)*t.width]...)
		}
		if keep {
			putCoeffs(t.c1[j*leafLen:(j+1)*leafLen], buf[8:])
		}
		leafHash[j] = sha256.Sum256(buf)
	})

	// The nodes, level by level.
	t.keepFrom = min(treeKeepFrom, t.depth)
	t.levels = make([][][32]byte, t.depth+1)
	level := leafHash
	for h := 0; ; h++ {
		if !keep || h >= t.keepFrom || h == t.depth {
			t.levels[h] = level
		}
		if h == t.depth {
			break
		}
		up := make([][32]byte, len(level)/2)
		parallelFor(min(workers, max(1, len(up)/256)), len(up), func(_, i int) {
			up[i] = hashNode(&level[2*i], &level[2*i+1])
		})
		level = up
	}
	t.root = commitmentRoot(n, t.q, t.chunks, t.levels[t.depth][0], t.c0)
	if !keep {
		t.levels = nil
	} else {
		for h := 0; h < t.keepFrom; h++ {
			t.levels[h] = nil
		}
	}
	return t
}

// putCoeffs decodes little-endian uint64s from b into cs (len(b) = 8·len(cs)).
func putCoeffs(cs []uint64, b []byte) {
	if littleEndian {
		copy(coeffBytes(cs), b)
		return
	}
	for i := range cs {
		cs[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
}

// chunkDigest is the digest of chunk k's c0 polynomial and metadata.
func chunkDigest(k int, ct *rlwe.Ciphertext) [32]byte {
	h := chunkDigestStart(k, ct.MetaData)
	for _, cs := range ct.Value[0].Coeffs {
		writeCoeffs(h, cs)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// chunkDigestBytes is chunkDigest of a chunk of metadata md whose c0 coefficients are the
// little-endian bytes c0 (prime after prime, as the wire format has them).
func chunkDigestBytes(k int, md *rlwe.MetaData, c0 []byte) [32]byte {
	h := chunkDigestStart(k, md)
	h.Write(c0)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// chunkDigestStart starts chunkDigest's hash: its prefix, k and the metadata.
func chunkDigestStart(k int, md *rlwe.MetaData) hash.Hash {
	h := sha256.New()
	var hdr [1 + 4 + 8 + 1]byte
	hdr[0] = 0x03
	binary.LittleEndian.PutUint32(hdr[1:], uint32(k))
	binary.LittleEndian.PutUint64(hdr[5:], math.Float64bits(md.Scale.Float64()))
	hdr[13] = chunkFlags(md)
	h.Write(hdr[:])
	return h
}

// c1Levels lists the c1 coefficients of the chunks, prime after prime within a chunk: the
// commitment's "chunks".
func c1Levels(chunks []*rlwe.Ciphertext) [][]uint64 {
	var out [][]uint64
	for _, ct := range chunks {
		out = append(out, ct.Value[1].Coeffs...)
	}
	return out
}

// chunkFlags encodes a ciphertext's domain flags as the wire format does.
func chunkFlags(ct *rlwe.MetaData) uint8 {
	var f uint8
	if ct.IsNTT {
		f |= flagNTT
	}
	if ct.IsBatched {
		f |= flagBatched
	}
	if ct.IsMontgomery {
		f |= flagMontgomery
	}
	return f
}

// writeCoeffs hashes coefficients as little-endian uint64s: their memory directly on a
// little-endian machine, else 512 at a time through a buffer.
func writeCoeffs(h interface{ Write([]byte) (int, error) }, cs []uint64) {
	if littleEndian {
		h.Write(coeffBytes(cs))
		return
	}
	var buf [8 * 512]byte
	for len(cs) > 0 {
		k := min(len(cs), 512)
		for i, c := range cs[:k] {
			binary.LittleEndian.PutUint64(buf[8*i:], c)
		}
		h.Write(buf[:8*k])
		cs = cs[k:]
	}
}

func hashNode(l, r *[32]byte) [32]byte {
	var b [65]byte
	b[0] = 0x01
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// hashLeaf hashes a leaf's coefficients (chunk-major, width per chunk) after the leaf
// prefix, eight zero bytes.
func hashLeaf(cs []uint64) [32]byte {
	return sha256.Sum256(coeffBytes(append([]uint64{0}, cs...)))
}

// coeffBytes returns the little-endian bytes of cs: their memory on a little-endian
// machine, a copy otherwise.
func coeffBytes(cs []uint64) []byte {
	if len(cs) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&cs[0])), 8*len(cs))
	}
	b := make([]byte, 0, 8*len(cs))
	for _, c := range cs {
		b = binary.LittleEndian.AppendUint64(b, c)
	}
	return b
}

// littleEndian reports whether the machine stores a uint64 as its little-endian bytes, so
// coefficients can be hashed in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func commitmentRoot(n int, q uint64, chunks int, c1Root, c0 [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0x02})
	h.Write([]byte("confide-secagg-v1 upload commitment"))
	var b [4 + 8 + 4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(n))
	binary.LittleEndian.PutUint64(b[4:], q)
	binary.LittleEndian.PutUint32(b[12:], uint32(chunks))
	h.Write(b[:])
	h.Write(c1Root[:])
	h.Write(c0[:])
	var r [32]byte
	h.Sum(r[:0])
	return r
}

// leafLen is the number of coefficients of a leaf.
func (t *uploadTree) leafLen() int { return t.chunks * t.width }

// block returns the coefficients of the 2^keepFrom leaves whose subtree holds leaf j (all
// that opening j needs below the kept levels), leaf after leaf, and the first one's index.
func (t *uploadTree) block(j int) (int, []uint64, error) {
	size, ll := 1<<t.keepFrom, t.leafLen()
	first := j &^ (size - 1)
	if t.stored == nil {
		return first, t.c1[first*ll : (first+size)*ll], nil
	}
	cs := make([]uint64, size*ll)
	if err := readCoeffs(t.stored, t.storedAt[0]+int64(8*first*ll), cs); err != nil {
		return 0, nil, err
	}
	return first, cs, nil
}

// open appends leaf j's coefficients to coeffs and its path (its siblings, bottom up) to
// path.
func (t *uploadTree) open(coeffs []uint64, path [][32]byte, j int) ([]uint64, [][32]byte, error) {
	first, blk, err := t.block(j)
	if err != nil {
		return nil, nil, err
	}
	ll := t.leafLen()
	coeffs = append(coeffs, blk[(j-first)*ll:(j-first+1)*ll]...)
	for h := 0; h < t.depth; h++ {
		nd, err := t.node(h, (j>>h)^1, first, blk)
		if err != nil {
			return nil, nil, err
		}
		path = append(path, nd)
	}
	return coeffs, path, nil
}

// node returns node i of level h: a kept one, or below keepFrom recomputed from blk, the
// leaves from first on that hold it.
func (t *uploadTree) node(h, i, first int, blk []uint64) ([32]byte, error) {
	var nd [32]byte
	switch {
	case h >= t.keepFrom && t.stored == nil:
		return t.levels[h][i], nil
	case h >= t.keepFrom:
		_, err := t.stored.ReadAt(nd[:], t.storedAt[1+h-t.keepFrom]+32*int64(i))
		return nd, err
	case h == 0:
		ll := t.leafLen()
		return hashLeaf(blk[(i-first)*ll : (i-first+1)*ll]), nil
	}
	l, err := t.node(h-1, 2*i, first, blk)
	if err != nil {
		return nd, err
	}
	r, err := t.node(h-1, 2*i+1, first, blk)
	return hashNode(&l, &r), err
}

// spill writes the kept coefficients and levels to store from offset off on, and drops
// them from memory; it returns the offset after them. On error the tree is unchanged.
func (t *uploadTree) spill(store LeafStore, off int64) (int64, error) {
	at := []int64{off}
	if _, err := store.WriteAt(coeffBytes(t.c1), off); err != nil {
		return off, err
	}
	end := off + 8*int64(len(t.c1))
	for h := t.keepFrom; h <= t.depth; h++ {
		at = append(at, end)
		b := unsafe.Slice((*byte)(unsafe.Pointer(&t.levels[h][0])), 32*len(t.levels[h]))
		if _, err := store.WriteAt(b, end); err != nil {
			return off, err
		}
		end += int64(len(b))
	}
	t.c1, t.levels, t.stored, t.storedAt = nil, nil, store, at
	return end, nil
}

// readCoeffs reads len(cs) little-endian uint64s at off.
func readCoeffs(r io.ReaderAt, off int64, cs []uint64) error {
	if littleEndian {
		_, err := r.ReadAt(coeffBytes(cs), off)
		return err
	}
	b := make([]byte, 8*len(cs))
	if _, err := r.ReadAt(b, off); err != nil {
		return err
	}
	putCoeffs(cs, b)
	return nil
}

// pathRoot climbs from a leaf's coefficients along its path and returns the upload root.
func pathRoot(n int, q uint64, chunks, j int, leaf []uint64, path [][32]byte, c0 [32]byte) [32]byte {
	cur := hashLeaf(leaf)
	for h, sib := range path {
		if (j>>h)&1 == 0 {
			cur = hashNode(&cur, &sib)
		} else {
			cur = hashNode(&sib, &cur)
		}
	}
	return commitmentRoot(n, q, chunks, cur, c0)
}

// memoryBytes is what a kept tree holds in memory: the c1 coefficients and the kept levels
// (none once spilled).
func (t *uploadTree) memoryBytes() int {
	b := 8 * len(t.c1)
	for _, l := range t.levels {
		b += 32 * len(l)
	}
	return b
}
