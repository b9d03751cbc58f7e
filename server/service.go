package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/proto/wire"
)

// ProtocolVersion is the confide.v1 protocol revision this server speaks.
const ProtocolVersion = 1

// ServiceConfig configures the gRPC service around a coordinator.
type ServiceConfig struct {
	// JoinToken, when set, must be presented by every joining client (an extra on top of
	// client certificates, or the only gate without TLS).
	JoinToken string
	// RequireClientCertificate refuses every call that does not come over TLS with a
	// client certificate verified by the server (serve with TLSConfig's credentials); the
	// client's identity is then its certificate's subject common name. Without it a
	// client's identity is the name it joins with, unless it presents a verified certificate.
	RequireClientCertificate bool
	// Aggregators are the certificate identities that may relay calls on their clients'
	// behalf (hierarchical aggregation; see hierarchy.go). Empty: no call may be relayed.
	Aggregators []string
	// TickInterval is how often the coordinator's clock advances (default 1s).
	TickInterval time.Duration
	// HeartbeatInterval is what clients are told to use (default 5s).
	HeartbeatInterval time.Duration
	// MaxChunkBytes bounds one streamed chunk (default 1 MiB); MaxResultBytes the blobs of
	// one result (default 1 GiB). A result is further bounded by what its task can produce
	// (Coordinator.ResultLimit), checked before its data is read.
	MaxChunkBytes  int
	MaxResultBytes int64
	// MaxPullWait caps how long PullTask holds a call without a task (default 20s).
	MaxPullWait time.Duration
	// MaxConcurrentUploads bounds PushResult streams in flight (default 64); each client has
	// at most one in flight. An upload waits up to UploadSlotWait (default 2m) for a slot
	// before it is refused with ResourceExhausted.
	MaxConcurrentUploads int
	UploadSlotWait       time.Duration
	// MaxUploadBytes bounds the bytes of the uploads being received at once, by the blob
	// sizes their headers declare (default 1 GiB): with large models, 64 slots of
	// whole-update buffers would otherwise hold 64 updates in memory (64 × 74 MB for a
	// packed 10⁷-parameter update). An upload waits for room, within UploadSlotWait, as for
	// a slot; one larger than the budget waits for all of it. A received upload keeps its
	// share of the budget while it waits in the coordinator's aggregation work, until it is
	// added (or refused), so the uploads held whole at once stay within the budget however
	// fast they arrive.
	MaxUploadBytes int64
	// MaxConcurrentDownloads bounds the tasks whose data is being streamed at once
	// (default 64; a PullTask waits for a slot), and SendChunkBytes the chunks they are
	// streamed in (default just under 32 KiB): gRPC holds a chunk per stream until the client's flow
	// control takes it, so these two bound the server's send buffers whatever the number of
	// clients.
	MaxConcurrentDownloads int
	SendChunkBytes         int
	// MaxClients bounds the number of identities with a session (default 100000;
	// max_clients in the server's YAML, --max-clients).
	MaxClients int
	// UploadIdle is the longest a result upload may wait for its next chunk (its header
	// included) before the server drops it (default 1m); UploadMax bounds a whole upload
	// (default 30m). An upload holds one of MaxConcurrentUploads slots only once its header
	// names a task outstanding for its client.
	UploadIdle, UploadMax time.Duration
	// JoinRate and JoinBurst bound Joins per identity (default 1 a second, bursts of 5),
	// and PeerJoinRate, PeerJoinBurst per peer address (default 50 a second, bursts of
	// 200: clients behind one NAT share an address).
	JoinRate, PeerJoinRate   float64
	JoinBurst, PeerJoinBurst int
	Store                    Store
	Metrics                  *Metrics
	Logger                   *slog.Logger
	// Live, when set, is fed the coordinator's notices and state for the dashboard.
	Live *Live
}

