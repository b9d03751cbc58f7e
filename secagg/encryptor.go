package secagg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/confide-fl/confide/dp"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// EncryptorConfig configures a client's Encryptor.
type EncryptorConfig struct {
	// ClientID names the client in its uploads (1…256 bytes); the aggregator accepts one
	// update per client id and round.
	ClientID string
	// Workers is the number of goroutines that encrypt chunks in parallel (default 1). A
	// simulator running many clients at once keeps 1 and runs clients in parallel instead.
	Workers int
	// Randomness is the source of the encryption randomness; nil (the default, and the only
	// choice in production) is crypto/rand. With DeterministicRandomness each chunk's
	// randomness is a function of (seed, label, session, client id, round, purpose, the
	// update and weight, chunk index): the same update encrypts to the same bytes, whatever
	// Workers.
	Randomness *Randomness
	// Signer and Verifier make the client hold against an active server (doc.go, "Trust
	// model"). With a Verifier, NewEncryptor checks the public key (VerifyPublicKey, with
	// Floors) and refuses to encrypt under a key it cannot trace to the CA's identities.
	// With a Signer, Encrypt commits to and signs every upload; ClientID must then be the
	// certificate's identity (empty takes it). Give both or neither; without them (nil) the
	// client trusts the server's key as in the passive model.
	Signer   *Signer
	Verifier *Verifier
	// Floors are the client's own minimums for the committee that made the key: each
	// non-zero field is a lower bound on the roster's Size, Threshold and MinContributions.
	// Only with a Verifier (without one the key's committee is not authenticated).
	Floors CommitteeConfig
}

// UploadContext is what an upload is for: the round, the purpose of its aggregate, the
// server's task id and the task's digest. A signed upload binds all four.
type UploadContext struct {
	Round   uint64
	Purpose Purpose
	TaskID  string
	// TaskDigest is the client's digest of every setting of its task that sizes the update
	// and its noise (the model it starts from, the learning rate, the clips, the noise
	// shares; not the task id or anything that differs between the clients of one
	// aggregate). Verifying members decrypt only sums whose uploads all carry one digest,
	// so a server cannot give one client the real task and the others settings that shrink
	// their updates and noise shares to nothing (ErrMixedTasks).
	TaskDigest [32]byte
}

// Encryptor is a client's encryption step: it encrypts update vectors under the collective
// public key. Its methods must not be called concurrently; it parallelises internally with
// one encoder (ShallowCopy) and one set of buffers per worker, and draws each chunk's
// randomness from a stream of its own (see encryptPk).
type Encryptor struct {
	params  Parameters
	session SessionID
	cfg     EncryptorConfig
	pk      *rlwe.PublicKey
	ecds    []*hefloat.Encoder
	pts     []*rlwe.Plaintext
	vals    [][]float64
	ints    [][]uint64   // packed encoding: one chunk's quantised values, per worker
	noise   []*rand.Rand // packed encoding with NoiseVariance, production: dp.SecureRand per worker
	bufs    []ring.Poly
	encs    []*rlwe.Encryptor // lattigo's public-key encryptors, one per worker (secure default)
}

