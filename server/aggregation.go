package server

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// aggregation serves confide.v1.Aggregation, the calls of intermediate aggregators of
// their own (partials.go): they pull the coordinator's tasks for them (partial sums,
// openings), push their results, and report their clients' closed connections. The caller
// is the aggregator whose listed certificate the connection carries; it needs no session.
type aggregation struct {
	pb.UnimplementedAggregationServer
	s *Service
}

var _ pb.AggregationServer = aggregation{}

type aggregatorKey struct{}

// aggregatorOf returns the aggregator of an Aggregation call.
func aggregatorOf(ctx context.Context) string {
	a, _ := ctx.Value(aggregatorKey{}).(string)
	return a
}

func isAggregationMethod(method string) bool {
	return strings.HasPrefix(method, "/confide.v1.Aggregation/")
}

// authorizeAggregator admits an Aggregation call only over TLS with the certificate of a
// listed aggregator, and records its connection: when it closes, the aggregator is gone
// (SourceGone).
func (s *Service) authorizeAggregator(ctx context.Context, id string, certified bool) (context.Context, error) {
	if !certified || !slices.Contains(s.cfg.Aggregators, id) {
		s.cfg.Metrics.rejected.WithLabelValues("relay_refused").Inc()
		return nil, status.Error(codes.PermissionDenied, "only the aggregators named in the server's config (aggregators) may call the Aggregation service, over TLS with their own certificate")
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(RelayedClientKey)) > 0 {
		return nil, status.Error(codes.InvalidArgument, "an Aggregation call is the aggregator's own: it names no relayed client")
	}
	c := connOf(ctx)
	s.mu.Lock()
	if s.aggregatorConns == nil {
		s.aggregatorConns = map[uint64]string{}
	}
	s.aggregatorConns[c.id] = id
	s.mu.Unlock()
	return context.WithValue(ctx, aggregatorKey{}, id), nil
}

// connClosed tells the coordinator that an aggregator whose connection closed is gone.
func (s *Service) connClosed(id uint64) {
	s.mu.Lock()
	name, ok := s.aggregatorConns[id]
	delete(s.aggregatorConns, id)
	s.mu.Unlock()
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.log.Info("aggregator disconnected", "aggregator", name)
		_ = s.submit(ctx, SourceGone{Source: name})
	}()
}

// PullWork streams the aggregator's next task.
func (a aggregation) PullWork(req *pb.PullTaskRequest, stream grpc.ServerStreamingServer[pb.TaskChunk]) error {
	ctx := stream.Context()
	return a.s.pull(ctx, aggregatorOf(ctx), req, stream)
}

// PushWork receives the result of an aggregator's task.
func (a aggregation) PushWork(stream grpc.ClientStreamingServer[pb.ResultChunk, pb.PushResultResponse]) error {
	name := aggregatorOf(stream.Context())
	return a.s.push(stream, name, func(c *Coordinator, res *pb.Result) (int64, error) { return c.SourceResultLimit(name, res.TaskId) },
		func(res *pb.Result) Event { return SourceResultIn{Source: name, Result: res} })
}

// ClientsDisconnected takes the aggregator's notice that connections of its clients
// closed: those whose session runs over this aggregator's connection are offline now, as
// a direct client's closed connection makes it.
func (a aggregation) ClientsDisconnected(ctx context.Context, req *pb.ClientsDisconnectedRequest) (*pb.ClientsDisconnectedResponse, error) {
	if len(req.GetClients()) > 100000 {
		return nil, status.Error(codes.InvalidArgument, "too many clients in one notice")
	}
	on := a.s.sessions.clientsOn(connOf(ctx).id)
	var gone []string
	for _, id := range req.GetClients() {
		if slices.Contains(on, id) {
			gone = append(gone, id)
		}
	}
	a.s.disconnected(gone)
	return &pb.ClientsDisconnectedResponse{}, nil
}