func (c ServiceConfig) withDefaults() ServiceConfig {
	if c.TickInterval == 0 {
		c.TickInterval = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.MaxChunkBytes == 0 {
		c.MaxChunkBytes = 1 << 20
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = 1 << 30
	}
	if c.MaxPullWait == 0 {
		c.MaxPullWait = 20 * time.Second
	}
	if c.MaxConcurrentUploads == 0 {
		c.MaxConcurrentUploads = 64
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = 1 << 30
	}
	if c.UploadSlotWait == 0 {
		c.UploadSlotWait = 2 * time.Minute
	}
	if c.MaxConcurrentDownloads == 0 {
		c.MaxConcurrentDownloads = 64
	}
	if c.SendChunkBytes == 0 {
		// Just under 32 KiB with the message's framing: gRPC marshals into pooled buffers of
		// 256 B, 4, 16 and 32 KiB and 1 MiB, so a chunk one byte over 32 KiB takes 1 MiB.
		c.SendChunkBytes = 32<<10 - 64
	}
	c.SendChunkBytes = min(c.SendChunkBytes, c.MaxChunkBytes)
	if c.MaxClients == 0 {
		c.MaxClients = 100000
	}
	if c.UploadIdle == 0 {
		c.UploadIdle = time.Minute
	}
	if c.UploadMax == 0 {
		c.UploadMax = 30 * time.Minute
	}
	if c.JoinRate == 0 {
		c.JoinRate, c.JoinBurst = 1, 5
	}
	if c.PeerJoinRate == 0 {
		c.PeerJoinRate, c.PeerJoinBurst = 50, 200
	}
	if c.Store == nil {
		c.Store = &MemoryStore{}
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Service is the gRPC face of a coordinator: it turns calls into events, steps the
// coordinator from one goroutine (Run), persists its records, queues its tasks per client,
// and streams task and result payloads in chunks.
type Service struct {
	pb.UnimplementedFederationServer
	cfg       ServiceConfig
	coord     *Coordinator
	events    chan request
	health    *health.Server
	log       *slog.Logger
	uploads   chan struct{}
	downloads chan struct{}
	// uploadBytes is the budget of MaxUploadBytes the uploads being received, or waiting
	// to be added, hold; held maps a queued upload's first blob to its share (under mu).
	uploadBytes *semaphore.Weighted
	held        map[*pb.Blob]*uploadShare

	sessions *sessionTable
	// joinMu makes a Join's admission check, its coordinator event and its new session one
	// step, so two concurrent Joins for one identity cannot both pass.
	joinMu sync.Mutex

	mu         sync.Mutex
	uploading  map[string]bool // clients with a PushResult in flight
	joinLimits *joinLimits
	driver     Driver
	// The driver's work the coordinator asked for, each done on a goroutine of its own.
	evals *workQueue[EvaluationRequest]
	work  *workQueue[Work]
	mail  map[string]*mailbox
	// aggregatorConns maps the connections Aggregation calls came over to their
	// aggregator (aggregation.go).
	aggregatorConns map[uint64]string
	finished        bool
	round           uint64
	done            chan struct{}
	roundStart      map[uint64]time.Time
}

var _ pb.FederationServer = (*Service)(nil)

type mailbox struct {
	tasks []*pb.Task
	wake  chan struct{}
}

// request is an event for the coordinator, or (query set) a read of its state; both run
// on Run's goroutine.
type request struct {
	ev    Event
	query func(*Coordinator) error
	reply chan error
}

// NewService wraps a coordinator. Call Run to drive it and Register to serve it.
func NewService(coord *Coordinator, cfg ServiceConfig) *Service {
	cfg = cfg.withDefaults()
	idle := coord.Config().Deadlines.ClientTimeout
	if idle <= 0 {
		idle = 30 * time.Second
	}
	s := &Service{
		cfg: cfg, coord: coord, events: make(chan request), health: health.NewServer(), log: cfg.Logger,
		uploads: make(chan struct{}, cfg.MaxConcurrentUploads), downloads: make(chan struct{}, cfg.MaxConcurrentDownloads), uploadBytes: semaphore.NewWeighted(cfg.MaxUploadBytes), held: map[*pb.Blob]*uploadShare{}, uploading: map[string]bool{},
		joinLimits: newJoinLimits(cfg), evals: newWorkQueue[EvaluationRequest](), work: newWorkQueue[Work](),
		sessions: newSessionTable(idle), mail: map[string]*mailbox{},
		done: make(chan struct{}), roundStart: map[uint64]time.Time{},
	}
	s.driver = Driver{Store: cfg.Store, Deliver: s.deliver, Evaluate: s.evals.push, Work: s.queueWork, Notify: s.notice}
	cfg.Live.attach(s)
	return s
}

// Metrics returns the service's metrics (serve Metrics().Registry on /metrics).
func (s *Service) Metrics() *Metrics { return s.cfg.Metrics }

// Done is closed when the federation has run all its rounds.
func (s *Service) Done() <-chan struct{} { return s.done }

// Run steps the coordinator until ctx ends: events from the RPC handlers and a tick every
// TickInterval. It returns ctx's error, or the store's error (after which nothing more is
// delivered).
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.TickInterval)
	defer tick.Stop()
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	eval, iterate := s.coord.CentralEvaluator(), s.coord.IterateEvaluator()
	go s.evals.run(workCtx, func(ctx context.Context, req EvaluationRequest) { s.evaluate(ctx, eval, iterate, req) })
	go s.work.run(workCtx, s.runWork)
	last := time.Now()
	if err := s.apply(s.step(Tick{})); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case req := <-s.events:
			if req.query != nil {
				req.reply <- req.query(s.coord)
				continue
			}
			r, err := s.coord.Step(req.ev)
			if aerr := s.apply(r, nil); aerr != nil {
				req.reply <- status.Error(codes.Unavailable, "server store failure")
				return aerr
			}
			req.reply <- err
		case now := <-tick.C:
			if err := s.apply(s.step(Tick{Elapsed: now.Sub(last)})); err != nil {
				return err
			}
			last = now
		}
	}
}

