package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/internal/pki"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// writeTestPKI writes a federation CA with a server certificate for 127.0.0.1 and client
// certificates for names into dir/fed, and a second CA ("other") with a client certificate
// for names[0] into dir/other.
func writeTestPKI(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	for _, fed := range []string{"fed", "other"} {
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
		for i, n := range names {
			if fed == "other" && i > 0 {
				break
			}
			c, err := ca.IssueClient(n, time.Hour, now)
			if err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteFiles(d, n, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// logBuffer collects a service's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTLSService serves a coordinator with mutual TLS on loopback.
func startTLSService(t *testing.T, dir string, cfg server.Config, maxClients int) (string, *logBuffer) {
	t.Helper()
	coord, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fed := filepath.Join(dir, "fed")
	tc, err := server.TLSConfig(pki.CertFile(fed, "server"), pki.KeyFile(fed, "server"), pki.CertFile(fed, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	svc := server.NewService(coord, server.ServiceConfig{RequireClientCertificate: true, TickInterval: 20 * time.Millisecond, MaxClients: maxClients, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := svc.NewGRPCServer(grpc.Creds(svc.TLSCredentials(tc)))
	go g.Serve(lis)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; svc.Shutdown(g, time.Second) })
	return lis.Addr().String(), logs
}

// dial connects to addr trusting dir/fed's CA and presenting the certificate ca/name
// ("": none; ca "other" for the second CA's), whichever CAs the server asks for.
func dial(t *testing.T, addr, dir, ca, name string) (pb.FederationClient, *grpc.ClientConn) {
	t.Helper()
	b, err := os.ReadFile(pki.CertFile(filepath.Join(dir, "fed"), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	if name != "" {
		d := filepath.Join(dir, ca)
		cert, err := tls.LoadX509KeyPair(pki.CertFile(d, name), pki.KeyFile(d, name))
		if err != nil {
			t.Fatal(err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewFederationClient(conn), conn
}

func joinAs(ctx context.Context, api pb.FederationClient, name string) (*pb.JoinResponse, error) {
	return api.Join(ctx, &pb.JoinRequest{ClientName: name, ProtocolVersion: server.ProtocolVersion})
}

func withToken(ctx context.Context, r *pb.JoinResponse) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.SessionToken)
}

// Mutual TLS admits only holders of a certificate of the federation's CA, under the name
// the certificate carries.
func TestMutualTLSRefusesClientsWithoutTheirCertificate(t *testing.T) {
	dir := writeTestPKI(t, "alice", "bob")
	addr, logs := startTLSService(t, dir, baseConfig(1, 5), 10)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A refused handshake reaches a plain gRPC client as a closed connection (client.Run
	// tells why; see package client); the server's log says why.
	for _, tc := range []struct {
		name, ca, cert, join string
		code                 codes.Code
		msg, log             string
	}{
		{"no-certificate", "fed", "", "alice", codes.Unavailable, "", "client didn't provide a certificate"},
		{"other-ca", "other", "alice", "alice", codes.Unavailable, "", "certificate signed by unknown authority"},
		{"name-not-the-certificate's", "fed", "alice", "bob", codes.PermissionDenied, `client name "bob" does not match the certificate of this connection, issued to "alice"`, "name is not the certificate's identity"},
		{"own-certificate", "fed", "bob", "bob", codes.OK, "", `msg="client joined" client=bob certified=true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, _ := dial(t, addr, dir, tc.ca, tc.cert)
			_, err := joinAs(ctx, api, tc.join)
			if status.Code(err) != tc.code || (tc.msg != "" && !strings.Contains(err.Error(), tc.msg)) {
				t.Fatalf("Join: %v, want %v %s", err, tc.code, tc.msg)
			}
			// The server logs a refused handshake after the client has seen it fail.
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), tc.log); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("server log lacks %q:\n%s", tc.log, logs)
				}
			}
		})
	}
	t.Run("plaintext", func(t *testing.T) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := joinAs(ctx, pb.NewFederationClient(conn), "alice"); status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext Join on a TLS server: %v, want Unavailable", err)
		}
	})
}

// A session token works only with the certificate of the identity it was issued to.
func TestSessionTokenIsBoundToTheCertificate(t *testing.T) {
	dir := writeTestPKI(t, "alice", "bob")
	addr, _ := startTLSService(t, dir, baseConfig(1, 5), 10)
	alice, _ := dial(t, addr, dir, "fed", "alice")
	bob, _ := dial(t, addr, dir, "fed", "bob")
	ra, err := joinAs(t.Context(), alice, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Heartbeat(withToken(t.Context(), ra), &pb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Heartbeat(withToken(t.Context(), ra), &pb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated, `session token of client "alice" presented with the certificate of "bob"`)
}

// A second Join for an identity with a live session is refused; once that session's
// connection closes, the identity may join again (a restarted client), and the old token is
// void. A Join over the live session's own connection replaces it.
func TestSecondLiveSessionIsRefusedUntilTheFirstEnds(t *testing.T) {
	dir := writeTestPKI(t, "alice", "bob")
	addr, _ := startTLSService(t, dir, baseConfig(1, 5), 1)
	ctx := t.Context()
	first, firstConn := dial(t, addr, dir, "fed", "alice")
	r0, err := joinAs(ctx, first, "alice")
	if err != nil {
		t.Fatal(err)
	}
	r1, err := joinAs(ctx, first, "alice") // the same connection: the same process retrying
	if err != nil {
		t.Fatalf("rejoin over the live session's connection: %v", err)
	}
	_, err = first.Heartbeat(withToken(ctx, r0), &pb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated, "no valid session token")
	second, _ := dial(t, addr, dir, "fed", "alice")
	_, err = joinAs(ctx, second, "alice")
	wantCode(t, err, codes.AlreadyExists, `client "alice" already has a live session`)
	if _, err := first.Heartbeat(withToken(ctx, r1), &pb.HeartbeatRequest{}); err != nil {
		t.Fatalf("the live session after a refused takeover: %v", err)
	}
	bob, _ := dial(t, addr, dir, "fed", "bob")
	_, err = joinAs(ctx, bob, "bob")
	wantCode(t, err, codes.ResourceExhausted, "full (1 clients)") // max_clients counts identities

	firstConn.Close() // the first process is gone
	deadline := time.Now().Add(5 * time.Second)
	var r2 *pb.JoinResponse
	for {
		r2, err = joinAs(ctx, second, "alice")
		if status.Code(err) != codes.AlreadyExists || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the server notices the closed connection
	}
	if err != nil {
		t.Fatalf("rejoin after the first connection closed: %v", err)
	}
	if _, err := second.Heartbeat(withToken(ctx, r2), &pb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = second.Heartbeat(withToken(ctx, r1), &pb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated, "no valid session token")
}
