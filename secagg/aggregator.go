package secagg

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// AggregatorConfig configures the server's aggregate of one round.
type AggregatorConfig struct {
	Session   SessionID
	Round     uint64
	Dim       int // length of every update vector
	Committee CommitteeConfig
	// Workers is the number of goroutines that add and decode chunks in parallel (default 1).
	Workers int
	// Purpose is what the aggregate is for (fit updates or evaluation statistics); uploads
	// must carry the same purpose. Required with a Verifier.
	Purpose Purpose
	// Verifier makes the aggregate hold against active clients and the network, and lets it
	// answer verifying members: Add accepts only uploads signed, for this session, round and
	// purpose, by a certificate of the CA whose identity is the upload's ClientID, whose
	// commitment matches its ciphertexts; DecryptionRequest lists their signed commitments,
	// and Open answers members' spot checks. It keeps every accepted upload's c1 for that
	// (8 bytes per value and upload; see doc.go). Nil is the passive model.
	Verifier *Verifier
	// Store, when set, holds what a Verifier's aggregate keeps of every upload (its c1
	// coefficients and commitment tree) instead of memory: each accepted upload is written
	// to it, one after the other from offset 0, and read back only to open spot checks, so
	// the aggregate's memory does not grow with its uploads (the signed commitments stay,
	// ≈ 450 bytes each). The runtime gives it a temporary file; Release closes it.
	Store LeafStore
}

// LeafStore is where an Aggregator keeps its uploads' commitment trees (AggregatorConfig.Store);
// an *os.File is one. If it is an io.Closer, Release closes it.
type LeafStore interface {
	io.ReaderAt
	io.WriterAt
}

// Aggregator is the server's side of the aggregate of one round and purpose: it validates
// and adds encrypted updates into one running sum per chunk, asks a member set for
// decryption shares, answers the members' spot checks (Open, with a Verifier), and combines
// the shares into the plaintext sum. It cannot decrypt anything by itself. It is a
// single-threaded state machine with no I/O (it parallelises internally with one evaluator
// ShallowCopy per worker).
type Aggregator struct {
	params  Parameters
	cfg     AggregatorConfig
	evals   []*hefloat.Evaluator
	ecds    []*hefloat.Encoder
	sum     []*rlwe.Ciphertext
	clients map[string]struct{}
	uploads []acceptedUpload // with a Verifier: every accepted upload, in Add order
	order   []int            // uploads in the order of the request's commitments
	request *DecryptionRequest
	broken  error // set if an add failed half-way; the aggregate is then unusable
	stored  int64 // bytes written to cfg.Store
}

// acceptedUpload is what an Aggregator with a Verifier keeps of an upload: its signed
// commitment and the tree that opens it.
type acceptedUpload struct {
	identity   string
	commitment UploadCommitment
	tree       *uploadTree
}

// NewAggregator starts an empty aggregate.
func NewAggregator(params Parameters, cfg AggregatorConfig) (*Aggregator, error) {
	if err := cfg.Committee.Validate(params); err != nil {
		return nil, err
	}
	if cfg.Dim < 1 || cfg.Dim > MaxDim {
		return nil, fmt.Errorf("secagg: aggregator dimension %d: must be 1…%d", cfg.Dim, MaxDim)
	}
	if cfg.Verifier != nil && !cfg.Purpose.valid() {
		return nil, fmt.Errorf("secagg: an aggregator with a Verifier needs a purpose (fit, evaluation or statistics), got %s", cfg.Purpose)
	}
	cfg.Workers = clampWorkers(cfg.Workers)
	a := &Aggregator{params: params, cfg: cfg, clients: map[string]struct{}{}}
	eval := hefloat.NewEvaluator(params.he, nil)
	ecd := hefloat.NewEncoder(params.he, 53)
	for w := 0; w < cfg.Workers; w++ {
		if w == 0 {
			a.evals, a.ecds = append(a.evals, eval), append(a.ecds, ecd)
		} else {
			a.evals, a.ecds = append(a.evals, eval.ShallowCopy()), append(a.ecds, ecd.ShallowCopy())
		}
	}
	return a, nil
}

// Count returns the number of updates added.
func (a *Aggregator) Count() int { return len(a.clients) }

