package aggregator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/proto/wire"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// Config configures a Relay.
type Config struct {
	// ClientTimeout is how long a client's session stays live without a call from it
	// (default 30s; use the server's deadlines.client_timeout): a Join for its identity over
	// another connection is refused while it is.
	ClientTimeout time.Duration
	// MaxChunkBytes bounds one message from a client (default 1 MiB, the server's default
	// max chunk; it must be at least the server's, which clients are told at Join).
	MaxChunkBytes int
	// Verifier, with Name, makes the relay sum its clients' fit uploads (summing.go): it
	// checks their certificates against the federation's CA. Nil: uploads are relayed one
	// by one.
	Verifier *secagg.Verifier
	// Name is the aggregator's identity at the server: its upstream certificate's subject.
	Name string
	// MaxResultBytes bounds a client's upload that the relay reads to sum (default 1 GiB,
	// the server's default).
	MaxResultBytes int64
	Logger         *slog.Logger
}

// Relay serves confide.v1.Federation to clients and makes each of their calls upstream,
// on their behalf (see the package comment).
type Relay struct {
	pb.UnimplementedFederationServer
	up  pb.FederationClient
	agg pb.AggregationClient
	cfg Config
	log *slog.Logger

	nextConn atomic.Uint64
	mu       sync.Mutex
	byClient map[string]*downstream // identity → its session's latest connection
	byToken  map[string]string      // session token → identity
	open     map[uint64]bool        // downstream connections open now
	now      func() time.Time
	// Summing (summing.go): the fit tasks relayed, and the subtotals of the rounds.
	tasks map[string]fitTask
	sums  map[roundKey]*subtotal
	held  atomic.Int64 // uploads held and summed
	// tamper, set by tests only, alters the partial sums the relay forwards (a lying
	// aggregator).
	tamper func(round uint64, p *secagg.PartialSum) *secagg.PartialSum
}

var _ pb.FederationServer = (*Relay)(nil)

// downstream is what a Relay knows of a client's session.
type downstream struct {
	token    string
	conn     uint64
	addr     string
	lastSeen time.Time
}

// New returns a Relay whose calls go to the server over upstream, a connection that
// presents the aggregator's certificate (or, on a federation without TLS, none).
func New(upstream grpc.ClientConnInterface, cfg Config) *Relay {
	if cfg.ClientTimeout <= 0 {
		cfg.ClientTimeout = 30 * time.Second
	}
	if cfg.MaxChunkBytes <= 0 {
		cfg.MaxChunkBytes = 1 << 20
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = 1 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{up: pb.NewFederationClient(upstream), agg: pb.NewAggregationClient(upstream), cfg: cfg, log: cfg.Logger,
		byClient: map[string]*downstream{}, byToken: map[string]string{}, open: map[uint64]bool{}, now: time.Now,
		tasks: map[string]fitTask{}, sums: map[roundKey]*subtotal{}}
}

// NewGRPCServer returns a gRPC server with the relay registered, message-size limits for
// the clients' chunks, and a stats handler that tracks which client connections are open.
// opts are appended (e.g. grpc.Creds with server.TLSConfig's credentials).
func (r *Relay) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	limit := r.cfg.MaxChunkBytes + 64<<10 // a chunk plus header room, as the server
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit),
		grpc.StatsHandler(connTracker{r}),
	}, append(wire.ServerOptions(), opts...)...) // as the server: chunks' data copied less, larger read buffer
	g := grpc.NewServer(opts...)
	pb.RegisterFederationServer(g, r)
	return g
}

type connKey struct{}

// connTracker numbers the relay's client connections and records which are open.
type connTracker struct{ r *Relay }

var _ stats.Handler = connTracker{}

func (c connTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, c.r.nextConn.Add(1))
}

func (c connTracker) HandleConn(ctx context.Context, st stats.ConnStats) {
	id, _ := ctx.Value(connKey{}).(uint64)
	c.r.mu.Lock()
	switch st.(type) {
	case *stats.ConnBegin:
		c.r.open[id] = true
	case *stats.ConnEnd:
		delete(c.r.open, id)
		c.r.mu.Unlock()
		c.r.notifyDisconnected(id)
		return
	}
	c.r.mu.Unlock()
}

