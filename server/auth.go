package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// Who a call comes from. Under mutual TLS a client's identity is the subject common name of
// its certificate, verified against the federation's CA during the handshake; its Join must
// name that identity, and every later call must carry the session token of that identity
// over a connection with that certificate, so a token that leaks is no use without the key.
// Without TLS (tests, loopback simulations) the name a client gives is its identity.
//
// One live session per identity. A Join for an identity that has a session is refused
// while that session is live: its latest call came over a connection that is still open and
// it was heard from within the client timeout (deadlines.client_timeout). A client that
// restarted has lost its connection (the kernel closes it when the process exits), and one
// whose network died stops being heard from, so either may join again and the old token is
// voided; a second process running with the same certificate is refused instead of
// silently taking the session over. A Join over the connection of the live session is the
// same process retrying and replaces it.

var clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckClientName reports whether name can be a client's identity: 1…128 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func CheckClientName(name string) error {
	if !clientName.MatchString(name) {
		return fmt.Errorf("client name %q: use 1…128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// TLSConfig is the server side of mutual TLS: TLS 1.3, the server's certificate and key
// (PEM files), and client certificates required and verified against the CA certificates in
// clientCAFile (tls.RequireAndVerifyClientCert).
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("server: certificate %s (%q) is not for TLS servers: clients would refuse it; issue a server certificate", certFile, leaf.Subject.CommonName)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("server: certificate %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	b, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("server: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("server: client CA %s holds no PEM certificate", clientCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// TLSCredentials returns gRPC transport credentials for tc (see TLSConfig) that log every
// refused handshake with the peer's address and the reason (a missing certificate, one of
// another CA, an expired one), since the client may learn only that its connection closed.
func (s *Service) TLSCredentials(tc *tls.Config) credentials.TransportCredentials {
	return loggedTLS{credentials.NewTLS(tc), s}
}

type loggedTLS struct {
	credentials.TransportCredentials
	s *Service
}

func (l loggedTLS) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := l.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		lvl := slog.LevelWarn
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			lvl = slog.LevelDebug // a probe that only opened a connection
		}
		l.s.log.Log(context.Background(), lvl, "TLS handshake refused", "peer", raw.RemoteAddr().String(), "err", err)
		l.s.cfg.Metrics.rejected.WithLabelValues("tls_handshake").Inc()
	}
	return c, info, err
}

func (l loggedTLS) Clone() credentials.TransportCredentials {
	return loggedTLS{l.TransportCredentials.Clone(), l.s}
}

// certIdentity returns the identity that the caller's verified certificate proves, and
// whether there is one (false without TLS or without a verified client certificate).
func certIdentity(ctx context.Context) (string, bool, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false, nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false, nil
	}
	cn := ti.State.VerifiedChains[0][0].Subject.CommonName
	if err := CheckClientName(cn); err != nil {
		return "", true, status.Errorf(codes.PermissionDenied, "the client certificate's subject: %v (the CA must issue client certificates with such a name)", err)
	}
	return cn, true, nil
}

type certKey struct{}

// certifiedOf returns the identity the interceptors took from the call's certificate.
func certifiedOf(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(certKey{}).(string)
	return id, ok
}

type clientKey struct{}

// clientOf returns the authenticated client of a call.
func clientOf(ctx context.Context) string {
	id, _ := ctx.Value(clientKey{}).(string)
	return id
}

// authorize runs before every confide.v1 call: it takes the caller's identity from its
// certificate (required with RequireClientCertificate) and, for every method but Join, maps
// the session token to its client and checks that the two agree.
func (s *Service) authorize(ctx context.Context, method string) (context.Context, error) {
	id, certified, err := certIdentity(ctx)
	if err != nil {
		return nil, err
	}
	if isAggregationMethod(method) {
		return s.authorizeAggregator(ctx, id, certified)
	}
	if ctx, id, certified, err = s.relayed(ctx, id, certified); err != nil {
		return nil, err
	}
	if !certified && s.cfg.RequireClientCertificate {
		return nil, status.Error(codes.Unauthenticated, "this server admits only clients that present a certificate of the federation's CA over TLS")
	}
	if certified {
		ctx = context.WithValue(ctx, certKey{}, id)
	}
	if method == pb.Federation_Join_FullMethodName {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	if v := md.Get("authorization"); len(v) == 1 && len(v[0]) > 7 && v[0][:7] == "Bearer " {
		token = v[0][7:]
	}
	client, ok := s.sessions.lookup(token, connOf(ctx))
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no valid session token: call Join first (authorization: Bearer <token>)")
	}
	if certified && client != id {
		s.cfg.Metrics.rejected.WithLabelValues("identity_mismatch").Inc()
		return nil, status.Errorf(codes.Unauthenticated, "session token of client %q presented with the certificate of %q: join with this certificate", client, id)
	}
	return context.WithValue(ctx, clientKey{}, client), nil
}

func isFederationMethod(method string) bool {
	return len(method) > 12 && method[:12] == "/confide.v1."
}

