package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
	"github.com/confide-fl/confide/train"
)

// blobs returns a two-class problem: Gaussian clouds around ±(1, 1, 1, 1).
func blobs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Dataset{Name: "blobs", N: n, Dim: 4, X: make([]float64, 4*n), Y: make([]int32, n), NumClasses: 2}
	for i := 0; i < n; i++ {
		y := int32(i % 2)
		ds.Y[i] = y
		for j := 0; j < 4; j++ {
			ds.X[4*i+j] = float64(2*y-1) + 0.8*rng.NormFloat64()
		}
	}
	return ds
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The fast form of the acceptance test: one server and five clients in one process over an
// in-memory gRPC listener, with DP-SGD, secure aggregation (K = 3, t = 2) and FedAvg.
func TestFederationOverGRPCWithSecureAggregation(t *testing.T) {
	for _, strat := range []string{"fedavg", "fedprox", "fedadam"} {
		t.Run(strat, func(t *testing.T) { runFederation(t, strat) })
	}
}

func runFederation(t *testing.T, strat string) {
	spec := model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{8}, Output: 2}
	test := blobs(400, 99)
	var (
		mu       sync.Mutex
		accuracy []float64
	)
	central := func(round uint64, params []float64) (map[string]float64, error) {
		m, err := model.New(spec, rand.New(rand.NewPCG(0, 0)))
		if err != nil {
			return nil, err
		}
		if err := m.SetParams(params); err != nil {
			return nil, err
		}
		r, err := train.Evaluate(m, test, 256)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		accuracy = append(accuracy, r.Accuracy)
		mu.Unlock()
		return map[string]float64{"accuracy": r.Accuracy, "loss": r.Loss}, nil
	}
	cfg := server.Config{
		Rounds: 2, Model: spec, Seed: 3,
		Sampling:  server.SamplingConfig{MinFit: 5, MinAvailable: 5, FractionEvaluate: 0.4},
		Strategy:  serverStrategy(strat),
		Training:  server.TrainingConfig{Epochs: 2, BatchSize: 16, LR: 0.2, WeightScale: 200},
		DP:        server.DPConfig{NoiseMultiplier: 0.5, MaxGradNorm: 1, UpdateClipNorm: 5, SampleRate: 0.08},
		SecAgg:    server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, KeySetup: time.Minute, Decrypt: time.Minute, Evaluate: time.Minute},
	}
	coord, err := server.New(cfg, server.Options{Central: central})
	if err != nil {
		t.Fatal(err)
	}
	store := &server.MemoryStore{}
	svc := server.NewService(coord, server.ServiceConfig{JoinToken: "s3cret", TickInterval: 50 * time.Millisecond, Store: store, Logger: quietLogger()})
	lis := bufconn.Listen(1 << 20)
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()
	defer svc.Shutdown(g, time.Second)

	dial := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	var wg sync.WaitGroup
	errs := make([]error, 5)
	trainers := make([]*client.ModelTrainer, 5)
	tallies := make([]client.Tally, 5)
	for i := range errs {
		store := client.NewMemoryStore()
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(200, uint64(i+1)), Test: blobs(100, uint64(i+50)), Budget: &dp.Budget{Epsilon: 50, Delta: 1e-5}, Store: store, Seed: uint64(i + 10)})
		if err != nil {
			t.Fatal(err)
		}
		trainers[i] = tr
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = client.Run(ctx, client.Config{
				Server: "passthrough:///bufnet", Name: string(rune('a' + i)), JoinToken: "s3cret", CommitteeEligible: true,
				Store: store, DialOptions: dial, PollWait: time.Second, Logger: quietLogger(), Tally: &tallies[i],
			}, tr)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	select {
	case <-svc.Done():
	default:
		t.Fatal("clients returned before the federation finished")
	}
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("service: %v", err)
	}
	var rounds []server.RoundRecord
	for _, r := range store.Records() {
		if rr, ok := r.(server.RoundRecord); ok {
			rounds = append(rounds, rr)
		}
	}
	if len(rounds) != 2 {
		t.Fatalf("%d rounds recorded, want 2", len(rounds))
	}
	for _, rr := range rounds {
		if rr.Failed || len(rr.Contributors) != 5 {
			t.Fatalf("round %d: failed=%v (%s), %d contributors", rr.Round, rr.Failed, rr.Reason, len(rr.Contributors))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accuracy) != 3 || accuracy[2] < 0.85 {
		t.Fatalf("central accuracy per round %v, want 3 values ending ≥ 0.85", accuracy)
	}
	for i, tl := range tallies {
		// 2 fits each and their part in key setup, evaluation and decryption; nothing
		// refused or failed.
		if tl.Completed < 2 || tl.Refused+tl.Failed+tl.Rejected != 0 {
			t.Fatalf("client %d: %s, want at least the 2 fit tasks done and nothing refused", i, tl)
		}
	}
	for i, tr := range trainers {
		if eps, _ := tr.Ledger().Spent(); !(eps > 0) {
			t.Fatalf("client %d ledger ε = %v: want > 0 after DP-SGD rounds", i, eps)
		}
	}
	t.Logf("%s: accuracy per round %v", strat, accuracy)
}

func serverStrategy(name string) strategy.Config {
	c := strategy.Config{Name: name}
	switch name {
	case strategy.NameFedProx:
		c.ProximalMu = 0.01
	case strategy.NameFedAdam:
		c.ServerLR = new(0.3)
	}
	return c
}
