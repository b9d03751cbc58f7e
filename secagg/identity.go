package secagg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Identities. Against an active server every piece of key material and every upload is
// signed by the party that made it, with the key of an X.509 certificate the federation's
// CA issued to that party; the certified identity is the certificate's subject common name
// (the client's name). A Signer holds a party's certificate and key; a Verifier holds the
// CA certificates and checks a certificate chain (for TLS client authentication, the
// ExtKeyUsage the federation's client certificates carry) and a signature by it.
//
// Every signature is over transcriptDigest(domain, fields…): SHA-256 of the domain string
// and the fields, each prefixed by its length, so no two messages of different kinds or
// field splits share a digest. Ed25519 signs the 32-byte digest as its message; ECDSA P-256
// signs it as a SHA-256 hash (ASN.1 DER signature).

const (
	// MaxCertificateBytes bounds the DER certificate a message may carry.
	MaxCertificateBytes = 4096
	// MaxSignatureBytes bounds a signature: 64 bytes for Ed25519, at most 72 for ECDSA
	// P-256 in ASN.1 DER.
	MaxSignatureBytes = 80
	// maxVerifierCache bounds the Verifier's cache of verified certificates; it is emptied
	// when full (a federation has one certificate per client, so this is never reached in
	// practice).
	maxVerifierCache = 1 << 17
)

// Signature domains: one per kind of signed message.
const (
	domainAnnouncement = "announcement"
	domainDealing      = "dealing"
	domainUpload       = "upload"
)

// transcriptDigest is the one encoding every signature covers: SHA-256 over
// "confide-secagg-v1 <domain>" and the fields, each as a little-endian uint64 length
// followed by its bytes.
func transcriptDigest(domain string, fields ...[]byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	write([]byte("confide-secagg-v1 " + domain))
	for _, f := range fields {
		write(f)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Signer is a party's identity: its certificate, issued by the federation's CA, and the
// certificate's private key. It is read-only and may be shared by goroutines.
type Signer struct {
	der      []byte
	key      crypto.Signer
	identity string
}

// NewSigner makes a signer from a DER certificate and its private key (Ed25519, preferred,
// or ECDSA P-256). It checks that the key belongs to the certificate and that the
// certificate names an identity; it does not check the chain, which is the verifiers' job.
func NewSigner(certDER []byte, key crypto.Signer) (*Signer, error) {
	if len(certDER) == 0 || len(certDER) > MaxCertificateBytes {
		return nil, fmt.Errorf("secagg: signer certificate of %d bytes: must be 1…%d", len(certDER), MaxCertificateBytes)
	}
	if key == nil {
		return nil, errors.New("secagg: signer without a private key")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, fmt.Errorf("secagg: signer certificate: %w", err)
	}
	if err := checkPublicKey(cert.PublicKey); err != nil {
		return nil, fmt.Errorf("secagg: signer certificate of %q: %w", cert.Subject.CommonName, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("secagg: the private key does not belong to the certificate of %q", cert.Subject.CommonName)
	}
	id, err := certIdentity(cert)
	if err != nil {
		return nil, err
	}
	return &Signer{der: append([]byte(nil), certDER...), key: key, identity: id}, nil
}

// Identity returns the certified identity: the certificate's subject common name.
func (s *Signer) Identity() string { return s.identity }

// Certificate returns the signer's DER certificate; the caller must not modify it.
func (s *Signer) Certificate() []byte { return s.der }

// sign signs a transcript digest.
func (s *Signer) sign(d [32]byte) ([]byte, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := s.key.Public().(ed25519.PublicKey); ok {
		opts = crypto.Hash(0)
	}
	sig, err := s.key.Sign(rand.Reader, d[:], opts)
	if err != nil {
		return nil, fmt.Errorf("secagg: signing as %q: %w", s.identity, err)
	}
	if len(sig) > MaxSignatureBytes {
		return nil, fmt.Errorf("secagg: signature of %d bytes exceeds %d", len(sig), MaxSignatureBytes)
	}
	return sig, nil
}

// checkPublicKey accepts the key types a Signer may hold.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
		return fmt.Errorf("ECDSA key on %s: only P-256 is accepted", k.Curve.Params().Name)
	}
	return fmt.Errorf("%T key: only Ed25519 and ECDSA P-256 are accepted", pub)
}

func certIdentity(cert *x509.Certificate) (string, error) {
	id := cert.Subject.CommonName
	if id == "" || len(id) > maxClientIDLength {
		return "", fmt.Errorf("secagg: certificate subject common name %q: must be 1…%d bytes (it is the party's identity)", id, maxClientIDLength)
	}
	return id, nil
}

// Verifier checks certificates against the federation's CA and signatures by them. It
// caches verified certificates by their SHA-256, so a party seen every round costs one
// chain verification. It is safe for concurrent use.
type Verifier struct {
	roots *x509.CertPool
	now   func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]*certifiedKey
}