func (s *Service) step(ev Event) (Ready, error) { return s.coord.Step(ev) }

// apply persists, then queues and revokes tasks, then reports the notices.
func (s *Service) apply(r Ready, _ error) error {
	err := s.driver.Apply(r)
	if err != nil {
		s.log.Error("store failed; stopping", "err", err)
		return err
	}
	s.mu.Lock()
	s.round = s.coord.Round()
	if s.coord.Finished() && !s.finished {
		s.finished = true
		close(s.done)
		for _, mb := range s.mail {
			close(mb.wake)
			mb.wake = make(chan struct{})
		}
	}
	s.mu.Unlock()
	s.cfg.Metrics.clients.Set(float64(s.coord.Online()))
	return nil
}

// deliver queues tasks in the clients' mailboxes and withdraws revoked ones. The
// coordinator's clock is the ticks since Run started: a deadline in it is that long after
// now on the wall clock, minus what the coordinator has already counted.
func (s *Service) deliver(send []Envelope, revoke []Revocation) error {
	now, coordNow := time.Now(), s.coord.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range send {
		if e.Deadline > 0 {
			e.Task.DeadlineUnixMs = now.Add(e.Deadline - coordNow).UnixMilli()
		}
		mb := s.mailbox(e.To)
		mb.tasks = append(mb.tasks, e.Task)
		close(mb.wake)
		mb.wake = make(chan struct{})
	}
	for _, v := range revoke {
		if mb, ok := s.mail[v.To]; ok {
			mb.tasks = slices.DeleteFunc(mb.tasks, func(t *pb.Task) bool { return t.TaskId == v.TaskID })
		}
	}
	return nil
}

// evaluate runs one central evaluation and hands its result back as an Evaluated event.
func (s *Service) evaluate(ctx context.Context, eval, iterate CentralEvaluator, req EvaluationRequest) {
	ev := req.Run(eval, iterate)
	if ev.Err != "" {
		s.log.Warn("central evaluation failed", "round", req.Round, "err", ev.Err)
	}
	if err := s.submit(ctx, ev); err != nil && ctx.Err() == nil {
		s.log.Warn("central evaluation not delivered", "round", req.Round, "err", err)
	}
}

