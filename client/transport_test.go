package client_test

import (
	"context"
	"math"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// lyingServer answers PullTask with a header announcing the given blob sizes, then data.
type lyingServer struct {
	pb.UnimplementedFederationServer
	sizes []int64
	data  [][]byte
}

func (s *lyingServer) PullTask(_ *pb.PullTaskRequest, stream grpc.ServerStreamingServer[pb.TaskChunk]) error {
	task := &pb.Task{TaskId: "fit-r1-1", Kind: pb.TaskKind_TASK_KIND_FIT, Round: 1}
	for _, n := range s.sizes {
		task.Blobs = append(task.Blobs, &pb.Blob{Name: blob.Params, Size: n})
	}
	if err := stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_Task{Task: task}}); err != nil {
		return err
	}
	for _, d := range s.data {
		if err := stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: d}}); err != nil {
			return err
		}
	}
	return nil
}

func lyingTransport(t *testing.T, srv *lyingServer) *client.GRPCTransport {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	pb.RegisterFederationServer(g, srv)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///lying",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return client.NewGRPCTransport(conn)
}

// A malicious server must not be able to crash a client with blob sizes whose sum wraps
// around int64 (2 + MaxInt64 used to pass the size check and panic in make).
func TestPullRefusesLyingTaskHeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int64
		data  [][]byte
		want  string
	}{
		{"wrapping-sizes", []int64{2, math.MaxInt64}, nil, "exceeds"},
		{"huge", []int64{math.MaxInt64}, nil, "exceeds"},
		{"negative", []int64{-3}, nil, "size -3"},
		{"more-than-announced", []int64{2}, [][]byte{[]byte("abc")}, "more bytes than"},
		{"fewer-than-announced", []int64{4}, [][]byte{[]byte("ab")}, "after 2 of the 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := lyingTransport(t, &lyingServer{sizes: tc.sizes, data: tc.data})
			_, _, err := tr.Pull(t.Context(), 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pull err = %v, want %q", err, tc.want)
			}
		})
	}
}
