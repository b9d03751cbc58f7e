package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// maxTaskBytes bounds the payload of one task the client accepts.
const maxTaskBytes = 4 << 30

// GRPCTransport is the Transport over a gRPC connection to a confide.v1 server: it keeps the
// session token, streams task payloads in and result payloads out in chunks, and checks
// sizes and digests.
type GRPCTransport struct {
	api   pb.FederationClient
	mu    sync.Mutex
	token string
	chunk int
}

var _ Transport = (*GRPCTransport)(nil)

// NewGRPCTransport returns a transport over conn.
func NewGRPCTransport(conn grpc.ClientConnInterface) *GRPCTransport {
	return &GRPCTransport{api: pb.NewFederationClient(conn)}
}

func (g *GRPCTransport) authed(ctx context.Context) context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.token)
}

func (g *GRPCTransport) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	resp, err := g.api.Join(ctx, req)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.token, g.chunk = resp.SessionToken, int(resp.MaxChunkBytes)
	g.mu.Unlock()
	return resp, nil
}

func (g *GRPCTransport) Heartbeat(ctx context.Context) error {
	_, err := g.api.Heartbeat(g.authed(ctx), &pb.HeartbeatRequest{})
	return err
}

func (g *GRPCTransport) Leave(ctx context.Context) error {
	_, err := g.api.Leave(g.authed(ctx), &pb.LeaveRequest{})
	return err
}

// Pull fetches the next task with its blobs, or reports that there is none (yet).
func (g *GRPCTransport) Pull(ctx context.Context, wait time.Duration) (*pb.Task, bool, error) {
	stream, err := g.api.PullTask(g.authed(ctx), &pb.PullTaskRequest{WaitMs: wait.Milliseconds()})
	if err != nil {
		return nil, false, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, false, err
	}
	if nt := first.GetNoTask(); nt != nil {
		return nil, nt.Finished, nil
	}
	task := first.GetTask()
	if task == nil {
		return nil, false, errors.New("client: server stream did not start with a task header")
	}
	asm, err := blob.NewAssembler(task.Blobs, maxTaskBytes)
	if err != nil {
		return nil, false, fmt.Errorf("client: task %s: %w", task.TaskId, err)
	}
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if err := asm.Add(c.GetData()); err != nil {
			return nil, false, fmt.Errorf("client: task %s: %w", task.TaskId, err)
		}
	}
	if _, err := asm.Finish(); err != nil {
		return nil, false, fmt.Errorf("client: task %s: %w", task.TaskId, err)
	}
	return task, false, nil
}

// Push streams the result header, then every blob's bytes in chunks of the server's size.
func (g *GRPCTransport) Push(ctx context.Context, res *pb.Result) error {
	stream, err := g.api.PushResult(g.authed(ctx))
	if err != nil {
		return err
	}
	header := &pb.Result{TaskId: res.TaskId, Kind: res.Kind, Round: res.Round, Status: res.Status, Reason: res.Reason, NumExamples: res.NumExamples, Metrics: res.Metrics}
	for _, b := range res.Blobs {
		header.Blobs = append(header.Blobs, &pb.Blob{Name: b.Name, Size: b.Size, Sha256: b.Sha256})
	}
	if err := stream.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: header}}); err != nil {
		return closeErr(stream, err)
	}
	g.mu.Lock()
	chunk := g.chunk
	g.mu.Unlock()
	if chunk <= 0 {
		chunk = 1 << 20
	}
	for _, b := range res.Blobs {
		if err := blob.Verify(b); err != nil {
			return err
		}
		for off := 0; off < len(b.Data); off += chunk {
			end := min(off+chunk, len(b.Data))
			if err := stream.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: b.Data[off:end]}}); err != nil {
				return closeErr(stream, err)
			}
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// closeErr returns the server's status when Send failed because the server ended the call.
func closeErr(stream grpc.ClientStreamingClient[pb.ResultChunk, pb.PushResultResponse], err error) error {
	if err == io.EOF {
		_, err = stream.CloseAndRecv()
	}
	return err
}
