package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/secagg"
)

func init() { registerCommand(newClientCmd) }

type clientOptions struct {
	server, name, joinToken, stateDir        string
	dataset, dataDir, partition              string
	data                                     string
	skipBadRows                              bool
	numClients, clientIndex                  int
	seed                                     uint64
	epsilon, delta                           float64
	noDP, raiseBudget                        bool
	committee, requireSecAgg, localNoiseOnly bool
	minThreshold, minContributions, workers  int
	minCommittee                             int
	minNoise, minFlooding, minUserNoise      float64
	shareStatistics                          bool
	deterministic                            bool
	ca, tlsCert, tlsKey                      string
	insecure                                 bool
	giveUpAfter                              time.Duration
	// virtual > 0 hosts that many clients in this process (client_virtual.go), with their
	// certificates in identityDir.
	virtual     int
	identityDir string
	precision   model.Precision
}

type clientResult struct {
	Name     string `json:"name"`
	Examples int    `json:"examples"`
	// DP is false when the client ran with --no-dp, without a budget or a ledger: its
	// updates carried no record-level guarantee (ε = ∞), and Epsilon is then null.
	DP            bool     `json:"dp"`
	NoDP          bool     `json:"no_dp"`
	Epsilon       *float64 `json:"epsilon"`
	Delta         float64  `json:"delta,omitempty"`
	BudgetEpsilon float64  `json:"budget_epsilon,omitempty"`
	Ledger        string   `json:"ledger,omitempty"`
	Seconds       float64  `json:"seconds"`
	// What became of the client's tasks (client.Tally).
	TasksDone      int `json:"tasks_done"`
	TasksRefused   int `json:"tasks_refused"`
	TasksFailed    int `json:"tasks_failed"`
	ResultsRefused int `json:"results_refused_by_server"`
}