// Contributors returns the client ids whose updates were added, sorted.
func (a *Aggregator) Contributors() []string {
	ids := make([]string, 0, len(a.clients))
	for id := range a.clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// checkCiphertext validates one uploaded ciphertext against the parameters before it is
// added: lattigo would silently rescale on a scale mismatch and lower the level on a level
// mismatch, so both are errors here.
func (a *Aggregator) checkCiphertext(ct *rlwe.Ciphertext, clientID string, k int) error {
	if err := a.checkMetadata(ct); err != nil {
		return fmt.Errorf("secagg: update of client %q: ciphertext %d: %v", clientID, k, err)
	}
	return nil
}

// checkMetadata is checkCiphertext's check, its error without context.
func (a *Aggregator) checkMetadata(ct *rlwe.Ciphertext) error {
	n := a.params.N()
	switch {
	case ct == nil || ct.MetaData == nil:
		return fmt.Errorf("missing")
	case len(ct.Value) != 2:
		return fmt.Errorf("degree %d, want 1", len(ct.Value)-1)
	case len(ct.Value[0].Coeffs) != a.params.Levels() || len(ct.Value[1].Coeffs) != a.params.Levels():
		return fmt.Errorf("level %d, want %d", ct.Level(), a.params.Levels()-1)
	case !shaped(ct.Value[0], n, a.params.Levels()) || !shaped(ct.Value[1], n, a.params.Levels()):
		return fmt.Errorf("ring degree %d, want %d", ct.Value[0].N(), n)
	}
	return a.checkMeta(ct.MetaData)
}

// checkMeta is checkMetadata's check of a ciphertext's scale and encoding flags.
func (a *Aggregator) checkMeta(md *rlwe.MetaData) error {
	switch {
	case md.Scale.Cmp(a.params.refScale()) != 0:
		return fmt.Errorf("scale 2^%.2f, want 2^%d", math.Log2(md.Scale.Float64()), a.params.lit.LogScale)
	case md.IsBatched:
		return fmt.Errorf("slot-encoded (IsBatched), want coefficient encoding")
	case !md.IsNTT || md.IsMontgomery:
		return fmt.Errorf("domain flags NTT=%v Montgomery=%v, want NTT only", md.IsNTT, md.IsMontgomery)
	}
	return nil
}

// Add validates an update (session, round, purpose, dimension, client id, every
// ciphertext's degree, level, ring, scale and encoding flags; with a Verifier also its
// certificate, signature and commitment) and adds it into the running sums. A rejected
// update leaves the aggregate unchanged. With a Verifier the aggregator keeps the update's
// c1 coefficients (a copy) to open them later.
func (a *Aggregator) Add(u *EncryptedUpdate) error {
	accepted, err := a.check(u)
	if err != nil {
		return err
	}
	return a.add(&checkedUpload{clientID: u.ClientID, chunks: len(u.chunks), chunk: chunkOf(u.chunks), accepted: accepted})
}

// AddBinary is Add of a marshalled update (EncryptedUpdate.MarshalBinary's or
// Encryptor.EncryptBinary's bytes), read chunk by chunk from p instead of decoded whole.
// It checks each ciphertext where it lies in p, as UnmarshalBinary and Add do (its metadata
// against the wire format and the parameters, every coefficient below its prime), and adds
// its coefficients from p into the running sums; beside what the aggregate keeps, it decodes
// nothing into memory of its own. accept, if not nil, is given the upload's client and task
// ids once its header is decoded and refuses it by returning an error. A rejected update
// leaves the aggregate unchanged (bit for bit). p must not change during the call.
//
// Without a Verifier the upload's bytes are read once (addWire): the metadata of every
// chunk is checked first, then the polynomials are added from p a group of coefficients at
// a time, each group checked below its prime in the registers it is added from
// (checkAddCoeffs). A coefficient not below its prime stops the add: what was added of the
// upload is subtracted again, bit for bit, and the upload refused with the error
// UnmarshalBinary gives. With a Verifier nothing is added before the upload passed: a first
// pass checks every chunk and digests its c0, the commitment's tree is built from the c1
// bytes of p (into the copy the aggregate keeps), the signature and root are checked, and
// only then a second pass adds the chunks from p (checking their metadata and coefficients
// again on the way). Bytes changed during the call break the aggregate (it is discarded)
// where a check sees the change, rather than corrupt it; a change no check sees adds other
// coefficients below their primes or, to a refused upload without a Verifier, may leave
// the subtraction short of what was added.
func (a *Aggregator) AddBinary(p []byte, accept func(clientID, taskID string) error) error {
	u, wire, k, err := a.binaryHeader(p, accept)
	if err != nil {
		return err
	}
	if a.cfg.Verifier == nil {
		return a.addWire(wire, k, u.ClientID)
	}
	c, err := a.checkWire(&u, wire, k)
	if err != nil {
		return err
	}
	return a.add(c)
}

// checkedUpload is an upload that passed the checks, not added yet: its ciphertexts are
// decoded (chunk returns ciphertext k) or lie in the bytes of wire.
type checkedUpload struct {
	clientID string
	chunks   int
	chunk    func(w, k int) (*rlwe.Ciphertext, error) // nil for an upload read from its bytes
	wire     *wireChunks
	accepted *acceptedUpload
}

// wireChunks are the marshalled ciphertexts of an upload: chunk k is
// p[base+k·size : base+(k+1)·size], of ring degree n over the primes q.
type wireChunks struct {
	p          []byte
	base, size int
	n          int
	q          []uint64
}

// bytes returns chunk k's bytes.
func (c *wireChunks) bytes(k int) []byte { return c.p[c.base+k*c.size : c.base+(k+1)*c.size] }

// block returns the bytes of block j of chunk k: its polynomial j/len(q)'s coefficients of
// prime j%len(q) (8·n bytes).
func (c *wireChunks) block(k, j int) []byte {
	b := c.bytes(k)[chunkMetaSize:]
	return b[8*c.n*j : 8*c.n*(j+1)]
}

// meta reads and checks chunk k's metadata as UnmarshalBinary and Add do; the reader is
// left at its polynomials.
func (a *Aggregator) chunkMeta(c *wireChunks, k int, clientID string) (*reader, rlwe.MetaData, error) {
	r := &reader{b: c.bytes(k), msg: "encrypted update"}
	md, ok := r.chunkMeta(k, c.n, len(c.q))
	if !ok {
		return r, md, r.done()
	}
	if err := a.checkMeta(&md); err != nil {
		return r, md, fmt.Errorf("secagg: update of client %q: ciphertext %d: %v", clientID, k, err)
	}
	return r, md, nil
}

// checkBinary is the validation of AddBinary with a Verifier and of Subtotal.CheckBinary:
// everything but the add, which reads the chunks from p again.
func (a *Aggregator) checkBinary(p []byte, accept func(clientID, taskID string) error) (*checkedUpload, error) {
	u, wire, k, err := a.binaryHeader(p, accept)
	if err != nil {
		return nil, err
	}
	return a.checkWire(&u, wire, k)
}

// binaryHeader decodes and checks the header of an upload's bytes (accept as AddBinary's)
// and locates its k chunks.
func (a *Aggregator) binaryHeader(p []byte, accept func(clientID, taskID string) error) (EncryptedUpdate, *wireChunks, int, error) {
	r := newReader(p, typeUpdate, "encrypted update")
	u, n, k := r.updateHeader()
	if r.err != nil {
		return u, nil, 0, r.done()
	}
	if accept != nil {
		if err := accept(u.ClientID, u.TaskID); err != nil {
			return u, nil, 0, err
		}
	}
	if err := a.checkHeader(&u, k); err != nil {
		return u, nil, 0, err
	}
	if n != a.params.N() {
		return u, nil, 0, fmt.Errorf("secagg: update of client %q is for ring degree %d, want %d", u.ClientID, n, a.params.N())
	}
	return u, &wireChunks{p: p, base: r.off, size: chunkWireSize(n, len(u.q)), n: n, q: u.q}, k, nil
}

// checkWire checks the k chunks of an upload's bytes whose header binaryHeader checked (and,
// with a Verifier, its commitment and signature): everything but the add.
func (a *Aggregator) checkWire(u *EncryptedUpdate, wire *wireChunks, k int) (*checkedUpload, error) {
	var c0Digests [][32]byte
	if a.cfg.Verifier != nil {
		c0Digests = make([][32]byte, k)
	}
	if err := a.checkChunks(wire, k, u.ClientID, c0Digests); err != nil {
		return nil, err
	}
	var accepted *acceptedUpload
	if a.cfg.Verifier != nil {
		var err error
		accepted, err = a.authenticate(u, func() *uploadTree {
			return commitTree(wire.n, u.q[0], c1Bytes(wire.p, wire.base, k, wire.n, len(u.q)), c0Digests, a.cfg.Workers, true)
		})
		if err != nil {
			return nil, err
		}
	}
	return &checkedUpload{clientID: u.ClientID, chunks: k, wire: wire, accepted: accepted}, nil
}

// checkChunks checks the k chunks of an upload's bytes (checkChunk, in parallel) and returns
// the error of the first that fails.
func (a *Aggregator) checkChunks(c *wireChunks, k int, clientID string, c0Digests [][32]byte) error {
	errs := make([]error, k)
	parallelFor(a.cfg.Workers, k, func(_, i int) {
		errs[i] = a.checkChunk(c, i, clientID, c0Digests)
	})
	return firstError(errs)
}

// addWireHook, if not nil, is called by addWire after it added (or refused) block j of
// chunk k (tests change the bytes there).
var addWireHook func(k, j int)

// addWire is AddBinary without a Verifier, reading the upload's bytes once: it checks the
// metadata of all its chunks, then adds their polynomials in parallel over blocks of 8·n
// bytes (a chunk's polynomial over one prime) by checkAddCoeffs, which checks each group of
// coefficients below its prime in the registers it adds them from. A coefficient that is
// not below its prime is not added and stops every worker at its next block: what was
// added of the upload is subtracted again (subCoeffs, which leaves the sums as they were
// before the call bit for bit, and drops the sums the call created), and the upload is
// checked again as checkWire checks it, for the error UnmarshalBinary and Add give. Bytes
// changed during the call such that a check sees them (a coefficient no longer below its
// prime when it is subtracted, a refused upload that passes the second check) break the
// aggregate: the subtraction may have missed the change.
func (a *Aggregator) addWire(c *wireChunks, chunks int, clientID string) error {
	mds := make([]rlwe.MetaData, chunks)
	for k := range chunks {
		_, md, err := a.chunkMeta(c, k, clientID)
		if err != nil {
			return a.refuseWire(c, chunks, clientID) // nothing added
		}
		mds[k] = md
	}
	fresh := a.sum == nil
	if fresh {
		a.sum = make([]*rlwe.Ciphertext, chunks)
	}
	created := make([]bool, chunks)
	for k, sum := range a.sum {
		if sum == nil {
			sum = hefloat.NewCiphertext(a.params.he, 1, a.params.he.MaxLevel())
			*sum.MetaData = mds[k]
			a.sum[k], created[k] = sum, true
		}
	}
	levels := len(c.q)
	blocks := 2 * levels
	added := make([]int, chunks*blocks) // coefficients of block i added, a prefix
	parallelDrain(a.cfg.Workers, chunks*blocks, func(i int) bool {
		k, j := i/blocks, i%blocks
		l := j % levels
		added[i] = checkAddCoeffs(a.sum[k].Value[j/levels].Coeffs[l][:c.n], c.block(k, j), c.q[l])
		if addWireHook != nil {
			addWireHook(k, j)
		}
		return added[i] == c.n
	})
	if !slices.ContainsFunc(added, func(m int) bool { return m < c.n }) {
		a.clients[clientID] = struct{}{}
		return nil
	}
	for i, m := range added {
		k, j := i/blocks, i%blocks
		l := j % levels
		if m == 0 || created[k] {
			continue
		}
		if !subCoeffs(a.sum[k].Value[j/levels].Coeffs[l][:m], c.block(k, j), c.q[l]) {
			return a.discard(fmt.Sprintf("refusing the update of client %q", clientID), fmt.Errorf("secagg: update of client %q: ciphertext %d holds a coefficient of prime %d not below the modulus %d: its bytes changed after they were added", clientID, k, l, c.q[l]))
		}
	}
	for k := range created {
		if created[k] {
			a.sum[k] = nil
		}
	}
	if fresh {
		a.sum = nil
	}
	return a.refuseWire(c, chunks, clientID)
}

// refuseWire returns the error of an upload's bytes that addWire refused, as checkWire
// finds it; if they pass now, they changed during the call, and the aggregate, whose sums
// may then be off by the change, is discarded.
func (a *Aggregator) refuseWire(c *wireChunks, chunks int, clientID string) error {
	if err := a.checkChunks(c, chunks, clientID, nil); err != nil {
		return err
	}
	return a.discard(fmt.Sprintf("refusing the update of client %q", clientID), fmt.Errorf("secagg: update of client %q: its bytes changed during the add", clientID))
}

// discard breaks the aggregate after what failed half-way (err), and returns the error it
// answers from then on.
func (a *Aggregator) discard(what string, err error) error {
	a.broken = fmt.Errorf("secagg: round %d: %s failed half-way (%w); the aggregate is discarded", a.cfg.Round, what, err)
	return a.broken
}

// checkChunk checks chunk i of an upload's bytes as UnmarshalBinary and Add check it: its
// metadata, with the error Add gives, after every coefficient of c0 then c1, prime after
// prime, below its prime, with the error UnmarshalBinary gives. With c0Digests it sets
// c0Digests[i] to the chunk's c0 digest.
func (a *Aggregator) checkChunk(c *wireChunks, i int, clientID string, c0Digests [][32]byte) error {
	r, md, metaErr := a.chunkMeta(c, i, clientID)
	if r.err != nil {
		return metaErr
	}
	polys := r.take(16 * c.n * len(c.q))
	for j := 0; polys != nil && j < 2*len(c.q); j++ {
		l := j % len(c.q)
		b := polys[8*c.n*j : 8*c.n*(j+1)]
		if at := coeffAbove(b, c.q[l]); at >= 0 {
			r.failCoeff(b, at, l, c.q[l])
			break
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	if metaErr != nil {
		return metaErr
	}
	if c0Digests != nil {
		c0Digests[i] = chunkDigestBytes(i, &md, polys[:8*c.n*len(c.q)])
	}
	return nil
}

// check validates an upload as Add does, without adding it; with a Verifier it returns
// what the aggregate keeps of it (its signed commitment and tree).
func (a *Aggregator) check(u *EncryptedUpdate) (*acceptedUpload, error) {
	if u == nil {
		return nil, fmt.Errorf("secagg: nil update")
	}
	if err := a.checkHeader(u, len(u.chunks)); err != nil {
		return nil, err
	}
	for k, ct := range u.chunks {
		if err := a.checkCiphertext(ct, u.ClientID, k); err != nil {
			return nil, err
		}
	}
	if a.cfg.Verifier == nil {
		return nil, nil
	}
	return a.authenticate(u, func() *uploadTree {
		return commitUpload(a.params.N(), a.params.Moduli(), u.chunks, a.cfg.Workers, true, nil)
	})
}

// checkHeader validates what an upload of chunks ciphertexts says besides them, as Add
// does: the aggregate's state, session, round, client id, dimension, their number and the
// modulus.
func (a *Aggregator) checkHeader(u *EncryptedUpdate, chunks int) error {
	if a.broken != nil {
		return a.broken
	}
	if a.request != nil {
		return fmt.Errorf("secagg: update of client %q for round %d: %w", u.ClientID, a.cfg.Round, ErrFrozen)
	}
	if u.Session != a.cfg.Session || u.Round != a.cfg.Round {
		return fmt.Errorf("secagg: update of client %q is for session %s round %d, aggregating session %s round %d: %w", u.ClientID, u.Session, u.Round, a.cfg.Session, a.cfg.Round, ErrWrongSession)
	}
	if u.ClientID == "" {
		return fmt.Errorf("secagg: update without a client id")
	}
	if _, dup := a.clients[u.ClientID]; dup {
		return fmt.Errorf("secagg: client %q already contributed to round %d: %w", u.ClientID, a.cfg.Round, ErrDuplicate)
	}
	if len(a.clients) >= a.params.lit.MaxContributors {
		return fmt.Errorf("secagg: aggregate already holds MaxContributors = %d updates; another could overflow the modulus", a.params.lit.MaxContributors)
	}
	if u.Dim != a.cfg.Dim {
		return fmt.Errorf("secagg: update of client %q has dimension %d, want %d", u.ClientID, u.Dim, a.cfg.Dim)
	}
	if want := a.params.NumChunks(a.cfg.Dim); chunks != want {
		return fmt.Errorf("secagg: update of client %q holds %d ciphertexts, want %d", u.ClientID, chunks, want)
	}
	if !slices.Equal(u.q, a.params.Moduli()) {
		return fmt.Errorf("secagg: update of client %q is for modulus %v, want %v (%s)", u.ClientID, u.q, a.params.Moduli(), a.params.EncodingName())
	}
	return nil
}

// add adds a checked upload to the running sums, and keeps what a Verifier's aggregate
// keeps of it.
func (a *Aggregator) add(c *checkedUpload) error {
	clientID, accepted := c.clientID, c.accepted
	if accepted != nil && a.cfg.Store != nil {
		end, err := accepted.tree.spill(a.cfg.Store, a.stored)
		if err != nil {
			return fmt.Errorf("secagg: keeping the commitment tree of client %q's update (the aggregator's store): %w", clientID, err)
		}
		a.stored = end
	}
	// An error is unreachable for validated input; the sums may be partly updated, so
	// accumulate refuses more.
	what := fmt.Sprintf("adding the update of client %q", clientID)
	var err error
	if c.wire != nil {
		err = a.accumulateWire(c.wire, c.chunks, clientID, what)
	} else {
		err = a.accumulate(c.chunks, c.chunk, false, what)
	}
	if err != nil {
		return err
	}
	a.clients[clientID] = struct{}{}
	if accepted != nil {
		a.uploads = append(a.uploads, *accepted)
	}
	return nil
}

// accumulateWire adds the checked chunks of an upload's bytes into the running sums, in
// parallel over chunks: each coefficient is read from the bytes and added modulo its prime
// (checkAddCoeffs, the evaluator's addition). The metadata and the coefficients' range are
// checked again on the way: bytes changed since they were checked fail, with the sums
// partly updated, and the aggregate is then broken.
func (a *Aggregator) accumulateWire(c *wireChunks, chunks int, clientID, what string) error {
	if a.sum == nil {
		a.sum = make([]*rlwe.Ciphertext, chunks)
	}
	levels := len(c.q)
	errs := make([]error, chunks)
	parallelFor(a.cfg.Workers, chunks, func(_, k int) {
		r, md, err := a.chunkMeta(c, k, clientID)
		if err != nil {
			errs[k] = err
			return
		}
		sum := a.sum[k]
		if sum == nil {
			sum = hefloat.NewCiphertext(a.params.he, 1, a.params.he.MaxLevel())
			*sum.MetaData = md
			a.sum[k] = sum
		}
		polys := r.take(16 * c.n * levels)
		for j := 0; j < 2*levels; j++ {
			l := j % levels
			if checkAddCoeffs(sum.Value[j/levels].Coeffs[l][:c.n], polys[8*c.n*j:8*c.n*(j+1)], c.q[l]) < c.n {
				errs[k] = fmt.Errorf("secagg: update of client %q: ciphertext %d holds a coefficient of prime %d not below the modulus %d: its bytes changed after they were checked", clientID, k, l, c.q[l])
				return
			}
		}
	})
	if err := firstError(errs); err != nil {
		return a.discard(what, err)
	}
	return nil
}

// authenticate checks an upload's purpose, certificate, signature and commitment (the root
// of the tree commit computes, over its ciphertexts, with what opening a leaf needs), and
// returns what the aggregator keeps of it.
func (a *Aggregator) authenticate(u *EncryptedUpdate, commit func() *uploadTree) (*acceptedUpload, error) {
	if u.Purpose != a.cfg.Purpose {
		return nil, fmt.Errorf("secagg: update of client %q is for the %s aggregate, this is the %s aggregate: %w", u.ClientID, u.Purpose, a.cfg.Purpose, ErrWrongSession)
	}
	c := u.commitment()
	id, err := c.verify(a.cfg.Verifier, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, a.cfg.Dim)
	if err != nil {
		return nil, fmt.Errorf("secagg: update of client %q is not signed for session %s, round %d, %s: %w", u.ClientID, a.cfg.Session, a.cfg.Round, a.cfg.Purpose, err)
	}
	if id != u.ClientID {
		return nil, fmt.Errorf("secagg: update names client %q but its certificate is %q: %w", u.ClientID, id, ErrUnauthenticated)
	}
	tree := commit()
	if tree.root != u.Commitment {
		return nil, fmt.Errorf("secagg: update of client %q: its ciphertexts do not match its signed commitment: %w", u.ClientID, ErrUnauthenticated)
	}
	c.Certificate, c.Signature = slices.Clone(c.Certificate), slices.Clone(c.Signature)
	return &acceptedUpload{identity: id, commitment: c, tree: tree}, nil
}

// DecryptionRequest freezes the aggregate and returns the request to send, unchanged, to
// every member of the set: exactly Threshold distinct member ids (they are sorted). With a
// Verifier it lists the signed commitments of every added upload (sorted by certificate),
// and verifying members answer with a Challenge first (Open). Calling it again with another
// set replaces the pending request; members that already answered (or were challenged for)
// the first set refuse the second (ErrAlreadyDecrypted), so choose members known to be
// online.
func (a *Aggregator) DecryptionRequest(members []MemberID) (*DecryptionRequest, error) {
	c := a.cfg.Committee
	if a.broken != nil {
		return nil, a.broken
	}
	if a.Count() < c.MinContributions {
		return nil, fmt.Errorf("secagg: round %d holds %d updates, the committee decrypts only %d or more: %w", a.cfg.Round, a.Count(), c.MinContributions, ErrTooFewContributions)
	}
	set := slices.Clone(members)
	slices.Sort(set)
	if err := checkMemberSet(set, c.Size, c.Threshold, -1); err != nil {
		return nil, fmt.Errorf("secagg: decryption set: %w", err)
	}
	if len(set) != c.Threshold {
		return nil, fmt.Errorf("secagg: decryption set of %d members, want exactly the threshold %d", len(set), c.Threshold)
	}
	c1 := make([]ring.Poly, len(a.sum))
	for k, ct := range a.sum {
		c1[k] = ct.Value[1]
	}
	var id AggregateID
	if a.request != nil {
		id = a.request.Aggregate
	} else {
		id = aggregateID(a.cfg.Session, a.cfg.Dim, a.params, c1)
	}
	if a.request == nil && a.cfg.Verifier != nil {
		a.order = make([]int, len(a.uploads))
		for i := range a.order {
			a.order[i] = i
		}
		slices.SortFunc(a.order, func(i, j int) int {
			return bytes.Compare(a.uploads[i].commitment.Certificate, a.uploads[j].commitment.Certificate)
		})
	}
	req := &DecryptionRequest{Session: a.cfg.Session, Round: a.cfg.Round, Purpose: a.cfg.Purpose, Aggregate: id, Dim: a.cfg.Dim, Count: a.Count(), Members: set, q: a.params.Moduli(), c1: c1}
	for _, i := range a.order {
		req.Commitments = append(req.Commitments, a.uploads[i].commitment)
	}
	a.request = req
	return a.request, nil
}

// Open answers a verifying member's challenge on the pending request: for every upload the
// request lists, the challenged leaves' coefficients and Merkle paths.
func (a *Aggregator) Open(ch *Challenge) (*Opening, error) {
	if a.broken != nil {
		return nil, a.broken
	}
	req := a.request
	if req == nil {
		return nil, fmt.Errorf("secagg: no pending decryption request for round %d (call DecryptionRequest first)", a.cfg.Round)
	}
	if a.cfg.Verifier == nil {
		return nil, fmt.Errorf("secagg: an aggregator without a Verifier keeps no commitments to open")
	}
	if ch.Session != req.Session || ch.Round != req.Round || ch.Purpose != req.Purpose || ch.Aggregate != req.Aggregate {
		return nil, fmt.Errorf("secagg: challenge from member %d is for session %s round %d %s aggregate %s, pending %s round %d %s aggregate %s: %w", ch.From, ch.Session, ch.Round, ch.Purpose, ch.Aggregate, req.Session, req.Round, req.Purpose, req.Aggregate, ErrWrongSession)
	}
	if !slices.Contains(req.Members, ch.From) {
		return nil, fmt.Errorf("secagg: challenge from member %d, who is not in the set %v", ch.From, req.Members)
	}
	chunks := len(a.sum) * a.params.Levels() // the commitment's chunk-primes
	width, leaves, depth := leafLayout(a.params.N(), chunks)
	if err := checkLeaves(ch.Leaves, leaves); err != nil {
		return nil, err
	}
	o := &Opening{Session: req.Session, Round: req.Round, Purpose: req.Purpose, Aggregate: req.Aggregate, To: ch.From, Leaves: slices.Clone(ch.Leaves), chunks: chunks, width: width, depth: depth, uploads: make([]uploadOpening, len(a.order))}
	// One goroutine: an opening copies a few leaves per upload (MaxSpotChecks at most), and
	// the coordinator calls Open inside Step, which starts no goroutine.
	for i, k := range a.order {
		u, err := openUpload(a.uploads[k].tree, ch.Leaves, chunks, width, depth)
		if err != nil {
			return nil, fmt.Errorf("secagg: opening the update of %s from the aggregator's store: %w", a.uploads[k].identity, err)
		}
		o.uploads[i] = u
	}
	return o, nil
}

// KeptBytes returns the memory the aggregator holds to answer spot checks: the c1
// coefficients of every accepted upload and the kept levels of their trees (0 without a
// Verifier, and with a Store).
func (a *Aggregator) KeptBytes() int {
	b := 0
	for _, u := range a.uploads {
		b += u.tree.memoryBytes()
	}
	return b
}

// StoredBytes returns the bytes written to the Store.
func (a *Aggregator) StoredBytes() int64 { return a.stored }

// Release ends the aggregate: it drops what it kept of the uploads and closes the Store if
// it is an io.Closer. The aggregate refuses everything after.
func (a *Aggregator) Release() error {
	if a.broken == nil {
		a.broken = fmt.Errorf("secagg: the aggregate of round %d was released", a.cfg.Round)
	}
	a.uploads, a.sum = nil, nil
	if c, ok := a.cfg.Store.(io.Closer); ok {
		a.cfg.Store = nil
		return c.Close()
	}
	return nil
}

// AggregateResult is a decrypted aggregate.
type AggregateResult struct {
	Round       uint64
	Count       int       // updates in the aggregate, confirmed by the decrypted count slot
	TotalWeight float64   // Σ w_i, decrypted
	WeightedSum []float64 // Σ w_i·u_i, decrypted; error about Parameters.ErrorStd(t) per coordinate
}

// Mean returns WeightedSum / TotalWeight, the weighted mean of the updates.
func (r *AggregateResult) Mean() ([]float64, error) {
	if !(r.TotalWeight > 0) {
		return nil, fmt.Errorf("secagg: total weight %g: cannot form a mean", r.TotalWeight)
	}
	out := make([]float64, len(r.WeightedSum))
	for i, v := range r.WeightedSum {
		out[i] = v / r.TotalWeight
	}
	return out, nil
}

// Combine checks the shares against the pending request (exactly one from each member of
// the set, same session, round and aggregate), adds them to the aggregate and decodes it.
// The decrypted count slot must match the number of updates added: otherwise a share was
// wrong and the result is refused with ErrInconsistentDecryption.
func (a *Aggregator) Combine(shares []*DecryptionShare) (*AggregateResult, error) {
	if a.broken != nil {
		return nil, a.broken
	}
	req := a.request
	if req == nil {
		return nil, fmt.Errorf("secagg: no pending decryption request for round %d (call DecryptionRequest first)", a.cfg.Round)
	}
	if len(shares) != len(req.Members) {
		return nil, fmt.Errorf("secagg: %d decryption shares for a set of %d members %v: every member of the set must answer (or request again with another set)", len(shares), len(req.Members), req.Members)
	}
	byMember := map[MemberID]*DecryptionShare{}
	for _, s := range shares {
		if s == nil {
			return nil, fmt.Errorf("secagg: nil decryption share")
		}
		if s.Session != req.Session || s.Round != req.Round || s.Aggregate != req.Aggregate {
			return nil, fmt.Errorf("secagg: share from member %d is for session %s round %d aggregate %s, pending %s round %d aggregate %s: %w", s.From, s.Session, s.Round, s.Aggregate, req.Session, req.Round, req.Aggregate, ErrWrongSession)
		}
		if !slices.Equal(s.Members, req.Members) {
			return nil, fmt.Errorf("secagg: share from member %d was made for set %v, pending set %v: %w", s.From, s.Members, req.Members, ErrWrongSession)
		}
		if !slices.Contains(req.Members, s.From) {
			return nil, fmt.Errorf("secagg: share from member %d, who is not in the set %v", s.From, req.Members)
		}
		if _, dup := byMember[s.From]; dup {
			return nil, fmt.Errorf("secagg: two shares from member %d: %w", s.From, ErrDuplicate)
		}
		if len(s.shares) != len(req.c1) {
			return nil, fmt.Errorf("secagg: share from member %d holds %d polynomials, want %d", s.From, len(s.shares), len(req.c1))
		}
		if !slices.Equal(s.q, a.params.Moduli()) {
			return nil, fmt.Errorf("secagg: share from member %d is for modulus %v, want %v", s.From, s.q, a.params.Moduli())
		}
		if !allShaped(s.shares, a.params.N(), a.params.Levels()) {
			return nil, fmt.Errorf("secagg: share from member %d holds a polynomial of the wrong shape", s.From)
		}
		byMember[s.From] = s
	}
	d := a.cfg.Dim
	if a.params.pack != nil {
		sums, err := a.decryptPacked(shares)
		if err != nil {
			return nil, err
		}
		weighted, total, count := a.params.pack.values(sums, d)
		if count != uint64(a.Count()) {
			return nil, fmt.Errorf("secagg: round %d: decrypted count %d, but %d updates were added (a share is wrong or for another set): %w", a.cfg.Round, count, a.Count(), ErrInconsistentDecryption)
		}
		return &AggregateResult{Round: a.cfg.Round, Count: a.Count(), TotalWeight: total, WeightedSum: weighted}, nil
	}
	ext, err := a.decrypt(shares)
	if err != nil {
		return nil, err
	}
	res := &AggregateResult{Round: a.cfg.Round, Count: a.Count(), TotalWeight: ext[d], WeightedSum: ext[:d:d]}
	if math.Abs(ext[d+1]-float64(res.Count)) > 0.5 {
		return nil, fmt.Errorf("secagg: round %d: decrypted count %.3f, but %d updates were added (a share is wrong or for another set): %w", a.cfg.Round, ext[d+1], res.Count, ErrInconsistentDecryption)
	}
	return res, nil
}

// decrypt adds the shares into c0 of every chunk (lattigo's KeySwitchProtocol.AggregateShares
// and KeySwitch to the zero key, inlined: the result c0 + Σ h_i is the plaintext) and decodes.
func (a *Aggregator) decrypt(shares []*DecryptionShare) ([]float64, error) {
	n := a.params.N()
	ringQ := a.params.he.RingQ()
	ext := make([]float64, len(a.sum)*n)
	pts := make([]*rlwe.Plaintext, a.cfg.Workers)
	for w := range pts {
		pts[w] = hefloat.NewPlaintext(a.params.he, 0)
	}
	errs := make([]error, len(a.sum))
	parallelFor(a.cfg.Workers, len(a.sum), func(w, k int) {
		pt := pts[w]
		ct := a.sum[k]
		*pt.MetaData = *ct.MetaData
		pt.Value.Copy(ct.Value[0])
		for _, s := range shares {
			ringQ.Add(pt.Value, s.shares[k], pt.Value)
		}
		errs[k] = a.ecds[w].Decode(pt, ext[k*n:(k+1)*n])
	})
	if err := firstError(errs); err != nil {
		return nil, fmt.Errorf("secagg: decoding the aggregate: %w", err)
	}
	return ext, nil
}

// decryptPacked adds the shares into c0 of every chunk, as decrypt does, and reads the
// packed slot sums (packing.go): back to the coefficient domain, CRT over the primes,
// rounding away the decryption noise. A coefficient that does not decode (an overflowed
// sum, a wrong share) fails with ErrInconsistentDecryption.
func (a *Aggregator) decryptPacked(shares []*DecryptionShare) ([]uint64, error) {
	n, v := a.params.N(), a.params.pack.perCoeff
	ringQ := a.params.he.RingQ()
	sums := make([]uint64, len(a.sum)*n*v)
	polys := make([]ring.Poly, a.cfg.Workers)
	coeffs := make([][]*big.Int, a.cfg.Workers)
	for w := range polys {
		polys[w] = ringQ.NewPoly()
		coeffs[w] = make([]*big.Int, n)
		for i := range coeffs[w] {
			coeffs[w][i] = new(big.Int)
		}
	}
	errs := make([]error, len(a.sum))
	parallelFor(a.cfg.Workers, len(a.sum), func(w, k int) {
		p := polys[w]
		p.Copy(a.sum[k].Value[0])
		for _, s := range shares {
			ringQ.Add(p, s.shares[k], p)
		}
		ringQ.INTT(p, p)
		if err := a.params.pack.decode(ringQ, p, sums[k*n*v:(k+1)*n*v], coeffs[w]); err != nil {
			errs[k] = fmt.Errorf("ciphertext %d: %v: %w", k, err, ErrInconsistentDecryption)
		}
	})
	if err := firstError(errs); err != nil {
		return nil, fmt.Errorf("secagg: round %d: decoding the packed aggregate: %w", a.cfg.Round, err)
	}
	return sums, nil
}
