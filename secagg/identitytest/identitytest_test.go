package identitytest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"testing"
	"time"
)

func verify(t testing.TB, ca *CA, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestIssueIsDeterministic: the same seed issues byte-identical certificates and keys, and
// they chain to the CA for client authentication with the name as common name.
func TestIssueIsDeterministic(t *testing.T) {
	a, err := NewCA(7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewCA(7)
	other, _ := NewCA(8)
	if !bytes.Equal(a.Certificate().Raw, b.Certificate().Raw) {
		t.Error("two CAs of one seed differ")
	}
	if bytes.Equal(a.Certificate().Raw, other.Certificate().Raw) {
		t.Error("CAs of two seeds are equal")
	}
	for _, issue := range []func(*CA, string) (Identity, error){(*CA).Issue, (*CA).IssueECDSA} {
		x, err := issue(a, "client-1")
		if err != nil {
			t.Fatal(err)
		}
		y, _ := issue(b, "client-1")
		if !bytes.Equal(x.Certificate, y.Certificate) {
			t.Error("one seed issued two certificates for one name")
		}
		if !x.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(y.Key.Public()) {
			t.Error("one seed issued two keys for one name")
		}
		if cert := verify(t, a, x.Certificate); cert.Subject.CommonName != "client-1" {
			t.Errorf("common name %q", cert.Subject.CommonName)
		}
	}
	z, _ := a.Issue("client-2")
	x, _ := a.Issue("client-1")
	if bytes.Equal(x.Certificate, z.Certificate) {
		t.Error("two names share a certificate")
	}
}

func TestIssueWithOptions(t *testing.T) {
	ca, _ := NewCA(1)
	base, _ := ca.Issue("c")
	id, err := ca.IssueWith("c", base.Key, Options{NotAfter: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(id.Certificate)
	if cert.NotAfter.Year() != 2001 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("options not applied: %v %v", cert.NotAfter, cert.ExtKeyUsage)
	}
}

// BenchmarkIssue measures the cost of one new identity (key derivation and certificate),
// what a simulator pays per virtual client.
func BenchmarkIssue(b *testing.B) {
	ca, _ := NewCA(1)
	i := 0
	for b.Loop() {
		if _, err := ca.Issue(fmt.Sprint("client-", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyChain measures an uncached chain verification of one identity.
func BenchmarkVerifyChain(b *testing.B) {
	ca, _ := NewCA(1)
	id, _ := ca.Issue("c")
	for b.Loop() {
		verify(b, ca, id.Certificate)
	}
}