func newClientCmd(g *globalOptions) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Join a federation and train on local data",
		Long: `Join a Confide server and serve its tasks until the federation finishes: local
training with DP-SGD on this client's data, secure-aggregation encryption, and key-committee
duties.

Privacy budget: the client needs one, --epsilon and --delta (the (ε, δ) its data may spend
over all rounds; δ below 1/local examples), or an explicit --no-dp. With a budget it keeps
a privacy ledger, the file privacy-ledger.json of --state-dir (checksummed, written before
any update leaves the client, locked so two clients cannot share it; audit it with
'confide privacy ledger FILE'), and refuses tasks that would exceed the budget or that ask
for training without DP-SGD noise. The ledger pins the budget: restarting with a larger
--epsilon is refused unless --raise-budget is given, which records the raise in the ledger;
a smaller one, or another --delta, is refused. With --no-dp the client keeps no ledger and
refuses nothing on privacy grounds: it trains as the server asks, and its updates carry no
record-level differential-privacy guarantee.

--state-dir (default $XDG_DATA_HOME/confide/client/NAME, else
~/.local/share/confide/client/NAME) also keeps the key shares; it is data, not a cache:
deleting it forgets the privacy spent.

By default the client sends its updates only under secure aggregation: it refuses fit tasks
that would send them in the clear (--require-secure-aggregation=false allows plaintext
rounds), and it takes part only in key committees that no single member can decrypt alone
(threshold t ≥ --min-threshold, default 2; committee size ≥ --min-committee-size) and that
never decrypt fewer than --min-contributions updates (default 2, so an aggregate is never
one client's update), with flooding noise of decryption shares at least
--min-flooding-sigma (default 2^30: each coefficient of a share stays within statistical
distance about 2^−19 at 100 uploads, 2^−17.5 at 1000, of one that hides the key; see
secagg's documentation). It refuses fit tasks whose DP-SGD noise multiplier is below
--min-noise-multiplier (default 0.5; 0 with --no-dp), and, with
--min-user-level-noise-multiplier z, user-level DP tasks whose noise shares make less than z
on the smallest sum the committee decrypts (and central mode, whose noise no client sees).
These floors are the client's: the server cannot lower them. The floors of t and m can be raised, not lowered below 2.

Nothing computed from the local data leaves the client in the clear: under secure
aggregation its training and evaluation statistics travel inside the encrypted aggregate,
and the example count only inside the encrypted weight. Without secure aggregation it
sends them only with --share-statistics, noised and charged to its ledger. It never
evaluates on its training data and answers one evaluation a round.

For experiments the client can take its own share of a public dataset directly: all clients
use the same --partition, --num-clients and --seed, each its own --client-index.

The client connects over TLS 1.3 only: it verifies the server against the federation's CA
certificate (--ca) and presents its own certificate (--tls-cert, --tls-key; from 'confide ca
issue --name NAME'), whose subject common name is its identity: --name defaults to it.
--insecure connects in plaintext instead, for tests on a trusted network only.`,
		Example: `  confide client --server 127.0.0.1:7070 --ca pki/ca.crt --tls-cert pki/client-3.crt --tls-key pki/client-3.key \
    --dataset mnist --partition dirichlet:0.5 --num-clients 10 --client-index 3 --epsilon 8 --delta 1e-5
  confide client --config examples/client.yaml --client-index 0 --ca pki/ca.crt --tls-cert pki/client-0.crt --tls-key pki/client-0.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.noDP && !cmd.Flags().Changed("min-noise-multiplier") {
				o.minNoise = 0 // without a budget, tasks without DP-SGD are accepted
			}
			if cmd.Flags().Changed("virtual") {
				return runVirtualClients(ctx, g, cmd.OutOrStdout(), o)
			}
			if o.identityDir != "" {
				return &exitError{code: 2, err: errors.New("--identity-dir is for a fleet of --virtual clients; a lone client takes --tls-cert and --tls-key")}
			}
			return runClient(ctx, g, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "127.0.0.1:7070", "server address host:port")
	f.StringVar(&o.name, "name", "", "client name, its id in the federation (default: the subject CN of --tls-cert, else client-<index>); with --virtual a pattern with one %d for the index (default client-%d)")
	f.StringVar(&o.joinToken, "join-token", "", "the federation's join token")
	f.StringVar(&o.stateDir, "state-dir", "", "directory for the privacy ledger and key shares (default: $XDG_DATA_HOME/confide/client/NAME, else ~/.local/share/confide/client/NAME)")
	f.StringVar(&o.dataset, "dataset", "mnist", "dataset: mnist or fashion-mnist")
	f.StringVar(&o.dataDir, "data-dir", "", "directory holding the dataset files (default: cache or system location)")
	f.StringVar(&o.data, "data", "", "this client's own data (a csv/tsv/jsonl file, or a directory of images or idx files), read with the dataset schema the server ships; replaces --dataset and --partition")
	f.BoolVar(&o.skipBadRows, "skip-bad-rows", false, "with --data: drop the records that do not fit the federation's schema, reporting how many, instead of failing the task")
	f.StringVar(&o.partition, "partition", "iid", "how the dataset is split across clients: iid, dirichlet:ALPHA, shards[:K]")
	f.IntVar(&o.numClients, "num-clients", 1, "number of clients the dataset is split across")
	f.IntVar(&o.clientIndex, "client-index", 0, "this client's share of the split: 0…num-clients-1")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the partition (the same for every client of the federation)")
	f.Float64Var(&o.epsilon, "epsilon", 0, "privacy budget ε of this client's data over all rounds, > 0 (required with --delta unless --no-dp)")
	f.Float64Var(&o.delta, "delta", 0, "δ of the privacy budget, in (0, 1), below 1/local examples (required with --epsilon unless --no-dp)")
	f.BoolVar(&o.noDP, "no-dp", false, "join without a privacy budget: keep no ledger, refuse nothing on privacy grounds (updates carry no record-level DP guarantee)")
	f.BoolVar(&o.raiseBudget, "raise-budget", false, "accept an --epsilon larger than the budget in the ledger, and record the raise in it")
	f.BoolVar(&o.committee, "committee", true, "offer this client for the secure-aggregation key committee")
	f.IntVar(&o.minThreshold, "min-threshold", 2, "refuse key committees with a lower decryption threshold t (at least 2)")
	f.IntVar(&o.minContributions, "min-contributions", 2, "refuse key committees that decrypt aggregates of fewer updates (at least 2)")
	f.IntVar(&o.minCommittee, "min-committee-size", 2, "refuse key committees of fewer members K (at least 2)")
	f.Float64Var(&o.minNoise, "min-noise-multiplier", 0.5, "refuse fit tasks whose DP-SGD noise multiplier is below this (0 with --no-dp unless set)")
	f.Float64Var(&o.minFlooding, "min-flooding-sigma", 1<<30, "refuse key committees whose decryption shares carry less flooding noise σ")
	f.Float64Var(&o.minUserNoise, "min-user-level-noise-multiplier", 0, "under user-level DP, refuse fit tasks whose noise shares make a smaller noise multiplier on the smallest sum the committee decrypts, and central mode, whose noise no client can check (0: no floor)")
	f.BoolVar(&o.shareStatistics, "share-statistics", false, "without secure aggregation, send a noised example count and noised evaluation results (charged to the ledger); with it, statistics are encrypted anyway")
	f.BoolVar(&o.requireSecAgg, "require-secure-aggregation", true, "refuse fit tasks that would send this client's update in the clear (without secure aggregation)")
	f.BoolVar(&o.localNoiseOnly, "local-noise-only", false, "refuse fit tasks that split DP-SGD's noise across clients (dp.distributed), whose guarantee rests on the other updates of each sum being honest: this client's updates then always carry the whole noise")
	f.IntVar(&o.workers, "workers", 1, "goroutines for encryption and decryption shares")
	f.BoolVar(&o.deterministic, "deterministic-noise", false, "derive DP noise from --seed and --client-index (reproducible experiments only; never in production)")
	f.StringVar(&o.ca, "ca", "", "the federation's CA certificate, PEM: the server must present a certificate it issued")
	f.StringVar(&o.tlsCert, "tls-cert", "", "this client's certificate, PEM (from 'confide ca issue --name NAME'; its subject CN is the client's identity)")
	f.StringVar(&o.tlsKey, "tls-key", "", "the key of --tls-cert, PEM")
	f.BoolVar(&o.insecure, "insecure", false, "connect in plaintext, without certificates (tests on a trusted network only)")
	f.DurationVar(&o.giveUpAfter, "give-up-after", 10*time.Minute, "stop (exit 1) once the server has been unreachable this long without a break")
	f.IntVar(&o.virtual, "virtual", 0, "host this many clients in this process, with the indices --client-index…--client-index+N-1 of --num-clients, each with its own identity, state directory, ledger and data shard")
	o.precision = model.Float32
	addPrecisionFlag(cmd, &o.precision)
	f.StringVar(&o.identityDir, "identity-dir", "", "with --virtual: the directory holding each virtual client's certificate and key, NAME.crt and NAME.key (from 'confide ca issue --name NAME')")
	return cmd
}

func runClient(ctx context.Context, g *globalOptions, w io.Writer, o clientOptions) error {
	budget, err := o.checkFloorsAndBudget()
	if err != nil {
		return err
	}
	if o.numClients < 1 || o.clientIndex < 0 || o.clientIndex >= o.numClients {
		return fmt.Errorf("--client-index %d: must be in 0…--num-clients-1 (%d)", o.clientIndex, o.numClients-1)
	}
	spec, err := data.ParsePartitionSpec(o.partition)
	if err != nil {
		return fmt.Errorf("--partition: %w", err)
	}
	tlsConfig, err := clientTLS(o)
	if err != nil {
		return err
	}
	// With mutual TLS the client's certificate is also its identity in secure aggregation
	// (signed key material and uploads, verified keys and committee requests).
	var (
		signer   *secagg.Signer
		verifier *secagg.Verifier
	)
	if tlsConfig != nil {
		if signer, verifier, err = clientIdentity(tlsConfig, o.ca); err != nil {
			return err
		}
	}
	if o.name == "" && tlsConfig != nil {
		o.name = tlsConfig.Certificates[0].Leaf.Subject.CommonName
	}
	if o.name == "" {
		o.name = fmt.Sprintf("client-%d", o.clientIndex)
	}
	if o.stateDir == "" {
		if o.stateDir, err = defaultStateDir(o.name); err != nil {
			return err
		}
	}
	store, err := client.NewDirStore(o.stateDir)
	if err != nil {
		return err
	}
	tcfg := client.ModelTrainerConfig{Budget: budget, RaiseBudget: o.raiseBudget, Store: store, Precision: o.precision}
	if o.data != "" {
		tcfg.Source = ownDataSource(o)
	} else if tcfg.Train, tcfg.Test, err = sharedDataset(ctx, o, spec); err != nil {
		return err
	}
	examples := func() int {
		if tcfg.Train != nil {
			return tcfg.Train.N
		}
		return 0 // --data: read when the first task brings the schema
	}
	var noise dp.NoiseSource
	tcfg.Seed, noise = o.noiseSeed(o.clientIndex)
	tr, err := client.NewModelTrainer(tcfg)
	if err != nil {
		return ledgerHint(err, o.stateDir)
	}
	defer tr.Close()
	res := clientResult{Name: o.name, Examples: examples(), NoDP: budget == nil, DP: budget != nil}
	if l := tr.Ledger(); l != nil {
		res.Ledger = l.Where()
		var eps float64
		eps, res.Delta = l.Spent()
		res.Epsilon = &eps
		res.BudgetEpsilon = l.Budget().Epsilon
		slog.Info("client starting", "name", o.name, "examples", res.Examples, "partition", spec.String(), "data", o.data, "state_dir", o.stateDir,
			"ledger", res.Ledger, "budget_epsilon", res.BudgetEpsilon, "delta", res.Delta, "epsilon_spent", *res.Epsilon)
	} else {
		slog.Warn("client starting without a privacy budget (--no-dp): no privacy ledger, no task refused on privacy grounds; its updates carry no record-level differential-privacy guarantee",
			"name", o.name, "examples", res.Examples, "partition", spec.String(), "data", o.data, "state_dir", o.stateDir)
	}
	start := time.Now()
	var tally client.Tally
	err = client.Run(ctx, o.runConfig(o.name, tlsConfig, signer, verifier, store, noise, &tally), tr)
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	if local, _ := tr.Data(); local != nil {
		res.Examples = local.N
	}
	if l := tr.Ledger(); l != nil {
		var eps float64
		eps, res.Delta = l.Spent()
		res.Epsilon = &eps
	}
	res.TasksDone, res.TasksRefused, res.TasksFailed, res.ResultsRefused = tally.Completed, tally.Refused, tally.Failed, tally.Rejected
	if err := g.emit(w, res, func(w io.Writer) {
		if res.NoDP {
			fmt.Fprintf(w, "%s: federation finished after %.1fs; %d local examples; %s; no DP (ε = ∞, --no-dp): its updates carried no record-level guarantee\n", res.Name, res.Seconds, res.Examples, tally)
			return
		}
		fmt.Fprintf(w, "%s: federation finished after %.1fs; %d local examples; %s; ε spent %.3g of %g at δ = %g (ledger %s)\n", res.Name, res.Seconds, res.Examples, tally, *res.Epsilon, res.BudgetEpsilon, res.Delta, res.Ledger)
	}); err != nil {
		return err
	}
	if tally.Completed == 0 {
		// A client that took part in nothing did not do its job: say so in the exit status.
		return fmt.Errorf("%s completed no task (%s): see the warnings above for the reasons", res.Name, tally)
	}
	return nil
}

// checkFloorsAndBudget checks the flags every client of this process shares before it
// touches data or the network: the committee and noise floors, the privacy budget (nil
// with --no-dp) and --give-up-after.
func (o clientOptions) checkFloorsAndBudget() (*dp.Budget, error) {
	if o.minThreshold < 2 || o.minContributions < 2 || o.minCommittee < 2 {
		return nil, fmt.Errorf("--min-threshold %d, --min-contributions %d, --min-committee-size %d: all must be ≥ 2 (a committee with t = 1, or one that decrypts a single update, could reveal this client's update)", o.minThreshold, o.minContributions, o.minCommittee)
	}
	if !(o.minNoise >= 0) || !(o.minFlooding >= 0) || !(o.minUserNoise >= 0) || math.IsInf(o.minUserNoise, 0) {
		return nil, fmt.Errorf("--min-noise-multiplier %v, --min-flooding-sigma %v, --min-user-level-noise-multiplier %v: must be finite and ≥ 0", o.minNoise, o.minFlooding, o.minUserNoise)
	}
	if !(o.giveUpAfter > 0) {
		return nil, &exitError{code: 2, err: fmt.Errorf("--give-up-after %v: must be positive (e.g. 30s)", o.giveUpAfter)}
	}
	return o.privacyBudget()
}

// noiseSeed is the trainer's seed and the party's distributed-noise source of the client
// with this index: zero and nil (crypto/rand, as a deployment must) unless
// --deterministic-noise derives them from --seed and the index.
func (o clientOptions) noiseSeed(index int) (uint64, dp.NoiseSource) {
	if !o.deterministic {
		return 0, nil
	}
	seed := o.seed*1000003 + uint64(index) + 1
	return seed, dp.NewDeterministicNoise(seed ^ 0x7573657264)
}

// runConfig is client.Run's configuration for the client name: the server, its
// transport security and identity, its Store and the floors of its round logic.
func (o clientOptions) runConfig(name string, tc *tls.Config, signer *secagg.Signer, verifier *secagg.Verifier, store client.Store, noise dp.NoiseSource, tally *client.Tally) client.Config {
	return client.Config{
		Server: o.server, Name: name, JoinToken: o.joinToken, CommitteeEligible: o.committee, TLS: tc, Insecure: o.insecure,
		Store: store, Logger: slog.Default(), GiveUpAfter: o.giveUpAfter, Tally: tally,
		Party: client.PartyConfig{
			Signer: signer, Verifier: verifier,
			MinThreshold: o.minThreshold, MinContributions: o.minContributions, MinCommitteeSize: o.minCommittee,
			MinNoiseMultiplier: o.minNoise, MinFloodingSigma: o.minFlooding, RequireSecureAggregation: o.requireSecAgg, LocalNoiseOnly: o.localNoiseOnly,
			MinUserLevelNoiseMultiplier: o.minUserNoise,
			ShareStatistics:             o.shareStatistics, Workers: o.workers, Noise: noise,
		},
	}
}

// privacyBudget checks the budget flags, before the client touches data or the network: a
// budget (--epsilon and --delta) or an explicit --no-dp, never neither.
func (o clientOptions) privacyBudget() (*dp.Budget, error) {
	if o.noDP {
		if o.epsilon != 0 || o.delta != 0 || o.raiseBudget {
			return nil, &exitError{code: 2, err: errors.New("--no-dp with --epsilon, --delta or --raise-budget: choose a privacy budget or none")}
		}
		return nil, nil
	}
	if o.epsilon == 0 || o.delta == 0 {
		return nil, &exitError{code: 2, err: errors.New("no privacy budget: set --epsilon and --delta (e.g. --epsilon 8 --delta 1e-5: the ε this client's data may spend over all rounds, at a δ below 1/local examples), or pass --no-dp to join without one (no privacy ledger, and updates without a record-level DP guarantee)")}
	}
	b := dp.Budget{Epsilon: o.epsilon, Delta: o.delta}
	if err := b.Validate(); err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--epsilon %v, --delta %v: ε must be finite and > 0, δ in (0, 1)", o.epsilon, o.delta)}
	}
	return &b, nil
}

// defaultStateDir is the client's state directory when --state-dir is not set: user data,
// not the cache, since cache cleaners would delete the ledger and so reset the budget.
func defaultStateDir(name string) (string, error) {
	if name != filepath.Base(name) || name == "." || name == ".." {
		return "", &exitError{code: 2, err: fmt.Errorf("--name %q is not a directory name: set --state-dir", name)}
	}
	// XDG Base Directory Specification: a relative $XDG_DATA_HOME is invalid and ignored.
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "confide", "client", name), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("--state-dir not set, and neither $XDG_DATA_HOME nor a home directory is known (%v): set --state-dir", err)
	}
	return filepath.Join(home, ".local", "share", "confide", "client", name), nil
}

// ledgerHint adds the flag that resolves a ledger error to it.
func ledgerHint(err error, stateDir string) error {
	var me *dp.BudgetMismatchError
	switch {
	case errors.As(err, &me) && me.Opened.Delta == me.Pinned.Delta && me.Opened.Epsilon > me.Pinned.Epsilon:
		return &exitError{code: 2, err: fmt.Errorf("%w; to raise it, add --raise-budget", err)}
	case errors.As(err, &me):
		return &exitError{code: 2, err: fmt.Errorf("%w; pass --epsilon %v --delta %v", err, me.Pinned.Epsilon, me.Pinned.Delta)}
	case errors.Is(err, dp.ErrLedgerInUse):
		return fmt.Errorf("%w (is another confide client running with --state-dir %s?)", err, stateDir)
	}
	return err
}
