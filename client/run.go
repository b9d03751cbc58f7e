package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// protocolVersion is the confide.v1 revision this client speaks.
const protocolVersion = 1

// Config configures Run.
type Config struct {
	// Server is the server's address (host:port).
	Server string
	// Name identifies the client; it is its id in the federation (1…128 of [A-Za-z0-9._-]).
	Name string
	// JoinToken is the federation's shared join token, if it has one.
	JoinToken string
	// CommitteeEligible offers the client for the key committee of secure aggregation.
	CommitteeEligible bool
	// NumExamples is reported at join (informational).
	NumExamples int64
	// Store keeps member states (and, through the trainer, the privacy ledger).
	Store Store
	// MinThreshold and MinContributions: see PartyConfig.
	MinThreshold, MinContributions int
	// Workers for secure-aggregation steps (default 1).
	Workers int
	// DialOptions replace the default (plaintext) transport credentials, e.g. for TLS or
	// an in-memory listener in tests.
	DialOptions []grpc.DialOption
	// PollWait is how long a PullTask call may wait for work (default 20s).
	PollWait time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff (defaults 200ms and 10s).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.PollWait == 0 {
		c.PollWait = 20 * time.Second
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 200 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	return c
}

// Run joins the server and serves its tasks with trainer until the federation finishes
// (returns nil) or ctx ends (returns ctx's error). Network failures are retried with
// exponential backoff and jitter; a lost session is re-established by joining again.
func Run(ctx context.Context, cfg Config, trainer Trainer) error {
	cfg = cfg.withDefaults()
	if cfg.Server == "" || cfg.Name == "" {
		return errors.New("client: server address and client name are required")
	}
	party, err := NewParty(PartyConfig{ClientID: cfg.Name, Store: cfg.Store, MinThreshold: cfg.MinThreshold, MinContributions: cfg.MinContributions, Workers: cfg.Workers}, trainer)
	if err != nil {
		return err
	}
	opts := cfg.DialOptions
	if opts == nil {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	conn, err := grpc.NewClient(cfg.Server, opts...)
	if err != nil {
		return fmt.Errorf("client: dialing %s: %w", cfg.Server, err)
	}
	defer conn.Close()
	r := &runner{cfg: cfg, api: pb.NewFederationClient(conn), party: party, log: cfg.Logger.With("client", cfg.Name)}
	return r.loop(ctx)
}

type runner struct {
	cfg   Config
	api   pb.FederationClient
	party *Party
	log   *slog.Logger

	mu        sync.Mutex
	token     string
	heartbeat time.Duration
	chunk     int
	failures  int
}

func (r *runner) authed(ctx context.Context) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+r.token)
}

// backoff sleeps for the next exponential backoff interval with full jitter.
func (r *runner) backoff(ctx context.Context) error {
	r.failures++
	d := r.cfg.BackoffMin << min(r.failures-1, 16)
	d = min(d, r.cfg.BackoffMax)
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryable reports whether an RPC error is a transport problem worth retrying.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		return true
	}
	return false
}

func (r *runner) join(ctx context.Context) error {
	for {
		resp, err := r.api.Join(ctx, &pb.JoinRequest{ClientName: r.cfg.Name, JoinToken: r.cfg.JoinToken, CommitteeEligible: r.cfg.CommitteeEligible, NumExamples: r.cfg.NumExamples, ProtocolVersion: protocolVersion})
		if err == nil {
			r.mu.Lock()
			r.token = resp.SessionToken
			r.heartbeat = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
			r.chunk = int(resp.MaxChunkBytes)
			r.mu.Unlock()
			r.failures = 0
			r.log.Info("joined", "server", r.cfg.Server)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return fmt.Errorf("client: join refused: %w", err)
		}
		r.log.Warn("join failed; retrying", "err", err)
		if err := r.backoff(ctx); err != nil {
			return err
		}
	}
}

func (r *runner) loop(ctx context.Context) error {
	if err := r.join(ctx); err != nil {
		return err
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go r.heartbeats(hbCtx)
	defer r.leave()
	for {
		task, finished, err := r.pull(ctx)
		if err == nil && finished {
			r.log.Info("federation finished")
			return nil
		}
		if err == nil && task != nil {
			err = r.serve(ctx, task)
		}
		if err == nil {
			r.failures = 0
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case status.Code(err) == codes.Unauthenticated:
			r.log.Warn("session lost; joining again", "err", err)
			if err := r.join(ctx); err != nil {
				return err
			}
		case retryable(err):
			r.log.Warn("server unreachable; backing off", "err", err)
			if err := r.backoff(ctx); err != nil {
				return err
			}
		default:
			// The server refused a result (late, duplicate, invalid): log and go on.
			r.log.Warn("server refused", "err", err)
		}
	}
}

func (r *runner) heartbeats(ctx context.Context) {
	for {
		r.mu.Lock()
		d := r.heartbeat
		r.mu.Unlock()
		if d <= 0 {
			d = 5 * time.Second
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if _, err := r.api.Heartbeat(r.authed(ctx), &pb.HeartbeatRequest{}); err != nil && ctx.Err() == nil {
			r.log.Debug("heartbeat failed", "err", err)
		}
	}
}

func (r *runner) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.api.Leave(r.authed(ctx), &pb.LeaveRequest{})
}

// maxTaskBytes bounds the payload of one task the client accepts.
const maxTaskBytes = 4 << 30

// pull fetches the next task with its blobs, or reports that there is none (yet).
func (r *runner) pull(ctx context.Context) (*pb.Task, bool, error) {
	stream, err := r.api.PullTask(r.authed(ctx), &pb.PullTaskRequest{WaitMs: r.cfg.PollWait.Milliseconds()})
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
	var total int64
	for _, b := range task.Blobs {
		if b.Size < 0 || total+b.Size > maxTaskBytes {
			return nil, false, fmt.Errorf("client: task %s announces an oversized payload", task.TaskId)
		}
		total += b.Size
	}
	buf := make([]byte, 0, total)
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		if int64(len(buf)+len(c.GetData())) > total {
			return nil, false, fmt.Errorf("client: task %s sends more bytes than announced", task.TaskId)
		}
		buf = append(buf, c.GetData()...)
	}
	if int64(len(buf)) != total {
		return nil, false, fmt.Errorf("client: task %s stream ended after %d of %d bytes", task.TaskId, len(buf), total)
	}
	var off int64
	for _, b := range task.Blobs {
		b.Data = buf[off : off+b.Size : off+b.Size]
		off += b.Size
	}
	return task, false, nil
}

// serve runs a task and pushes its result.
func (r *runner) serve(ctx context.Context, task *pb.Task) error {
	start := time.Now()
	res, err := r.party.Handle(ctx, task)
	if err != nil {
		return err
	}
	r.log.Info("task done", "task", task.TaskId, "status", res.Status.String(), "reason", res.Reason, "seconds", time.Since(start).Seconds())
	return r.push(ctx, res)
}

func (r *runner) push(ctx context.Context, res *pb.Result) error {
	stream, err := r.api.PushResult(r.authed(ctx))
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
	r.mu.Lock()
	chunk := r.chunk
	r.mu.Unlock()
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
