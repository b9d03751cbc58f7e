package pki

import (
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func verify(t *testing.T, ca *CA, c *x509.Certificate, usage x509.ExtKeyUsage, host string) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: host})
	return err
}

func TestIssuedCertificatesVerifyForTheirUseOnly(t *testing.T) {
	ca, err := NewCA("test CA", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.Subject.CommonName != "test CA" {
		t.Fatalf("CA certificate: IsCA %v, MaxPathLenZero %v, CN %q", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.Subject.CommonName)
	}
	cli, err := ca.IssueClient("client-3", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("server", []string{"127.0.0.1", "fl.example"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if cli.Cert.Subject.CommonName != "client-3" {
		t.Fatalf("client CN %q", cli.Cert.Subject.CommonName)
	}
	if len(srv.Cert.IPAddresses) != 1 || len(srv.Cert.DNSNames) != 1 {
		t.Fatalf("server SANs: IPs %v, DNS %v", srv.Cert.IPAddresses, srv.Cert.DNSNames)
	}
	for _, tc := range []struct {
		name  string
		cert  *x509.Certificate
		usage x509.ExtKeyUsage
		host  string
		ok    bool
	}{
		{"client-as-client", cli.Cert, x509.ExtKeyUsageClientAuth, "", true},
		{"client-as-server", cli.Cert, x509.ExtKeyUsageServerAuth, "", false},
		{"server-as-server-ip", srv.Cert, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		{"server-as-server-dns", srv.Cert, x509.ExtKeyUsageServerAuth, "fl.example", true},
		{"server-other-host", srv.Cert, x509.ExtKeyUsageServerAuth, "evil.example", false},
		{"server-as-client", srv.Cert, x509.ExtKeyUsageClientAuth, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := verify(t, ca, tc.cert, tc.usage, tc.host); (err == nil) != tc.ok {
				t.Fatalf("verify: %v, want ok %v", err, tc.ok)
			}
		})
	}
	other, err := NewCA("other CA", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(t, other, cli.Cert, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("a certificate verified under another CA")
	}
	if _, err := ca.IssueClient("late", 48*time.Hour, now); err == nil {
		t.Fatal("a certificate outliving its CA was issued")
	}
	if _, err := ca.IssueServer("server", nil, time.Hour, now); err == nil {
		t.Fatal("a server certificate without hosts was issued")
	}
}

func TestWriteFilesNeverOverwritesAndKeepsKeysPrivate(t *testing.T) {
	dir := t.TempDir() + "/pki"
	ca, err := NewCA("test CA", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(dir, "ca", ca.Credential); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{KeyFile(dir, "ca"): 0o600, CertFile(dir, "ca"): 0o644, dir: 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s: mode %v, want at most %v", path, got, want)
		}
	}
	again, err := NewCA("test CA", 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(dir, "ca", again.Credential); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteFiles: %v, want ErrExists", err)
	}
	certPEM, _ := os.ReadFile(CertFile(dir, "ca"))
	keyPEM, _ := os.ReadFile(KeyFile(dir, "ca"))
	back, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Fatal("the CA on disk is not the first one")
	}
	if _, err := ParseCA(certPEM, again.KeyPEM); err == nil {
		t.Fatal("ParseCA accepted a key of another CA")
	}
}
