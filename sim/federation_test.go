package sim

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// federationOf is the coordinator's configuration for c over n clients of size examples
// each (a sampled population).
func federationOf(t *testing.T, c Config, n, size int) server.Config {
	t.Helper()
	c.Clients = n
	c = c.WithDefaults()
	if err := c.validate(true); err != nil {
		t.Fatal(err)
	}
	r := &run{cfg: c, pop: &population{n: n, sample: size}, spec: model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}}
	f, err := r.federation()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The sim's dp section is the server's: every key given reaches the coordinator unchanged
// (a field the mapping dropped would arrive zero), and only the keys left 0 take defaults,
// dp.sample_rate the sim's own (training.batch_size / mean examples per client).
func TestFederationDPSectionIsTheServers(t *testing.T) {
	base := Config{Rounds: 2, ClientsPerRound: 4, Model: model.Spec{Type: model.TypeMLP},
		Training: TrainingConfig{Epochs: 2, BatchSize: 25}}
	for _, tc := range []struct {
		name     string
		dp       server.DPConfig
		wantQ    float64
		wantStep int
	}{
		{"every key given", server.DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 0.5, Delta: 1e-6, SampleRate: 0.3, Steps: 11, // ⌈2 / 0.3⌉ = 7 if dropped
			Clipping: "flat", UpdateClipNorm: 3, Accountant: "prv", StatisticsNoiseMultiplier: 4, StatisticsMaxRows: 500}, 0.3, 11},
		// 25 of 100 examples: q = 0.25, ⌈2 / 0.25⌉ = 8 steps.
		{"sample rate derived", server.DPConfig{NoiseMultiplier: 1.1}, 0.25, 8},
		{"steps derived from a given rate", server.DPConfig{NoiseMultiplier: 1.1, SampleRate: 0.4}, 0.4, 5},
		{"no DP-SGD", server.DPConfig{UpdateClipNorm: 2}, 0, 0},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			c := base
			c.DP = DPConfig{DPConfig: tc.dp}
			got := federationOf(t, c, 8, 100).DP
			given, arrived := reflect.ValueOf(tc.dp), reflect.ValueOf(got)
			for i := range given.NumField() {
				if g := given.Field(i); !g.IsZero() && !reflect.DeepEqual(g.Interface(), arrived.Field(i).Interface()) {
					t.Errorf("dp.%s = %v reached the coordinator as %v", given.Type().Field(i).Name, g, arrived.Field(i))
				}
			}
			if got.SampleRate != tc.wantQ || got.Steps != tc.wantStep {
				t.Errorf("sample rate %v and steps %d, want %v and %d", got.SampleRate, got.Steps, tc.wantQ, tc.wantStep)
			}
		})
	}
	// Under user-level DP the expected clients are clients_per_round (the sim's default,
	// not the server's sampling.num_fit).
	c := base
	c.DP.UserLevel = server.UserLevelDPConfig{Mode: server.UserLevelCentral, NoiseMultiplier: 0.5, Clip: 1}
	if u := federationOf(t, c, 8, 100).DP.UserLevel; u.ExpectedClients != 4 || u.Clip != 1 || u.NoiseMultiplier != 0.5 {
		t.Errorf("user level %+v, want expected_clients 4 (clients_per_round), clip 1, noise 0.5", u)
	}
}

// dp.steps, the server's key the sim's own dp section lacked, is checked as the server
// checks it, with errors naming the key.
func TestValidateSimOnlyDPKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		dp   server.DPConfig
		want string
	}{
		{"negative steps", server.DPConfig{NoiseMultiplier: 1, Steps: -1}, "dp.steps = -1"},
		{"steps without DP-SGD", server.DPConfig{Steps: 3}, "dp.steps = 3 schedules DP-SGD"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			c := Default()
			c.DP.DPConfig = tc.dp
			err := c.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	c := Default()
	c.DP.Steps = 40
	if err := c.WithDefaults().Validate(); err != nil {
		t.Fatalf("dp.steps with DP-SGD: %v", err)
	}
}

// TestExamplesFederations: the coordinator's configuration derived from every simulation
// example (examples/*.yaml but the model spec, the dataset schemas and the server's and
// client's files), over a population of its clients, validates with secure aggregation's
// default encoding, which is the packed one for the default experiment
// (examples/mnist-mlp.yaml) and the float one wherever the example relies on it
// (user-level DP, dp.distributed).
func TestExamplesFederations(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if name == "mlp" || name == "server" || name == "client" {
			continue // a model spec, the server's and the client's files
		}
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c Config
			if err := yaml.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			if c.Rounds == 0 {
				t.Skip("not a simulation (a dataset schema)")
			}
			n := c.Clients
			if n == 0 || n > 1000 {
				n = 1000 // scale-1m: the coordinator's configuration does not depend on it
			}
			fed := federationOf(t, c, n, 600)
			if !c.SecureAggregation.Enabled {
				return
			}
			bits := fed.SecAgg.ValueBits
			if bits == nil {
				t.Fatal("secure_aggregation.value_bits left unset by the coordinator's defaults")
			}
			wantFloat := c.DP.UserLevel.On() || c.DP.Distributed
			switch {
			case c.SecureAggregation.ValueBits != nil && *bits != *c.SecureAggregation.ValueBits:
				t.Errorf("value_bits %d given, %d reached the coordinator", *c.SecureAggregation.ValueBits, *bits)
			case c.SecureAggregation.ValueBits == nil && wantFloat && *bits != 0:
				t.Errorf("value_bits defaulted to %d, want the float encoding (0) under user-level DP or dp.distributed", *bits)
			case c.SecureAggregation.ValueBits == nil && !wantFloat && *bits != secagg.DefaultValueBits:
				t.Errorf("value_bits defaulted to %d, want the packed encoding's %d", *bits, secagg.DefaultValueBits)
			}
			t.Logf("value_bits %d", *bits)
		})
	}
}
