package secagg

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// Randomness is the source of a party's secret randomness: a member's X25519 identity key,
// flooding-noise key, secret key, key-generation noise, Shamir polynomial and sealing
// nonces, and a client's encryption randomness. The nil *Randomness, the default of every
// config, draws from crypto/rand (for the ring samplers through lattigo's
// sampling.NewPRNG, a BLAKE2b XOF keyed with 64 bytes of crypto/rand); production parties
// must keep it. DeterministicRandomness derives every draw from a seed instead, for tests
// and simulations.
//
// A Randomness is read-only and may be shared by goroutines; every draw derives its own
// stream from the draw's context, so results do not depend on call order or Workers.
type Randomness struct {
	key [32]byte
}

// DeterministicRandomness returns a source that derives every draw from (seed, label) and
// the draw's context — session, member id, roster, round, the update itself, chunk index —
// so that two runs with the same seed produce byte-identical identity keys, dealings,
// public keys, encrypted updates and decryption shares.
//
// FOR TESTS AND SIMULATIONS ONLY. It is not secure: whoever knows or guesses the seed and
// label can recompute every secret key of the committee and decrypt every update. Give
// every party its own label (e.g. its client id): parties sharing seed and label draw the
// same keys.
func DeterministicRandomness(seed uint64, label string) *Randomness {
	h := sha256.New()
	h.Write([]byte("confide-secagg-v1 deterministic randomness (tests and simulations only)\x00"))
	h.Write(binary.LittleEndian.AppendUint64(nil, seed))
	h.Write([]byte(label))
	r := &Randomness{}
	h.Sum(r.key[:0])
	return r
}

// Deterministic reports whether r derives its draws from a seed (false for nil, the secure
// default).
func (r *Randomness) Deterministic() bool { return r != nil }

// String describes the source without revealing its key, so printing a config that holds
// one cannot leak it.
func (r *Randomness) String() string {
	if r == nil {
		return "crypto/rand"
	}
	return "deterministic (seeded; tests and simulations only)"
}

// prng returns the stream of one draw, for lattigo's ring samplers: a fresh
// sampling.NewPRNG (keyed from crypto/rand) for the secure default, otherwise a BLAKE2b XOF
// keyed by HMAC-SHA256(seed key, purpose ‖ parts).
func (r *Randomness) prng(purpose string, parts ...[]byte) (sampling.PRNG, error) {
	if r == nil {
		return sampling.NewPRNG()
	}
	return r.keyed(purpose, parts...)
}

// reader returns the stream of one draw of bytes: crypto/rand.Reader for the secure default,
// otherwise the keyed stream of (purpose, parts).
func (r *Randomness) reader(purpose string, parts ...[]byte) (io.Reader, error) {
	if r == nil {
		return rand.Reader, nil
	}
	return r.keyed(purpose, parts...)
}

func (r *Randomness) keyed(purpose string, parts ...[]byte) (*sampling.KeyedPRNG, error) {
	mac := hmac.New(sha256.New, r.key[:])
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	var n [4]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint32(n[:], uint32(len(p)))
		mac.Write(n[:])
		mac.Write(p)
	}
	prng, err := sampling.NewKeyedPRNG(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("secagg: keyed PRNG: %w", err)
	}
	return prng, nil
}

// read fills b from the stream of (purpose, parts).
func (r *Randomness) read(b []byte, purpose string, parts ...[]byte) error {
	src, err := r.reader(purpose, parts...)
	if err != nil {
		return err
	}
	if _, err := io.ReadFull(src, b); err != nil {
		return fmt.Errorf("secagg: reading randomness: %w", err)
	}
	return nil
}

// x25519Key draws an X25519 private key. The default uses ecdh's GenerateKey; the
// deterministic source makes the key from 32 derived bytes, because since Go 1.26
// GenerateKey ignores its io.Reader (unless GODEBUG=cryptocustomrand=1) and always reads
// the system's randomness.
func (r *Randomness) x25519Key(purpose string, parts ...[]byte) (*ecdh.PrivateKey, error) {
	if r == nil {
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
	var b [32]byte
	defer clear(b[:])
	if err := r.read(b[:], purpose, parts...); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

// u64 encodes a draw-context integer.
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
