package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
)

func init() { registerCommand(newPrivacyCmd) }

func newPrivacyCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "privacy",
		Short: "Privacy accounting: ε of a DP-SGD or DP-FedAvg configuration, the noise for a target ε, ledger audits",
		Long: `privacy computes the (ε, δ) guarantee of the Poisson-subsampled Gaussian mechanism, and the
inverse. For DP-SGD, the sample rate is expected batch size / dataset size and steps counts
optimizer steps; for user-level DP-FedAvg it is clients per round / population and steps
counts rounds.

--accountant rdp (the default) is the Rényi-DP accountant (Mironov, Talwar, Zhang 2019); prv
composes privacy loss random variables numerically (Gopi, Lee, Wutschitz 2021), which is
tighter: it reports the upper end of an interval that holds the exact ε of the composition
(width 2·--prv-epsilon-error), and never more than the RDP ε, which it prints beside.

The RDP result depends on the grid of Rényi orders and on the RDP → (ε, δ) conversion, which
is why libraries disagree; both are always reported. --orders takes a grid name (default: the
union of the grids below; opacus; tf-privacy; dp-accounting) or a list of orders and ranges
such as "2:32" or "1.5,1.75,2:64". --conversion improved (Balle et al. 2020; what Opacus, TF
Privacy and dp-accounting use) or classic (Mironov 2017).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPrivacyEpsilonCmd(g), newPrivacyDeltaCmd(g), newPrivacyNoiseCmd(g), newPrivacyLedgerCmd(g))
	return cmd
}

// accountingFlags select the accountant, and its grid, conversion, series and PRV errors.
type accountingFlags struct {
	accountant, orders, conversion, series string
	prvEpsErr, prvDeltaErr                 float64
	flags                                  *pflag.FlagSet
}

func (a *accountingFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	a.flags = f
	f.StringVar(&a.accountant, "accountant", "rdp", "accountant: rdp (Rényi DP) or prv (privacy loss random variables, Gopi et al. 2021: tighter)")
	f.Float64Var(&a.prvEpsErr, "prv-epsilon-error", 0.01, "prv: the ε error ε_err (the reported ε exceeds the discretised estimate by it)")
	f.Float64Var(&a.prvDeltaErr, "prv-delta-error", 0, "prv: the δ error δ_err (0: δ/1000 for ε, 1e-10 for δ)")
	f.StringVar(&a.orders, "orders", accountant.GridDefault, "Rényi orders: default, opacus, tf-privacy, dp-accounting, or a list such as 2:32 or 1.5,1.75,2:64")
	f.StringVar(&a.conversion, "conversion", "improved", "RDP → (ε, δ) conversion: improved (Balle et al. 2020) or classic (Mironov 2017)")
	f.StringVar(&a.series, "series", "", "fractional-order series: signed (exact) or absolute (dp-accounting's looser bound); default: absolute with --orders tf-privacy or dp-accounting, whose libraries sum that way, else signed")
}

func (a *accountingFlags) config() (accountant.Config, error) {
	grid, err := accountant.ParseGrid(a.orders)
	if err != nil {
		return accountant.Config{}, fmt.Errorf("--orders %q: %w; use a grid name (default, opacus, tf-privacy, dp-accounting) or orders ≥ 1 such as 2:32 or 1.5,2,3", a.orders, err)
	}
	conv, err := accountant.ParseConversion(a.conversion)
	if err != nil {
		return accountant.Config{}, fmt.Errorf("--conversion %q: must be improved or classic", a.conversion)
	}
	series, err := accountant.ParseSeries(a.series)
	if err != nil {
		return accountant.Config{}, fmt.Errorf("--series %q: must be signed or absolute", a.series)
	}
	if a.series == "" && (grid.Name == accountant.GridTFPrivacy || grid.Name == accountant.GridDPAccounting) {
		// TF Privacy (through dp-accounting) and dp-accounting sum |C(α,i)|: reproduce them.
		series = accountant.AbsoluteSeries
	}
	method, err := parseAccountant(a.accountant)
	if err != nil {
		return accountant.Config{}, err
	}
	if math.IsNaN(a.prvEpsErr) || a.prvEpsErr <= 0 || a.prvEpsErr > 1 {
		return accountant.Config{}, fmt.Errorf("--prv-epsilon-error %v: must be in (0, 1]", a.prvEpsErr)
	}
	if math.IsNaN(a.prvDeltaErr) || a.prvDeltaErr < 0 || a.prvDeltaErr >= 1 {
		return accountant.Config{}, fmt.Errorf("--prv-delta-error %v: must be in [0, 1), below --delta (0: δ/1000)", a.prvDeltaErr)
	}
	return accountant.Config{Method: method, Grid: grid, Conversion: conv, Series: series,
		PRV: accountant.PRVConfig{EpsilonError: a.prvEpsErr, DeltaError: a.prvDeltaErr}}, nil
}

// parseAccountant reads --accountant.
func parseAccountant(s string) (accountant.Method, error) {
	m, err := accountant.ParseMethod(s)
	if err != nil {
		return 0, fmt.Errorf("--accountant %q: use rdp or prv", s)
	}
	return m, nil
}

// describeResult writes the lines that say how r was computed: for RDP the grid,
// conversion and series; for PRV its interval and settings, and the RDP bound beside.
func describeResult(w io.Writer, cfg accountant.Config, r accountant.Result, showEdge bool) {
	if b := r.PRV; r.Method == accountant.MethodPRV && b != nil {
		switch {
		case b.Fallback != "":
			fmt.Fprintf(w, "  accountant: PRV not computable here (%s); the RDP bound is reported\n", b.Fallback)
		default:
			fmt.Fprintf(w, "  accountant: %s, ε error %g, δ error %g, %d grid points\n", r.Method.Describe(), b.EpsilonError, b.DeltaError, b.Points)
		}
		if b.Fallback == "" && !math.IsInf(b.Upper, 0) && b.RDPEpsilon > 0 {
			fmt.Fprintf(w, "  exact ε of the composition in [%.6g, %.6g]; RDP bound %.6g (best α = %g)\n", b.Lower, b.Upper, b.RDPEpsilon, r.Order)
		}
		if b.RDPEpsilon < b.Upper && b.Fallback == "" {
			fmt.Fprintln(w, "  note: the RDP bound is smaller here (ε is below the PRV error), so it is the one reported")
		}
		fmt.Fprintf(w, "  RDP grid: %s, conversion: %s\n", describeGrid(cfg.Grid), r.Conversion.Describe())
		return
	}
	fmt.Fprintf(w, "  grid: %s\n  conversion: %s\n  series: %s\n", describeGrid(cfg.Grid), r.Conversion.Describe(), r.Series)
	if showEdge {
		edgeNote(w, cfg.Grid, r.Order)
	}
}

// describeGrid names a grid with its size and range, e.g. "opacus (151 orders, 1.1 to 63)".
func describeGrid(g accountant.Grid) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, a := range g.Orders {
		lo, hi = math.Min(lo, a), math.Max(hi, a)
	}
	return fmt.Sprintf("%s (%d orders, %g to %g)", g.Name, len(g.Orders), lo, hi)
}

// edgeNote warns when the best order is at the edge of the grid, where a wider grid could
// give a smaller ε.
func edgeNote(w io.Writer, g accountant.Grid, order float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, a := range g.Orders {
		lo, hi = math.Min(lo, a), math.Max(hi, a)
	}
	switch order {
	case hi:
		fmt.Fprintln(w, "  note: the best order is the largest in the grid; larger orders may give a smaller ε")
	case lo:
		fmt.Fprintln(w, "  note: the best order is the smallest in the grid; orders closer to 1 may give a smaller ε")
	}
}

func requireFlags(cmd *cobra.Command, ranges map[string]string, names ...string) error {
	var missing []string
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			missing = append(missing, fmt.Sprintf("--%s (%s)", n, ranges[n]))
		}
	}
	if len(missing) > 0 {
		return usageErr("missing %s (see '%s --help')", strings.Join(missing, ", "), cmd.CommandPath())
	}
	return nil
}

var flagRanges = map[string]string{
	"noise-multiplier": "a number ≥ 0",
	"sample-rate":      "a number in [0, 1]",
	"steps":            "an integer ≥ 0",
	"delta":            "a number in (0, 1)",
	"target-epsilon":   "a number > 0",
	"epsilon":          "a number ≥ 0",
}

func checkDelta(delta float64) error {
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return usageErr("--delta %v: must be in (0, 1), typically below 1/dataset size", delta)
	}
	return nil
}

func checkSampleRate(q float64) error {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return usageErr("--sample-rate %v: must be in [0, 1] (expected batch size / dataset size, or clients per round / population)", q)
	}
	return nil
}

func checkSteps(steps int) error {
	if steps < 0 {
		return usageErr("--steps %d: must be ≥ 0", steps)
	}
	return nil
}

type epsilonOutput struct {
	Epsilon         float64 `json:"epsilon"`
	Accountant      string  `json:"accountant"`
	Order           float64 `json:"order"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Steps           int     `json:"steps"`
	Grid            string  `json:"grid"`
	Conversion      string  `json:"conversion"`
	Series          string  `json:"series"`
	// PRV (--accountant prv) holds the interval, settings and the RDP ε beside.
	PRV *accountant.PRVBounds `json:"prv,omitempty"`
}