func (connTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (connTracker) HandleRPC(context.Context, stats.RPCStats)                       {}

// caller is what the relay knows of a call's client.
type caller struct {
	cert      string // the identity its verified certificate proves ("" without one)
	certified bool
	token     string
	conn      uint64
	addr      string
}

func callerOf(ctx context.Context) (caller, error) {
	var c caller
	c.conn, _ = ctx.Value(connKey{}).(uint64)
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			c.addr = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			c.cert, c.certified = ti.State.VerifiedChains[0][0].Subject.CommonName, true
			if err := server.CheckClientName(c.cert); err != nil {
				return c, status.Errorf(codes.PermissionDenied, "the client certificate's subject: %v (the CA must issue client certificates with such a name)", err)
			}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 1 && len(v[0]) > 7 && v[0][:7] == "Bearer " {
		c.token = v[0][7:]
	}
	return c, nil
}

// upstream returns the context of the call made for c: its session token, and the
// identity its certificate proves, which the relay vouches for.
func (r *Relay) upstream(ctx context.Context, c caller) context.Context {
	md := metadata.MD{}
	if c.token != "" {
		md.Set("authorization", "Bearer "+c.token)
	}
	if c.certified {
		md.Set(server.RelayedClientKey, c.cert)
	}
	if c.addr != "" {
		md.Set(server.RelayedPeerKey, c.addr)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// seen records a call of the client with c's token over c's connection.
func (r *Relay) seen(c caller) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.byToken[c.token]
	if !ok {
		return // a session from before this relay started, or none: the server decides
	}
	s := r.byClient[id]
	s.conn, s.addr, s.lastSeen = c.conn, c.addr, r.now()
}

// admit refuses a Join for identity over c while its session is live on another open
// connection (the rule of server/auth.go, applied to the clients only the relay sees).
func (r *Relay) admit(identity string, c caller) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.byClient[identity]
	if !ok || old.conn == c.conn {
		return nil
	}
	idle := r.now().Sub(old.lastSeen)
	if r.open[old.conn] && idle <= r.cfg.ClientTimeout {
		return status.Errorf(codes.AlreadyExists, "client %q already has a live session through this aggregator, connected from %s (last call %s ago), so this Join from %s is refused: stop the other process that uses this identity, or wait until its connection closes or it has been silent for %s",
			identity, old.addr, idle.Round(time.Millisecond), c.addr, r.cfg.ClientTimeout)
	}
	return nil
}

// Join forwards a client's Join and records its session.
func (r *Relay) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	identity := req.GetClientName()
	if c.certified {
		identity = c.cert // the server refuses a name that is not the certificate's
	}
	if err := r.admit(identity, c); err != nil {
		r.log.Warn("join refused: the client has a live session", "client", identity, "peer", c.addr)
		return nil, err
	}
	resp, err := r.up.Join(r.upstream(ctx, c), req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if old, ok := r.byClient[identity]; ok {
		delete(r.byToken, old.token)
	}
	r.byClient[identity] = &downstream{token: resp.GetSessionToken(), conn: c.conn, addr: c.addr, lastSeen: r.now()}
	r.byToken[resp.GetSessionToken()] = identity
	r.mu.Unlock()
	r.log.Info("client joined through this aggregator", "client", identity, "certified", c.certified, "peer", c.addr)
	return resp, nil
}

// PullTask forwards a pull and streams the task's chunks to the client as they arrive.
func (r *Relay) PullTask(req *pb.PullTaskRequest, stream grpc.ServerStreamingServer[pb.TaskChunk]) error {
	ctx := stream.Context()
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	r.seen(c)
	up, err := r.up.PullTask(r.upstream(ctx, c), req)
	if err != nil {
		return err
	}
	for {
		chunk, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t := chunk.GetTask(); t != nil && c.certified {
			r.noteTask(c.cert, t)
		}
		if err := stream.Send(chunk); err != nil {
			return err
		}
	}
}

// PushResult forwards a client's upload chunk by chunk and returns the server's verdict.
func (r *Relay) PushResult(stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse]) error {
	ctx := stream.Context()
	c, err := callerOf(ctx)
	if err != nil {
		return err
	}
	r.seen(c)
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if res := first.GetResult(); r.summing() && c.certified && res != nil && res.GetKind() == pb.TaskKind_TASK_KIND_FIT &&
		res.GetStatus() == pb.ResultStatus_RESULT_STATUS_OK && len(res.GetBlobs()) == 1 && res.GetBlobs()[0].GetName() == blob.EncryptedUpdate {
		return r.pushHeld(ctx, c, res, stream)
	}
	upCtx, cancel := context.WithCancel(r.upstream(ctx, c))
	defer cancel() // a client that breaks off its upload breaks off the relayed one
	up, err := r.up.PushResult(upCtx)
	if err != nil {
		return err
	}
	for chunk := first; ; {
		if err := up.Send(chunk); err != nil {
			if errors.Is(err, io.EOF) {
				// The server ended the stream: its status says why.
				_, err = up.CloseAndRecv()
			}
			return err
		}
		chunk, err = stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	resp, err := up.CloseAndRecv()
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// pushHeld reads a client's fit upload whole and holds it for the round's partial sum
// (summing.go), or relays it unchanged when it is not one the relay can hold.
func (r *Relay) pushHeld(ctx context.Context, c caller, res *pb.Result, stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse]) error {
	asm, err := blob.NewAssembler(res.Blobs, r.cfg.MaxResultBytes)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
	}
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if chunk.GetResult() != nil {
			return status.Error(codes.InvalidArgument, "a second result header in one PushResult")
		}
		if err := asm.Add(chunk.GetData()); err != nil {
			return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
		}
	}
	blobs, err := asm.Finish()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
	}
	held, resp, err := r.hold(ctx, c, res, blobs)
	if !held {
		full := proto.CloneOf(res)
		full.Blobs = blobs
		resp, err = r.pushUpstream(r.upstream(ctx, c), r.up.PushResult, full)
	}
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// Heartbeat forwards a client's heartbeat.
func (r *Relay) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	r.seen(c)
	return r.up.Heartbeat(r.upstream(ctx, c), req)
}

// Leave forwards a client's Leave and forgets its session once the server did.
func (r *Relay) Leave(ctx context.Context, req *pb.LeaveRequest) (*pb.LeaveResponse, error) {
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := r.up.Leave(r.upstream(ctx, c), req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if id, ok := r.byToken[c.token]; ok {
		delete(r.byToken, c.token)
		delete(r.byClient, id)
	}
	r.mu.Unlock()
	return resp, nil
}

// Sessions returns the number of client sessions the relay holds.
func (r *Relay) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byClient)
}
