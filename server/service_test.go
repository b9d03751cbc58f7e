package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

type testService struct {
	svc  *server.Service
	conn *grpc.ClientConn
	api  pb.FederationClient
}

// startService serves a coordinator over an in-memory listener with small chunks.
func startService(t *testing.T, cfg server.Config) *testService {
	t.Helper()
	coord, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return startServiceWith(t, coord, server.ServiceConfig{JoinToken: "tok", TickInterval: 20 * time.Millisecond, MaxChunkBytes: 16, MaxResultBytes: 4096, MaxPullWait: 200 * time.Millisecond, MaxClients: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// startServiceWith is startService for a coordinator and service settings of the test's own.
func startServiceWith(t *testing.T, coord *server.Coordinator, sc server.ServiceConfig) *testService {
	t.Helper()
	svc := server.NewService(coord, sc)
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
	return &testService{svc: svc, conn: conn, api: pb.NewFederationClient(conn)}
}

func (s *testService) join(t *testing.T, name string) context.Context {
	t.Helper()
	resp, err := s.api.Join(t.Context(), &pb.JoinRequest{ClientName: name, JoinToken: "tok", ProtocolVersion: server.ProtocolVersion})
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+resp.SessionToken)
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %v, want %v mentioning %q", err, code, msg)
	}
}

func TestServiceJoinAndAuthentication(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctx := t.Context()
	_, err := s.api.Join(ctx, &pb.JoinRequest{ClientName: "a", JoinToken: "wrong", ProtocolVersion: server.ProtocolVersion})
	wantCode(t, err, codes.Unauthenticated, "join token rejected")
	_, err = s.api.Join(ctx, &pb.JoinRequest{ClientName: "a", JoinToken: "tok", ProtocolVersion: 99})
	wantCode(t, err, codes.FailedPrecondition, "protocol version 99")
	_, err = s.api.Join(ctx, &pb.JoinRequest{ClientName: "../etc", JoinToken: "tok", ProtocolVersion: server.ProtocolVersion})
	wantCode(t, err, codes.InvalidArgument, "client name")
	_, err = s.api.Heartbeat(ctx, &pb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated, "call Join first")
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer forged")
	_, err = s.api.Heartbeat(bad, &pb.HeartbeatRequest{})
	wantCode(t, err, codes.Unauthenticated, "call Join first")
	if _, err := s.api.Heartbeat(s.join(t, "a"), &pb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	s.join(t, "b")
	_, err = s.api.Join(ctx, &pb.JoinRequest{ClientName: "c", JoinToken: "tok", ProtocolVersion: server.ProtocolVersion})
	wantCode(t, err, codes.ResourceExhausted, "full (2 clients): its operator can raise the limit with max_clients")
	s.join(t, "a") // a known client may always rejoin
	h, err := healthpb.NewHealthClient(s.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "confide.v1.Federation"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
}

// pullTask reads one task with its blobs over the wire.
func pullTask(t *testing.T, api pb.FederationClient, ctx context.Context) (*pb.Task, int) {
	t.Helper()
	for {
		stream, err := api.PullTask(ctx, &pb.PullTaskRequest{WaitMs: 200})
		if err != nil {
			t.Fatal(err)
		}
		first, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if first.GetNoTask() != nil {
			continue
		}
		task := first.GetTask()
		var data []byte
		chunks := 0
		for {
			c, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, c.GetData()...)
			chunks++
		}
		off := int64(0)
		for _, b := range task.Blobs {
			b.Data = data[off : off+b.Size]
			off += b.Size
		}
		return task, chunks
	}
}

func TestServiceStreamsTasksInChunksAndValidatesPushes(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctxA, ctxB := s.join(t, "a"), s.join(t, "b")
	task, chunks := pullTask(t, s.api, ctxA)
	params, err := blob.Find(task.Blobs, blob.Params)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(params) + 15) / 16; chunks != want {
		t.Fatalf("%d chunks for %d bytes at 16 bytes a chunk, want %d", chunks, len(params), want)
	}
	push := func(ctx context.Context, header *pb.Result, data ...[]byte) error {
		st, err := s.api.PushResult(ctx)
		if err != nil {
			return err
		}
		if header != nil {
			if err := st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: header}}); err != nil {
				_, err = st.CloseAndRecv()
				return err
			}
		}
		for _, d := range data {
			if err := st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: d}}); err != nil {
				_, err = st.CloseAndRecv()
				return err
			}
		}
		_, err = st.CloseAndRecv()
		return err
	}
	update := blob.EncodeFloats(make([]float64, 8))
	good := blob.New(blob.Update, update)
	header := func(size int64) *pb.Result {
		return &pb.Result{TaskId: task.TaskId, Kind: task.Kind, Round: task.Round, Status: pb.ResultStatus_RESULT_STATUS_OK, NumExamples: 10,
			Blobs: []*pb.Blob{{Name: blob.Update, Size: size, Sha256: good.Sha256}}}
	}
	wantCode(t, push(ctxA, nil, update[:16]), codes.InvalidArgument, "must hold the result header")
	wantCode(t, push(ctxA, header(1<<20)), codes.ResourceExhausted, "exceeds the server's limit")
	wantCode(t, push(ctxA, header(64), update[:16], make([]byte, 17)), codes.InvalidArgument, "chunk of 17 bytes")
	wantCode(t, push(ctxA, header(64), update[:16]), codes.InvalidArgument, "stream ended after 16 of the 64")
	corrupt := append([]byte{1}, update[1:]...)
	wantCode(t, push(ctxA, header(64), corrupt[:16], corrupt[16:32], corrupt[32:48], corrupt[48:]), codes.InvalidArgument, "SHA-256")
	wantCode(t, push(ctxB, header(64), update[:16], update[16:32], update[32:48], update[48:]), codes.PermissionDenied, "another client")
	if err := push(ctxA, header(64), update[:16], update[16:32], update[32:48], update[48:]); err != nil {
		t.Fatalf("valid push: %v", err)
	}
	wantCode(t, push(ctxA, header(64), update[:16], update[16:32], update[32:48], update[48:]), codes.AlreadyExists, "already answered")
}

func TestServiceMetricsAfterARound(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctxs := []context.Context{s.join(t, "a"), s.join(t, "b")}
	for _, ctx := range ctxs {
		task, _ := pullTask(t, s.api, ctx)
		st, err := s.api.PushResult(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b := blob.New(blob.Update, blob.EncodeFloats(make([]float64, 8)))
		st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: &pb.Result{TaskId: task.TaskId, Kind: task.Kind, Round: task.Round,
			Status: pb.ResultStatus_RESULT_STATUS_OK, NumExamples: 10, Metrics: map[string]float64{"epsilon": 0.5},
			Blobs: []*pb.Blob{{Name: b.Name, Size: b.Size, Sha256: b.Sha256}}}}})
		for off := 0; off < len(b.Data); off += 16 {
			st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: b.Data[off : off+16]}})
		}
		if _, err := st.CloseAndRecv(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.svc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("federation did not finish")
	}
	mfs, err := s.svc.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, want := range map[string]float64{"confide_rounds_total": 1, "confide_round": 1, "confide_epsilon_max": 0.5, "confide_round_duration_seconds": 1, "confide_received_bytes_total": 128} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if got["confide_sent_bytes_total"] < 128 {
		t.Errorf("confide_sent_bytes_total = %v, want at least the two parameter vectors", got["confide_sent_bytes_total"])
	}
}
