package main

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/server"
)

// serveLoopback serves coord's federation in plaintext on a loopback port, running it
// until ctx ends; stop cancels nothing itself but waits, after ctx is cancelled, for the
// service's Run to return. The server stops when the test ends.
func serveLoopback(t *testing.T, ctx context.Context, coord *server.Coordinator) (svc *server.Service, addr string, stop func()) {
	t.Helper()
	svc = server.NewService(coord, server.ServiceConfig{TickInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := svc.NewGRPCServer()
	go gs.Serve(lis)
	t.Cleanup(func() { svc.Shutdown(gs, time.Second) })
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	return svc, lis.Addr().String(), func() { <-runErr }
}

// runClients runs client.Run with cfgs[i] and trainers[i] for every i until the service
// has run its rounds and every client has exited, failing the test on any error.
func runClients(t *testing.T, ctx context.Context, svc *server.Service, cfgs []client.Config, trainers []client.Trainer) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(cfgs))
	for i := range cfgs {
		wg.Go(func() { errs[i] = client.Run(ctx, cfgs[i], trainers[i]) })
	}
	select {
	case <-svc.Done():
	case <-ctx.Done():
		t.Fatal("the federation did not finish its rounds")
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %s: %v", cfgs[i].Name, err)
		}
	}
}
