package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// TestHealthPortSharesTheServiceStatus: the plaintext health port reports what the
// federation port's health service does, SERVING while it serves and NOT_SERVING from
// Shutdown on, and serves nothing else.
func TestHealthPortSharesTheServiceStatus(t *testing.T) {
	coord, err := server.New(baseConfig(1, 2), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := server.NewService(coord, server.ServiceConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	g := svc.NewGRPCServer()
	hs := svc.NewHealthGRPCServer()
	lis := bufconn.Listen(1 << 16)
	go hs.Serve(lis)
	defer hs.Stop()
	conn, err := grpc.NewClient("passthrough:///health",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	check := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, service := range []string{"", "confide.v1.Federation"} {
			r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil || r.Status != want {
				t.Fatalf("health of %q: %v %v, want %v", service, r, err, want)
			}
		}
	}
	check(healthpb.HealthCheckResponse_SERVING)
	_, err = pb.NewFederationClient(conn).Heartbeat(t.Context(), &pb.HeartbeatRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("federation call on the health port: %v, want Unimplemented", err)
	}
	svc.Shutdown(g, time.Second)
	check(healthpb.HealthCheckResponse_NOT_SERVING)
}
