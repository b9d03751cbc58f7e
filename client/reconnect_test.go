package client_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// Clients started before the server keep retrying with backoff and join once it is up.
func TestRunRetriesUntilTheServerIsUp(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(100, uint64(i+1)), Seed: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = client.Run(ctx, client.Config{Server: addr, Name: string(rune('a' + i)), Insecure: true,
				PollWait: 200 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: quietLogger()}, tr)
		}()
	}
	time.Sleep(300 * time.Millisecond) // the clients are failing to join now

	coord, err := server.New(server.Config{Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}, Seed: 1,
		Sampling: server.SamplingConfig{MinFit: 2}, Training: server.TrainingConfig{BatchSize: 10}}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := server.NewService(coord, server.ServiceConfig{TickInterval: 20 * time.Millisecond, Logger: quietLogger()})
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { svc.Run(runCtx); close(done) }()
	defer func() { stop(); <-done; svc.Shutdown(g, time.Second) }()

	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	select {
	case <-svc.Done():
	default:
		t.Fatal("clients stopped before the federation finished")
	}
}

func TestRunGivesUpOnAServerThatNeverComes(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(10, 1), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	err = client.Run(t.Context(), client.Config{Server: addr, Name: "a", Insecure: true, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		GiveUpAfter: 300 * time.Millisecond, Logger: quietLogger()}, tr)
	if err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("err = %v, want a give-up error", err)
	}
}