func newPrivacyEpsilonCmd(g *globalOptions) *cobra.Command {
	var (
		sigma, q, delta float64
		steps           int
		acc             accountingFlags
	)
	cmd := &cobra.Command{
		Use:   "epsilon",
		Short: "ε spent by T steps of the Poisson-subsampled Gaussian mechanism",
		Example: `  confide privacy epsilon --noise-multiplier 1.5 --sample-rate 0.04 --steps 2250 --delta 1e-5 --orders opacus
  confide privacy epsilon --noise-multiplier 4 --sample-rate 0.01 --steps 10000 --delta 1e-5 --orders 2:32 --conversion classic -o json
  confide privacy epsilon --noise-multiplier 1.1 --sample-rate 0.0042667 --steps 14062 --delta 1e-5 --accountant prv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, flagRanges, "noise-multiplier", "sample-rate", "steps", "delta"); err != nil {
				return err
			}
			if math.IsNaN(sigma) || sigma < 0 || math.IsInf(sigma, 0) {
				return usageErr("--noise-multiplier %v: must be finite and ≥ 0", sigma)
			}
			if err := checkSampleRate(q); err != nil {
				return err
			}
			if err := checkSteps(steps); err != nil {
				return err
			}
			if err := checkDelta(delta); err != nil {
				return err
			}
			cfg, err := acc.config()
			if err != nil {
				return err
			}
			r, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: sigma, SampleRate: q, Steps: steps}}, delta, cfg)
			if err != nil {
				return err
			}
			if math.IsInf(r.Epsilon, 1) {
				return usageErr("ε is infinite: --noise-multiplier %v gives no privacy at --sample-rate %v; use a positive noise multiplier", sigma, q)
			}
			out := epsilonOutput{Epsilon: r.Epsilon, Accountant: r.Method.String(), Order: r.Order, Delta: delta, NoiseMultiplier: sigma, SampleRate: q, Steps: steps,
				Grid: cfg.Grid.Name, Conversion: r.Conversion.String(), Series: r.Series.String(), PRV: r.PRV}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				if r.Method == accountant.MethodPRV {
					fmt.Fprintf(w, "ε = %.3g at δ = %v (PRV accountant)\n", r.Epsilon, delta)
				} else {
					fmt.Fprintf(w, "ε = %.3g at δ = %v (best Rényi order α = %v)\n", r.Epsilon, delta, r.Order)
				}
				fmt.Fprintf(w, "  %d steps, noise multiplier %v, sample rate %v\n", steps, sigma, q)
				describeResult(w, cfg, r, steps > 0 && q > 0)
			})
		},
	}
	f := cmd.Flags()
	f.Float64Var(&sigma, "noise-multiplier", 0, "noise multiplier σ: noise std / clip norm ("+flagRanges["noise-multiplier"]+")")
	f.Float64Var(&q, "sample-rate", 0, "Poisson sample rate q ("+flagRanges["sample-rate"]+")")
	f.IntVar(&steps, "steps", 0, "number of steps (DP-SGD) or rounds (DP-FedAvg) ("+flagRanges["steps"]+")")
	f.Float64Var(&delta, "delta", 0, "δ at which ε is reported ("+flagRanges["delta"]+")")
	acc.register(cmd)
	return cmd
}

type deltaOutput struct {
	Delta           float64 `json:"delta"`
	Accountant      string  `json:"accountant"`
	Order           float64 `json:"order"`
	Epsilon         float64 `json:"epsilon"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Steps           int     `json:"steps"`
	Grid            string  `json:"grid"`
	Conversion      string  `json:"conversion"`
	Series          string  `json:"series"`
}

func newPrivacyDeltaCmd(g *globalOptions) *cobra.Command {
	var (
		sigma, q, eps float64
		steps         int
		acc           accountingFlags
	)
	cmd := &cobra.Command{
		Use:     "delta",
		Short:   "δ of T steps of the Poisson-subsampled Gaussian mechanism at a given ε",
		Example: `  confide privacy delta --epsilon 1 --noise-multiplier 1.1 --sample-rate 0.01 --steps 1000 -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, flagRanges, "epsilon", "noise-multiplier", "sample-rate", "steps"); err != nil {
				return err
			}
			if math.IsNaN(eps) || eps < 0 || math.IsInf(eps, 0) {
				return usageErr("--epsilon %v: must be finite and ≥ 0", eps)
			}
			if math.IsNaN(sigma) || sigma < 0 || math.IsInf(sigma, 0) {
				return usageErr("--noise-multiplier %v: must be finite and ≥ 0", sigma)
			}
			if err := checkSampleRate(q); err != nil {
				return err
			}
			if err := checkSteps(steps); err != nil {
				return err
			}
			cfg, err := acc.config()
			if err != nil {
				return err
			}
			r, err := accountant.Delta([]accountant.Step{{NoiseMultiplier: sigma, SampleRate: q, Steps: steps}}, eps, cfg)
			if err != nil {
				return err
			}
			out := deltaOutput{Delta: r.Delta, Accountant: r.Method.String(), Order: r.Order, Epsilon: eps, NoiseMultiplier: sigma, SampleRate: q, Steps: steps,
				Grid: cfg.Grid.Name, Conversion: r.Conversion.String(), Series: r.Series.String()}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				if r.Method == accountant.MethodPRV {
					fmt.Fprintf(w, "δ = %v at ε = %v (PRV accountant: δ̃(ε − ε_err) + δ_err, at most the RDP δ)\n", r.Delta, eps)
				} else {
					fmt.Fprintf(w, "δ = %v at ε = %v (best Rényi order α = %v)\n", r.Delta, eps, r.Order)
				}
				fmt.Fprintf(w, "  %d steps, noise multiplier %v, sample rate %v\n", steps, sigma, q)
				fmt.Fprintf(w, "  grid: %s\n  conversion: %s\n  series: %s\n", describeGrid(cfg.Grid), r.Conversion.Describe(), r.Series)
			})
		},
	}
	f := cmd.Flags()
	f.Float64Var(&eps, "epsilon", 0, "ε at which δ is reported ("+flagRanges["epsilon"]+")")
	f.Float64Var(&sigma, "noise-multiplier", 0, "noise multiplier σ ("+flagRanges["noise-multiplier"]+")")
	f.Float64Var(&q, "sample-rate", 0, "Poisson sample rate q ("+flagRanges["sample-rate"]+")")
	f.IntVar(&steps, "steps", 0, "number of steps or rounds ("+flagRanges["steps"]+")")
	acc.register(cmd)
	return cmd
}

type noiseOutput struct {
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Accountant      string  `json:"accountant"`
	Epsilon         float64 `json:"epsilon"`
	Order           float64 `json:"order"`
	TargetEpsilon   float64 `json:"target_epsilon"`
	Delta           float64 `json:"delta"`
	SampleRate      float64 `json:"sample_rate"`
	Steps           int     `json:"steps"`
	Grid            string  `json:"grid"`
	Conversion      string  `json:"conversion"`
	Series          string  `json:"series"`
	// PRV (--accountant prv) holds the interval at σ, settings and the RDP ε beside.
	PRV *accountant.PRVBounds `json:"prv,omitempty"`
}

func newPrivacyNoiseCmd(g *globalOptions) *cobra.Command {
	var (
		target, delta, q, tol float64
		steps                 int
		acc                   accountingFlags
	)
	cmd := &cobra.Command{
		Use:   "noise",
		Short: "smallest noise multiplier that keeps T steps within a target ε",
		Long: `noise finds, by bisection, the smallest noise multiplier σ whose ε after --steps steps at
--sample-rate stays at or below --target-epsilon. The σ printed never overshoots the target.
By default σ is found to a relative 1e-10 (1e-6 with --accountant prv, whose every ε is an FFT
composition); --epsilon-tolerance 0.01 stops as Opacus' get_noise_multiplier does (and with
--orders opacus, or --accountant prv, reproduces its results).`,
		Example: `  confide privacy noise --target-epsilon 8 --delta 1e-5 --sample-rate 0.04 --steps 2250 -o json
  confide privacy noise --target-epsilon 2 --delta 1e-5 --sample-rate 0.0042667 --steps 14062 --accountant prv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, flagRanges, "target-epsilon", "delta", "sample-rate", "steps"); err != nil {
				return err
			}
			if math.IsNaN(target) || target <= 0 || math.IsInf(target, 0) {
				return usageErr("--target-epsilon %v: must be finite and > 0", target)
			}
			if err := checkDelta(delta); err != nil {
				return err
			}
			if err := checkSampleRate(q); err != nil {
				return err
			}
			if err := checkSteps(steps); err != nil {
				return err
			}
			if math.IsNaN(tol) || tol < 0 || tol >= target {
				return usageErr("--epsilon-tolerance %v: must be ≥ 0 and below --target-epsilon", tol)
			}
			cfg, err := acc.config()
			if err != nil {
				return err
			}
			sigma, r, err := accountant.NoiseMultiplier(accountant.NoiseSearch{TargetEpsilon: target, Delta: delta, SampleRate: q, Steps: steps, EpsilonTolerance: tol}, cfg)
			if err != nil {
				return err
			}
			out := noiseOutput{NoiseMultiplier: sigma, Accountant: r.Method.String(), Epsilon: r.Epsilon, Order: r.Order, TargetEpsilon: target, Delta: delta, SampleRate: q, Steps: steps,
				Grid: cfg.Grid.Name, Conversion: r.Conversion.String(), Series: r.Series.String(), PRV: r.PRV}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				if r.Method == accountant.MethodPRV {
					fmt.Fprintf(w, "noise multiplier σ = %v gives ε = %.3g ≤ %v at δ = %v (PRV accountant)\n", sigma, r.Epsilon, target, delta)
				} else {
					fmt.Fprintf(w, "noise multiplier σ = %v gives ε = %.3g ≤ %v at δ = %v (best Rényi order α = %v)\n", sigma, r.Epsilon, target, delta, r.Order)
				}
				fmt.Fprintf(w, "  %d steps, sample rate %v\n", steps, q)
				describeResult(w, cfg, r, false)
			})
		},
	}
	f := cmd.Flags()
	f.Float64Var(&target, "target-epsilon", 0, "ε to stay within ("+flagRanges["target-epsilon"]+")")
	f.Float64Var(&delta, "delta", 0, "δ of the target ("+flagRanges["delta"]+")")
	f.Float64Var(&q, "sample-rate", 0, "Poisson sample rate q ("+flagRanges["sample-rate"]+")")
	f.IntVar(&steps, "steps", 0, "number of steps or rounds ("+flagRanges["steps"]+")")
	f.Float64Var(&tol, "epsilon-tolerance", 0, "stop once ε(σ) is within this much below the target (0: bisect σ to 1e-10; Opacus uses 0.01)")
	acc.register(cmd)
	return cmd
}

