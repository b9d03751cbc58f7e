package secagg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

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
	// randomness is a function of (seed, label, session, client id, round, the update and
	// weight, chunk index): the same update encrypts to the same bytes, whatever Workers.
	Randomness *Randomness
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
	bufs    []ring.Poly
	encs    []*rlwe.Encryptor // lattigo's public-key encryptors, one per worker (secure default)
}

// NewEncryptor prepares encryption under pk.
func NewEncryptor(params Parameters, pk *PublicKey, cfg EncryptorConfig) (*Encryptor, error) {
	if len(cfg.ClientID) < 1 || len(cfg.ClientID) > maxClientIDLength {
		return nil, fmt.Errorf("secagg: client id %q: must be 1…%d bytes", cfg.ClientID, maxClientIDLength)
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
		pt := hefloat.NewPlaintext(params.he, 0)
		pt.IsBatched = false // coefficient encoding: N values per ciphertext, no FFT noise blow-up
		e.pts = append(e.pts, pt)
		e.vals = append(e.vals, make([]float64, params.N()))
		e.bufs = append(e.bufs, params.he.RingQ().NewPoly())
	}
	return e, nil
}

// EncryptUpdate encrypts (weight·update, weight, 1) for a round. Every |update[j]| must be at
// most ClipBound and 0 < weight ≤ MaxWeight, so the aggregate cannot overflow; non-finite
// values are refused. The update is not modified.
func (e *Encryptor) EncryptUpdate(round uint64, update []float64, weight float64) (*EncryptedUpdate, error) {
	lit := e.params.lit
	if len(update) < 1 || len(update) > MaxDim {
		return nil, fmt.Errorf("secagg: update of %d values: must be 1…%d", len(update), MaxDim)
	}
	if !(weight > 0) || weight > lit.MaxWeight {
		return nil, fmt.Errorf("secagg: weight %g: must be in (0, MaxWeight = %g]; normalise weights or raise MaxWeight", weight, lit.MaxWeight)
	}
	for j, x := range update {
		if !(math.Abs(x) <= lit.ClipBound) {
			return nil, fmt.Errorf("secagg: update[%d] = %g: must be finite with |x| ≤ ClipBound = %g; clip the update before encrypting", j, x, lit.ClipBound)
		}
	}
	n := e.params.N()
	dim := len(update)
	var digest []byte // binds deterministic randomness to the update, so no two updates share it
	if e.cfg.Randomness.Deterministic() {
		digest = updateDigest(update, weight)
	}
	u := &EncryptedUpdate{Session: e.session, Round: round, ClientID: e.cfg.ClientID, Dim: dim, q: e.params.Modulus(), chunks: make([]*rlwe.Ciphertext, e.params.NumChunks(dim))}
	errs := make([]error, len(u.chunks))
	parallelFor(e.cfg.Workers, len(u.chunks), func(w, k int) {
		vals := e.vals[w]
		lo := k * n
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
		if err := e.ecds[w].Encode(vals, e.pts[w]); err != nil {
			errs[k] = err
			return
		}
		ct := hefloat.NewCiphertext(e.params.he, 1, 0)
		if e.encs != nil {
			// Production: lattigo's own public-key encryption, randomness from crypto/rand.
			if err := e.encs[w].Encrypt(e.pts[w], ct); err != nil {
				errs[k] = err
				return
			}
			u.chunks[k] = ct
			return
		}
		prng, err := e.cfg.Randomness.prng("encrypt", e.session[:], []byte(e.cfg.ClientID), u64(round), digest, u64(uint64(k)))
		if err != nil {
			errs[k] = err
			return
		}
		if err := encryptPk(*e.params.he.GetRLWEParameters(), prng, e.pk, e.pts[w], ct, e.bufs[w]); err != nil {
			errs[k] = err
			return
		}
		u.chunks[k] = ct
	})
	if err := firstError(errs); err != nil {
		return nil, fmt.Errorf("secagg: encrypting the update: %w", err)
	}
	return u, nil
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