func (s *Service) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if isFederationMethod(info.FullMethod) {
		var err error
		if ctx, err = s.authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
	}
	return h(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authedStream) Context() context.Context { return a.ctx }

func (s *Service) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if isFederationMethod(info.FullMethod) {
		ctx, err := s.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		ss = authedStream{ss, ctx}
	}
	return h(srv, ss)
}

// conn names the connection a call came over: an id the connTracker gave it (0: unknown)
// and the peer's address, for messages.
type conn struct {
	id   uint64
	addr string
}

type connKey struct{}

func connOf(ctx context.Context) conn {
	var c conn
	c.id, _ = ctx.Value(connKey{}).(uint64)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		c.addr = p.Addr.String()
	}
	return c
}

// connTracker is a gRPC stats handler that numbers the server's connections, tells the
// session table which are open, and reports the clients whose session's connection closed.
type connTracker struct {
	t       *sessionTable
	onClose func(clients []string)
	// closed is told of every connection that closes (an aggregator's, see aggregation.go).
	closed func(id uint64)
	// ingress counts the wire bytes of every message received.
	ingress func(n int)
}

var _ stats.Handler = connTracker{}

func (c connTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, c.t.nextConn.Add(1))
}

func (c connTracker) HandleConn(ctx context.Context, st stats.ConnStats) {
	id, _ := ctx.Value(connKey{}).(uint64)
	switch st.(type) {
	case *stats.ConnBegin:
		c.t.setOpen(id, true)
	case *stats.ConnEnd:
		c.t.setOpen(id, false)
		if ids := c.t.clientsOn(id); len(ids) > 0 && c.onClose != nil {
			c.onClose(ids)
		}
		if c.closed != nil {
			c.closed(id)
		}
	}
}

func (connTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (c connTracker) HandleRPC(_ context.Context, st stats.RPCStats) {
	if in, ok := st.(*stats.InPayload); ok && c.ingress != nil {
		c.ingress(in.WireLength)
	}
}

// session is a client's current session.
type session struct {
	token    string
	conn     conn      // the connection of its latest call
	lastSeen time.Time // its latest call
}

// sessionTable maps session tokens to clients, and decides whether a Join may start a
// session (see the comment at the top of this file).
type sessionTable struct {
	idle     time.Duration // a session not heard from for longer is no longer live
	now      func() time.Time
	nextConn atomic.Uint64

	mu       sync.Mutex
	byToken  map[string]string   // token → client
	byClient map[string]*session // client → its session
	open     map[uint64]bool     // connections open now
}

func newSessionTable(idle time.Duration) *sessionTable {
	return &sessionTable{idle: idle, now: time.Now, byToken: map[string]string{}, byClient: map[string]*session{}, open: map[uint64]bool{}}
}

func (t *sessionTable) setOpen(id uint64, open bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if open {
		t.open[id] = true
	} else {
		delete(t.open, id)
	}
}

// clientsOn returns the clients whose session's latest call came over connection id.
func (t *sessionTable) clientsOn(id uint64) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for client, s := range t.byClient {
		if s.conn.id == id {
			out = append(out, client)
		}
	}
	return out
}

// admit checks that client may start a session over c: it has no live session on another
// connection, and it is known or the federation has room (maxClients identities).
func (t *sessionTable) admit(client string, c conn, maxClients int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, known := t.byClient[client]
	if !known && len(t.byClient) >= maxClients {
		return status.Errorf(codes.ResourceExhausted, "the federation is full (%d clients): its operator can raise the limit with max_clients in the server config (or --max-clients)", maxClients)
	}
	if !known || (c.id != 0 && old.conn.id == c.id) {
		return nil
	}
	idle := t.now().Sub(old.lastSeen)
	open := old.conn.id == 0 || t.open[old.conn.id]
	if open && idle <= t.idle {
		return status.Errorf(codes.AlreadyExists, "client %q already has a live session, connected from %s (last call %s ago), so this Join from %s is refused: stop the other process that uses this identity, or wait until its connection closes or it has been silent for %s",
			client, old.conn.addr, idle.Round(time.Millisecond), c.addr, t.idle)
	}
	return nil
}

// start begins a new session of client over c, voiding its previous token, and returns
// the new token.
func (t *sessionTable) start(client string, c conn) string {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	token := hex.EncodeToString(b[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byClient[client]; ok {
		delete(t.byToken, old.token)
	}
	t.byClient[client] = &session{token: token, conn: c, lastSeen: t.now()}
	t.byToken[token] = client
	return token
}

// lookup returns the client of token and records that it was heard from over c.
func (t *sessionTable) lookup(token string, c conn) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	client, ok := t.byToken[token]
	if !ok {
		return "", false
	}
	s := t.byClient[client]
	s.conn, s.lastSeen = c, t.now()
	return client, true
}

// end closes client's session (it left).
func (t *sessionTable) end(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.byClient[client]; ok {
		delete(t.byToken, s.token)
		delete(t.byClient, client)
	}
}