type ledgerOutput struct {
	Path string `json:"path"`
	// LedgerAccountant is the accountant the ledger keeps; Accountant the one this report's
	// ε was computed with (the ledger's, unless --accountant asked for another).
	LedgerAccountant string            `json:"ledger_accountant"`
	Accountant       string            `json:"accountant"`
	BudgetEpsilon    float64           `json:"budget_epsilon"`
	Delta            float64           `json:"delta"`
	Epsilon          float64           `json:"epsilon"`
	Order            float64           `json:"order"`
	RemainingEpsilon float64           `json:"remaining_epsilon"`
	Charges          int64             `json:"charges"`
	History          []accountant.Step `json:"history"`
	// BudgetHistory lists the budgets since the ledger's creation (the first entry) with
	// every raise after it, each with its time and the ε spent when it was set.
	BudgetHistory []dp.BudgetChange     `json:"budget_history"`
	Grid          string                `json:"grid"`
	Conversion    string                `json:"conversion"`
	Series        string                `json:"series"`
	PRV           *accountant.PRVBounds `json:"prv,omitempty"`
}

func newPrivacyLedgerCmd(g *globalOptions) *cobra.Command {
	var acc accountingFlags
	cmd := &cobra.Command{
		Use:   "ledger FILE",
		Short: "audit a privacy ledger: budget, ε spent, history",
		Long: `ledger reads a client's privacy ledger file (verifying its checksum; it never writes or
locks it, so it can audit a running client) and reports the budget with its history of raises,
the ε spent at the budget's δ, what remains, and the recorded steps. ε is computed by the
accountant the ledger keeps (rdp, or prv for a ledger created with it); --accountant computes
it by another, for comparison, without changing the ledger. A 'confide client' keeps its
ledger in <state-dir>/privacy-ledger.json.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := acc.config()
			if err != nil {
				return err
			}
			snap, err := dp.ReadLedger(args[0])
			if err != nil {
				return err
			}
			if !acc.flags.Changed("accountant") {
				cfg.Method = snap.Accountant
			}
			r, err := accountant.Epsilon(snap.History, snap.Budget.Delta, cfg)
			if err != nil {
				return err
			}
			out := ledgerOutput{Path: args[0], LedgerAccountant: snap.Accountant.String(), Accountant: r.Method.String(),
				BudgetEpsilon: snap.Budget.Epsilon, Delta: snap.Budget.Delta, Epsilon: r.Epsilon, Order: r.Order,
				RemainingEpsilon: math.Max(0, snap.Budget.Epsilon-r.Epsilon), Charges: snap.Charges, History: snap.History,
				Grid: cfg.Grid.Name, Conversion: r.Conversion.String(), Series: r.Series.String(), PRV: r.PRV}
			if out.History == nil {
				out.History = []accountant.Step{}
			}
			out.BudgetHistory = snap.BudgetHistory
			if out.BudgetHistory == nil {
				out.BudgetHistory = []dp.BudgetChange{}
			}
			return g.emit(cmd.OutOrStdout(), out, func(w io.Writer) {
				fmt.Fprintf(w, "ledger %s (%s accountant): ε = %.3g spent of %v at δ = %v (%.3g remaining; computed by %s)\n",
					args[0], snap.Accountant, r.Epsilon, snap.Budget.Epsilon, snap.Budget.Delta, out.RemainingEpsilon, r.Method)
				for i, b := range snap.BudgetHistory {
					if i == 0 {
						fmt.Fprintf(w, "  budget ε = %v at δ = %v set %s\n", b.Budget.Epsilon, b.Budget.Delta, b.Time.Format(time.RFC3339))
					} else {
						fmt.Fprintf(w, "  budget raised to ε = %v %s, after ε = %.3g was spent\n", b.Budget.Epsilon, b.Time.Format(time.RFC3339), b.Spent)
					}
				}
				fmt.Fprintf(w, "  %d charges:\n", snap.Charges)
				for _, s := range snap.History {
					fmt.Fprintf(w, "    %d steps at noise multiplier %v, sample rate %v\n", s.Steps, s.NoiseMultiplier, s.SampleRate)
				}
				describeResult(w, cfg, r, false)
			})
		},
	}
	acc.register(cmd)
	return cmd
}
