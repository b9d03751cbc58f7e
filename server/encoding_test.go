package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// TestValueBitsDefault: left unset, secure_aggregation.value_bits is the packed encoding at
// secagg.DefaultValueBits, except where the configuration relies on the float encoding
// (log_scale set, user-level DP in either mode, dp.distributed, a statistics round) or the
// packed encoding does not fit (log_n 12: one prime); an explicit value, 0 included, is
// kept. Under the default every configuration validates, and distributed user-level DP
// stays the Gaussian mechanism it was (not the discrete one), so its ε is unchanged.
func TestValueBitsDefault(t *testing.T) {
	stats, err := data.ParseSchema([]byte(`{format: csv, label: {column: y, classes: [a, b]}, columns: [{name: x1, range: [0, 1]}, {name: x2, mean: 0, std: 1}, {name: x3, mean: 0, std: 1}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	packed := secagg.DefaultValueBits
	for _, tc := range []struct {
		name string
		set  func(*server.Config)
		want int
	}{
		{"plain", func(*server.Config) {}, packed},
		{"explicit-float", func(c *server.Config) { c.SecAgg.ValueBits = new(0) }, 0},
		{"explicit-11", func(c *server.Config) { c.SecAgg.ValueBits = new(11) }, 11},
		{"log-scale", func(c *server.Config) { c.SecAgg.LogScale = 40 }, 0},
		{"log-n-12", func(c *server.Config) { c.SecAgg.LogN = 12 }, 0},
		{"log-n-14", func(c *server.Config) { c.SecAgg.LogN = 14 }, packed},
		{"record-level-dp-sgd", func(c *server.Config) {
			c.DP.NoiseMultiplier, c.DP.SampleRate, c.DP.UpdateClipNorm = 1, 0.1, 50
		}, packed},
		{"distributed", func(c *server.Config) {
			c.DP.NoiseMultiplier, c.DP.SampleRate, c.DP.Steps, c.DP.Distributed = 1, 0.1, 1, true
		}, 0},
		{"user-level-distributed", func(c *server.Config) {
			*c = userLevelSecAgg(userLevelConfig(1, 4, server.UserLevelDistributed, 1, 2))
			c.SecAgg.LogN, c.Sampling.MinAvailable = 13, 3
		}, 0},
		{"user-level-central", func(c *server.Config) {
			*c = userLevelSecAgg(userLevelConfig(1, 4, server.UserLevelCentral, 1, 2))
			c.SecAgg.LogN, c.Sampling.MinAvailable = 13, 3
		}, 0},
		{"statistics-round", func(c *server.Config) {
			c.Model, c.Dataset = tinyModel(), stats
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secAggConfig(1, 3, 3, 2)
			cfg.SecAgg.LogN = 13
			tc.set(&cfg)
			cfg = cfg.WithDefaults()
			if got := cfg.SecAgg.ValueBits; got == nil || *got != tc.want {
				t.Fatalf("value_bits after the defaults: %s, want %d", describe(got), tc.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the defaulted config does not validate: %v", err)
			}
			if cfg.DP.UserLevel.On() && cfg.DiscreteUserLevel() {
				t.Fatal("distributed user-level DP became the discrete mechanism by default")
			}
			if _, err := server.New(cfg, userLevelOptions(1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// describe prints an optional value_bits.
func describe(p *int) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// An explicit packed encoding is refused where its rounding would escape the accounting:
// noise shares drawn before each client's values are rounded (dp.distributed, the
// statistics round) and central user-level noise calibrated to a clip the rounding can
// exceed. Distributed user-level DP takes it (the distributed discrete Gaussian accounts
// the rounding), and so does record-level DP-SGD (rounding a noised update is
// post-processing).
func TestPackedRefusedWhereRoundingIsNotAccounted(t *testing.T) {
	stats, err := data.ParseSchema([]byte(`{format: csv, label: {column: y, classes: [a, b]}, columns: [{name: x1, range: [0, 1]}, {name: x2, mean: 0, std: 1}, {name: x3, mean: 0, std: 1}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(*server.Config)
		want string // "" : valid
	}{
		{"distributed", func(c *server.Config) {
			c.Training.LR, c.Training.Optimizer = 1, "sgd"
			c.DP.NoiseMultiplier, c.DP.MaxGradNorm, c.DP.Delta = 2, 1, 1e-5
			c.DP.SampleRate, c.DP.Steps, c.DP.Distributed, c.DP.UpdateClipNorm = 1, 1, true, 50
		}, "dp.distributed with secure_aggregation.value_bits 11"},
		{"user-level-central", func(c *server.Config) {
			*c = userLevelSecAgg(userLevelConfig(1, 4, server.UserLevelCentral, 1, 2))
			c.SecAgg.LogN, c.Sampling.MinAvailable = 13, 3
		}, "dp.user_level.mode = central with secure_aggregation.value_bits 11"},
		{"statistics-round", func(c *server.Config) { c.Model, c.Dataset = tinyModel(), stats }, "the statistics round"},
		{"user-level-distributed", func(c *server.Config) {
			*c = userLevelSecAgg(userLevelConfig(1, 4, server.UserLevelDistributed, 1, 2))
			c.SecAgg.LogN, c.Sampling.MinAvailable = 13, 3
		}, ""},
		{"record-level-dp-sgd", func(c *server.Config) {
			c.DP.NoiseMultiplier, c.DP.SampleRate, c.DP.UpdateClipNorm = 1, 0.1, 50
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := secAggConfig(1, 3, 3, 2)
			cfg.SecAgg.LogN = 13
			tc.set(&cfg)
			unset := cfg.WithDefaults()
			if err := unset.Validate(); err != nil {
				t.Fatalf("with value_bits unset: %v", err)
			}
			cfg.SecAgg.ValueBits = new(11)
			err := cfg.WithDefaults().Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("value_bits 11: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("value_bits 11: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
