package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// discardStore persists nothing (what is measured here is the service and coordinator).
type discardStore struct{}

func (discardStore) Append([]server.Record) error { return nil }

// churnService serves a coordinator that never starts a round (it waits for more clients
// than join), with the given join limits.
func churnService(t *testing.T, cfg server.ServiceConfig) (*server.Service, *server.Coordinator, pb.FederationClient) {
	t.Helper()
	fed := baseConfig(1, 2)
	fed.Sampling.MinAvailable = 1 << 20
	coord, err := server.New(fed, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TickInterval, cfg.Store, cfg.Logger = 20*time.Millisecond, discardStore{}, slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := server.NewService(coord, cfg)
	lis := bufconn.Listen(1 << 20)
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		<-done
		svc.Shutdown(g, time.Second)
	})
	return svc, coord, pb.NewFederationClient(conn)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// 10,000 Join/Leave cycles under distinct names leave the server's memory flat: a client
// that leaves is forgotten by the coordinator and the service (no registry entry, session
// or mailbox stays), so churning names can neither grow the server nor fill max_clients.
func TestJoinLeaveChurnLeavesMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 join/leave cycles")
	}
	svc, _, api := churnService(t, server.ServiceConfig{MaxClients: 100, JoinRate: 1e9, JoinBurst: 1 << 20, PeerJoinRate: 1e9, PeerJoinBurst: 1 << 20})
	cycle := func(i int) {
		resp, err := api.Join(t.Context(), &pb.JoinRequest{ClientName: fmt.Sprintf("churn-%05d", i), ProtocolVersion: server.ProtocolVersion})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+resp.SessionToken)
		if _, err := api.Leave(ctx, &pb.LeaveRequest{}); err != nil {
			t.Fatalf("leave %d: %v", i, err)
		}
	}
	for i := range 1000 { // warm up pools and caches
		cycle(i)
	}
	before := heapInUse()
	for i := 1000; i < 11000; i++ {
		cycle(i)
	}
	// The join limiter forgets a client's bucket once it would have refilled (here about
	// a second): a join after that sweeps the churned names out.
	time.Sleep(1200 * time.Millisecond)
	cycle(11000)
	after := heapInUse()
	t.Logf("heap in use %d KiB before, %d KiB after 10,000 join/leave cycles", before>>10, after>>10)
	if after > before+2<<20 {
		t.Fatalf("heap grew from %d to %d bytes over 10,000 join/leave cycles", before, after)
	}
	// max_clients (100) counts identities with a session: after 11,000 cycles a new client
	// still gets in.
	if _, err := api.Join(t.Context(), &pb.JoinRequest{ClientName: "late", ProtocolVersion: server.ProtocolVersion}); err != nil {
		t.Fatalf("a new client after the churn: %v", err)
	}
	_ = svc
}

// Joins are rate-limited per identity: a client that re-joins in a tight loop is told to
// retry later.
func TestJoinsAreRateLimited(t *testing.T) {
	_, _, api := churnService(t, server.ServiceConfig{JoinRate: 1, JoinBurst: 3})
	var limited error
	for i := range 10 {
		if _, err := api.Join(t.Context(), &pb.JoinRequest{ClientName: "eager", ProtocolVersion: server.ProtocolVersion}); err != nil {
			limited = err
			if i < 3 {
				t.Fatalf("join %d refused within the burst: %v", i, err)
			}
			break
		}
	}
	if status.Code(limited) != codes.ResourceExhausted {
		t.Fatalf("10 quick joins: last error %v, want ResourceExhausted", limited)
	}
}

// Upload slots go only to streams whose header names an outstanding task of their client:
// idle streams (no header) hold none and are dropped after UploadIdle, so they cannot crowd
// out honest uploads.
func TestIdleUploadStreamsHoldNoSlot(t *testing.T) {
	_, _, api := churnService(t, server.ServiceConfig{MaxConcurrentUploads: 2, UploadIdle: 300 * time.Millisecond})
	auth := func(name string) context.Context {
		resp, err := api.Join(t.Context(), &pb.JoinRequest{ClientName: name, ProtocolVersion: server.ProtocolVersion})
		if err != nil {
			t.Fatal(err)
		}
		return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+resp.SessionToken)
	}
	var idle []grpc.ClientStreamingClient[pb.ResultChunk, pb.PushResultResponse]
	for i := range 5 {
		st, err := api.PushResult(auth(fmt.Sprintf("idle-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, st) // opened, never sends its header
	}
	// An upload with a header is judged on it, not refused for lack of slots.
	st, err := api.PushResult(auth("honest"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: &pb.Result{TaskId: "fit-r1-1", Kind: pb.TaskKind_TASK_KIND_FIT, Round: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CloseAndRecv(); status.Code(err) == codes.ResourceExhausted || err == nil {
		t.Fatalf("honest upload beside 5 idle streams: %v, want a verdict on its task, not ResourceExhausted", err)
	}
	for _, s := range idle {
		if _, err := s.CloseAndRecv(); status.Code(err) != codes.DeadlineExceeded {
			// CloseAndRecv closes the send side; the server then sees EOF before a header.
			if status.Code(err) != codes.Unknown && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("idle stream: %v", err)
			}
		}
	}
}

// A stream that sends nothing is dropped after UploadIdle.
func TestUploadWithoutHeaderTimesOut(t *testing.T) {
	_, _, api := churnService(t, server.ServiceConfig{UploadIdle: 200 * time.Millisecond})
	resp, err := api.Join(t.Context(), &pb.JoinRequest{ClientName: "slow", ProtocolVersion: server.ProtocolVersion})
	if err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+resp.SessionToken)
	st, err := api.PushResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var resp2 pb.PushResultResponse
	err = st.RecvMsg(&resp2)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream without a header: %v, want DeadlineExceeded after the idle limit", err)
	}
}
