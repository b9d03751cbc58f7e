package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/dashboard"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

func init() {
	registerCommand(newSimCmd)
	structuredConfigs["confide sim"] = reflect.TypeOf(sim.Config{})
}

// simFlags override top-level keys of the sim config (flags win over the environment, which
// wins over the config file). None may share its name with a section of the config: the
// root command copies config keys into flags of the same name.
type simFlags struct {
	rounds, clients, perRound, workers int
	seed                               uint64
	target                             float64
	resultsDir, transport, partition   string
	precision                          string
	deterministic, noPlots             bool
	overhead                           int
	serve                              dashboardOptions
}

func newSimCmd(g *globalOptions) *cobra.Command {
	f := &simFlags{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate a federation of many clients in one process",
		Long: `Simulate a federated experiment: many virtual clients on one machine, running the real
coordinator, strategies, client trainer, DP-SGD and secure aggregation; only the transport is
simulated (in memory with virtual time, or --transport grpc for the real gRPC service).

Without --config it runs the default experiment: an MLP on MNIST, 100 clients with
Dirichlet(0.5) label skew, 10 per round, DP-SGD and secure aggregation on. A config file
(YAML; see examples/*.yaml) describes a whole experiment: keys it leaves out take the
defaults of a bare config (no DP, no secure aggregation, IID). Every key can also be set
in the environment as CONFIDE_<KEY> with dots as underscores (CONFIDE_TRAINING_LR=0.05).

Live progress goes to stderr on a terminal; the per-round table and the summary to stdout
(-o json: only the summary, as one JSON object). Metrics (JSON, CSV), plots (PNG) and the
final model go to the results directory (results/NAME-TIME unless results_dir is set).
--serve 127.0.0.1:8080 shows the run live in a browser (a read-only dashboard that stays up
after the run until interrupted).

The simulator collects garbage at 25% heap growth (GOGC=25) unless GOGC is set: its live
memory is mostly datasets, cheap to collect, so peak memory stays near the live size.`,
		Example: `  confide sim
  confide sim --config examples/mcmahan-2nn-iid.yaml --seed 2
  confide sim --config examples/fashion-mnist.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg, err := loadSimConfig(g.configFile)
			if err != nil {
				return err
			}
			f.apply(cmd, &cfg)
			if os.Getenv("GOGC") == "" {
				// The live heap is mostly datasets and parameter vectors, which hold no
				// pointers and cost the collector little, so collecting at 25% growth
				// instead of 100% keeps peak memory near the live size for free.
				debug.SetGCPercent(25)
			}
			return runSim(ctx, g, cmd.OutOrStdout(), cfg, f.overhead, f.serve)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.rounds, "rounds", 0, "override rounds")
	fl.IntVar(&f.clients, "clients", 0, "override clients (registered virtual clients)")
	fl.IntVar(&f.perRound, "clients-per-round", 0, "override clients_per_round")
	fl.Uint64Var(&f.seed, "seed", 0, "override seed")
	fl.Float64Var(&f.target, "target-accuracy", 0, "override target_accuracy: stop at this test accuracy")
	fl.StringVar(&f.resultsDir, "results-dir", "", "override results_dir (- writes nothing)")
	fl.StringVar(&f.transport, "transport", "", "override transport: memory, grpc or grpc-tcp")
	fl.StringVar(&f.partition, "partition", "", "override partition: iid, dirichlet:A, shards:K, natural, sender-domain or sample:N")
	fl.IntVar(&f.workers, "workers", 0, "override workers (clients trained at once; default one per core)")
	fl.StringVar(&f.precision, "precision", "", "override precision: float32 or float64 (the clients' and the central evaluation's layer math)")
	fl.BoolVar(&f.deterministic, "deterministic-noise", false, "seeded DP noise and sampling (dp.deterministic_noise): reproducible, not private")
	fl.BoolVar(&f.noPlots, "no-plots", false, "do not write PNG plots")
	fl.IntVar(&f.overhead, "overhead", 0, "after the run, train the examples of a round centrally this many times and report the simulator's overhead")
	fl.StringVar(&f.serve.addr, "serve", "", "serve a live dashboard of the run on this address, e.g. 127.0.0.1:8080, and keep it up after the run until interrupted")
	fl.StringVar(&f.serve.token, "serve-token", "", "the token the dashboard asks for (required when --serve listens beyond loopback)")
	f.serve.addrFlag, f.serve.tokenFlag = "--serve", "--serve-token"
	return cmd
}

func (f *simFlags) apply(cmd *cobra.Command, c *sim.Config) {
	ch := cmd.Flags().Changed
	if ch("rounds") {
		c.Rounds = f.rounds
	}
	if ch("clients") {
		c.Clients = f.clients
	}
	if ch("clients-per-round") {
		c.ClientsPerRound = f.perRound
	}
	if ch("seed") {
		c.Seed = f.seed
	}
	if ch("target-accuracy") {
		c.TargetAccuracy = f.target
	}
	if ch("results-dir") {
		c.ResultsDir = f.resultsDir
	}
	if ch("transport") {
		c.Transport = f.transport
	}
	if ch("partition") {
		c.Partition = f.partition
	}
	if ch("workers") {
		c.Workers = f.workers
	}
	if ch("precision") {
		c.Precision = f.precision
	}
	if ch("deterministic-noise") {
		c.DP.DeterministicNoise = f.deterministic
	}
	if f.noPlots {
		no := false
		c.Plots = &no
	}
}

// loadSimConfig reads the experiment: the default one without a file, else the file over a
// bare config; then CONFIDE_<KEY> environment variables. Unknown keys are errors.
func loadSimConfig(path string) (sim.Config, error) {
	if path == "" {
		path = os.Getenv("CONFIDE_CONFIG")
	}
	c := sim.Default()
	where := "defaults and environment"
	if path != "" {
		c, where = sim.Config{}, path
	}
	if err := loadConfig(&c, path, os.LookupEnv); err != nil {
		return c, &exitError{code: exitUsage, err: fmt.Errorf("sim config (%s): %w (see examples/*.yaml and 'confide config reference sim')", where, err)}
	}
	return c, nil
}

// simOutput is what -o json prints: the run's summary, the process's peak memory and,
// with --overhead, the central baseline.
type simOutput struct {
	sim.Summary
	PeakRSSBytes int64         `json:"peak_rss_bytes"`
	Overhead     *sim.Overhead `json:"overhead,omitempty"`
}

func runSim(ctx context.Context, g *globalOptions, w io.Writer, cfg sim.Config, overheadReps int, serve dashboardOptions) error {
	full := cfg.WithDefaults()
	text := g.output != "json"
	var bar *progressbar.ProgressBar
	opts := sim.Options{Logger: slog.Default()}
	var board *dashboard.Server
	if serve.addr != "" {
		opts.Live = server.NewLive(server.LiveConfig{Kind: "simulation", Name: full.Name, VirtualTime: full.Transport == sim.TransportMemory})
		var err error
		if board, err = serve.start(g, opts.Live, nil); err != nil {
			return err
		}
		defer board.Close()
	}
	header := false
	printRow := func(m sim.RoundMetrics) {
		if !header {
			fmt.Fprintln(w, roundHeaderFor(full))
			header = true
		}
		fmt.Fprintln(w, formatRound(m, full))
	}
	opts.OnRound = func(m sim.RoundMetrics) {
		if bar != nil {
			bar.Clear()
		}
		if text {
			printRow(m)
		} else {
			// -o json prints only the summary: the rounds go to the log (--log-level info).
			slog.Info("round finished", roundAttrs(m)...)
		}
		if bar != nil {
			bar.Set(m.Round)
		}
	}
	opts.OnProgress = func(p sim.Progress) {
		if bar == nil {
			return
		}
		if p.Phase == "features" {
			bar.Describe(fmt.Sprintf("features %d/%d examples", p.FeaturesDone, p.FeaturesTotal))
			return
		}
		desc := fmt.Sprintf("round %d/%d · %d/%d clients", p.Round, p.Rounds, p.ClientsDone, p.ClientsSampled)
		if !math.IsNaN(p.LastAccuracy) {
			desc += fmt.Sprintf(" · acc %.4f", p.LastAccuracy)
		}
		bar.Describe(desc)
		bar.Set(p.CompletedRounds)
	}
	if text {
		fmt.Fprintln(w, describeExperiment(full))
	}
	bar = newProgress(int64(full.Rounds), "sim")
	rep, err := sim.Run(ctx, cfg, opts)
	if bar != nil {
		bar.Finish()
	}
	// An interrupted run still reports (and has written) the rounds it completed.
	interrupted := rep != nil && rep.Summary.Interrupted
	if err != nil && !interrupted {
		return err
	}
	if opts.Live != nil {
		opts.Live.Notify() // the results directory holds the model now
	}
	out := simOutput{Summary: rep.Summary, PeakRSSBytes: peakRSS()}
	if interrupted {
		if err := g.emit(w, out, func(w io.Writer) { printSummary(w, out) }); err != nil {
			return err
		}
		kept := "nothing written (results_dir -)"
		if s := rep.Summary; s.ResultsDir != "" {
			kept = "the results so far are in " + s.ResultsDir
		}
		// Not context.Canceled: main would shorten it to "interrupted"; the exit code is 130 all the same.
		return fmt.Errorf("interrupted after %d of %d rounds; %s", rep.Summary.Rounds, rep.Summary.RoundsPlanned, kept)
	}
	if overheadReps > 0 {
		o, err := sim.MeasureOverhead(ctx, cfg, sim.Options{}, rep, overheadReps)
		if err != nil {
			return fmt.Errorf("--overhead: %w", err)
		}
		out.Overhead = &o
	}
	if err := g.emit(w, out, func(w io.Writer) { printSummary(w, out) }); err != nil {
		return err
	}
	return serveUntilInterrupted(ctx, g, board)
}

const roundHeader = "round  accuracy    loss  train-loss  clients  dropped  refused      ε   MB down    MB up  wall"

// roundHeaderUserLevel adds the user-level ε and the round's clip norm.
const roundHeaderUserLevel = "round  accuracy    loss  train-loss  clients  dropped  refused      ε  user-ε   clip   MB down    MB up  wall"

func roundHeaderFor(c sim.Config) string {
	h := roundHeader
	if c.DP.UserLevel.On() {
		h = roundHeaderUserLevel
	}
	if regressionRun(c) {
		// A regression model's central R² and RMSE (in the target's units) instead.
		h = strings.Replace(h, "accuracy    loss", "      r2      rmse", 1)
	}
	return h
}

// regressionRun reports whether the run trains a regression model (loss mse), whose round
// table shows R² and RMSE instead of accuracy and loss.
func regressionRun(c sim.Config) bool { return c.Model.Loss == model.LossMSE }

func formatRound(m sim.RoundMetrics, c sim.Config) string {
	opt := func(p *float64, f string) string {
		if p == nil {
			return strings.Repeat(" ", len(fmt.Sprintf(f, 0.0))-1) + "-"
		}
		return fmt.Sprintf(f, *p)
	}
	sampled := "-" // the gRPC transports see the coordinator's records, not its notices
	if m.Sampled > 0 {
		sampled = fmt.Sprint(m.Sampled)
	}
	user := ""
	if c.DP.UserLevel.On() {
		user = fmt.Sprintf("  %6.3g  %5.3g", m.UserEpsilon, m.UpdateClip)
	}
	eps := "    ∞" // no DP-SGD: no record-level guarantee
	if c.DP.NoiseMultiplier > 0 {
		eps = fmt.Sprintf("%5.3g", m.Epsilon)
	}
	first, second := opt(m.Accuracy, "%8.4f"), opt(m.Loss, "%6.3f")
	if regressionRun(c) {
		first, second = opt(m.R2, "%8.4f"), opt(m.RMSE, "%8.4g")
	}
	s := fmt.Sprintf("%5d  %8s  %6s  %10s  %3d/%-3s  %7d  %7d  %s%s  %8.1f  %7.1f  %4.1fs",
		m.Round, first, second, opt(m.TrainLoss, "%10.3f"),
		m.Contributors, sampled, m.Dropped, m.Refused, eps, user, float64(m.BytesDown)/1e6, float64(m.BytesUp)/1e6, m.WallSeconds)
	if m.Failed {
		s += "  FAILED: " + m.Reason
	}
	return s
}

// roundAttrs are a round's log attributes.
func roundAttrs(m sim.RoundMetrics) []any {
	a := []any{slog.Int("round", m.Round), slog.Int("contributors", m.Contributors), slog.Float64("wall_seconds", m.WallSeconds)}
	if m.Accuracy != nil {
		a = append(a, slog.Float64("accuracy", *m.Accuracy))
	}
	if m.Failed {
		a = append(a, slog.String("failed", m.Reason))
	}
	return a
}

func describeExperiment(c sim.Config) string {
	var b strings.Builder
	arch := c.Model.Type
	if f := c.Model.Features; f != nil {
		arch += " on " + f.Type + " features (computed once)"
	}
	fmt.Fprintf(&b, "confide sim %s: %s, %d clients (%s), %d per round, %d rounds, %s model, %s\n",
		c.Name, c.Dataset.Name, c.Clients, c.Partition, c.ClientsPerRound, c.Rounds, arch, c.Strategy.Name)
	var parts []string
	if c.DP.NoiseMultiplier > 0 {
		p := fmt.Sprintf("DP-SGD σ=%g C=%g δ=%g", c.DP.NoiseMultiplier, c.DP.MaxGradNorm, c.DP.Delta)
		if c.DP.BudgetEpsilon > 0 {
			p += fmt.Sprintf(", budget ε ≤ %g per client", c.DP.BudgetEpsilon)
		}
		if c.DP.DeterministicNoise {
			p += " (DETERMINISTIC noise)"
		}
		parts = append(parts, p)
	} else if !c.DP.UserLevel.On() {
		parts = append(parts, "no DP")
	}
	if u := c.DP.UserLevel; u.On() {
		clip := fmt.Sprintf("S=%g", u.Clip)
		if u.IsAdaptive() {
			clip = fmt.Sprintf("adaptive S from %g", u.Adaptive.InitialClip)
		}
		p := fmt.Sprintf("user-level DP (%s noise) z=%g %s", u.Mode, u.NoiseMultiplier, clip)
		if c.DP.DeterministicNoise {
			p += " (DETERMINISTIC noise)"
		}
		parts = append(parts, p)
	}
	if c.SecureAggregation.Enabled {
		parts = append(parts, fmt.Sprintf("secure aggregation K=%d t=%d", c.SecureAggregation.CommitteeSize, c.SecureAggregation.Threshold))
	}
	if c.TargetAccuracy > 0 {
		parts = append(parts, fmt.Sprintf("stop at accuracy %g", c.TargetAccuracy))
	}
	parts = append(parts, fmt.Sprintf("transport %s, %d workers, seed %d", c.Transport, c.Workers, c.Seed))
	b.WriteString(strings.Join(parts, " · "))
	return b.String()
}

func printSummary(w io.Writer, o simOutput) {
	s := o.Summary
	f := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.4f", *p)
	}
	fmt.Fprintln(w)
	if s.Interrupted {
		fmt.Fprintf(w, "INTERRUPTED after %d of %d rounds: the round in flight was abandoned; what follows is of the rounds completed\n", s.Rounds, s.RoundsPlanned)
	}
	fmt.Fprintf(w, "accuracy: final %s, best %s (round %d), initial %s\n", f(s.FinalAccuracy), f(s.BestAccuracy), s.BestRound, f(s.InitialAccuracy))
	if s.TargetAccuracy > 0 {
		if s.RoundsToTarget != nil {
			fmt.Fprintf(w, "target %.4f reached at round %d\n", s.TargetAccuracy, *s.RoundsToTarget)
		} else {
			fmt.Fprintf(w, "target %.4f not reached in %d rounds\n", s.TargetAccuracy, s.Rounds)
		}
	}
	p := s.Privacy
	if p.DPSGD {
		fmt.Fprintf(w, "privacy: ε = %.3g at δ = %g by the %s accountant (worst client; mean %.3g over %d clients), σ = %g, C = %g\n", p.Epsilon, p.Delta, p.Accountant, p.EpsilonMean, p.ClientsAccounted, p.NoiseMultiplier, p.MaxGradNorm)
		fmt.Fprintf(w, "         %s\n         noise: %s\n", p.Meaning, p.Noise)
	} else {
		fmt.Fprintf(w, "privacy: %s\n", p.Meaning)
	}
	if u := p.UserLevel; u != nil {
		fmt.Fprintf(w, "user-level privacy: ε = %.3g at δ = %g over %d rounds at q = %.3g, z = %g, %s noise, clip %.3g", u.Epsilon, u.Delta, u.Rounds, u.SampleRate, u.NoiseMultiplier, u.Mode, u.Clip)
		if u.Adaptive {
			fmt.Fprint(w, " (adaptive, final)")
		}
		fmt.Fprintf(w, "\n         %s (%s)\n", u.Meaning, u.Accountant)
		if !p.DPSGD {
			fmt.Fprintf(w, "         noise: %s\n", p.Noise)
		}
	}
	if s.SecureAggregation {
		enc := ""
		switch {
		case s.ValueBits == nil:
		case *s.ValueBits == 0:
			enc = "; float encoding"
		default:
			enc = fmt.Sprintf("; packed encoding, %d bits per value", *s.ValueBits)
		}
		fmt.Fprintf(w, "secure aggregation: the server saw only sums (committee K=%d, threshold t=%d%s)\n", s.CommitteeSize, s.Threshold, enc)
	}
	if s.Features != "" {
		fmt.Fprintf(w, "features: %s, computed once for %d examples in %.1fs\n", s.Features, s.FeatureExamples, s.FeatureSeconds)
	}
	fmt.Fprintf(w, "traffic: %.1f MB down, %.1f MB up\n", float64(s.BytesDown)/1e6, float64(s.BytesUp)/1e6)
	fmt.Fprintf(w, "time: %d rounds in %.1fs (%.2f s/round; setup %.1fs", s.Rounds, s.WallSeconds, s.SecondsPerRound, s.SetupSeconds)
	if s.VirtualSeconds > 0 {
		fmt.Fprintf(w, "; %.0fs simulated", s.VirtualSeconds)
	}
	fmt.Fprintf(w, "), %d workers, peak RSS %.0f MB\n", s.Workers, float64(o.PeakRSSBytes)/(1<<20))
	if oh := o.Overhead; oh != nil {
		fmt.Fprintf(w, "overhead: a round takes %.3g× the time of training its examples centrally (%.3g µs vs %.3g µs per example-epoch; central: median of %d)\n",
			oh.Ratio, oh.RoundMicrosPerExample, oh.CentralMicrosPerExample, oh.Reps)
	}
	if s.ResultsDir != "" {
		fmt.Fprintf(w, "results: %s (summary.json, rounds.csv, rounds.json, plots, model.confide)\n", s.ResultsDir)
	}
}

func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
