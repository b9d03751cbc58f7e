package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	// refusal, when set, reports why the latest TLS handshake failed on certificate
	// grounds (nil if it did not).
	refusal func() error
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

// Join registers the client. A TLS handshake that failed on certificate grounds is
// reported as codes.Unauthenticated, which retrying cannot fix (gRPC itself reports it as
// Unavailable, like any connection failure).
func (g *GRPCTransport) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	resp, err := g.api.Join(ctx, req)
	if err != nil && status.Code(err) == codes.Unavailable && g.refusal != nil {
		if r := g.refusal(); r != nil {
			return nil, status.Error(codes.Unauthenticated, r.Error())
		}
	}
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
// The chunks are slices of the blobs, which gRPC writes after Send returns (proto/wire): the
// blobs must not change until Push has returned.
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
		// The size must match the header just sent; the digest was computed from these
		// bytes (blob.New) and the server checks it when the upload is complete, so it is
		// not hashed a second time here (50–60 ms of a 100 MB upload).
		if b == nil || int64(len(b.Data)) != b.Size {
			return fmt.Errorf("client: result blob %q: %d bytes, header announced %d", b.GetName(), len(b.GetData()), b.GetSize())
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

// TLSConfig is the client side of mutual TLS: TLS 1.3, the server verified against the CA
// certificates in caFile (PEM), and this client's certificate and key (PEM files)
// presented to it. The server takes the client's identity from the certificate's subject
// common name (Certificates[0].Leaf.Subject.CommonName), so the client must join under
// that name.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("client: federation CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("client: federation CA %s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client: certificate %s and key %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("client: certificate %s (%q) is not for TLS clients (is it a server certificate?)", certFile, leaf.Subject.CommonName)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("client: certificate %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{cert}}, nil
}

// tlsCredentials are gRPC's TLS transport credentials, made to learn the server's verdict
// on this client's certificate within the handshake. In TLS 1.3 the client finishes its
// handshake before the server has checked the client's certificate (RFC 8446, 4.4), so a
// refusal arrives as an alert that gRPC would meet only later, as a broken pipe or a reset
// connection: a network fault to retry. ClientHandshake therefore waits for the server's
// first bytes (a gRPC server speaks first, with its SETTINGS frame) and hands them on to
// gRPC; an alert instead becomes the handshake's error. The latest handshake's refusal is
// kept for GRPCTransport.Join.
type tlsCredentials struct {
	credentials.TransportCredentials
	refusal *refusal // shared by clones
}

func newTLSCredentials(c *tls.Config) *tlsCredentials {
	c = c.Clone()
	c.MinVersion = max(c.MinVersion, tls.VersionTLS13)
	if len(c.Certificates) > 0 && c.GetClientCertificate == nil {
		// Left to itself, crypto/tls would send no certificate when the server names
		// other CAs than its issuer, and the server would say only "certificate required".
		cert := &c.Certificates[0]
		c.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if err := cri.SupportsCertificate(cert); err != nil {
				return nil, foreignCertificate(cert, cri.AcceptableCAs, err)
			}
			return cert, nil
		}
	}
	return &tlsCredentials{TransportCredentials: credentials.NewTLS(c), refusal: &refusal{}}
}

// foreignCertificateError says that the server asked for a certificate of CAs other than
// the issuer of this client's.
type foreignCertificateError struct{ msg string }

func (e *foreignCertificateError) Error() string { return e.msg }

func foreignCertificate(cert *tls.Certificate, acceptable [][]byte, err error) error {
	issuer := "unknown"
	if leaf, perr := x509.ParseCertificate(cert.Certificate[0]); perr == nil {
		issuer = leaf.Issuer.String()
	}
	var cas []string
	for _, der := range acceptable {
		var rdn pkix.RDNSequence
		if _, err := asn1.Unmarshal(der, &rdn); err == nil {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			cas = append(cas, strconv.Quote(n.String()))
		}
	}
	if len(cas) == 0 {
		return &foreignCertificateError{fmt.Sprintf("the server does not accept this client's certificate, issued by %q: %v", issuer, err)}
	}
	return &foreignCertificateError{fmt.Sprintf("this client's certificate was issued by %q, but the server accepts only certificates of %s", issuer, strings.Join(cas, ", "))}
}

func (c *tlsCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil {
		conn, err = awaitServer(ctx, conn)
	}
	c.refusal.record(err)
	if err != nil {
		return nil, nil, err
	}
	return conn, info, nil
}

func (c *tlsCredentials) Clone() credentials.TransportCredentials {
	return &tlsCredentials{TransportCredentials: c.TransportCredentials.Clone(), refusal: c.refusal}
}

// awaitServer reads the first bytes the server sends over conn, and returns a connection
// that delivers them first.
func awaitServer(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(d)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Time{})
	return &replayConn{Conn: conn, pending: buf[:n]}, nil
}

// replayConn is a connection whose first reads return pending.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// refusal keeps why the latest TLS handshake failed, if it failed on certificate grounds.
type refusal struct {
	mu  sync.Mutex
	err error
}

func (r *refusal) record(err error) {
	var (
		verify  *tls.CertificateVerificationError
		foreign *foreignCertificateError
		header  tls.RecordHeaderError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &foreign):
		err = fmt.Errorf("%w (use the certificate and key the federation's CA issued to this client)", foreign)
	case errors.As(err, &verify):
		err = fmt.Errorf("this client does not trust the server's certificate: %w (check the federation CA certificate and the server address)", err)
	case errors.As(err, &op) && op.Op == "remote error":
		err = fmt.Errorf("the server refused this client's TLS handshake: %w (present the certificate and key the federation's CA issued to this client)", err)
	case errors.As(err, &header):
		err = fmt.Errorf("the server does not speak TLS: %w (is it running with --insecure?)", err)
	default:
		err = nil // none, or a network failure worth retrying
	}
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *refusal) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
