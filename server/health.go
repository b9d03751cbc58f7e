package server

import (
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// NewHealthGRPCServer returns a gRPC server with the health service alone, answering with
// the same status as NewGRPCServer's (SERVING until Shutdown). It is for probes that cannot
// present a client certificate, on a port apart from the mutual-TLS one: a kubelet's gRPC
// probe speaks plaintext only. It has no other service, no interceptors and no reflection;
// stop it after Shutdown.
func (s *Service) NewHealthGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	g := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(g, s.health)
	return g
}
