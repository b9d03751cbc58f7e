package secagg

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Shamir shares travel through the server, sealed end to end: the key is
// HKDF-SHA256(X25519(dealer, recipient)) with the session and parameters as salt and the
// (dealer, recipient) pair as info, the cipher is XChaCha20-Poly1305 with a random 192-bit
// nonce, and the associated data binds session, parameters, sender and recipient. A static
// X25519 pair authenticates the dealer implicitly: only the dealer and the recipient can
// compute the key, so the relaying server can neither read nor forge a share.

const (
	sealNonceSize = chacha20poly1305.NonceSizeX
	sealTagSize   = chacha20poly1305.Overhead
)

// shareAEAD derives the AEAD for shares from dealer `from` to recipient `to`. own is the
// caller's identity key and peer the other party's public key.
func shareAEAD(own *ecdh.PrivateKey, peer [32]byte, session SessionID, params [32]byte, from, to MemberID) (cipher.AEAD, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	secret, err := own.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("X25519 with the identity key of member %d/%d: %w", from, to, err)
	}
	salt := append(session[:], params[:]...)
	key, err := hkdf.Key(sha256.New, secret, salt, fmt.Sprintf("confide-secagg-v1 shamir share %d->%d", from, to), chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(key)
}

func shareAD(session SessionID, params [32]byte, from, to MemberID) []byte {
	ad := make([]byte, 0, 64+4)
	ad = append(ad, "confide-secagg-v1 share"...)
	ad = append(ad, session[:]...)
	ad = append(ad, params[:]...)
	ad = binary.LittleEndian.AppendUint16(ad, uint16(from))
	ad = binary.LittleEndian.AppendUint16(ad, uint16(to))
	return ad
}

// checkIdentityKey rejects identity keys with which no shared secret can be derived (wrong
// length, or low-order points that make X25519 return zero).
func checkIdentityKey(k [32]byte) error {
	pub, err := ecdh.X25519().NewPublicKey(k[:])
	if err != nil {
		return err
	}
	probe, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		return err
	}
	if _, err := probe.ECDH(pub); err != nil {
		return fmt.Errorf("identity key is a low-order point: %w", err)
	}
	return nil
}

// seal encrypts plaintext with a nonce read from nonces (crypto/rand.Reader, or a
// deterministic stream that never seals two plaintexts under one key and nonce); the result
// is nonce ‖ ciphertext ‖ tag.
func seal(aead cipher.AEAD, ad, plaintext []byte, nonces io.Reader) ([]byte, error) {
	out := make([]byte, sealNonceSize, sealNonceSize+len(plaintext)+sealTagSize)
	if _, err := io.ReadFull(nonces, out); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, out[:sealNonceSize], plaintext, ad), nil
}

// open decrypts and authenticates a sealed blob.
func open(aead cipher.AEAD, ad, blob []byte) ([]byte, error) {
	if len(blob) < sealNonceSize+sealTagSize {
		return nil, fmt.Errorf("sealed share of %d bytes is too short", len(blob))
	}
	return aead.Open(nil, blob[:sealNonceSize], blob[sealNonceSize:], ad)
}
