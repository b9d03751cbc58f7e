// Command embeddedserver runs a Confide federation server inside another Go program, with
// an aggregation strategy of its own (trustRegion, below) in place of the built-in ones:
// server.New builds the round coordinator with server.Options.Strategy, server.NewService
// serves it over gRPC, and the program decides what to do with each round's model.
//
//	go run ./examples/sdk/embeddedserver                 # server and 3 demo clients in one process
//	go run ./examples/sdk/embeddedserver --clients 0 &   # server only; clients join over gRPC:
//	confide client --insecure --dataset … --no-dp …       # (any Trainer: confide client, examples/sdk/customtrainer)
//
// The demo clients are the SDK's client.ModelTrainer (DP-SGD, a privacy ledger each) on
// Gaussian classes, each device with its own shift of them; updates travel under secure
// aggregation, so the strategy sees only their weighted sum, as every strategy of a
// secure federation does.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
	"github.com/confide-fl/confide/train"
)

// trustRegion is FedAvg whose server step is kept within a trust region: the mean update
// Δ̄ is applied whole while ‖Δ̄‖ ≤ radius and scaled down to norm radius beyond it, so one
// round's noisy or skewed aggregate cannot throw the model far. It works on the secure
// sum alone (strategy.MeanUpdate), so secure aggregation stays on.
type trustRegion struct {
	strategy.Strategy // FedAvg's configure and evaluate steps
	radius            float64
}

var _ strategy.Strategy = trustRegion{}

func (s trustRegion) Name() string { return "trust-region" }

func (s trustRegion) AggregateFit(round uint64, global []float64, r strategy.FitResults) ([]float64, strategy.Metrics, error) {
	mean, err := strategy.MeanUpdate(len(global), r)
	if err != nil {
		return nil, nil, err
	}
	norm := dp.L2Norm(mean)
	scale := min(1, s.radius/norm)
	next := make([]float64, len(global))
	for i := range next {
		next[i] = global[i] + scale*mean[i]
	}
	capped := 0.0
	if scale < 1 {
		capped = 1
	}
	return next, strategy.Metrics{"step_norm": norm * scale, "capped": capped}, nil
}

type options struct {
	listen  string
	clients int
	rounds  int
	radius  float64
	seed    uint64
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:7070", "gRPC address (plaintext: a demo on a trusted network)")
	flag.IntVar(&o.clients, "clients", 3, "demo clients to run in this process (0: wait for external ones)")
	flag.IntVar(&o.rounds, "rounds", 10, "federated rounds")
	flag.Float64Var(&o.radius, "radius", 1, "the trust region's radius (L2) of a server step")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the demo data and clients")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embeddedserver:", err)
		os.Exit(2)
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err := run(ctx, os.Stdout, o, lis, lis.Addr().String(), grpc.WithContextDialer(dial)); err != nil {
		fmt.Fprintln(os.Stderr, "embeddedserver:", err)
		os.Exit(1)
	}
}