// runWork runs one computation the coordinator asked for and steps its answer.
func (s *Service) runWork(ctx context.Context, w Work) {
	start := time.Now()
	ev := w.Run()
	s.workDone(w)
	s.log.Info("work done", "work", fmt.Sprintf("%T", w), "seconds", time.Since(start).Seconds())
	if a, ok := ev.(Aggregated); ok && a.Err != "" {
		s.log.Warn("encrypted upload refused", "client", a.ClientID, "task", a.TaskID, "err", a.Err)
	}
	if err := s.submit(ctx, ev); err != nil && ctx.Err() == nil {
		// The phase the work was for ended (the round failed) while it ran.
		s.log.Debug("work's answer not taken", "work", fmt.Sprintf("%T", w), "err", err)
	}
}

func (s *Service) mailbox(id string) *mailbox {
	mb, ok := s.mail[id]
	if !ok {
		mb = &mailbox{wake: make(chan struct{})}
		s.mail[id] = mb
	}
	return mb
}

func (s *Service) notice(n Notice) {
	s.cfg.Live.Notice(n, s.coord)
	m := s.cfg.Metrics
	switch n := n.(type) {
	case RoundStarted:
		s.roundStart[n.Round] = time.Now()
		s.log.Info("round started", "round", n.Round, "clients", len(n.Clients))
	case RoundFinished:
		for _, f := range n.Failures {
			// A client's refusal names its reason (a privacy floor, its budget), which the
			// operator needs to see.
			s.log.Warn("client did not contribute", "round", n.Round, "client", f.ClientID, "kind", f.Kind.String(), "reason", f.Reason)
		}
		outcome := "ok"
		if n.Failed {
			outcome = "failed"
			s.log.Warn("round failed", "round", n.Round, "reason", n.Reason, "failures", len(n.Failures))
		} else {
			s.log.Info("round finished", "round", n.Round, "contributors", n.Contributors, "failures", len(n.Failures), "metrics", n.Metrics)
		}
		m.rounds.WithLabelValues(outcome).Inc()
		m.round.Set(float64(n.Round))
		if e, ok := n.Metrics["user_epsilon"]; ok {
			m.userEpsilon.Set(e)
		}
		if t, ok := s.roundStart[n.Round]; ok {
			m.roundDuration.Observe(time.Since(t).Seconds())
			delete(s.roundStart, n.Round)
		}
	case EvaluationFinished:
		if a, ok := n.Central["accuracy"]; ok {
			m.accuracy.WithLabelValues("central").Set(a)
		}
		if a, ok := n.Federated["accuracy"]; ok {
			m.accuracy.WithLabelValues("federated").Set(a)
		}
		s.log.Info("evaluation", "round", n.Round, "central", n.Central, "federated", n.Federated)
	case CommitteeReady:
		s.log.Info("key committee ready", "session", n.Session, "members", n.Members)
	case KeySetupFailed:
		s.log.Warn("key setup failed", "session", n.Session, "reason", n.Reason, "missing", n.Missing)
	case PrivacySpent:
		m.epsilon.Set(s.coord.maxEpsilon())
	case ClientOffline:
		s.log.Info("client offline", "client", n.ClientID)
	case AggregatorDistrusted:
		s.log.Warn("aggregator lied about its partial sum: it may relay but no longer sum", "aggregator", n.Aggregator, "round", n.Round, "reason", n.Reason)
	case Waiting:
		s.log.Info("waiting", "for", n.Reason)
	case ClientExpired:
		s.forget(n.ClientID)
		s.log.Info("client registration expired", "client", n.ClientID)
	case Finished:
		s.log.Info("federation finished", "rounds", n.Rounds)
	}
}

// submit hands an event to Run and waits for the coordinator's verdict.
// disconnected tells the coordinator that the clients whose session ran over a connection
// that just closed are offline now, not only once their heartbeats stop: their tasks fail
// at once (a round need not wait for the client timeout).
func (s *Service) disconnected(clients []string) {
	go func() {
		for _, id := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.submit(ctx, Disconnected{ClientID: id}) // a client that left or rejoined is no error
			cancel()
		}
	}()
}

