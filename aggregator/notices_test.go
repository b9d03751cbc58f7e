package aggregator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// relayedConnection starts a root and an aggregator agg-0 and returns a connection of
// client-a to the aggregator.
func relayedConnection(t *testing.T) (context.Context, *root, *grpc.ClientConn) {
	t.Helper()
	p := newFederationPKI(t, "agg-0", "client-a")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	r := startRoot(t, ctx, p, plainConfig(1, 2), []string{"agg-0"})
	_, addr, _ := startRelay(t, p, r.addr, "agg-0", "127.0.0.1:0")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, "client-a"))))
	if err != nil {
		t.Fatal(err)
	}
	return ctx, r, conn
}

// connectedClients reads the root's confide_connected_clients gauge.
func connectedClients(t *testing.T, r *root) float64 {
	t.Helper()
	mfs, err := r.svc.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "confide_connected_clients" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no confide_connected_clients gauge")
	return 0
}

// The aggregator relays the closing of a client's connection: the root takes the client
// offline at once, as it would a direct client whose connection closed, not only after
// its client timeout (30 s here).
func TestRelayedDisconnectNotice(t *testing.T) {
	ctx, r, conn := relayedConnection(t)
	if _, err := pb.NewFederationClient(conn).Join(ctx, &pb.JoinRequest{ClientName: "client-a", ProtocolVersion: server.ProtocolVersion}); err != nil {
		t.Fatal(err)
	}
	if n := connectedClients(t, r); n != 1 {
		t.Fatalf("%v clients online after the Join, want 1", n)
	}
	conn.Close()
	for deadline := time.Now().Add(10 * time.Second); connectedClients(t, r) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the root still counts the client online 10 s after its connection to the aggregator closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The Join rate limit applies to a client behind an aggregator as to a direct one: per
// identity (5 in a burst by default), at the root.
func TestJoinRateLimitAppliesBehindAggregator(t *testing.T) {
	ctx, _, conn := relayedConnection(t)
	defer conn.Close()
	fed := pb.NewFederationClient(conn)
	join := func() error {
		_, err := fed.Join(ctx, &pb.JoinRequest{ClientName: "client-a", ProtocolVersion: server.ProtocolVersion})
		return err
	}
	for i := range 5 {
		if err := join(); err != nil {
			t.Fatalf("Join %d of the burst: %v", i+1, err)
		}
	}
	err := join()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "joins too often") {
		t.Fatalf("sixth Join in a burst through the aggregator: %v, want ResourceExhausted (joins too often)", err)
	}
}

// The root's Aggregation service answers only listed aggregators over their own
// certificate: a client, or an aggregator not in the config, is refused before anything
// else; a listed one may pull (nothing to do yet) but not push a result for a task the
// root never gave it.
func TestAggregationServiceOnlyForListedAggregators(t *testing.T) {
	p := newFederationPKI(t, "agg-0", "agg-9", "client-a")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := startRoot(t, ctx, p, plainConfig(1, 2), []string{"agg-0"})
	dial := func(name string) pb.AggregationClient {
		conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, name))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewAggregationClient(conn)
	}
	for _, name := range []string{"client-a", "agg-9"} {
		_, err := dial(name).ClientsDisconnected(ctx, &pb.ClientsDisconnectedRequest{Clients: []string{"client-a"}})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("ClientsDisconnected from %s: %v, want PermissionDenied", name, err)
		}
	}
	agg := dial("agg-0")
	if _, err := agg.ClientsDisconnected(ctx, &pb.ClientsDisconnectedRequest{Clients: []string{"client-a"}}); err != nil {
		t.Errorf("ClientsDisconnected from the listed aggregator: %v", err)
	}
	pull, err := agg.PullWork(ctx, &pb.PullTaskRequest{WaitMs: 10})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := pull.Recv(); err != nil || c.GetNoTask() == nil {
		t.Errorf("PullWork of an aggregator with nothing to do: %v, %v; want NoTask", c, err)
	}
	push, err := agg.PushWork(ctx)
	if err != nil {
		t.Fatal(err)
	}
	header := &pb.Result{TaskId: "partial-r1-99", Kind: pb.TaskKind_TASK_KIND_PARTIAL_SUM, Round: 1, Status: pb.ResultStatus_RESULT_STATUS_OK}
	if err := push.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: header}}); err != nil {
		t.Fatal(err)
	}
	if _, err := push.CloseAndRecv(); status.Code(err) != codes.NotFound {
		t.Errorf("PushWork for a task never given: %v, want NotFound", err)
	}
}
