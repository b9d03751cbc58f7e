package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/proto/wire"
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
	// Store keeps member states (and, through the trainer, the privacy ledger).
	Store Store
	// Party is the round logic's configuration: the client's floors (threshold,
	// contributions, committee size, flooding noise, DP-SGD noise multiplier), whether it
	// requires secure aggregation and shares statistics without it, its noise source and
	// workers. Run sets its ClientID (Name), Store and Logger.
	Party PartyConfig
	// TLS secures the connection to the server: the server is verified against its
	// RootCAs, and its Certificates (this client's, whose subject common name must be Name)
	// are presented. TLSConfig builds one from PEM files.
	TLS *tls.Config
	// Insecure dials without TLS: traffic in the clear and the name unauthenticated, for
	// tests and trusted networks only. Run needs TLS or Insecure, unless DialOptions carry
	// transport credentials of their own.
	Insecure bool
	// DialOptions are added to the dial, e.g. a context dialer for an in-memory listener.
	DialOptions []grpc.DialOption
	// PollWait is how long a PullTask call may wait for work (default 20s).
	PollWait time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff (defaults 200ms and 10s).
	BackoffMin, BackoffMax time.Duration
	// GiveUpAfter ends Run with an error once the server has been unreachable this long
	// without a break (default 10m).
	GiveUpAfter time.Duration
	Logger      *slog.Logger
	// Tally, when set, counts what became of the client's tasks (read it after Run).
	Tally *Tally
}

// Tally counts a client's tasks by outcome: results the server took (Completed), tasks
// the client refused on privacy grounds (Refused) or could not do (Failed), and results
// the server refused (Rejected).
type Tally struct {
	Completed, Refused, Failed, Rejected int
}

// String is a one-line summary such as "12 tasks done, 1 refused (privacy budget)".
func (t Tally) String() string {
	s := fmt.Sprintf("%d tasks done", t.Completed)
	if t.Refused > 0 {
		s += fmt.Sprintf(", %d refused (privacy budget or floors)", t.Refused)
	}
	if t.Failed > 0 {
		s += fmt.Sprintf(", %d failed", t.Failed)
	}
	if t.Rejected > 0 {
		s += fmt.Sprintf(", %d results refused by the server", t.Rejected)
	}
	return s
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
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	return c
}

// Transport carries a client's calls to the server. Run uses the gRPC transport; the
// simulator can implement it in memory over a server.Coordinator and reuse RunWith's loop.
// Errors carrying the gRPC status codes Unauthenticated (join again) and Unavailable,
// DeadlineExceeded, ResourceExhausted, Aborted, Internal or Unknown (back off and retry)
// steer the loop; a Push failing so is retried with the same result until the server takes
// it or answers otherwise; other errors from Push are the server refusing the result or
// saying its task is gone (late, duplicate, unknown), and are logged.
type Transport interface {
	// Join registers the client; the transport keeps whatever session state it returns.
	Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error)
	// Pull waits up to wait for the next task (with its blobs' data), or reports none
	// (task nil) and whether the federation finished.
	Pull(ctx context.Context, wait time.Duration) (task *pb.Task, finished bool, err error)
	// Push delivers a result (with its blobs' data).
	Push(ctx context.Context, res *pb.Result) error
	Heartbeat(ctx context.Context) error
	Leave(ctx context.Context) error
}

// Run joins the server over gRPC and serves its tasks with trainer until the federation
// finishes (returns nil) or ctx ends (returns ctx's error). Network failures are retried
// with exponential backoff and jitter; a lost session is re-established by joining again.
func Run(ctx context.Context, cfg Config, trainer Trainer) error {
	if cfg.Server == "" {
		return errors.New("client: server address is required")
	}
	opts := slices.Clone(cfg.DialOptions)
	var creds *tlsCredentials
	switch {
	case cfg.TLS != nil && cfg.Insecure:
		return errors.New("client: both TLS and Insecure are set: choose one")
	case cfg.TLS != nil:
		creds = newTLSCredentials(cfg.TLS)
		opts = append(opts, grpc.WithTransportCredentials(creds))
	case cfg.Insecure:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	case len(opts) == 0:
		return errors.New("client: no transport security: set TLS (the federation's CA certificate and this client's certificate; see TLSConfig), or Insecure for plaintext on a trusted network")
	}
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	opts = append(opts, wire.DialOptions()...) // protobuf with chunks' data copied less, larger socket buffers
	conn, err := grpc.NewClient(cfg.Server, opts...)
	if err != nil {
		return fmt.Errorf("client: dialing %s: %w", cfg.Server, err)
	}
	defer conn.Close()
	tr := NewGRPCTransport(conn)
	if creds != nil {
		tr.refusal = creds.refusal.get
	}
	return RunWith(ctx, cfg, tr, trainer)
}

// RunWith is Run over any Transport (cfg.Server, TLS, Insecure and DialOptions are not
// used).
func RunWith(ctx context.Context, cfg Config, tr Transport, trainer Trainer) error {
	cfg = cfg.withDefaults()
	if cfg.Name == "" {
		return errors.New("client: client name is required")
	}
	pc := cfg.Party
	pc.ClientID, pc.Store, pc.Logger = cfg.Name, cfg.Store, cfg.Logger
	party, err := NewParty(pc, trainer)
	if err != nil {
		return err
	}
	r := &runner{cfg: cfg, tr: tr, party: party, log: cfg.Logger.With("client", cfg.Name)}
	return r.loop(ctx)
}

