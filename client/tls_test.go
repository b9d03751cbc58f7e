package client_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// writePKI writes a CA named fed into dir/fed with a server certificate for 127.0.0.1 and
// client certificates for names.
func writePKI(t *testing.T, dir, fed string, names ...string) {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA(fed+" CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, fed)
	if err := pki.WriteFiles(d, "ca", ca.Credential); err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("server", []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(d, "server", srv); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		c, err := ca.IssueClient(n, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteFiles(d, n, c); err != nil {
			t.Fatal(err)
		}
	}
}

// Over mutual TLS a client with its certificate takes part; one without it, or with a
// certificate of another CA, or under another name, or facing a server it cannot verify,
// stops at once with an error that says why, instead of retrying.
func TestRunOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir, "fed", "a", "b")
	writePKI(t, dir, "other", "a")
	fed := filepath.Join(dir, "fed")
	tc, err := server.TLSConfig(pki.CertFile(fed, "server"), pki.KeyFile(fed, "server"), pki.CertFile(fed, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	coord, err := server.New(server.Config{Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}, Seed: 1,
		Sampling: server.SamplingConfig{MinFit: 2}, Training: server.TrainingConfig{BatchSize: 10}}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := server.NewService(coord, server.ServiceConfig{RequireClientCertificate: true, TickInterval: 20 * time.Millisecond, Logger: quietLogger()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := svc.NewGRPCServer(grpc.Creds(credentials.NewTLS(tc)))
	go g.Serve(lis)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; svc.Shutdown(g, time.Second) }()

	run := func(name, caDir, certDir, certName string) error {
		t.Helper()
		tls, err := client.TLSConfig(pki.CertFile(filepath.Join(dir, caDir), "ca"), pki.CertFile(filepath.Join(dir, certDir), certName), pki.KeyFile(filepath.Join(dir, certDir), certName))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(40, 1), Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return client.Run(ctx, client.Config{Server: lis.Addr().String(), Name: name, TLS: tls, PollWait: 200 * time.Millisecond,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, GiveUpAfter: 5 * time.Second, Logger: quietLogger()}, tr)
	}
	noCert := func() error {
		tls, err := client.TLSConfig(pki.CertFile(fed, "ca"), pki.CertFile(fed, "a"), pki.KeyFile(fed, "a"))
		if err != nil {
			t.Fatal(err)
		}
		tls.Certificates = nil
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(40, 1), Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		return client.Run(ctx, client.Config{Server: lis.Addr().String(), Name: "a", TLS: tls,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, GiveUpAfter: 5 * time.Second, Logger: quietLogger()}, tr)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want []string // all of
	}{
		{"no-certificate", noCert, []string{"refused this client's TLS handshake", "certificate required"}},
		{"other-ca-certificate", func() error { return run("a", "fed", "other", "a") }, []string{`this client's certificate was issued by "CN=other CA", but the server accepts only certificates of "CN=fed CA"`}},
		{"untrusted-server", func() error { return run("a", "other", "fed", "a") }, []string{"does not trust the server's certificate", "unknown authority"}},
		{"name-not-the-certificate's", func() error { return run("b", "fed", "fed", "a") }, []string{`client name "b" does not match`, `issued to "a"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("Run succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Run: %v, want it to mention %q", err, w)
				}
			}
		})
	}
	t.Run("own-certificates", func(t *testing.T) {
		errs := make(chan error, 2)
		for _, n := range []string{"a", "b"} {
			go func() { errs <- run(n, "fed", "fed", n) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A TLS client facing a plaintext server stops and says so.
func TestRunOverTLSToAPlaintextServer(t *testing.T) {
	dir := t.TempDir()
	writePKI(t, dir, "fed", "a")
	fed := filepath.Join(dir, "fed")
	coord, err := server.New(server.Config{Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}, Seed: 1,
		Sampling: server.SamplingConfig{MinFit: 2}, Training: server.TrainingConfig{BatchSize: 10}}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := server.NewService(coord, server.ServiceConfig{TickInterval: 20 * time.Millisecond, Logger: quietLogger()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	defer svc.Shutdown(g, time.Second)
	tls, err := client.TLSConfig(pki.CertFile(fed, "ca"), pki.CertFile(fed, "a"), pki.KeyFile(fed, "a"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(40, 1), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = client.Run(t.Context(), client.Config{Server: lis.Addr().String(), Name: "a", TLS: tls,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, GiveUpAfter: 5 * time.Second, Logger: quietLogger()}, tr)
	if err == nil || !strings.Contains(err.Error(), "the server does not speak TLS") {
		t.Fatalf("Run: %v, want a refusal saying the server does not speak TLS", err)
	}
}

func TestRunNeedsTransportSecurityOrInsecure(t *testing.T) {
	err := client.Run(t.Context(), client.Config{Server: "127.0.0.1:1", Name: "a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "no transport security: set TLS") || !strings.Contains(err.Error(), "Insecure") {
		t.Fatalf("Run without TLS or Insecure: %v", err)
	}
}
