package sim_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// userLevel is small() with user-level DP: 20 clients, 8 expected per round.
func userLevel(mode string) sim.Config {
	c := small()
	c.Rounds, c.Clients, c.ClientsPerRound = 5, 20, 8
	c.DP.UserLevel = server.UserLevelDPConfig{Mode: mode, NoiseMultiplier: 0.5, Clip: 1}
	return c
}

func TestUserLevelDP(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*sim.Config)
	}{
		{"central", func(*sim.Config) {}},
		{"central-grpc", func(c *sim.Config) { c.Transport = sim.TransportGRPC }},
		{"distributed-adaptive-with-dp-sgd", func(c *sim.Config) {
			c.DP.UserLevel.Mode = server.UserLevelDistributed
			c.DP.UserLevel.Clip = 0
			c.DP.UserLevel.Adaptive = server.AdaptiveClipConfig{InitialClip: 0.5, CountNoiseStd: 1}
			c.DP.NoiseMultiplier, c.DP.MaxGradNorm = 0.8, 1
			c.SecureAggregation = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := userLevel(server.UserLevelCentral)
			tc.edit(&c)
			rep := run(t, c)
			u := rep.Summary.Privacy.UserLevel
			if u == nil {
				t.Fatalf("privacy %+v: no user-level section", rep.Summary.Privacy)
			}
			if u.Mode != c.DP.UserLevel.Mode || u.Rounds != 5 || u.SampleRate != 0.4 || !(u.Epsilon > 0) || u.Delta != 1e-5 || !strings.Contains(u.Accountant, "RDP") {
				t.Fatalf("user-level privacy %+v: want mode %s, 5 rounds at q = 8/20, ε > 0 at δ = 1e-5", u, c.DP.UserLevel.Mode)
			}
			if c.DP.NoiseMultiplier > 0 && !(rep.Summary.Privacy.Epsilon > 0) {
				t.Fatalf("record-level ε %v: DP-SGD ran too", rep.Summary.Privacy.Epsilon)
			}
			prev := 0.0
			sampled := map[int]bool{}
			for _, r := range rep.Rounds {
				sampled[r.Sampled] = true
				if r.Failed {
					continue
				}
				if !(r.UserEpsilon > prev) || !(r.UpdateClip > 0) {
					t.Fatalf("round %d: user ε %v after %v, clip %v: want growing ε and a clip", r.Round, r.UserEpsilon, prev, r.UpdateClip)
				}
				prev = r.UserEpsilon
			}
			if prev != u.Epsilon {
				t.Fatalf("last round's user ε %v, summary %v", prev, u.Epsilon)
			}
			if c.Transport != sim.TransportGRPC && len(sampled) < 2 {
				t.Fatalf("cohort sizes %v: Poisson sampling should vary them", sampled)
			}
			if rep.Summary.FinalAccuracy == nil || *rep.Summary.FinalAccuracy < 0.75 {
				t.Fatalf("final accuracy %v, want ≥ 0.75", rep.Summary.FinalAccuracy)
			}
			t.Logf("user-level privacy %+v; final accuracy %.3f", *u, *rep.Summary.FinalAccuracy)
			if !strings.Contains(rep.Summary.Privacy.Noise, "crypto/rand") {
				t.Fatalf("noise %q: user-level noise is secure by default", rep.Summary.Privacy.Noise)
			}
		})
	}
}

func TestUserLevelDPDeterministicNoiseRepeats(t *testing.T) {
	c := userLevel(server.UserLevelCentral)
	c.DP.DeterministicNoise = true
	a, b := run(t, c), run(t, c)
	for i := range a.Rounds {
		x, y := a.Rounds[i], b.Rounds[i]
		if x.Sampled != y.Sampled || *x.Accuracy != *y.Accuracy || x.UserEpsilon != y.UserEpsilon {
			t.Fatalf("round %d differs between seeded runs:\n%+v\n%+v", x.Round, x, y)
		}
	}
	if !strings.Contains(a.Summary.Privacy.Noise, "DETERMINISTIC") {
		t.Fatalf("noise %q: a seeded run must say so", a.Summary.Privacy.Noise)
	}
}

func TestUserLevelConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*sim.Config)
		want string
	}{
		{"expected-clients-differ", func(c *sim.Config) { c.DP.UserLevel.ExpectedClients = 5 }, "dp.user_level.expected_clients = 5 and clients_per_round = 8 differ"},
		{"update-clip-norm", func(c *sim.Config) { c.DP.UpdateClipNorm = 3 }, "dp.update_clip_norm = 3 conflicts"},
		{"robust", func(c *sim.Config) { c.Strategy.Name = "fedmedian" }, "but user-level DP releases only the noised sum"},
		{"distributed-without-secagg", func(c *sim.Config) { c.DP.UserLevel.Mode = server.UserLevelDistributed }, "needs secure_aggregation.enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := userLevel(server.UserLevelCentral)
			tc.edit(&c)
			_, err := sim.Run(t.Context(), c, sim.Options{Train: blobs(400, 1), Test: blobs(200, 2)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