type runner struct {
	cfg       Config
	tr        Transport
	party     *Party
	log       *slog.Logger
	heartbeat time.Duration
	failures  int
	since     time.Time // start of the current run of failures
}

// backoff sleeps for the next exponential backoff interval with full jitter.
func (r *runner) backoff(ctx context.Context) error {
	if r.failures == 0 {
		r.since = time.Now()
	} else if d := time.Since(r.since); d > r.cfg.GiveUpAfter {
		return fmt.Errorf("client: server %s unreachable for %v; giving up", r.cfg.Server, d.Round(time.Second))
	}
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
		resp, err := r.tr.Join(ctx, &pb.JoinRequest{ClientName: r.cfg.Name, JoinToken: r.cfg.JoinToken, CommitteeEligible: r.cfg.CommitteeEligible, ProtocolVersion: protocolVersion})
		if err == nil {
			r.heartbeat = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
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
	hbDone := make(chan struct{})
	interval := r.heartbeat // join writes r.heartbeat again when the session is lost
	go func() { r.heartbeats(hbCtx, interval); close(hbDone) }()
	defer func() { stopHB(); <-hbDone; r.leave() }()
	for {
		task, finished, err := r.tr.Pull(ctx, r.cfg.PollWait)
		if err == nil && finished {
			r.log.Info("federation finished")
			return nil
		}
		if err == nil {
			r.failures = 0
			if task != nil {
				if err := r.serve(ctx, task); err != nil {
					return err
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if status.Code(err) == codes.Unauthenticated {
			r.log.Warn("session lost; joining again", "err", err)
			if err := r.join(ctx); err != nil {
				return err
			}
			continue
		}
		r.log.Warn("pulling a task failed; backing off", "err", err)
		if err := r.backoff(ctx); err != nil {
			return err
		}
	}
}

func (r *runner) heartbeats(ctx context.Context, d time.Duration) {
	if d <= 0 {
		d = 5 * time.Second
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.tr.Heartbeat(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("heartbeat failed", "err", err)
		}
	}
}

func (r *runner) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.tr.Leave(ctx)
}

// serve runs a task and pushes its result. It returns an error only when the client must
// stop: ctx ended, its own state could not be saved (nothing may be sent then), or the
// server stayed unreachable.
func (r *runner) serve(ctx context.Context, task *pb.Task) error {
	start := time.Now()
	res, err := r.party.Handle(ctx, task)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("client: task %s: %w", task.TaskId, err)
	}
	secs := time.Since(start).Seconds()
	switch res.Status {
	case pb.ResultStatus_RESULT_STATUS_OK:
		r.log.Info("task done", "task", task.TaskId, "seconds", secs)
	case pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET:
		r.count(func(t *Tally) { t.Refused++ })
		r.log.Warn("task refused", "task", task.TaskId, "reason", res.Reason)
	default:
		r.count(func(t *Tally) { t.Failed++ })
		r.log.Warn("task failed", "task", task.TaskId, "status", res.Status.String(), "reason", res.Reason)
	}
	taken, err := r.push(ctx, res)
	if taken && res.Status == pb.ResultStatus_RESULT_STATUS_OK {
		r.count(func(t *Tally) { t.Completed++ })
	}
	return err
}

func (r *runner) count(f func(*Tally)) {
	if r.cfg.Tally != nil {
		f(r.cfg.Tally)
	}
}

// push delivers a finished result. The result is kept across attempts: its training is
// already charged to the privacy ledger, so dropping it would spend privacy for nothing.
// Transport failures are retried with backoff, a lost session is joined again, until the
// server takes the result, refuses it, or says its task is gone (its deadline passed, it
// was answered, it is unknown): the server bounds the retries by the task's deadline.
// It reports whether the server took the result.
func (r *runner) push(ctx context.Context, res *pb.Result) (bool, error) {
	start := time.Now()
	for {
		err := r.tr.Push(ctx, res)
		switch {
		case err == nil:
			r.failures = 0
			r.log.Info("result pushed", "task", res.TaskId, "bytes", resultBytes(res), "seconds", time.Since(start).Seconds())
			return true, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case status.Code(err) == codes.Unauthenticated:
			r.log.Warn("session lost while pushing a result; joining again", "task", res.TaskId, "err", err)
			if err := r.join(ctx); err != nil {
				return false, err
			}
		case retryable(err):
			r.log.Warn("pushing a result failed; retrying", "task", res.TaskId, "err", err)
			if err := r.backoff(ctx); err != nil {
				return false, err
			}
		default:
			r.count(func(t *Tally) { t.Rejected++ })
			r.log.Warn("server refused the result", "task", res.TaskId, "err", err)
			return false, nil
		}
	}
}

// resultBytes is the size of a result's blobs.
func resultBytes(res *pb.Result) int {
	n := 0
	for _, b := range res.GetBlobs() {
		n += len(b.GetData())
	}
	return n
}