// NewEncryptor prepares encryption under pk: it recomputes the key from the roster and the
// dealers' shares and, with a Verifier, checks it (VerifyPublicKey).
func NewEncryptor(params Parameters, pk *PublicKey, cfg EncryptorConfig) (*Encryptor, error) {
	if (cfg.Signer == nil) != (cfg.Verifier == nil) {
		return nil, fmt.Errorf("secagg: give the encryptor both a Signer and a Verifier (active-server model) or neither (passive)")
	}
	if cfg.Signer != nil {
		if cfg.ClientID == "" {
			cfg.ClientID = cfg.Signer.Identity()
		}
		if cfg.ClientID != cfg.Signer.Identity() {
			return nil, fmt.Errorf("secagg: client id %q differs from the certificate's identity %q", cfg.ClientID, cfg.Signer.Identity())
		}
	}
	if len(cfg.ClientID) < 1 || len(cfg.ClientID) > maxClientIDLength {
		return nil, fmt.Errorf("secagg: client id %q: must be 1…%d bytes", cfg.ClientID, maxClientIDLength)
	}
	if cfg.Verifier != nil {
		if err := VerifyPublicKey(params, pk, cfg.Verifier, cfg.Floors); err != nil {
			return nil, err
		}
	} else if cfg.Floors != (CommitteeConfig{}) {
		return nil, fmt.Errorf("secagg: committee floors without a Verifier: the key's committee is not authenticated")
	}
	rpk, err := pk.rlwe(params)
	if err != nil {
		return nil, err
	}
	cfg.Workers = clampWorkers(cfg.Workers)
	e := &Encryptor{params: params, session: pk.Session, cfg: cfg, pk: rpk}
	// 53 bits: the notes' encoder-precision pitfall (larger silently switches to big.Float).
	ecd := hefloat.NewEncoder(params.he, 53)
	var enc *rlwe.Encryptor
	if !cfg.Randomness.Deterministic() {
		enc = rlwe.NewEncryptor(params.he, rpk)
	}
	for w := 0; w < cfg.Workers; w++ {
		if enc != nil {
			if w == 0 {
				e.encs = append(e.encs, enc)
			} else {
				e.encs = append(e.encs, enc.ShallowCopy())
			}
		}
		if w == 0 {
			e.ecds = append(e.ecds, ecd)
		} else {
			e.ecds = append(e.ecds, ecd.ShallowCopy())
		}
		pt := hefloat.NewPlaintext(params.he, params.he.MaxLevel())
		pt.IsBatched = false // coefficient encoding: N values per ciphertext, no FFT noise blow-up
		e.pts = append(e.pts, pt)
		if params.pack != nil {
			e.ints = append(e.ints, make([]uint64, params.N()*params.pack.perCoeff))
			if params.pack.noiseClamp != 0 && !cfg.Randomness.Deterministic() {
				src, err := dp.SecureRand()
				if err != nil {
					return nil, fmt.Errorf("secagg: the discrete noise source: %w", err)
				}
				e.noise = append(e.noise, src)
			}
		} else {
			e.vals = append(e.vals, make([]float64, params.N()))
		}
		e.bufs = append(e.bufs, params.he.RingQ().NewPoly())
	}
	return e, nil
}

// EncryptUpdate is Encrypt for a round with no purpose or task id: the passive model's
// upload. An encryptor with a Signer refuses it (call Encrypt).
func (e *Encryptor) EncryptUpdate(round uint64, update []float64, weight float64) (*EncryptedUpdate, error) {
	return e.Encrypt(UploadContext{Round: round}, update, weight)
}

