package server_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
)

// TestDistributedConfigRefusals: dp.distributed is refused where its guarantee does not
// hold — without secure aggregation or noise, with more than one local step, Adam,
// user-level DP or SCAFFOLD — and where the update clip leaves no room for the noise
// share; a valid one is accepted and reaches the clients' fit tasks.
func TestDistributedConfigRefusals(t *testing.T) {
	good := func() server.Config {
		cfg := secAggConfig(2, 4, 3, 2)
		cfg.Sampling.MinAvailable = 4
		cfg.Training.LR, cfg.Training.Optimizer = 1, "sgd"
		cfg.DP.NoiseMultiplier, cfg.DP.MaxGradNorm, cfg.DP.Delta = 2, 1, 1e-5
		cfg.DP.SampleRate, cfg.DP.Steps, cfg.DP.Distributed = 1, 1, true
		cfg.DP.UpdateClipNorm = 50
		return cfg.WithDefaults()
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a valid distributed config: %v", err)
	}
	if spec := server.LocalTrainingSpec(good().Training, good().DP); !spec.GetDp().GetDistributed() {
		t.Fatal("the fit spec does not carry dp.distributed")
	}
	for _, tc := range []struct {
		name   string
		change func(*server.Config)
		want   string
	}{
		{"no-secagg", func(c *server.Config) { c.SecAgg.Enabled = false }, "needs secure_aggregation.enabled"},
		{"no-noise", func(c *server.Config) { c.DP.NoiseMultiplier, c.DP.SampleRate, c.DP.Steps = 0, 0, 0 }, "set dp.noise_multiplier"},
		{"two-steps", func(c *server.Config) { c.DP.Steps = 2 }, "set dp.steps: 1"},
		{"adam", func(c *server.Config) { c.Training.Optimizer = "adam" }, "plain SGD"},
		{"scaffold", func(c *server.Config) { c.Strategy.Name = "scaffold" }, "scaffold strategy"},
		{"clip-too-small", func(c *server.Config) { c.DP.UpdateClipNorm = 0.01 }, "raise dp.update_clip_norm"},
		{"disjoint-decrypting-sets", func(c *server.Config) { c.SecAgg.CommitteeSize, c.SecAgg.Threshold = 4, 2 }, "secure_aggregation.threshold 2: must exceed half of secure_aggregation.committee_size 4 (at least 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.change(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error naming %q", err, tc.want)
			}
		})
	}
}