func (s *Service) submit(ctx context.Context, ev Event) error {
	return s.send(ctx, request{ev: ev, reply: make(chan error, 1)})
}

// ask runs query on the coordinator from Run's goroutine and returns its error as a status.
func (s *Service) ask(ctx context.Context, query func(*Coordinator) error) error {
	return s.send(ctx, request{query: query, reply: make(chan error, 1)})
}

func (s *Service) send(ctx context.Context, req request) error {
	select {
	case s.events <- req:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	select {
	case err := <-req.reply:
		return s.toStatus(err)
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (s *Service) toStatus(err error) error {
	if err == nil {
		return nil
	}
	var rej *RejectError
	if !errors.As(err, &rej) {
		return err
	}
	s.cfg.Metrics.rejected.WithLabelValues(rej.Code.String()).Inc()
	code := codes.InvalidArgument
	switch rej.Code {
	case RejectUnknownClient:
		code = codes.Unauthenticated
	case RejectUnknownTask:
		code = codes.NotFound
	case RejectDuplicate:
		code = codes.AlreadyExists
	case RejectLate:
		code = codes.FailedPrecondition
	case RejectWrongClient:
		code = codes.PermissionDenied
	}
	return status.Error(code, rej.Error())
}

// Join registers a client and returns its session token. Under mutual TLS the name must be
// the identity of the caller's certificate; an identity with a live session elsewhere is
// refused (see auth.go).
func (s *Service) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	if s.cfg.JoinToken != "" && subtle.ConstantTimeCompare([]byte(req.GetJoinToken()), []byte(s.cfg.JoinToken)) != 1 {
		return nil, status.Error(codes.Unauthenticated, "join token rejected (set the federation's join token)")
	}
	if v := req.GetProtocolVersion(); v != ProtocolVersion {
		return nil, status.Errorf(codes.FailedPrecondition, "protocol version %d unsupported, this server speaks %d (upgrade the client)", v, ProtocolVersion)
	}
	name := req.GetClientName()
	if err := CheckClientName(name); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	id, certified := certifiedOf(ctx)
	if !certified && s.cfg.RequireClientCertificate {
		return nil, status.Error(codes.Unauthenticated, "this server admits only clients that present a certificate of the federation's CA over TLS")
	}
	c := connOf(ctx)
	if certified && name != id {
		s.cfg.Metrics.rejected.WithLabelValues("identity_mismatch").Inc()
		s.log.Warn("join refused: name is not the certificate's identity", "name", name, "certificate", id, "peer", c.addr)
		return nil, status.Errorf(codes.PermissionDenied, "client name %q does not match the certificate of this connection, issued to %q (its subject CN): join as %q, or use the certificate issued to %q", name, id, id, name)
	}
	if err := s.joinLimits.allowPeer(joinPeer(ctx, c.addr)); err != nil {
		s.cfg.Metrics.rejected.WithLabelValues("join_rate").Inc()
		return nil, err
	}
	s.joinMu.Lock()
	defer s.joinMu.Unlock()
	if err := s.sessions.admit(name, c, s.cfg.MaxClients); err != nil {
		if status.Code(err) == codes.AlreadyExists {
			s.cfg.Metrics.rejected.WithLabelValues("live_session").Inc()
			s.log.Warn("join refused: the client has a live session", "client", name, "peer", c.addr)
		}
		return nil, err
	}
	if err := s.joinLimits.allowIdentity(name); err != nil {
		s.cfg.Metrics.rejected.WithLabelValues("join_rate").Inc()
		return nil, err
	}
	if err := s.submit(ctx, Join{ClientID: name, CommitteeEligible: req.GetCommitteeEligible()}); err != nil {
		return nil, err
	}
	token := s.sessions.start(name, c)
	via, _ := relayOf(ctx)
	s.log.Info("client joined", "client", name, "certified", certified, "peer", c.addr, "relayed_by", via, "committee_eligible", req.GetCommitteeEligible())
	return &pb.JoinResponse{ClientId: name, SessionToken: token, HeartbeatIntervalMs: s.cfg.HeartbeatInterval.Milliseconds(),
		MaxChunkBytes: int64(s.cfg.MaxChunkBytes), MaxResultBytes: s.cfg.MaxResultBytes}, nil
}

// PullTask streams the client's next task: the header, then every blob's bytes in chunks.
func (s *Service) PullTask(req *pb.PullTaskRequest, stream grpc.ServerStreamingServer[pb.TaskChunk]) error {
	ctx := stream.Context()
	id := clientOf(ctx)
	if err := s.submit(ctx, Heartbeat{ClientID: id}); err != nil {
		return err
	}
	return s.pull(ctx, id, req, stream)
}

// pull streams the next task of mailbox id (a client's, or an aggregator's).
func (s *Service) pull(ctx context.Context, id string, req *pb.PullTaskRequest, stream grpc.ServerStreamingServer[pb.TaskChunk]) error {
	wait := min(time.Duration(req.GetWaitMs())*time.Millisecond, s.cfg.MaxPullWait)
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	for {
		s.mu.Lock()
		mb := s.mailbox(id)
		if len(mb.tasks) > 0 {
			t := mb.tasks[0]
			mb.tasks = mb.tasks[1:]
			s.mu.Unlock()
			err := s.sendTask(ctx, stream, t)
			if err != nil {
				// The client did not get it: queue it again for its next pull.
				s.mu.Lock()
				mb.tasks = append([]*pb.Task{t}, mb.tasks...)
				s.mu.Unlock()
			}
			return err
		}
		finished, wake := s.finished, mb.wake
		s.mu.Unlock()
		if finished {
			return stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_NoTask{NoTask: &pb.NoTask{Finished: true}}})
		}
		select {
		case <-wake:
		case <-timer.C:
			return stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_NoTask{NoTask: &pb.NoTask{RetryAfterMs: 100}}})
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// sendTask streams task t's header and its blobs' bytes in chunks. The chunks are slices
// of the blobs, which gRPC writes after Send returns (proto/wire): a task's blobs are never
// modified once queued (they are shared by every client the task went to).
func (s *Service) sendTask(ctx context.Context, stream grpc.ServerStreamingServer[pb.TaskChunk], t *pb.Task) error {
	header := &pb.Task{TaskId: t.TaskId, Kind: t.Kind, Round: t.Round, Spec: t.Spec, DeadlineUnixMs: t.DeadlineUnixMs}
	size := 0
	for _, b := range t.Blobs {
		header.Blobs = append(header.Blobs, &pb.Blob{Name: b.Name, Size: b.Size, Sha256: b.Sha256})
		size += len(b.Data)
	}
	if size > 0 {
		select {
		case s.downloads <- struct{}{}:
			defer func() { <-s.downloads }()
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if err := stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_Task{Task: header}}); err != nil {
		return err
	}
	for _, b := range t.Blobs {
		for off := 0; off < len(b.Data); off += s.cfg.SendChunkBytes {
			end := min(off+s.cfg.SendChunkBytes, len(b.Data))
			if err := stream.Send(&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: b.Data[off:end]}}); err != nil {
				return err
			}
			s.cfg.Metrics.bytesOut.Add(float64(end - off))
		}
	}
	return nil
}