// certifiedKey is a verified certificate: its identity, key and the interval in which the
// whole chain is valid.
type certifiedKey struct {
	identity  string
	key       crypto.PublicKey
	notBefore time.Time
	notAfter  time.Time
}

// NewVerifier trusts the given CA certificates. now is the clock certificates are checked
// against (nil: time.Now); simulations and tests may fix it.
func NewVerifier(cas []*x509.Certificate, now func() time.Time) (*Verifier, error) {
	if len(cas) == 0 {
		return nil, errors.New("secagg: a verifier needs at least one CA certificate")
	}
	pool := x509.NewCertPool()
	for i, c := range cas {
		if c == nil || !c.IsCA {
			return nil, fmt.Errorf("secagg: verifier certificate %d is not a CA certificate", i)
		}
		pool.AddCert(c)
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{roots: pool, now: now, cache: map[[32]byte]*certifiedKey{}}, nil
}

// NewVerifierFromPEM trusts the CA certificates of a PEM file's contents.
func NewVerifierFromPEM(pemCerts []byte, now func() time.Time) (*Verifier, error) {
	var cas []*x509.Certificate
	for rest := pemCerts; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secagg: CA certificate: %w", err)
		}
		cas = append(cas, c)
	}
	return NewVerifier(cas, now)
}

// Certify verifies a DER certificate's chain to the CA (valid now, for TLS client
// authentication, with an Ed25519 or ECDSA P-256 key) and returns the identity it
// certifies. Errors wrap ErrUnauthenticated.
func (v *Verifier) Certify(certDER []byte) (string, error) {
	k, err := v.certified(certDER)
	if err != nil {
		return "", err
	}
	return k.identity, nil
}

func (v *Verifier) certified(certDER []byte) (*certifiedKey, error) {
	if len(certDER) == 0 {
		return nil, fmt.Errorf("no certificate: %w", ErrUnauthenticated)
	}
	if len(certDER) > MaxCertificateBytes {
		return nil, fmt.Errorf("certificate of %d bytes exceeds %d: %w", len(certDER), MaxCertificateBytes, ErrUnauthenticated)
	}
	h := sha256.Sum256(certDER)
	now := v.now()
	v.mu.Lock()
	k, ok := v.cache[h]
	v.mu.Unlock()
	if !ok {
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return nil, fmt.Errorf("certificate: %v: %w", err, ErrUnauthenticated)
		}
		chains, err := cert.Verify(x509.VerifyOptions{Roots: v.roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, fmt.Errorf("certificate of %q does not chain to the federation's CA: %v: %w", cert.Subject.CommonName, err, ErrUnauthenticated)
		}
		if err := checkPublicKey(cert.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate of %q: %v: %w", cert.Subject.CommonName, err, ErrUnauthenticated)
		}
		id, err := certIdentity(cert)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrUnauthenticated)
		}
		k = &certifiedKey{identity: id, key: cert.PublicKey, notBefore: cert.NotBefore, notAfter: cert.NotAfter}
		for _, c := range chains[0][1:] {
			if c.NotBefore.After(k.notBefore) {
				k.notBefore = c.NotBefore
			}
			if c.NotAfter.Before(k.notAfter) {
				k.notAfter = c.NotAfter
			}
		}
		v.mu.Lock()
		if len(v.cache) >= maxVerifierCache {
			clear(v.cache)
		}
		v.cache[h] = k
		v.mu.Unlock()
	}
	if now.Before(k.notBefore) || now.After(k.notAfter) {
		return nil, fmt.Errorf("certificate of %q is valid from %s to %s, not now: %w", k.identity, k.notBefore.UTC().Format(time.RFC3339), k.notAfter.UTC().Format(time.RFC3339), ErrUnauthenticated)
	}
	return k, nil
}

// verify checks that sig is a signature of d by the certificate certDER and returns the
// certified identity. Errors wrap ErrUnauthenticated.
func (v *Verifier) verify(certDER []byte, d [32]byte, sig []byte) (string, error) {
	k, err := v.certified(certDER)
	if err != nil {
		return "", err
	}
	if err := checkSignature(k.key, d, sig); err != nil {
		return "", fmt.Errorf("%s: %w", k.identity, err)
	}
	return k.identity, nil
}

// checkSignature verifies sig over the digest d with pub.
func checkSignature(pub crypto.PublicKey, d [32]byte, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, d[:], sig)
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, d[:], sig)
	}
	if !ok {
		return fmt.Errorf("signature does not verify: %w", ErrUnauthenticated)
	}
	return nil
}
