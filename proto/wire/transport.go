package wire

import "google.golang.org/grpc"

// Socket buffers for the federation's connections, which carry tasks and results of up to
// hundreds of megabytes in 1 MiB chunks (HTTP/2 frames of 16 KiB).
//
// With gRPC's 32 KiB buffers a 100 MB upload on loopback took 40–47 ms against 18–20 ms
// for a raw TCP copy of the same bytes (0.42–0.45×): the receiver read the socket 32 KiB
// at a time. With these it took 26–33 ms (0.59–0.83× over six runs; scripts/load.sh
// transport, same hour). Fixed flow-control windows were tried and left out: 1 MiB windows
// were slower than gRPC's own estimator (41–42 ms), and 16 MiB ones bought no more than
// the buffers while letting every uploading connection park 16 MiB in the server before
// its upload is admitted (burst load test: 816 MiB peak RSS against 340 MiB without).
//
// Memory: a server keeps serverReadBuffer bytes per open connection (128 MiB for 1,000
// clients, 32 MiB with gRPC's default), allocated once the connection's TLS handshake has
// succeeded (gRPC creates its framer after the handshake), so with mutual TLS only for
// peers holding a federation certificate; a client keeps clientBuffer for each direction.
const (
	serverReadBuffer = 128 << 10
	clientBuffer     = 256 << 10
)

// ServerOptions returns the options of a gRPC server that takes tasks' or results' chunks:
// the codec (ServerOption) and the read buffer.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{ServerOption(), grpc.ReadBufferSize(serverReadBuffer)}
}

// DialOptions returns the options of a connection to such a server: the codec (as the
// default call option) and the buffers.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(CallOption()),
		grpc.WithReadBufferSize(clientBuffer), grpc.WithWriteBufferSize(clientBuffer),
	}
}