// maxBlobs bounds the blobs of one result.
const maxBlobs = 8

// PushResult receives a result header and its blobs' bytes, then hands the result to the
// coordinator and reports its verdict. Before reading any data it checks that the task is
// outstanding and the caller's, and bounds the blobs by what that task can produce
// (Coordinator.ResultLimit) and by MaxResultBytes; the buffer grows as bytes arrive. A
// client pushes one result at a time.
func (s *Service) PushResult(stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse]) error {
	id := clientOf(stream.Context())
	via, _ := relayOf(stream.Context())
	return s.push(stream, id, func(c *Coordinator, res *pb.Result) (int64, error) {
		if via != "" && hasBlob(res.Blobs, blob.HeldUpload) {
			if why := c.HoldRefused(via); why != "" {
				return 0, status.Error(codes.FailedPrecondition, why)
			}
		}
		return c.ResultLimit(id, res.TaskId)
	},
		func(res *pb.Result) Event { return ResultIn{ClientID: id, Result: res, Via: via} })
}

// push receives a result for uploader id (a client, or an aggregator): limitOf bounds its
// blobs before any data is read, event makes the coordinator's event of the result.
func (s *Service) push(stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse], id string,
	limitOf func(c *Coordinator, res *pb.Result) (int64, error), event func(*pb.Result) Event) error {
	ctx := stream.Context()
	s.mu.Lock()
	busy := s.uploading[id]
	s.uploading[id] = true
	s.mu.Unlock()
	if busy {
		return status.Error(codes.ResourceExhausted, "another result upload of this client is in progress; push results one at a time")
	}
	defer func() {
		s.mu.Lock()
		delete(s.uploading, id)
		s.mu.Unlock()
	}()
	deadline := time.Now().Add(s.cfg.UploadMax)
	first, err := s.recvChunk(stream, deadline)
	if err != nil {
		return err
	}
	res := first.GetResult()
	if res == nil {
		return status.Error(codes.InvalidArgument, "the first chunk of PushResult must hold the result header")
	}
	if len(res.Blobs) > maxBlobs {
		return status.Errorf(codes.InvalidArgument, "result holds %d blobs, at most %d", len(res.Blobs), maxBlobs)
	}
	limit := s.cfg.MaxResultBytes
	if err := s.ask(ctx, func(c *Coordinator) error {
		n, err := limitOf(c, res)
		limit = min(limit, n)
		return err
	}); err != nil {
		return err
	}
	// Only an upload whose header names a task outstanding for this client takes a slot:
	// idle streams from made-up names cannot crowd out the honest ones.
	slotWait := time.NewTimer(s.cfg.UploadSlotWait)
	defer slotWait.Stop()
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-slotWait.C:
		return status.Errorf(codes.ResourceExhausted, "%d uploads in progress for %v; retry shortly", cap(s.uploads), s.cfg.UploadSlotWait)
	}
	var declared int64
	var hold *uploadShare // the upload's share of MaxUploadBytes
	for _, b := range res.Blobs {
		if b.GetSize() < 0 {
			return status.Errorf(codes.InvalidArgument, "result of task %s: blob %q has size %d", res.TaskId, b.GetName(), b.GetSize())
		}
		if declared += b.GetSize(); declared > limit {
			return status.Errorf(codes.ResourceExhausted, "result of task %s exceeds the server's limit for it: its blobs declare more than %d bytes", res.TaskId, limit)
		}
	}
	if weight := min(declared, s.cfg.MaxUploadBytes); weight > 0 {
		wait, cancel := context.WithTimeout(ctx, s.cfg.UploadSlotWait)
		err := s.uploadBytes.Acquire(wait, weight)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return status.Errorf(codes.ResourceExhausted, "uploads of %d MB in progress for %v (the server's upload memory); retry shortly", s.cfg.MaxUploadBytes>>20, s.cfg.UploadSlotWait)
		}
		hold = &uploadShare{weight: weight}
		defer s.releaseUpload(hold)
	}
	asm, err := blob.NewAssembler(res.Blobs, limit)
	if errors.Is(err, blob.ErrTooLarge) {
		return status.Errorf(codes.ResourceExhausted, "result of task %s exceeds the server's limit for it: %v", res.TaskId, err)
	}
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
	}
	for {
		c, err := s.recvChunk(stream, deadline)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.GetResult() != nil {
			return status.Error(codes.InvalidArgument, "a second result header in one PushResult")
		}
		d := c.GetData()
		if len(d) > s.cfg.MaxChunkBytes {
			return status.Errorf(codes.InvalidArgument, "chunk of %d bytes exceeds %d", len(d), s.cfg.MaxChunkBytes)
		}
		if err := asm.Add(d); err != nil {
			return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
		}
		s.cfg.Metrics.bytesIn.Add(float64(len(d)))
	}
	if _, err := asm.Finish(); err != nil {
		return status.Errorf(codes.InvalidArgument, "result of task %s: %v", res.TaskId, err)
	}
	if hold != nil && len(res.Blobs) > 0 {
		// Should the coordinator queue the upload's aggregation, the work takes the share.
		hold.key = res.Blobs[0]
		s.mu.Lock()
		s.held[hold.key] = hold
		s.mu.Unlock()
	}
	if err := s.submit(ctx, event(res)); err != nil {
		s.log.Warn("result refused", "client", id, "task", res.TaskId, "err", err)
		return err
	}
	return stream.SendAndClose(&pb.PushResultResponse{})
}

