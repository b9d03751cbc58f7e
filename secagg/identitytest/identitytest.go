// Package identitytest makes a federation's certificate authority and client identities in
// memory, for tests and simulations: secagg's signers and verifiers need X.509 certificates
// issued by a CA, and a simulator needs thousands of them cheaply.
//
// Everything is derived from a seed: the CA's Ed25519 key, every client's Ed25519 key (from
// the seed and the client's name) and the certificate serials, so two runs with the same
// seed issue byte-identical certificates (Ed25519 signatures are deterministic), and a
// client's certificate is made on demand, the first time it is asked for. Certificates are
// valid from 2000 to 2100 for TLS client authentication, like those of internal/pki.
//
// Cost: issuing one identity takes 0.12–0.32 ms of a 2-vCPU VM (BenchmarkIssue: key
// derivation, the CA's Ed25519 signature and x509's check of it), so 10,000 simulated
// clients cost 1–3 s, paid lazily; a verifier's first check of a certificate's chain takes
// 0.08–0.15 ms (BenchmarkVerifyChain) and is cached after that.
//
// FOR TESTS AND SIMULATIONS ONLY: whoever knows the seed holds every private key.
//
// It imports nothing from secagg, so secagg's own tests can use it:
//
//	ca, _ := identitytest.NewCA(1)
//	id, _ := ca.Issue("client-7")
//	signer, _ := secagg.NewSigner(id.Certificate, id.Key)
//	verifier, _ := secagg.NewVerifier([]*x509.Certificate{ca.Certificate()}, nil)
package identitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Validity of every certificate made here.
var (
	NotBefore = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	NotAfter  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Identity is a client's certificate (DER) and its private key.
type Identity struct {
	Certificate []byte
	Key         crypto.Signer
}

// CA is an in-memory certificate authority. It is safe for concurrent use.
type CA struct {
	seed [32]byte
	key  ed25519.PrivateKey
	cert *x509.Certificate

	mu     sync.Mutex
	issued map[string]Identity
}

// NewCA makes the CA of seed.
func NewCA(seed uint64) (*CA, error) {
	ca := &CA{issued: map[string]Identity{}}
	h := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("confide identitytest (tests and simulations only)\x00"), seed))
	ca.seed = h
	ca.key = ed25519.NewKeyFromSeed(ca.derive("ca key"))
	tmpl := &x509.Certificate{
		SerialNumber:          ca.serial("ca"),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("confide test CA %d", seed)},
		NotBefore:             NotBefore,
		NotAfter:              NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, ca.key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("identitytest: CA certificate: %w", err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("identitytest: CA certificate: %w", err)
	}
	return ca, nil
}

// Certificate returns the CA certificate, the trust anchor of the federation's verifiers.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Issue returns the identity of the client name: an Ed25519 key derived from the CA's seed
// and name, and a certificate for TLS client authentication whose subject common name is
// name. Asking again returns the same identity.
func (ca *CA) Issue(name string) (Identity, error) {
	ca.mu.Lock()
	id, ok := ca.issued[name]
	ca.mu.Unlock()
	if ok {
		return id, nil
	}
	key := ed25519.NewKeyFromSeed(ca.derive("client key", name))
	id, err := ca.IssueWith(name, key, Options{})
	if err != nil {
		return Identity{}, err
	}
	ca.mu.Lock()
	ca.issued[name] = id
	ca.mu.Unlock()
	return id, nil
}

// IssueECDSA returns an identity with an ECDSA P-256 key (as internal/pki issues), derived
// from the seed and name; it is not cached.
func (ca *CA) IssueECDSA(name string) (Identity, error) {
	for i := uint64(0); ; i++ {
		d := ca.derive("client ecdsa key", name, string(binary.LittleEndian.AppendUint64(nil, i)))
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			continue // d ≥ the group order or zero: vanishingly rare, try the next
		}
		return ca.IssueWith(name, key, Options{})
	}
}

// Options vary a certificate from the default, to test what verifiers refuse.
type Options struct {
	// NotBefore and NotAfter replace the default validity when non-zero.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage replaces the default (TLS client authentication) when non-nil.
	ExtKeyUsage []x509.ExtKeyUsage
}

// IssueWith issues a certificate for name and key with the options applied.
func (ca *CA) IssueWith(name string, key crypto.Signer, o Options) (Identity, error) {
	if name == "" {
		return Identity{}, errors.New("identitytest: a certificate needs a name")
	}
	tmpl := &x509.Certificate{
		SerialNumber:          ca.serial("client", name),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             NotBefore,
		NotAfter:              NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if !o.NotBefore.IsZero() {
		tmpl.NotBefore = o.NotBefore
	}
	if !o.NotAfter.IsZero() {
		tmpl.NotAfter = o.NotAfter
	}
	if o.ExtKeyUsage != nil {
		tmpl.ExtKeyUsage = o.ExtKeyUsage
	}
	der, err := x509.CreateCertificate(nil, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return Identity{}, fmt.Errorf("identitytest: certificate of %s: %w", name, err)
	}
	return Identity{Certificate: der, Key: key}, nil
}

// derive returns 32 bytes of the CA's seed for a purpose and its parts.
func (ca *CA) derive(purpose string, parts ...string) []byte {
	h := sha256.New()
	h.Write(ca.seed[:])
	var n [8]byte
	for _, p := range append([]string{purpose}, parts...) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// serial is a positive 127-bit serial number derived from the seed.
func (ca *CA) serial(parts ...string) *big.Int {
	b := ca.derive("serial", parts...)[:16]
	b[0] &= 0x7f
	b[0] |= 0x40
	return new(big.Int).SetBytes(b)
}
