package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServerHealthListenIsPlaintextBesideMutualTLS: with mutual TLS on the federation port,
// --health-listen answers a plaintext gRPC health check without a client certificate (what
// a kubelet's gRPC probe sends), SERVING while the server runs.
func TestServerHealthListenIsPlaintextBesideMutualTLS(t *testing.T) {
	dir := caDir(t)
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	yaml := "federation:\n  rounds: 1\n  model: {type: mlp, input: 4, hidden: [3], output: 2}\n  sampling: {min_fit: 2, min_available: 2}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"server", "--config", cfg, "--listen", "127.0.0.1:0", "--health-listen", addr,
		"--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"), "--client-ca", filepath.Join(dir, "ca.crt")})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// WaitForReady holds the check until the server listens (or the deadline passes).
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	r, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: "confide.v1.Federation"}, grpc.WaitForReady(true))
	if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("plaintext health check: %v %v, want SERVING", r, err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("server: %v, want it interrupted", err)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
