package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

func init() {
	registerCommand(newServerCmd)
	structuredConfigs["confide server"] = reflect.TypeOf(serverFile{})
}

// serverFile is the server's YAML config: where to listen, optional central evaluation, and
// the federation itself (server.Config) under "federation".
type serverFile struct {
	Listen        string `yaml:"listen"`
	MetricsListen string `yaml:"metrics_listen"`
	// HealthListen serves the gRPC health service alone, in plaintext, for probes that
	// cannot present a client certificate (a kubelet's gRPC probe).
	HealthListen  string `yaml:"health_listen"`
	JoinToken     string `yaml:"join_token"`
	CheckpointDir string `yaml:"checkpoint_dir"`
	// Dashboard serves the read-only web dashboard there (empty: off), to whoever presents
	// DashboardToken; over TLS with the server's certificate unless insecure.
	Dashboard      string `yaml:"dashboard"`
	DashboardToken string `yaml:"dashboard_token"`
	// StateDir holds the durable state (state.db, SQLite): a server started again with the
	// same state_dir resumes the federation after its last finished round.
	StateDir string `yaml:"state_dir"`
	// Linger keeps the server up this long after the last round, so that clients see the
	// federation finish (default 3s).
	Linger time.Duration `yaml:"linger"`
	// MaxClients bounds the registered clients (0: the service's default, 100000).
	MaxClients int `yaml:"max_clients"`
	// MaxUploadMB bounds, in MiB, the clients' uploads the server holds whole at once:
	// being received, or waiting to be added to the round's aggregate (0: the service's
	// default, 1024). An upload takes its declared size from the bound before its first
	// byte is read and keeps it until it is added, so the bound also caps how many uploads
	// are received at once; the others wait for room (up to 2 minutes, then retry). The
	// server adds one upload at a time, so over fast links (loopback:
	// docs/sweeps/large-model.md) a bound of a few uploads costs no throughput; over slow
	// ones it receives only that many at a time, which is why the default is a fixed
	// amount of memory and not a number of uploads. An encrypted update is about 6.5 bytes
	// per parameter (secure_aggregation.value_bits 11), so the default holds 15 of a
	// 10⁷-parameter model; the server's memory is about this bound plus a few copies of the
	// model.
	MaxUploadMB int `yaml:"max_upload_mb"`
	// MemoryLimitMB is a soft limit, in MiB, on the server process's memory (Go's
	// runtime/debug.SetMemoryLimit): the garbage collector runs more often as the heap
	// nears it rather than letting the heap grow to twice what is live, so the server's
	// peak RSS stays near the limit when its live memory fits under it (it is no hard cap:
	// above it the collector uses at most about half the CPU, and the heap grows). 0: no
	// limit, the default: what a server needs depends on the model (a few copies of it)
	// and max_upload_mb, and a limit below it costs CPU and saves nothing. With 100
	// clients per round of a 10⁷-parameter model and max_upload_mb 256 the server's live
	// heap peaked at 550–720 MiB, its RSS at 1.2–1.5 GiB without a limit or with 1536, and
	// at 1.04 GiB with 1024 (docs/sweeps/large-model.md). GOMEMLIMIT in the environment,
	// when set, takes precedence.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// Aggregators are the certificate identities of the intermediate aggregators (confide
	// aggregator) that may relay calls on their clients' behalf (empty: none may).
	Aggregators []string `yaml:"aggregators"`
	// Mutual TLS: the server's certificate and key, and the CA certificate that issued the
	// clients' certificates (paths relative to the working directory). Insecure serves
	// plaintext instead.
	TLSCert    string           `yaml:"tls_cert"`
	TLSKey     string           `yaml:"tls_key"`
	ClientCA   string           `yaml:"client_ca"`
	Insecure   bool             `yaml:"insecure"`
	Evaluation serverEvaluation `yaml:"evaluation"`
	Federation server.Config    `yaml:"federation"`
}

