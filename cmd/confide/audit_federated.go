package main

import (
	"context"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/confide-fl/confide/audit"
	"github.com/confide-fl/confide/sim"
)

// federatedAuditFlags are the flags a federated audit reads; the sim config says the rest.
var federatedAuditFlags = []string{"federated", "canaries", "confidence", "png", "mode", "seed", "accountant", "output", "config", "log-level"}

// runFederatedAudit audits the user-level DP of the federation --federated describes.
func runFederatedAudit(ctx context.Context, g *globalOptions, cmd *cobra.Command, w io.Writer, af *auditFlags, pf *dpFlags, seed uint64) error {
	start := time.Now()
	mode, err := af.check()
	if err != nil {
		return err
	}
	if mode != audit.WhiteBox {
		return usageErr("--federated audits white-box: the auditor sees every round's noised aggregate (drop --mode %s)", mode)
	}
	var stray []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !slices.Contains(federatedAuditFlags, f.Name) {
			stray = append(stray, "--"+f.Name)
		}
	})
	if len(stray) > 0 {
		sort.Strings(stray)
		return usageErr("%v: with --federated the sim config (%s) sets the data, model, training and DP; set them there", stray, af.federated)
	}
	cfg, err := loadSimConfig(af.federated)
	if err != nil {
		return usageErr("--federated: %v", err)
	}
	if !cfg.DP.UserLevel.On() {
		return usageErr("--federated %s: no dp.user_level in it; a federated audit checks user-level DP (see examples/mnist-user-level.yaml)", af.federated)
	}
	if cmd.Flags().Changed("accountant") {
		m, err := parseAccountant(pf.accountant)
		if err != nil {
			return usageErr("%v", err)
		}
		cfg.DP.Accountant = m.String()
	}
	cfg.ResultsDir = "-"
	bar := newProgress(int64(cfg.Rounds), "audit rounds")
	opts := sim.Options{OnRound: func(sim.RoundMetrics) {
		if bar != nil {
			bar.Add(1)
		}
	}}
	out, err := audit.RunFederated(ctx, audit.Federated{Sim: cfg, Canaries: af.canaries, Confidence: af.confidence, Seed: seed}, opts)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	s := out.Report.Summary
	res := auditResult{Mode: string(mode), Setting: "federated", Dataset: s.Dataset, ModelName: modelName(out.Model), UpdatesSeen: out.Rounds, QuietCanaries: out.QuietCanaries, TestAccuracy: s.FinalAccuracy}
	if u := s.Privacy.UserLevel; u != nil {
		res.EpsilonClaimed, res.Delta = &u.Epsilon, u.Delta
		res.Accountant, res.Accounting = s.Privacy.Accountant, u.Accountant
		res.NoiseMultiplier, res.SampleRate, res.Steps = &u.NoiseMultiplier, &u.SampleRate, u.Rounds
		res.NoiseSource = s.Privacy.Noise
	}
	res.setBound(out.Bound)
	return finishAudit(g, w, res, af.png, start)
}
