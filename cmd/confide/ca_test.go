package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/internal/pki"
)

func wantUsageError(t *testing.T, err error, parts ...string) {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("err = %v, want a usage error (exit code 2)", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}

// caDir runs confide ca init and issues a server certificate for 127.0.0.1 and client
// certificates for names.
func caDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := runConfide(t, "ca", "init", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := runConfide(t, "ca", "issue", "--dir", dir, "--server", "--name", "server", "--host", "127.0.0.1,localhost"); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := runConfide(t, "ca", "issue", "--dir", dir, "--name", n); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCAInitAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	m := runJSON(t, "ca", "init", "--dir", dir)
	if m["kind"] != "ca" || !strings.HasPrefix(m["name"].(string), "Confide federation CA ") || m["key"] != filepath.Join(dir, "ca.key") {
		t.Fatalf("ca init: %v", m)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	_, err := runConfide(t, "ca", "init", "--dir", dir)
	wantUsageError(t, err, filepath.Join(dir, "ca.crt")+" exists", "another --dir")
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.key")); !bytes.Equal(again, key) {
		t.Fatal("a second ca init changed the CA key")
	}

	m = runJSON(t, "ca", "issue", "--dir", dir, "--name", "client-0")
	if m["kind"] != "client" || m["cert"] != filepath.Join(dir, "client-0.crt") {
		t.Fatalf("ca issue: %v", m)
	}
	m = runJSON(t, "ca", "issue", "--dir", dir, "--server", "--name", "server", "--host", "127.0.0.1", "--host", "fl.example")
	if m["kind"] != "server" {
		t.Fatalf("ca issue --server: %v", m)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, tc := range []struct {
		name  string
		usage x509.ExtKeyUsage
		host  string
	}{{"client-0", x509.ExtKeyUsageClientAuth, ""}, {"server", x509.ExtKeyUsageServerAuth, "fl.example"}} {
		b, _ := os.ReadFile(filepath.Join(dir, tc.name+".crt"))
		c, err := pki.ParseCertificate(b)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != tc.name {
			t.Errorf("%s: CN %q", tc.name, c.Subject.CommonName)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.usage}, DNSName: tc.host}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		st, err := os.Stat(filepath.Join(dir, tc.name+".key"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v, mode %v, want 0600", tc.name, err, st.Mode().Perm())
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"reissue", []string{"--name", "client-0"}, []string{"client-0.crt exists", "one identity per client"}},
		{"no-name", nil, []string{"--name is required"}},
		{"bad-name", []string{"--name", "../x"}, []string{"--name", "letters, digits"}},
		{"server-without-host", []string{"--server", "--name", "s2"}, []string{"--server needs --host"}},
		{"host-without-server", []string{"--name", "c1", "--host", "x"}, []string{"--host is for server certificates", "--server"}},
		{"no-ca", []string{"--name", "c1", "--dir", filepath.Join(t.TempDir(), "none")}, []string{"no CA in --dir", "confide ca init --dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ca", "issue", "--dir", dir}, tc.args...)
			_, err := runConfide(t, args...)
			wantUsageError(t, err, tc.want...)
		})
	}
}

// captureLog sends slog's default logger to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

// The server serves TLS unless told --insecure, and says which flags to set.
func TestServerNeedsTLSOrInsecure(t *testing.T) {
	dir := caDir(t, "client-0")
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("federation:\n  rounds: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runConfide(t, "server", "--config", cfg, "--listen", "127.0.0.1:0")
	wantUsageError(t, err, "--tls-cert", "--tls-key", "--client-ca", "confide ca init", "--insecure")
	_, err = runConfide(t, "server", "--config", cfg, "--tls-cert", filepath.Join(dir, "server.crt"))
	wantUsageError(t, err, "--tls-key (tls_key) is not set")
	_, err = runConfide(t, "server", "--config", cfg, "--insecure", "--tls-cert", filepath.Join(dir, "server.crt"))
	wantUsageError(t, err, "choose TLS or plaintext")
	_, err = runConfide(t, "server", "--config", cfg, "--tls-cert", filepath.Join(dir, "client-0.crt"), "--tls-key", filepath.Join(dir, "client-0.key"), "--client-ca", filepath.Join(dir, "ca.crt"))
	wantUsageError(t, err, "not for TLS servers")

	// The YAML keys, relative to the working directory.
	yaml := "tls_cert: " + filepath.Join(dir, "server.crt") + "\ntls_key: " + filepath.Join(dir, "server.key") + "\nclient_ca: " + filepath.Join(dir, "ca.crt") + "\nfederation:\n  rounds: 1\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	sf, err := readServerFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := serverTLS(sf)
	if err != nil || tc == nil || tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.MinVersion != tls.VersionTLS13 {
		t.Fatalf("server TLS from YAML: %v", err)
	}

	logs := captureLog(t)
	if tc, err := serverTLS(serverFile{Insecure: true}); err != nil || tc != nil {
		t.Fatalf("--insecure: %v %v", tc, err)
	}
	if !strings.Contains(logs.String(), "--insecure: serving plaintext gRPC") {
		t.Fatalf("--insecure logged no warning: %s", logs)
	}
}

// The client connects over TLS unless told --insecure, and names its identity after its
// certificate.
func TestClientNeedsTLSOrInsecure(t *testing.T) {
	dir := caDir(t, "hospital-a")
	base := []string{"client", "--server", "127.0.0.1:1", "--no-dp", "--dataset", "no-such-dataset", "--state-dir", t.TempDir()}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"none", nil, []string{"--ca", "--tls-cert", "--tls-key", "confide ca issue", "--insecure"}},
		{"ca-only", []string{"--ca", filepath.Join(dir, "ca.crt")}, []string{"--tls-cert is not set"}},
		{"insecure-and-tls", []string{"--insecure", "--ca", filepath.Join(dir, "ca.crt")}, []string{"choose TLS or plaintext"}},
		{"server-certificate", []string{"--ca", filepath.Join(dir, "ca.crt"), "--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key")}, []string{"not for TLS clients"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append(base, tc.args...)...)
			wantUsageError(t, err, tc.want...)
		})
	}
	o := clientOptions{ca: filepath.Join(dir, "ca.crt"), tlsCert: filepath.Join(dir, "hospital-a.crt"), tlsKey: filepath.Join(dir, "hospital-a.key")}
	tc, err := clientTLS(o)
	if err != nil {
		t.Fatal(err)
	}
	if cn := tc.Certificates[0].Leaf.Subject.CommonName; cn != "hospital-a" {
		t.Fatalf("identity %q", cn)
	}
	logs := captureLog(t)
	if tc, err := clientTLS(clientOptions{insecure: true}); err != nil || tc != nil {
		t.Fatalf("--insecure: %v %v", tc, err)
	}
	if !strings.Contains(logs.String(), "--insecure: plaintext gRPC") {
		t.Fatalf("--insecure logged no warning: %s", logs)
	}
}
