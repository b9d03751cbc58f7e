package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
)

func init() { registerCommand(newClientCmd) }

type clientOptions struct {
	server, name, joinToken, stateDir       string
	dataset, dataDir, partition             string
	numClients, clientIndex                 int
	seed                                    uint64
	epsilon, delta                          float64
	committee, requireSecAgg                bool
	minThreshold, minContributions, workers int
	deterministic                           bool
}

type clientResult struct {
	Name     string  `json:"name"`
	Examples int     `json:"examples"`
	Epsilon  float64 `json:"epsilon"`
	Delta    float64 `json:"delta"`
	Seconds  float64 `json:"seconds"`
}

func newClientCmd(g *globalOptions) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Join a federation and train on local data",
		Long: `Join a Confide server and serve its tasks until the federation finishes: local
training with DP-SGD on this client's data, secure-aggregation encryption, and key-committee
duties. The client keeps its privacy ledger and key shares in --state-dir and refuses tasks
that would exceed its privacy budget (--epsilon).

By default the client sends its updates only under secure aggregation: it refuses fit tasks
that would send them in the clear (--require-secure-aggregation=false allows plaintext
rounds), and it takes part only in key committees that no single member can decrypt alone
(threshold t ≥ --min-threshold, default 2) and that never decrypt fewer than
--min-contributions updates (default 2, so an aggregate is never one client's update).
Both floors can be raised, not lowered.

For experiments the client can take its own share of a public dataset directly: all clients
use the same --partition, --num-clients and --seed, each its own --client-index.`,
		Example: `  confide client --server 127.0.0.1:7070 --dataset mnist --partition dirichlet:0.5 --num-clients 10 --client-index 3
  confide client --config examples/client.yaml --client-index 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runClient(ctx, g, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "127.0.0.1:7070", "server address host:port")
	f.StringVar(&o.name, "name", "", "client name, its id in the federation (default client-<index>)")
	f.StringVar(&o.joinToken, "join-token", "", "the federation's join token")
	f.StringVar(&o.stateDir, "state-dir", "", "directory for the privacy ledger and key shares (default: a per-name directory in the user cache)")
	f.StringVar(&o.dataset, "dataset", "mnist", "dataset: mnist or fashion-mnist")
	f.StringVar(&o.dataDir, "data-dir", "", "directory holding the dataset files (default: cache or system location)")
	f.StringVar(&o.partition, "partition", "iid", "how the dataset is split across clients: iid, dirichlet:ALPHA, shards[:K]")
	f.IntVar(&o.numClients, "num-clients", 1, "number of clients the dataset is split across")
	f.IntVar(&o.clientIndex, "client-index", 0, "this client's share of the split: 0…num-clients-1")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the partition (the same for every client of the federation)")
	f.Float64Var(&o.epsilon, "epsilon", 0, "privacy budget ε of this client's data over all rounds (0: no limit)")
	f.Float64Var(&o.delta, "delta", 1e-5, "δ of the privacy budget")
	f.BoolVar(&o.committee, "committee", true, "offer this client for the secure-aggregation key committee")
	f.IntVar(&o.minThreshold, "min-threshold", 2, "refuse key committees with a lower decryption threshold t (at least 2)")
	f.IntVar(&o.minContributions, "min-contributions", 2, "refuse key committees that decrypt aggregates of fewer updates (at least 2)")
	f.BoolVar(&o.requireSecAgg, "require-secure-aggregation", true, "refuse fit tasks that would send this client's update in the clear (without secure aggregation)")
	f.IntVar(&o.workers, "workers", 1, "goroutines for encryption and decryption shares")
	f.BoolVar(&o.deterministic, "deterministic-noise", false, "derive DP noise from --seed and --client-index (reproducible experiments only; never in production)")
	return cmd
}

func runClient(ctx context.Context, g *globalOptions, w io.Writer, o clientOptions) error {
	if o.minThreshold < 2 || o.minContributions < 2 {
		return fmt.Errorf("--min-threshold %d, --min-contributions %d: both must be ≥ 2 (a committee with t = 1, or one that decrypts a single update, could reveal this client's update)", o.minThreshold, o.minContributions)
	}
	if o.numClients < 1 || o.clientIndex < 0 || o.clientIndex >= o.numClients {
		return fmt.Errorf("--client-index %d: must be in 0…--num-clients-1 (%d)", o.clientIndex, o.numClients-1)
	}
	spec, err := data.ParsePartitionSpec(o.partition)
	if err != nil {
		return fmt.Errorf("--partition: %w", err)
	}
	if o.name == "" {
		o.name = fmt.Sprintf("client-%d", o.clientIndex)
	}
	if o.stateDir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("--state-dir not set and no user cache directory: %w", err)
		}
		o.stateDir = cache + "/confide/client/" + o.name
	}
	store, err := client.NewDirStore(o.stateDir)
	if err != nil {
		return err
	}
	trainSet, testSet, err := loadDataset(ctx, o.dataset, o.dataDir)
	if err != nil {
		return err
	}
	parts, err := spec.Partition(trainSet, o.numClients, rand.New(rand.NewPCG(o.seed, 0x70617274)))
	if err != nil {
		return err
	}
	local := trainSet.Subset(parts[o.clientIndex])
	testParts, err := data.PartitionIID(testSet.N, o.numClients, rand.New(rand.NewPCG(o.seed, 0x74657374)))
	if err != nil {
		return err
	}
	localTest := testSet.Subset(testParts[o.clientIndex])
	tcfg := client.ModelTrainerConfig{Train: local, Test: localTest, Budget: client.Budget{Epsilon: o.epsilon, Delta: o.delta}, Store: store}
	// User-level DP's distributed noise: crypto/rand (the party's default) unless asked.
	var noise dp.NoiseSource
	if o.deterministic {
		tcfg.Seed = o.seed*1000003 + uint64(o.clientIndex) + 1
		noise = dp.NewDeterministicNoise(tcfg.Seed ^ 0x7573657264)
	}
	tr, err := client.NewModelTrainer(tcfg)
	if err != nil {
		return err
	}
	spent, _ := tr.Ledger().Epsilon()
	slog.Info("client starting", "name", o.name, "examples", local.N, "partition", spec.String(), "state_dir", o.stateDir, "epsilon_spent", spent)
	start := time.Now()
	err = client.Run(ctx, client.Config{
		Server: o.server, Name: o.name, JoinToken: o.joinToken, CommitteeEligible: o.committee, NumExamples: int64(local.N),
		Store: store, MinThreshold: o.minThreshold, MinContributions: o.minContributions, RequireSecureAggregation: o.requireSecAgg,
		Workers: o.workers, Logger: slog.Default(),
		Noise: noise,
	}, tr)
	if err != nil {
		return err
	}
	eps, _ := tr.Ledger().Epsilon()
	res := clientResult{Name: o.name, Examples: local.N, Epsilon: eps, Delta: o.delta, Seconds: time.Since(start).Seconds()}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s: federation finished after %.1fs; %d local examples; ε spent %.3g at δ = %g\n", res.Name, res.Seconds, res.Examples, res.Epsilon, res.Delta)
	})
}
