package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panicking handler becomes codes.Internal and a logged error with its stack, for unary
// and streaming calls alike; the server goes on.
func TestRecoveryInterceptorsTurnPanicsIntoInternal(t *testing.T) {
	var logs bytes.Buffer
	s := &Service{cfg: ServiceConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))}.withDefaults()}
	s.log = s.cfg.Logger
	boom := func() { var s []int; i := len(s) + 3; s[i]++ }
	_, err := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/confide.v1.Federation/Heartbeat"},
		func(context.Context, any) (any, error) { boom(); return nil, nil })
	if status.Code(err) != codes.Internal {
		t.Fatalf("unary: err = %v, want Internal", err)
	}
	err = s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/confide.v1.Federation/PushResult"},
		func(any, grpc.ServerStream) error { panic("malformed upload") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream: err = %v, want Internal", err)
	}
	for _, want := range []string{"panic in RPC handler", "Heartbeat", "index out of range", "PushResult", "malformed upload", "recover_test.go"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	ok, err := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x"}, func(context.Context, any) (any, error) { return 7, nil })
	if ok != 7 || err != nil {
		t.Fatalf("a call without panic: %v, %v", ok, err)
	}
}