// Encrypt encrypts (weight·update, weight, 1) for an upload. Every |update[j]| must be at
// most ClipBound and 0 < weight ≤ MaxWeight, so the aggregate cannot overflow; non-finite
// values are refused. With a Signer it commits to the ciphertexts and signs (session,
// round, purpose, task id, task digest, dimension, commitment); the purpose must then be
// fit, evaluation or statistics. The update is not modified. EncryptBinary returns the
// same upload marshalled, without holding its ciphertexts.
func (e *Encryptor) Encrypt(ctx UploadContext, update []float64, weight float64) (*EncryptedUpdate, error) {
	en, u, err := e.begin(ctx, update, weight)
	if err != nil {
		return nil, err
	}
	u.chunks = make([]*rlwe.Ciphertext, en.chunks)
	c0Digests := e.encryptChunks(en, func(_, k int) *rlwe.Ciphertext {
		u.chunks[k] = hefloat.NewCiphertext(e.params.he, 1, e.params.he.MaxLevel())
		return u.chunks[k]
	}, nil)
	if err := firstError(en.errs); err != nil {
		return nil, fmt.Errorf("secagg: encrypting the update: %w", err)
	}
	if e.cfg.Signer != nil {
		if err := e.sign(u, commitUpload(e.params.N(), u.q, u.chunks, e.cfg.Workers, false, c0Digests)); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// EncryptBinary is Encrypt followed by EncryptedUpdate.MarshalBinary, byte for byte, but
// streamed over the ciphertexts: each chunk is encrypted, digested and written into the
// marshalled upload, and its ciphertext reused for the next (one per worker), so that
// beside the update the client holds the marshalled upload and Workers chunks, not the
// ciphertexts as well. The commitment's leaves are hashed from the marshalled c1 bytes, and
// the header (which holds the commitment and the signature) is written last, in front of
// the ciphertexts: the result may start a few bytes into its array (an ECDSA signature's
// length is known only once signed).
func (e *Encryptor) EncryptBinary(ctx UploadContext, update []float64, weight float64) ([]byte, error) {
	en, u, err := e.begin(ctx, update, weight)
	if err != nil {
		return nil, err
	}
	n, levels := e.params.N(), e.params.Levels()
	cw := chunkWireSize(n, levels)
	room := updateSize(n, levels, 0, len(u.ClientID), len(u.TaskID), 0, 0) // the header, less certificate and signature
	if e.cfg.Signer != nil {
		room += len(e.cfg.Signer.Certificate()) + MaxSignatureBytes
	}
	out := make([]byte, room+en.chunks*cw)
	cts := make([]*rlwe.Ciphertext, e.cfg.Workers)
	c0Digests := e.encryptChunks(en, func(w, _ int) *rlwe.Ciphertext {
		if cts[w] == nil {
			cts[w] = hefloat.NewCiphertext(e.params.he, 1, e.params.he.MaxLevel())
		}
		return cts[w]
	}, func(k int, ct *rlwe.Ciphertext) { putChunk(out[room+k*cw:room+(k+1)*cw], ct) })
	cts = nil
	if err := firstError(en.errs); err != nil {
		return nil, fmt.Errorf("secagg: encrypting the update: %w", err)
	}
	if e.cfg.Signer != nil {
		c1 := c1Bytes(out, room, en.chunks, n, levels)
		if err := e.sign(u, commitTree(n, u.q[0], c1, c0Digests, e.cfg.Workers, false)); err != nil {
			return nil, err
		}
	}
	w, err := u.header(n, en.chunks, 0)
	if err != nil {
		return nil, err
	}
	start := room - len(w.b)
	copy(out[start:room], w.b)
	return out[start:], nil
}

// encryption is one upload's encryption under way: its checked inputs and the seeds drawn
// for it.
type encryption struct {
	ctx          UploadContext
	update       []float64
	weight       float64
	digest       []byte // binds deterministic randomness to the update, so no two updates share it
	roundingSeed [32]byte
	chunks       int
	errs         []error // per chunk
}

// begin checks an upload's inputs, draws its rounding seed and returns it with the
// update's header fields (no ciphertexts).
func (e *Encryptor) begin(ctx UploadContext, update []float64, weight float64) (*encryption, *EncryptedUpdate, error) {
	lit := e.params.lit
	if e.cfg.Signer != nil && !ctx.Purpose.valid() {
		return nil, nil, fmt.Errorf("secagg: a signed upload needs a purpose (fit, evaluation or statistics), got %s", ctx.Purpose)
	}
	if len(ctx.TaskID) > maxTaskIDLength {
		return nil, nil, fmt.Errorf("secagg: task id of %d bytes exceeds %d", len(ctx.TaskID), maxTaskIDLength)
	}
	if len(update) < 1 || len(update) > MaxDim {
		return nil, nil, fmt.Errorf("secagg: update of %d values: must be 1…%d", len(update), MaxDim)
	}
	if !(weight > 0) || weight > lit.MaxWeight {
		return nil, nil, fmt.Errorf("secagg: weight %g: must be in (0, MaxWeight = %g]; normalise weights or raise MaxWeight", weight, lit.MaxWeight)
	}
	for j, x := range update {
		if !(math.Abs(x) <= lit.ClipBound) {
			return nil, nil, fmt.Errorf("secagg: update[%d] = %g: must be finite with |x| ≤ ClipBound = %g; clip the update before encrypting", j, x, lit.ClipBound)
		}
	}
	en := &encryption{ctx: ctx, update: update, weight: weight, chunks: e.params.NumChunks(len(update))}
	en.errs = make([]error, en.chunks)
	if e.cfg.Randomness.Deterministic() {
		en.digest = updateDigest(update, weight)
	}
	if e.params.pack != nil {
		if err := e.cfg.Randomness.read(en.roundingSeed[:], "quantise", e.session[:], []byte(e.cfg.ClientID), u64(ctx.Round), []byte{byte(ctx.Purpose)}, en.digest); err != nil {
			return nil, nil, fmt.Errorf("secagg: drawing the rounding seed: %w", err)
		}
	}
	u := &EncryptedUpdate{Session: e.session, Round: ctx.Round, Purpose: ctx.Purpose, ClientID: e.cfg.ClientID, TaskID: ctx.TaskID, TaskDigest: ctx.TaskDigest, Dim: len(update), q: e.params.Moduli()}
	return en, u, nil
}

// encryptChunks encrypts every chunk of the upload, in parallel over the workers: chunk k
// into the ciphertext ct(w, k) returns for its worker w, then done(k, ct) if done is not
// nil. Errors are in en.errs. With a Signer it returns the chunks' c0 digests for the
// commitment, hashed while each ciphertext is in cache.
func (e *Encryptor) encryptChunks(en *encryption, ct func(w, k int) *rlwe.Ciphertext, done func(k int, ct *rlwe.Ciphertext)) [][32]byte {
	var c0Digests [][32]byte
	if e.cfg.Signer != nil {
		c0Digests = make([][32]byte, en.chunks)
	}
	parallelFor(e.cfg.Workers, en.chunks, func(w, k int) {
		c := ct(w, k)
		if en.errs[k] = e.encryptChunk(en, w, k, c); en.errs[k] != nil {
			return
		}
		if c0Digests != nil {
			c0Digests[k] = chunkDigest(k, c)
		}
		if done != nil {
			done(k, c)
		}
	})
	return c0Digests
}

// encryptChunk encodes chunk k of the upload on worker w and encrypts it into ct.
func (e *Encryptor) encryptChunk(en *encryption, w, k int, ct *rlwe.Ciphertext) error {
	if e.params.pack != nil {
		e.encodePacked(w, k, en.update, en.weight, en.roundingSeed)
	} else if err := e.encodeFloat(w, k, en.update, en.weight); err != nil {
		return err
	}
	if e.encs != nil {
		// Production: lattigo's own public-key encryption, randomness from crypto/rand.
		return e.encs[w].Encrypt(e.pts[w], ct)
	}
	prng, err := e.cfg.Randomness.prng("encrypt", e.session[:], []byte(e.cfg.ClientID), u64(en.ctx.Round), []byte{byte(en.ctx.Purpose)}, en.digest, u64(uint64(k)))
	if err != nil {
		return err
	}
	return encryptPk(*e.params.he.GetRLWEParameters(), prng, e.pk, e.pts[w], ct, e.bufs[w])
}

// sign sets the upload's commitment (the root of tree), certificate and signature.
func (e *Encryptor) sign(u *EncryptedUpdate, tree *uploadTree) error {
	u.Commitment = tree.root
	u.Certificate = slices.Clone(e.cfg.Signer.Certificate())
	sig, err := e.cfg.Signer.sign(u.signedDigest())
	if err != nil {
		return err
	}
	u.Signature = sig
	return nil
}

// encodeFloat writes chunk k of (weight·update, weight, 1) into worker w's plaintext, one
// value per coefficient at scale Δ (lattigo's coefficient encoding).
func (e *Encryptor) encodeFloat(w, k int, update []float64, weight float64) error {
	vals := e.vals[w]
	dim := len(update)
	lo := k * len(vals)
	for i := range vals {
		switch idx := lo + i; {
		case idx < dim:
			vals[i] = weight * update[idx]
		case idx == dim:
			vals[i] = weight
		case idx == dim+1:
			vals[i] = 1
		default:
			vals[i] = 0
		}
	}
	return e.ecds[w].Encode(vals, e.pts[w])
}

// encodePacked quantises chunk k of (weight·update, weight, 1) and packs it into worker w's
// plaintext (packing.go), in the NTT domain as encryption expects. The rounding draws come
// from ChaCha8 keyed by SHA-256(seed ‖ k), so chunks are independent of the worker count.
func (e *Encryptor) encodePacked(w, k int, update []float64, weight float64, seed [32]byte) {
	pk, pt := e.params.pack, e.pts[w]
	h := sha256.New()
	h.Write(seed[:])
	h.Write(u64(uint64(k)))
	var key [32]byte
	h.Sum(key[:0])
	rounding := rand.NewChaCha8(key)
	var noise rand.Source = rounding // DeterministicRandomness: tests and simulations only
	if e.noise != nil {
		noise = e.noise[w] // production: AES-CTR keyed from crypto/rand (dp.SecureRand)
	}
	pk.quantise(e.ints[w], k, update, weight, rounding, noise)
	pk.encode(e.ints[w], pt.Value, e.params.Moduli())
	e.params.he.RingQ().NTT(pt.Value, pt.Value)
	pt.IsNTT, pt.IsBatched, pt.Scale = true, false, e.params.refScale()
}

// VerifyPublicKey is the client's check of a collective public key against an active
// server: the roster's committee is at least floors (each non-zero field a minimum) and
// valid for params; every roster entry is signed, under a certificate of the CA v trusts,
// by a distinct identity for this session, parameters and committee; at least Threshold
// distinct roster members dealt; and every dealer signed its public-key share, for this
// roster. The key itself is recomputed from those shares and the roster's common
// polynomial (NewEncryptor does so), so a key that passes is the one the signing dealers
// made: it combines the secret of at least one member outside any coalition of fewer than
// Threshold.
func VerifyPublicKey(params Parameters, pk *PublicKey, v *Verifier, floors CommitteeConfig) error {
	if v == nil {
		return fmt.Errorf("secagg: VerifyPublicKey needs a Verifier")
	}
	if pk.passed(v, floors, params.Digest()) {
		return nil // this key already passed these checks (a key is immutable)
	}
	if _, err := pk.rlwe(params); err != nil {
		return err
	}
	ro := pk.Roster
	for _, f := range []struct {
		name      string
		got, want int
	}{{"committee Size", ro.Committee.Size, floors.Size}, {"Threshold", ro.Committee.Threshold, floors.Threshold}, {"MinContributions", ro.Committee.MinContributions, floors.MinContributions}} {
		if f.got < f.want {
			return fmt.Errorf("secagg: public key of a committee with %s %d, below this client's minimum %d", f.name, f.got, f.want)
		}
	}
	if _, err := ro.verify(v); err != nil {
		return fmt.Errorf("secagg: public key: %w", err)
	}
	rd := ro.digest()
	for i, id := range pk.Dealers {
		d := pk.dealings[i]
		dd := dealingDigest(ro.Session, rd, id, d.pkShare, d.sealed)
		if _, err := v.verify(ro.Announcements[id-1].Certificate, dd, d.signature); err != nil {
			return fmt.Errorf("secagg: public key: the share of dealer %d is not signed by its certificate: %w", id, err)
		}
	}
	pk.pass(v, floors, params.Digest())
	return nil
}

// updateDigest hashes an update and its weight (the plaintext of an EncryptedUpdate).
func updateDigest(update []float64, weight float64) []byte {
	h := sha256.New()
	h.Write([]byte("confide-secagg-v1 update\x00"))
	var b [8 * 512]byte
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(weight))
	binary.LittleEndian.PutUint64(b[8:], uint64(len(update)))
	h.Write(b[:16])
	for len(update) > 0 {
		k := min(len(update), 512)
		for i, x := range update[:k] {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
		}
		h.Write(b[:8*k])
		update = update[k:]
	}
	return h.Sum(nil)
}