// run serves the federation on lis and, with o.clients > 0, runs the demo clients, which
// reach it at addr with dial (a test passes an in-memory listener). It prints the central
// accuracy and the strategy's step of every round.
func run(ctx context.Context, w io.Writer, o options, lis net.Listener, addr string, dial grpc.DialOption) error {
	devices := max(o.clients, 1)
	trainSet := gaussianClasses(devices*300, 20, 4, devices, o.seed)
	test := gaussianClasses(1000, 20, 4, devices, o.seed+1)
	spec := model.Spec{Type: model.TypeMLP, Input: trainSet.Dim, Hidden: []int{16}, Output: trainSet.NumClasses}
	evalModel, err := model.New(spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	central := func(round uint64, params []float64) (map[string]float64, error) {
		mu.Lock()
		defer mu.Unlock()
		if err := evalModel.SetParams(params); err != nil {
			return nil, err
		}
		r, err := train.Evaluate(evalModel, test, 256)
		if err != nil {
			return nil, err
		}
		return map[string]float64{"accuracy": r.Accuracy, "loss": r.Loss}, nil
	}
	fedavg, err := strategy.New(strategy.Config{Name: strategy.NameFedAvg}, true)
	if err != nil {
		return err
	}
	cfg := server.Config{
		Rounds: o.rounds, Model: spec, Seed: o.seed,
		Sampling: server.SamplingConfig{MinFit: devices, MinAvailable: devices},
		Training: server.TrainingConfig{Epochs: 1, BatchSize: 16, LR: 0.3, WeightScale: 1000},
		DP:       server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, SampleRate: 0.05, UpdateClipNorm: 5},
		// Every device sits on the committee; any majority decrypts (two sets of t must
		// share a member, so t > K/2).
		SecAgg:    server.SecAggConfig{Enabled: true, CommitteeSize: max(devices, 2), Threshold: max(devices, 2)/2 + 1, LogN: 12},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, KeySetup: time.Minute, Decrypt: time.Minute, Evaluate: time.Minute},
	}
	coord, err := server.New(cfg, server.Options{Central: central, Strategy: trustRegion{Strategy: fedavg, radius: o.radius}})
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	records := &roundPrinter{w: w}
	svc := server.NewService(coord, server.ServiceConfig{TickInterval: 50 * time.Millisecond, Store: records, Logger: quiet})
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	defer svc.Shutdown(g, time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- svc.Run(runCtx) }()
	parts, err := data.PartitionNatural(trainSet.Group, devices)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, o.clients)
	for k := range o.clients {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: trainSet.Subset(parts[k]), Budget: &dp.Budget{Epsilon: 10, Delta: 1e-5}, Seed: o.seed*100 + uint64(k) + 1})
		if err != nil {
			return err
		}
		defer tr.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = client.Run(runCtx, client.Config{Server: "passthrough:///" + addr, Name: fmt.Sprintf("device-%d", k), CommitteeEligible: true,
				DialOptions: []grpc.DialOption{dial, grpc.WithTransportCredentials(insecure.NewCredentials())}, PollWait: 200 * time.Millisecond, Logger: quiet}, tr)
		}()
	}
	select {
	case <-svc.Done():
	case err := <-served:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			return fmt.Errorf("demo client %d: %w", k, err)
		}
	}
	return nil
}

// roundPrinter is a server.Store that prints each finished round as the coordinator
// records it: a program embedding the server sees every record (a database, a dashboard).
type roundPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *roundPrinter) Append(records []server.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range records {
		switch r := r.(type) {
		case server.EvaluationRecord:
			fmt.Fprintf(p.w, "round %d: accuracy %.2f\n", r.Round, r.Metrics["accuracy"])
		case server.RoundRecord:
			if r.Failed {
				fmt.Fprintf(p.w, "round %d failed: %s\n", r.Round, r.Reason)
			} else if n := r.Metrics["step_norm"]; !math.IsNaN(n) {
				fmt.Fprintf(p.w, "round %d: %d devices, server step %.2f (capped %v)\n", r.Round, len(r.Contributors), n, r.Metrics["capped"] == 1)
			}
		}
	}
	return nil
}

// gaussianClasses draws n examples of k balanced classes in dim dimensions: class c around
// a centre of norm 3 drawn once from seed's first stream, plus a shift per device (the
// devices' data differ), unit noise. Group is the device.
func gaussianClasses(n, dim, k, devices int, seed uint64) *data.Dataset {
	centres := rand.New(rand.NewPCG(1, 0x636c61737365))
	mu := make([][]float64, k)
	for c := range mu {
		mu[c] = make([]float64, dim)
		for j := range mu[c] {
			mu[c][j] = 3 / math.Sqrt(float64(dim)) * centres.NormFloat64()
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x64617461))
	shift := make([]float64, devices)
	for d := range shift {
		shift[d] = 0.5 * rng.NormFloat64()
	}
	ds := &data.Dataset{Name: "gaussian", N: n, Dim: dim, X: make([]float64, n*dim), Y: make([]int32, n),
		NumClasses: k, Task: data.TaskClassify, Group: make([]int32, n)}
	for i := range n {
		c, d := i%k, i%devices
		ds.Y[i], ds.Group[i] = int32(c), int32(d)
		for j := range dim {
			ds.X[i*dim+j] = mu[c][j] + shift[d] + rng.NormFloat64()
		}
	}
	return ds
}