// recvChunk receives the next chunk of an upload, giving up after UploadIdle without one or
// at the upload's deadline (the stream is then cancelled as the handler returns).
func (s *Service) recvChunk(stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse], deadline time.Time) (*pb.ResultChunk, error) {
	type received struct {
		c   *pb.ResultChunk
		err error
	}
	ch := make(chan received, 1)
	go func() {
		c, err := stream.Recv()
		ch <- received{c, err}
	}()
	wait := min(s.cfg.UploadIdle, time.Until(deadline))
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-t.C:
		s.cfg.Metrics.rejected.WithLabelValues("upload_timeout").Inc()
		return nil, status.Errorf(codes.DeadlineExceeded, "result upload idle for %v or past its %v limit: dropped", s.cfg.UploadIdle, s.cfg.UploadMax)
	}
}

// Heartbeat marks the client online.
func (s *Service) Heartbeat(ctx context.Context, _ *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if err := s.submit(ctx, Heartbeat{ClientID: clientOf(ctx)}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.HeartbeatResponse{Round: s.round, Finished: s.finished}, nil
}

// Leave removes the client from the federation.
func (s *Service) Leave(ctx context.Context, _ *pb.LeaveRequest) (*pb.LeaveResponse, error) {
	id := clientOf(ctx)
	if err := s.submit(ctx, Leave{ClientID: id}); err != nil {
		return nil, err
	}
	s.forget(id)
	return &pb.LeaveResponse{}, nil
}

const healthService = "confide.v1.Federation"

// NewGRPCServer returns a gRPC server with the service, health and reflection registered,
// and the interceptors (panic recovery, logging, authentication, upload limits), a stats
// handler that tracks which connections are open (for sessions), and message-size limits
// installed. opts are appended (e.g. grpc.Creds(credentials.NewTLS(TLSConfig(…))) for
// mutual TLS).
func (s *Service) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	limit := s.cfg.MaxChunkBytes + 64<<10 // a chunk plus header room
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(limit),
		grpc.MaxSendMsgSize(limit),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.logUnary, s.authUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.logStream, s.authStream),
		grpc.StatsHandler(connTracker{s.sessions, s.disconnected, s.connClosed, s.cfg.Metrics.addIngress}),
	}, append(wire.ServerOptions(), opts...)...) // protobuf with chunks' data copied less, larger socket buffers
	g := grpc.NewServer(opts...)
	pb.RegisterFederationServer(g, s)
	pb.RegisterAggregationServer(g, aggregation{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
	s.health.SetServingStatus(healthService, healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return g
}

// Shutdown flips health to NOT_SERVING, then stops g gracefully (forcefully after grace).
func (s *Service) Shutdown(g *grpc.Server, grace time.Duration) {
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(grace):
		g.Stop()
	}
}

func (s *Service) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	s.log.Debug("rpc", "method", info.FullMethod, "code", status.Code(err).String(), "duration", time.Since(start))
	return resp, err
}

func (s *Service) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	s.log.Debug("rpc", "method", info.FullMethod, "code", status.Code(err).String(), "duration", time.Since(start))
	return err
}

// recoverUnary turns a panic of a handler into codes.Internal and logs it with its stack:
// whatever a client sends, one call must never take the server down.
func (s *Service) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(ctx, req)
}

// recoverStream is recoverUnary for streaming calls.
func (s *Service) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(srv, ss)
}

func (s *Service) recovered(method string, err *error) {
	if p := recover(); p != nil {
		s.log.Error("panic in RPC handler", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		s.cfg.Metrics.rejected.WithLabelValues("panic").Inc()
		*err = status.Error(codes.Internal, "internal server error (logged on the server)")
	}
}