// serverEvaluation is the server's central evaluation.
type serverEvaluation struct {
	// Dataset, when set, is the test set the server evaluates every round's global model
	// on (central evaluation): mnist, fashion-mnist, or a dataset spec file whose test_path
	// is read with federation.dataset's schema when there is one (as the clients read
	// theirs); when that schema has statistics to estimate (range), with the estimates,
	// once its statistics round has completed.
	Dataset string `yaml:"dataset"`
	// DataDir holds its files (empty: the default location).
	DataDir string `yaml:"data_dir"`
}

type serverRound struct {
	Round        uint64   `json:"round"`
	Failed       bool     `json:"failed,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	Contributors int      `json:"contributors"`
	CentralAcc   *float64 `json:"central_accuracy,omitempty"`
	// Central holds every metric of the round's central evaluation (a regression model's
	// r2, rmse, mae, mse beside accuracy and loss).
	Central map[string]float64 `json:"central,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// ElapsedSeconds is the time from the server's start to the end of the round (for
	// a round of an earlier run, restored on resume: to when it was read back).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

type serverResult struct {
	Rounds          int           `json:"rounds"`
	Strategy        string        `json:"strategy"`
	SecAgg          bool          `json:"secure_aggregation"`
	InitialAccuracy *float64      `json:"initial_accuracy,omitempty"`
	History         []serverRound `json:"history"`
	// DPSGD says whether clients trained with DP-SGD. Without it there is no record-level
	// guarantee (ε = ∞) and the ε fields are absent.
	DPSGD bool `json:"dp_sgd"`
	// EpsilonMax is the largest record-level ε of any client as the server accounts it
	// from the fit tasks it issued (σ, q and steps are fixed by the server), whether or not
	// a result came back; EpsilonReportedMax the largest a client reported from its ledger.
	EpsilonMax         *float64 `json:"epsilon_max,omitempty"`
	EpsilonReportedMax *float64 `json:"epsilon_reported_max,omitempty"`
	Delta              float64  `json:"delta,omitempty"`
	// Accountant is dp.accountant, the accountant of the server's ε (rdp or prv).
	Accountant string `json:"accountant,omitempty"`
	// UserLevel is the federation's user-level DP (dp.user_level), nil when it is off.
	UserLevel *server.UserLevelPrivacyRecord `json:"user_level,omitempty"`
	Seconds   float64                        `json:"seconds"`
}

func newServerCmd(g *globalOptions) *cobra.Command {
	var listen, metricsListen, healthListen, joinToken, checkpointDir, stateDir string
	var rounds, maxClients, memoryLimitMB int
	var aggregators []string
	var tlsCert, tlsKey, clientCA string
	var board dashboardOptions
	var insecure bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the aggregation server of a federation",
		Long: `Run the aggregation server: clients dial in (confide client), and the server runs
the configured rounds of federated training with the chosen strategy, DP settings and
optional secure aggregation, then exits. The config file (--config) holds listen addresses
and a "federation" section (see examples/server.yaml). Prometheus metrics are served on
--metrics-listen at /metrics, and a read-only web dashboard (state, rounds, clients,
privacy spent, key committee, checkpoints) on --dashboard to whoever presents
--dashboard-token. Every key of the config file can also come from the environment, as
CONFIDE_<SECTION>_<KEY> (CONFIDE_FEDERATION_DP_NOISE_MULTIPLIER=1.1); 'confide config
reference server' lists them.

The server speaks TLS 1.3 only and admits only clients whose certificate the federation's
CA issued (--client-ca); a client's identity is its certificate's subject common name, and
an identity has at most one live session. Create the CA and the certificates with
'confide ca'. --insecure serves plaintext instead, for tests on a trusted network only.`,
		Example: `  confide ca init --dir pki && confide ca issue --dir pki --server --name server --host 127.0.0.1
  confide server --config examples/server.yaml --tls-cert pki/server.crt --tls-key pki/server.key --client-ca pki/ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sf, err := readServerFile(g.configFile)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("listen") || sf.Listen == "" {
				sf.Listen = listen
			}
			if f.Changed("metrics-listen") {
				sf.MetricsListen = metricsListen
			}
			if f.Changed("health-listen") {
				sf.HealthListen = healthListen
			}
			if f.Changed("join-token") {
				sf.JoinToken = joinToken
			}
			if f.Changed("checkpoint-dir") {
				sf.CheckpointDir = checkpointDir
			}
			if f.Changed("state-dir") {
				sf.StateDir = stateDir
			}
			if f.Changed("rounds") {
				sf.Federation.Rounds = rounds
			}
			if f.Changed("max-clients") {
				sf.MaxClients = maxClients
			}
			if f.Changed("memory-limit-mb") {
				sf.MemoryLimitMB = memoryLimitMB
			}
			if f.Changed("aggregators") {
				sf.Aggregators = aggregators
			}
			if f.Changed("tls-cert") {
				sf.TLSCert = tlsCert
			}
			if f.Changed("tls-key") {
				sf.TLSKey = tlsKey
			}
			if f.Changed("client-ca") {
				sf.ClientCA = clientCA
			}
			if f.Changed("insecure") {
				sf.Insecure = insecure
			}
			if f.Changed("dashboard") {
				sf.Dashboard = board.addr
			}
			if f.Changed("dashboard-token") {
				sf.DashboardToken = board.token
			}
			return runServer(ctx, g, cmd.OutOrStdout(), sf)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "address the gRPC service listens on")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "address of the Prometheus /metrics endpoint (empty: off)")
	cmd.Flags().StringVar(&healthListen, "health-listen", "", "address of a plaintext gRPC endpoint with the health service alone, for probes without a client certificate such as Kubernetes' gRPC probes (health_listen; empty: off)")
	cmd.Flags().StringVar(&joinToken, "join-token", "", "shared token clients must present to join (empty: none)")
	cmd.Flags().StringVar(&checkpointDir, "checkpoint-dir", "", "write the global model of every round into this directory")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "keep the federation's durable state here (SQLite state.db); started again with the same directory, the server resumes after the last finished round")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "override federation.rounds of the config file")
	cmd.Flags().IntVar(&maxClients, "max-clients", 0, "most clients that may register (max_clients; default 100000)")
	cmd.Flags().IntVar(&memoryLimitMB, "memory-limit-mb", 0, "soft limit in MiB on the server's memory: the garbage collector works harder near it (memory_limit_mb; 0: none; GOMEMLIMIT takes precedence)")
	cmd.Flags().StringSliceVar(&aggregators, "aggregators", nil, "certificate identities of the aggregators (confide aggregator) that may relay calls for their clients (aggregators; empty: none)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "the server's TLS certificate, PEM (tls_cert; from 'confide ca issue --server')")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "the key of --tls-cert, PEM (tls_key)")
	cmd.Flags().StringVar(&clientCA, "client-ca", "", "the CA certificate that issued the clients' certificates, PEM (client_ca; from 'confide ca init')")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "serve plaintext gRPC without client certificates (tests on a trusted network only)")
	cmd.Flags().StringVar(&board.addr, "dashboard", "", "serve the read-only web dashboard on this address (dashboard; HTTPS with the server's certificate unless --insecure; empty: off)")
	cmd.Flags().StringVar(&board.token, "dashboard-token", "", "the operator token the dashboard asks for, as the password or as 'Authorization: Bearer TOKEN' (dashboard_token; required with --dashboard)")
	return cmd
}

func readServerFile(path string) (serverFile, error) {
	var sf serverFile
	if path == "" {
		path = os.Getenv("CONFIDE_CONFIG")
	}
	if path == "" {
		return sf, &exitError{code: exitUsage, err: errors.New("confide server needs --config FILE with a federation section (see examples/server.yaml)")}
	}
	if err := loadConfig(&sf, path, os.LookupEnv); err != nil {
		return sf, &exitError{code: exitUsage, err: fmt.Errorf("server config %s: %w (see examples/server.yaml and 'confide config reference server')", path, err)}
	}
	return sf, nil
}

func runServer(ctx context.Context, g *globalOptions, w io.Writer, sf serverFile) error {
	if sf.MaxClients < 0 {
		return fmt.Errorf("max_clients = %d: must be ≥ 0 (0: 100000)", sf.MaxClients)
	}
	if sf.MaxUploadMB < 0 {
		return fmt.Errorf("max_upload_mb = %d: must be ≥ 0 (0: 1024 MiB)", sf.MaxUploadMB)
	}
	if err := applyMemoryLimit(sf.MemoryLimitMB, os.LookupEnv); err != nil {
		return err
	}
	tlsConfig, err := serverTLS(sf)
	if err != nil {
		return err
	}
	if err := server.CheckAggregators(sf.Aggregators); err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("aggregators: %w", err)}
	}
	if len(sf.Aggregators) > 0 && tlsConfig == nil {
		return &exitError{code: exitUsage, err: errors.New("aggregators (--aggregators) needs TLS: an aggregator vouches for its clients with its certificate; without TLS clients relayed by an aggregator join under the names they give, and no list is needed")}
	}
	board := dashboardOptions{addr: sf.Dashboard, token: sf.DashboardToken, addrFlag: "--dashboard", tokenFlag: "--dashboard-token", requireToken: true}
	if err := board.check(); err != nil {
		return err
	}
	fed := sf.Federation
	if fed.Seed != 0 {
		slog.Warn("federation.seed is set: client sampling, the committee draw and session ids follow it, so anyone who knows the seed knows which clients each round samples; privacy amplification by sampling assumes a secret sample, so use a fixed seed for experiments only", "seed", fed.Seed)
	}
	var (
		mu       sync.Mutex
		accuracy = map[uint64]float64{}
		central  = map[uint64]map[string]float64{}
	)
	var opts server.Options
	if tlsConfig != nil && !fed.SecAgg.Passive {
		// The CA that certifies the clients for TLS certifies their secure-aggregation
		// identities too: signed key setup and uploads, spot-checked decryptions.
		if opts.Verifier, err = caVerifier(sf.ClientCA, "--client-ca"); err != nil {
			return err
		}
		// The uploads' commitment trees, kept for the members' spot checks, go to a
		// temporary file: the server's memory does not grow with a round's clients.
		opts.UploadStore = server.TempUploadStore("")
	} else if fed.SecAgg.Enabled {
		slog.Warn("secure aggregation runs in the passive model (no client identities: --insecure or secure_aggregation.passive): it protects updates from an honest-but-curious server only")
	}
	// User-level DP noise comes from crypto/rand; the coordinator draws none of its own.
	noise, err := dp.NewSecureNoise()
	if err != nil {
		return err
	}
	opts.Noise = noise
	var ce *centralEvaluation
	evalCtx, stopEval := context.WithCancel(ctx) // an evaluation waiting for statistics ends with the server
	defer stopEval()
	if sf.Evaluation.Dataset != "" {
		if ce, err = newCentralEvaluation(ctx, sf.Evaluation, fed); err != nil {
			return err
		}
		opts.Central = func(round uint64, params []float64) (map[string]float64, error) {
			r, err := ce.run(evalCtx, params)
			if err != nil {
				return nil, err
			}
			cm := centralMetrics(r)
			mu.Lock()
			accuracy[round], central[round] = r.Accuracy, cm
			mu.Unlock()
			return cm, nil
		}
	}
	mem := &historyStore{start: time.Now()}
	stores := server.MultiStore{}
	if sf.StateDir != "" {
		db, err := server.OpenSQLiteStore(sf.StateDir)
		if err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		defer db.Close()
		st, err := db.Load()
		if err != nil {
			return fmt.Errorf("state_dir: %w", err)
		}
		if len(st.Rounds) > 0 || len(st.Clients) > 0 {
			opts.Resume = st
			if ce != nil && st.Statistics != nil {
				ce.estimated(st.Statistics.Schema) // the statistics round of an earlier start
			}
			for _, rr := range st.Rounds {
				mem.Append([]server.Record{rr})
			}
			if st.UserLevel != nil {
				mem.Append([]server.Record{*st.UserLevel})
			}
			slog.Info("resuming the federation from its state", "state", db.Path(), "rounds_done", st.Round, "clients", len(st.Clients), "committee", st.Committee != nil, "boot", st.Boots)
		}
		stores = append(stores, db)
	} else {
		slog.Warn("no --state-dir: the federation's state lives in memory only, and a crash of the server loses it (clients, committee, rounds, privacy accounting)")
	}
	stores = append(stores, mem)
	if ce != nil {
		stores = append(stores, ce)
	}
	coord, err := server.New(fed, opts)
	if err != nil {
		return err
	}
	fed = coord.Config()
	if sf.CheckpointDir != "" {
		cs, err := server.NewCheckpointStore(sf.CheckpointDir, fed.Model)
		if err != nil {
			return err
		}
		cs.Meta = checkpointMeta(ce, fed)
		cs.Meta.Provenance = &model.Provenance{Mode: model.TrainedServer, Strategy: fed.Strategy.Name}
		cs.Accountant = serverAccountant(fed.DP)
		stores = append(stores, cs)
	}
	var live *server.Live
	if sf.Dashboard != "" {
		live = server.NewLive(server.LiveConfig{CheckpointDir: sf.CheckpointDir})
	}
	svc := server.NewService(coord, server.ServiceConfig{JoinToken: sf.JoinToken, MaxClients: sf.MaxClients, MaxUploadBytes: int64(sf.MaxUploadMB) << 20, RequireClientCertificate: tlsConfig != nil, Aggregators: sf.Aggregators, Store: stores, Logger: slog.Default(), Live: live})
	if live != nil {
		ds, err := board.start(g, live, tlsConfig)
		if err != nil {
			return err
		}
		defer ds.Close()
	}
	lis, err := net.Listen("tcp", sf.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w (pick another --listen address)", sf.Listen, err)
	}
	var gopts []grpc.ServerOption
	if tlsConfig != nil {
		gopts = append(gopts, grpc.Creds(svc.TLSCredentials(tlsConfig)))
	}
	gs := svc.NewGRPCServer(gopts...)
	go gs.Serve(lis)
	if sf.HealthListen != "" {
		hl, err := net.Listen("tcp", sf.HealthListen)
		if err != nil {
			svc.Shutdown(gs, 0)
			return fmt.Errorf("health listen %s: %w (pick another --health-listen address)", sf.HealthListen, err)
		}
		hs := svc.NewHealthGRPCServer()
		go hs.Serve(hl)
		defer hs.Stop() // after svc.Shutdown has turned the status to NOT_SERVING
	}
	slog.Info("server listening", "addr", lis.Addr().String(), "rounds", fed.Rounds, "strategy", fed.Strategy.Name, "secure_aggregation", fed.SecAgg.Enabled, "user_level_dp", fed.DP.UserLevel.Mode)
	g.announce(os.Stderr, "confide server listening on %s (rounds %d, strategy %s, secure aggregation %v)", lis.Addr(), fed.Rounds, fed.Strategy.Name, fed.SecAgg.Enabled)
	var httpSrv *http.Server
	if sf.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(svc.Metrics().Registry, promhttp.HandlerOpts{}))
		httpSrv = &http.Server{Addr: sf.MetricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		ml, err := net.Listen("tcp", sf.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listen %s: %w", sf.MetricsListen, err)
		}
		go httpSrv.Serve(ml)
		defer httpSrv.Close()
	}
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(runCtx) }()
	select {
	case <-svc.Done():
	case err := <-runErr:
		svc.Shutdown(gs, 5*time.Second)
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
		svc.Shutdown(gs, 5*time.Second)
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	elapsed := time.Since(start)
	// Let clients poll once more and see that the federation finished.
	linger := sf.Linger
	if linger == 0 {
		linger = 3 * time.Second
	}
	select {
	case <-time.After(linger):
	case <-ctx.Done():
	}
	cancel()
	<-runErr
	svc.Shutdown(gs, 5*time.Second)

	res := serverResult{Rounds: fed.Rounds, Strategy: fed.Strategy.Name, SecAgg: fed.SecAgg.Enabled, Seconds: elapsed.Seconds(), DPSGD: fed.DP.NoiseMultiplier > 0}
	if res.DPSGD {
		res.Delta = fed.DP.Delta
	}
	if res.DPSGD || fed.DP.UserLevel.On() {
		res.Accountant = serverAccountant(fed.DP)
	}
	mu.Lock()
	if a, ok := accuracy[0]; ok {
		res.InitialAccuracy = &a
	}
	for _, r := range mem.Records() {
		if u, ok := r.(server.UserLevelPrivacyRecord); ok {
			res.UserLevel = &u
			continue
		}
		rr, ok := r.(server.RoundRecord)
		if !ok {
			continue
		}
		sr := serverRound{Round: rr.Round, Failed: rr.Failed, Reason: rr.Reason, Contributors: len(rr.Contributors), Metrics: rr.Metrics,
			ElapsedSeconds: mem.elapsed(rr.Round)}
		if rr.Failed {
			sr.Contributors = 0
		}
		if a, ok := accuracy[rr.Round]; ok && !rr.Failed {
			sr.CentralAcc, sr.Central = &a, central[rr.Round]
		} else if a, ok := rr.Metrics["central_accuracy"]; ok && !rr.Failed {
			sr.CentralAcc = &a // a round of an earlier run of this server (resumed)
		}
		if v, ok := rr.Metrics["epsilon_max"]; ok && res.DPSGD {
			res.EpsilonMax = new(max(v, deref(res.EpsilonMax)))
		}
		if v, ok := rr.Metrics["epsilon_reported_max"]; ok {
			res.EpsilonReportedMax = new(max(v, deref(res.EpsilonReportedMax)))
		}
		res.History = append(res.History, sr)
	}
	mu.Unlock()
	return g.emit(w, res, func(w io.Writer) {
		if res.InitialAccuracy != nil {
			fmt.Fprintf(w, "round 0: accuracy %.4f (initial model)\n", *res.InitialAccuracy)
		}
		for _, r := range res.History {
			switch {
			case r.Failed:
				fmt.Fprintf(w, "round %d: failed: %s\n", r.Round, r.Reason)
			case r.Central["rmse"] > 0:
				fmt.Fprintf(w, "round %d: R² %.4f, RMSE %.4g, MAE %.4g, %d contributors\n", r.Round, r.Central["r2"], r.Central["rmse"], r.Central["mae"], r.Contributors)
			case r.CentralAcc != nil:
				fmt.Fprintf(w, "round %d: accuracy %.4f, %d contributors\n", r.Round, *r.CentralAcc, r.Contributors)
			default:
				fmt.Fprintf(w, "round %d: %d contributors\n", r.Round, r.Contributors)
			}
		}
		fmt.Fprintf(w, "%d rounds of %s (secure aggregation %v) in %.1fs; ", res.Rounds, res.Strategy, res.SecAgg, res.Seconds)
		switch {
		case !res.DPSGD:
			fmt.Fprintln(w, "no record-level DP (ε = ∞): clients trained without DP-SGD")
		case res.EpsilonMax == nil:
			fmt.Fprintln(w, "no client was sent a DP-SGD task (ε = 0)")
		default:
			fmt.Fprintf(w, "largest client ε %.3g at δ = %g (accounted by the server's %s accountant from the tasks it issued", *res.EpsilonMax, res.Delta, res.Accountant)
			if res.EpsilonReportedMax != nil {
				fmt.Fprintf(w, "; clients reported at most %.3g", *res.EpsilonReportedMax)
			}
			fmt.Fprintln(w, ")")
		}
		if u := res.UserLevel; u != nil {
			fmt.Fprintf(w, "user-level DP (%s noise): ε = %.3g at δ = %g over %d rounds, q = %.3g, z = %g (%s)\n",
				fed.DP.UserLevel.Mode, u.Epsilon, u.Delta, u.Rounds, u.SampleRate, u.NoiseMultiplier, userLevelAccounting(*u))
		}
	})
}

// applyMemoryLimit sets the process's soft memory limit to memory_limit_mb MiB, unless
// GOMEMLIMIT is set in the environment (the runtime applied it at startup, and it takes
// precedence), and logs which limit is in effect.
func applyMemoryLimit(mb int, lookupEnv func(string) (string, bool)) error {
	if mb < 0 {
		return fmt.Errorf("memory_limit_mb = %d: must be ≥ 0 MiB (0: no limit); set it to what the server may use, e.g. memory_limit_mb: 1536, or leave it out", mb)
	}
	if env, ok := lookupEnv("GOMEMLIMIT"); ok && env != "" {
		current := debug.SetMemoryLimit(-1)
		if mb > 0 {
			slog.Info("memory limit from GOMEMLIMIT, which takes precedence over memory_limit_mb", "GOMEMLIMIT", env, "limit_mib", current>>20, "memory_limit_mb", mb)
		} else {
			slog.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", env, "limit_mib", current>>20)
		}
		return nil
	}
	if mb > 0 {
		debug.SetMemoryLimit(int64(mb) << 20)
		slog.Info("memory limit from memory_limit_mb", "limit_mib", mb)
	}
	return nil
}

// serverAccountant is dp.accountant's name, rdp when unset.
func serverAccountant(d server.DPConfig) string {
	acct, err := d.Accounting()
	if err != nil {
		return d.Accountant
	}
	return acct.Method.String()
}

// userLevelAccounting says how a user-level record's ε was computed (records older than
// the accountant field are RDP).
func userLevelAccounting(u server.UserLevelPrivacyRecord) string {
	if u.Accounting != "" {
		return u.Accounting
	}
	return fmt.Sprintf("RDP, %s orders, %s conversion", u.Grid, u.Conversion)
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// historyStore keeps what the server's final report needs: the rounds' records without
// their parameters (a full copy of the model per round would grow without bound) and the
// latest user-level record.
type historyStore struct {
	mu      sync.Mutex
	records []server.Record
	// start is when the server began; ended holds, by round, the seconds from start to
	// when the round's record was written (for rounds restored from an earlier run of the
	// server, when they were read back).
	start time.Time
	ended map[uint64]float64
}

func (h *historyStore) Append(records []server.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range records {
		switch r := r.(type) {
		case server.RoundRecord:
			r.Params, r.StrategyState, r.SamplerState = nil, nil, nil
			h.records = append(h.records, r)
			if h.ended == nil {
				h.ended = map[uint64]float64{}
			}
			h.ended[r.Round] = time.Since(h.start).Seconds()
		case server.UserLevelPrivacyRecord:
			h.records = append(h.records, r)
		}
	}
	return nil
}

// elapsed returns the seconds from the server's start to the end of round.
func (h *historyStore) elapsed(round uint64) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ended[round]
}

// Records returns the kept records.
func (h *historyStore) Records() []server.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]server.Record(nil), h.records...)
}
