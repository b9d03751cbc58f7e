package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/audit"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
)

func init() { registerCommand(newAuditCmd) }

// auditFlags are audit's own flags; the training it audits takes train's.
type auditFlags struct {
	mode       string
	canaries   int
	confidence float64
	png        string
	noDP       bool
	federated  string
}

func newAuditCmd(g *globalOptions) *cobra.Command {
	var (
		af auditFlags
		df dataFlags
		mf modelFlags
		of optimFlags
		pf dpFlags
		ff featureFlags
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Measure a lower bound on the ε a training run really spends (privacy auditing)",
		Long: `Audit differential privacy empirically: plant canaries, train once, and see how well an
attacker tells the canaries that were trained on from those that were not (Steinke, Nasr &
Jagielski 2023, "Privacy auditing with one (1) training run"). Each of --canaries canaries is
included with probability ½; the auditor ranks them by a score, guesses "in" for the top and
"out" for the bottom, and the number of right guesses gives an ε that the run provably
exceeds, at --confidence, whatever the accountant says. An honest mechanism's bound stays
at or below the claimed ε (a one-run audit of DP-SGD with subsampling usually lands well
below it); a bound above the claimed ε refutes the claim.

--mode white-box (the default) plants Dirac gradient canaries: a canary is a clipped
gradient C·e_j on one coordinate j, sampled into steps like a training example, and the
auditor sees every released update (each DP-SGD step's noisy gradient, before the
optimizer) and scores a canary by the sum of the updates at its coordinate. The coordinates
are the model's quietest: those where the data's own gradient is zero (on MNIST, the weights
of pixels blank in every training image), so a canary is seen against the noise alone, the
setting in which the accountant's bound is tight. --mode black-box plants input canaries:
training examples relabelled at random, the included ones trained on; the auditor sees only
the final model and scores a canary by the log-odds the model gives its new label.

DP-SGD is audited unless --no-dp: give --target-epsilon (σ chosen by --accountant, as
confide train does) or --noise-multiplier. The training flags are train's, with the same
recipes (--dp: tanh MLP, 40 epochs of batch 1024, C = 0.1); --features defaults to none
here (--features scattering audits the scattering recipe, at the cost of computing the
features). The DP noise is cryptographically secure unless --dp-seeded-noise; the audit's
own draws (inclusion, canary rows and coordinates, canary sampling) come from --seed.

--federated FILE audits a simulated federation's user-level DP instead (a sim config with
dp.user_level, such as examples/mnist-user-level.yaml): each canary is a client of the
population with probability ½ whose update is a fixed direction e_j (clipped by its own
client to the round's S), and the auditor, who sees every round's global model, scores it
by the standardised projection of each round's aggregate on e_j.

-o json prints one object: epsilon_lower, epsilon_claimed (null without DP), confidence,
canaries, guesses, correct, and the mode, the accountant, the sweep of guess counts, the
audited model's test accuracy and the seconds taken. --png draws the bound against the
number of guesses.`,
		Example: `  confide audit --dataset mnist --no-dp -o json
  confide audit --dataset mnist --dp --target-epsilon 2 --delta 1e-5 --png audit.png
  confide audit --dataset mnist --target-epsilon 2 --accountant prv --mode black-box
  confide audit --federated examples/mnist-user-level.yaml --canaries 1000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			if af.federated != "" {
				return runFederatedAudit(ctx, g, cmd, cmd.OutOrStdout(), &af, &pf, of.seed)
			}
			return runCentralAudit(ctx, g, cmd.OutOrStdout(), &af, &df, &mf, &of, &pf, &ff)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&af.mode, "mode", string(audit.WhiteBox), "what the auditor sees: white-box (every released update; gradient canaries) or black-box (the final model; mislabelled input canaries)")
	fl.IntVar(&af.canaries, "canaries", 1000, "number of canaries, each included with probability ½")
	fl.Float64Var(&af.confidence, "confidence", 0.95, "confidence of the lower bound, in (0, 1)")
	fl.StringVar(&af.png, "png", "", "write a PNG of the bound against the number of guesses to this file")
	fl.BoolVar(&af.noDP, "no-dp", false, "audit training without DP (no clipping, no noise): nothing is claimed, the bound shows what leaks")
	fl.StringVar(&af.federated, "federated", "", "audit the user-level DP of the federation this sim config describes (YAML with dp.user_level) with canary clients, instead of centralised training")
	df.register(cmd)
	mf.register(cmd)
	of.register(cmd, 2, 32, 0.05, 0.9, "cosine")
	pf.flags = fl
	fl.BoolVar(&pf.enabled, "dp", true, "audit DP-SGD training (the default; --no-dp turns it off)")
	fl.Float64Var(&pf.noiseMultiplier, "noise-multiplier", 0, "DP-SGD noise multiplier σ (or give --target-epsilon)")
	fl.Float64Var(&pf.maxGradNorm, "max-grad-norm", dpRecipe.clip, "DP-SGD per-example clipping norm C, and a gradient canary's norm")
	fl.Float64Var(&pf.delta, "delta", 1e-5, "DP δ of the claim, and of the bound")
	fl.Float64Var(&pf.targetEpsilon, "target-epsilon", 0, "choose σ so the run spends this ε at --delta (the claim audited)")
	fl.BoolVar(&pf.seededNoise, "dp-seeded-noise", false, "draw DP noise and batches from --seed (reproducible, NOT private; for experiments only)")
	fl.StringVar(&pf.clipping, "dp-clipping", "flat", "DP-SGD per-example clipping: flat, or per-layer (black-box only)")
	pf.registerAccountant(cmd)
	fl.StringVar(&ff.mode, "features", "none", "fixed feature stage of --model mlp: none, scattering (images; the confide train --dp default there) or auto (as confide train)")
	return cmd
}

// auditResult is audit's report; -o json prints it.
type auditResult struct {
	EpsilonLower float64 `json:"epsilon_lower"`
	// EpsilonClaimed is the accountant's ε for the run (null without DP).
	EpsilonClaimed *float64 `json:"epsilon_claimed"`
	// Refuted says the bound exceeds the claim: the mechanism does not keep it.
	Refuted    bool           `json:"refuted"`
	Delta      float64        `json:"delta"`
	Confidence float64        `json:"confidence"`
	Canaries   int            `json:"canaries"`
	Included   int            `json:"included"`
	Guesses    int            `json:"guesses"`
	Correct    int            `json:"correct"`
	Strategy   audit.Strategy `json:"strategy"`
	// Candidates is the number of (strategy, guesses) pairs the bound was corrected for.
	Candidates int    `json:"candidates"`
	Mode       string `json:"mode"`
	// Setting is central (DP-SGD training) or federated (user-level DP of a simulation).
	Setting    string `json:"setting"`
	Dataset    string `json:"dataset"`
	ModelName  string `json:"model_name"`
	Accountant string `json:"accountant,omitempty"`
	Accounting string `json:"accounting,omitempty"`
	// NoiseMultiplier is DP-SGD's σ (central) or the user-level z (federated).
	NoiseMultiplier *float64 `json:"noise_multiplier,omitempty"`
	MaxGradNorm     *float64 `json:"max_grad_norm,omitempty"`
	SampleRate      *float64 `json:"sample_rate,omitempty"`
	Steps           int      `json:"steps,omitempty"`
	NoiseSource     string   `json:"noise_source,omitempty"`
	// UpdatesSeen is the number of released updates (steps or rounds) a white-box auditor saw.
	UpdatesSeen int `json:"updates_seen,omitempty"`
	// QuietCanaries counts the gradient canaries on coordinates without data gradient.
	QuietCanaries int      `json:"quiet_canaries,omitempty"`
	TrainExamples int      `json:"train_examples,omitempty"`
	TestAccuracy  *float64 `json:"test_accuracy,omitempty"`
	Seconds       float64  `json:"seconds"`
	PNG           string   `json:"png,omitempty"`
	// Curve is the bound of every candidate: the sweep over guess counts.
	Curve []audit.Point `json:"curve"`
}

func (r *auditResult) setBound(b audit.Bound) {
	r.EpsilonLower, r.Confidence, r.Canaries, r.Included = b.EpsilonLower, b.Confidence, b.Canaries, b.Included
	r.Guesses, r.Correct, r.Strategy, r.Candidates, r.Curve = b.Guesses, b.Correct, b.Strategy, b.Candidates, b.Curve
	if r.EpsilonClaimed != nil && b.EpsilonLower > *r.EpsilonClaimed {
		r.Refuted = true
	}
}

// check validates the flags common to both settings and returns the mode.
func (af *auditFlags) check() (audit.Mode, error) {
	mode, err := audit.ParseMode(af.mode)
	if err != nil {
		return "", usageErr("--mode %q unknown: use %s or %s", af.mode, audit.WhiteBox, audit.BlackBox)
	}
	if af.canaries < 1 {
		return "", usageErr("--canaries %d: must be ≥ 1 (Steinke et al. use 1,000)", af.canaries)
	}
	if !(af.confidence > 0 && af.confidence < 1) {
		return "", usageErr("--confidence %v: must be in (0, 1), e.g. 0.95", af.confidence)
	}
	return mode, nil
}

// dpSettings resolves --dp / --no-dp and the flags that only apply with DP.
func (af *auditFlags) dpSettings(pf *dpFlags) error {
	changed := pf.flags.Changed
	if af.noDP {
		if changed("dp") && pf.enabled {
			return usageErr("--dp and --no-dp: give one")
		}
		for _, name := range []string{"target-epsilon", "noise-multiplier", "accountant", "dp-seeded-noise", "dp-clipping"} {
			if changed(name) {
				return usageErr("--%s applies to DP-SGD; drop it or --no-dp", name)
			}
		}
		pf.enabled = false
		return nil
	}
	if !pf.enabled {
		return usageErr("--dp=false: use --no-dp to audit training without DP")
	}
	if _, err := pf.accounting(); err != nil {
		return usageErr("%v", err)
	}
	if !(pf.delta > 0 && pf.delta < 1) {
		return usageErr("--delta %v: must be in (0, 1)", pf.delta)
	}
	if pf.targetEpsilon == 0 && !changed("noise-multiplier") {
		return usageErr("confide audit audits DP-SGD: give --target-epsilon ε (or --noise-multiplier σ), or --no-dp to audit training without DP")
	}
	return nil
}

func runCentralAudit(ctx context.Context, g *globalOptions, w io.Writer, af *auditFlags, df *dataFlags, mf *modelFlags, of *optimFlags, pf *dpFlags, ff *featureFlags) error {
	start := time.Now()
	mode, err := af.check()
	if err != nil {
		return err
	}
	if err := af.dpSettings(pf); err != nil {
		return err
	}
	if !(pf.maxGradNorm > 0) {
		return usageErr("--max-grad-norm %v: must be > 0 (it is a gradient canary's norm)", pf.maxGradNorm)
	}
	dataset := df.name
	if dataset == "shakespeare" && mode == audit.BlackBox {
		return usageErr("--mode black-box plants mislabelled examples; dataset shakespeare predicts the next character and has no labels to change (use --mode white-box)")
	}
	if mode == audit.WhiteBox && pf.enabled && pf.clipping != "flat" {
		return usageErr("--dp-clipping %s: white-box canaries are audited with flat clipping (a per-layer clipped example spans every layer); use --mode black-box", pf.clipping)
	}
	if mf.specFile == "" {
		of.applyDefaults(dataset, mf.model)
	}
	scatter, err := ff.scattering(dataset, pf.enabled, mf)
	if err != nil {
		return usageErr("%v", err)
	}
	if pf.enabled {
		applyDPDefaults(of, mf, pf, dpRecipeFor(mf, scatter, pf.targetEpsilon))
	}
	cfg := of.config()
	if err := cfg.Validate(); err != nil {
		return usageErr("invalid training flags: %v", err)
	}
	opts := df.opts
	opts.Seed = of.seed
	trainSet, testSet, err := loadDatasetWith(ctx, dataset, opts)
	if err != nil {
		return err
	}
	mf.dataset = dataset
	spec, err := mf.spec(trainSet)
	if err != nil {
		return usageErr("%v", err)
	}
	if scatter {
		fs := scatteringFeatures
		fs.Shape = trainSet.Shape
		spec.Features = &fs
		if err := spec.Validate(); err != nil {
			return usageErr("--features scattering on %s: %v", dataset, err)
		}
	}
	m, err := model.New(spec, rand.New(rand.NewPCG(of.seed, 0x696e6974)))
	if err != nil {
		return err
	}
	if err := m.SetPrecision(of.precision); err != nil {
		return err
	}
	if af.canaries > m.NumParams() && mode == audit.WhiteBox {
		return usageErr("--canaries %d: the model has %d parameters, one coordinate a canary", af.canaries, m.NumParams())
	}
	if af.canaries >= trainSet.N && mode == audit.BlackBox {
		return usageErr("--canaries %d: the training set has %d examples", af.canaries, trainSet.N)
	}
	res := auditResult{Mode: string(mode), Setting: "central", Dataset: dataset, ModelName: modelName(m.Spec), Delta: pf.delta}
	c := audit.Central{Mode: mode, Canaries: af.canaries, Confidence: af.confidence, Delta: pf.delta, Train: cfg, CanaryNorm: pf.maxGradNorm, Seed: of.seed}
	var src audit.Sources
	n := trainSet.N
	if mode == audit.BlackBox {
		n = trainSet.N - af.canaries/2 // about: the canaries out, the included half back in
	}
	if pf.enabled {
		dpc, err := pf.resolve(cfg, n)
		if err != nil {
			return usageErr("%v", err)
		}
		c.Train.DP = dpc
		if src.Noise, src.Sampler, res.NoiseSource, err = pf.noiseSources(of.seed); err != nil {
			return err
		}
	}
	bar := newProgress(int64(n*cfg.Epochs), "audit")
	src.OnExamples = func(k int) {
		if bar != nil {
			bar.Add(k)
		}
	}
	out, err := audit.RunCentral(ctx, m, trainSet, c, src)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if pf.enabled {
		acct, _ := pf.accounting()
		r, err := accountant.Epsilon(out.Steps, pf.delta, acct)
		if err != nil {
			return err
		}
		res.EpsilonClaimed = &r.Epsilon
		res.Accountant, res.Accounting = r.Method.String(), r.Describe()
		res.NoiseMultiplier, res.MaxGradNorm = &c.Train.DP.NoiseMultiplier, &c.Train.DP.MaxGradNorm
		if len(out.Steps) > 0 {
			res.SampleRate = &out.Steps[0].SampleRate
		}
		for _, s := range out.Steps {
			res.Steps += s.Steps
		}
	}
	res.setBound(out.Bound)
	res.UpdatesSeen, res.QuietCanaries, res.TrainExamples = out.Updates, out.QuietCanaries, out.TrainExamples
	test, err := evaluateTrained(ctx, out.Trainer, testSet)
	if err != nil {
		return err
	}
	res.TestAccuracy = &test.Accuracy
	return finishAudit(g, w, res, af.png, start)
}

// finishAudit draws the PNG if asked and prints the result.
func finishAudit(g *globalOptions, w io.Writer, res auditResult, png string, start time.Time) error {
	if png != "" {
		title := fmt.Sprintf("%s audit of %s training on %s (%d canaries)", res.Mode, res.Setting, res.Dataset, res.Canaries)
		b := audit.Bound{EpsilonLower: res.EpsilonLower, Confidence: res.Confidence, Canaries: res.Canaries, Curve: res.Curve}
		if err := audit.WritePlot(png, title, b, res.EpsilonClaimed); err != nil {
			return err
		}
		res.PNG = png
	}
	res.Seconds = time.Since(start).Seconds()
	return g.emit(w, res, func(w io.Writer) { res.human(w) })
}

func (r auditResult) human(w io.Writer) {
	claim := "no DP: nothing claimed"
	if r.EpsilonClaimed != nil {
		claim = fmt.Sprintf("claimed ε = %.3g at δ = %g (%s)", *r.EpsilonClaimed, r.Delta, r.Accountant)
	}
	fmt.Fprintf(w, "%s audit of %s training on %s, %s: ε ≥ %.3g at %g%% confidence; %s\n",
		r.Mode, r.Setting, r.Dataset, r.ModelName, r.EpsilonLower, 100*r.Confidence, claim)
	fmt.Fprintf(w, "  %d canaries (%d included); best of %d guess sets: %d of %d guesses right (%s)\n",
		r.Canaries, r.Included, r.Candidates, r.Correct, r.Guesses, r.Strategy)
	switch {
	case r.Refuted:
		fmt.Fprintf(w, "  REFUTED: the run spends more than the claimed ε (the mechanism does not keep its promise)\n")
	case r.EpsilonClaimed != nil:
		fmt.Fprintf(w, "  consistent with the claim (a lower bound at or below the claimed ε)\n")
	}
	if r.NoiseMultiplier != nil {
		fmt.Fprintf(w, "  noise multiplier %.4g", *r.NoiseMultiplier)
		if r.SampleRate != nil {
			fmt.Fprintf(w, ", q = %.4g, %d steps", *r.SampleRate, r.Steps)
		}
		if r.NoiseSource != "" {
			fmt.Fprintf(w, "; noise %s", r.NoiseSource)
		}
		fmt.Fprintln(w)
	}
	if r.UpdatesSeen > 0 {
		fmt.Fprintf(w, "  the auditor saw %d released updates; %d of %d canaries on coordinates without data gradient\n", r.UpdatesSeen, r.QuietCanaries, r.Canaries)
	}
	if r.TestAccuracy != nil {
		fmt.Fprintf(w, "  audited model's test accuracy %.4f; %.1fs\n", *r.TestAccuracy, r.Seconds)
	}
	if r.PNG != "" {
		fmt.Fprintf(w, "  plot written to %s\n", r.PNG)
	}
}
