// Package pki issues the X.509 certificates of a federation: the certificate authority its
// operator runs, a certificate for the aggregation server (its DNS names and IP addresses)
// and one per client, whose subject common name is the client's identity. Keys are ECDSA
// P-256 from crypto/rand, signatures ECDSA with SHA-256, serials 128 random bits; nothing
// but Go's standard crypto is used.
//
// The CA certificate has path length 0 (it issues no intermediate CAs); a client
// certificate is good only for TLS client authentication and a server certificate only for
// server authentication, so neither can stand in for the other.
//
// Keys are written 0600 and no file is ever overwritten: issuing a second identity under a
// name already issued must be a deliberate act (remove the old files first).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// clockSkew backdates NotBefore so that a peer whose clock runs a little behind the
// issuer's accepts a certificate issued just now.
const clockSkew = 5 * time.Minute

// Credential is a certificate with its private key, PEM-encoded, and the parsed
// certificate.
type Credential struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// CA is a federation's certificate authority.
type CA struct {
	Credential
	key crypto.Signer
}

// NewCA creates a self-signed CA named commonName, valid from now for validity.
func NewCA(commonName string, validity time.Duration, now time.Time) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: the CA needs a name")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("pki: CA validity %v must be positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	tmpl, err := template(commonName, validity, now, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	cred, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, err
	}
	return &CA{Credential: cred, key: key}, nil
}

// ParseCA reads a CA from its PEM certificate and key, checking that they belong together
// and that the certificate is a CA's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: certificate %q is not a CA certificate", cert.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: the CA key does not match the certificate of %q", cert.Subject.CommonName)
	}
	return &CA{Credential: Credential{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert}, key: key}, nil
}

// IssueClient issues the certificate of the client whose identity is name (the subject
// common name), for TLS client authentication only.
func (ca *CA) IssueClient(name string, validity time.Duration, now time.Time) (Credential, error) {
	return ca.issue(name, nil, x509.ExtKeyUsageClientAuth, validity, now)
}

// IssueServer issues a server certificate named name for the given hosts (DNS names or IP
// addresses clients dial), for TLS server authentication only.
func (ca *CA) IssueServer(name string, hosts []string, validity time.Duration, now time.Time) (Credential, error) {
	if len(hosts) == 0 {
		return Credential{}, errors.New("pki: a server certificate needs at least one host name or IP address")
	}
	return ca.issue(name, hosts, x509.ExtKeyUsageServerAuth, validity, now)
}

func (ca *CA) issue(name string, hosts []string, usage x509.ExtKeyUsage, validity time.Duration, now time.Time) (Credential, error) {
	if name == "" {
		return Credential{}, errors.New("pki: a certificate needs a name")
	}
	if validity <= 0 {
		return Credential{}, fmt.Errorf("pki: validity %v must be positive", validity)
	}
	// Certificates hold times to the second.
	if end := now.Add(validity).Truncate(time.Second); end.After(ca.Cert.NotAfter) {
		return Credential{}, fmt.Errorf("pki: a certificate valid until %s would outlive its CA (valid until %s)", end.UTC().Format(time.DateOnly), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Credential{}, fmt.Errorf("pki: key of %s: %w", name, err)
	}
	tmpl, err := template(name, validity, now, &key.PublicKey)
	if err != nil {
		return Credential{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.BasicConstraintsValid = true
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return sign(tmpl, ca.Cert, key, ca.key)
}

func template(cn string, validity time.Duration, now time.Time, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	// RFC 5280, 4.2.1.2: a key identifier derived from the public key.
	ski := sha256.Sum256(der)
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(validity),
		SubjectKeyId: ski[:20],
	}, nil
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (Credential, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return Credential{}, fmt.Errorf("pki: sign %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Credential{}, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Credential{}, err
	}
	return Credential{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		Cert:    cert,
	}, nil
}

// ParseCertificate reads the first certificate of a PEM file.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("pki: no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("pki: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: private key of type %T cannot sign", k)
	}
	return s, nil
}

// Fingerprint is the SHA-256 of a certificate's DER encoding, in hex: what an operator
// compares out of band to check that a copy of the CA certificate is the right one.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// CertFile and KeyFile are where WriteFiles puts the credential named base in dir.
func CertFile(dir, base string) string { return filepath.Join(dir, base+".crt") }
func KeyFile(dir, base string) string  { return filepath.Join(dir, base+".key") }

// ErrExists is returned by WriteFiles when one of its files is already there.
var ErrExists = errors.New("pki: file exists")

// WriteFiles writes c to dir as base.crt (0644) and base.key (0600), creating dir (0700)
// if needed. It overwrites nothing: if either file exists it writes neither and returns
// an error wrapping ErrExists that names the file.
func WriteFiles(dir, base string, c Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	certPath, keyPath := CertFile(dir, base), KeyFile(dir, base)
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pki: %w", err)
		}
	}
	if err := writeNew(keyPath, c.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, c.CertPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path exclusively (O_EXCL: a file created meanwhile is not overwritten
// either) and syncs it.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}
