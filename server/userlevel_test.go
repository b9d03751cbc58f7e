package server_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// statModel has 1830 parameters: enough coordinates to measure a noise standard deviation
// to about 1% per round.
func statModel() model.Spec { return model.Spec{Type: model.TypeMLP, Input: 60, Output: 30} }

func userLevelConfig(rounds, m int, mode string, z, clip float64) server.Config {
	cfg := baseConfig(rounds, 2)
	cfg.Model = statModel()
	cfg.DP.UserLevel = server.UserLevelDPConfig{Mode: mode, NoiseMultiplier: z, Clip: clip, ExpectedClients: m}
	return cfg
}

func userLevelSecAgg(cfg server.Config) server.Config {
	cfg.SecAgg = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12}
	return cfg
}

func zeroTrainers(ids ...string) map[string]*fakeTrainer {
	m := map[string]*fakeTrainer{}
	for i, id := range ids {
		m[id] = &fakeTrainer{N: 50 * (i + 1)}
	}
	return m
}

// noiseStd returns the standard deviation of m·(params_r − params_{r−1}) over every
// coordinate of every successful round: with zero updates that is the noise on the sum.
func noiseStd(t *testing.T, initial []float64, rounds []server.RoundRecord, m float64) float64 {
	t.Helper()
	prev := initial
	var ss float64
	var n int
	for _, rec := range rounds {
		if rec.Failed {
			t.Fatalf("round %d failed: %s", rec.Round, rec.Reason)
		}
		for i, v := range rec.Params {
			d := m * (v - prev[i])
			ss += d * d
			n++
		}
		prev = rec.Params
	}
	return math.Sqrt(ss / float64(n))
}

func userLevelOptions(seed uint64) server.Options {
	return server.Options{Noise: dp.NewDeterministicNoise(seed)}
}

// TestUserLevelNoiseCalibration: clients that send zero updates leave only the noise in the
// sum. In central mode the server draws N(0, z²S²) (McMahan et al. 2018). In distributed
// mode each client draws a share N(0, z²S²/m_min) sized for the committee's minimum number
// of contributions m_min, and the server adds nothing: a sum of count ≥ m_min updates
// carries noise of std z·S·√(count/m_min) ≥ z·S, the accounted one, whoever dropped out.
func TestUserLevelNoiseCalibration(t *testing.T) {
	const z, clip = 1.5, 2.0
	for _, tc := range []struct {
		name       string
		mode       string
		secAgg     bool
		minContrib int
		fail       string
		serverStd  float64
		sumStd     float64
	}{
		{"central/plain", server.UserLevelCentral, false, 0, "", z * clip, z * clip},
		{"central/secagg", server.UserLevelCentral, true, 0, "", z * clip, z * clip},
		{"distributed/all-report-min-4", server.UserLevelDistributed, true, 4, "", 0, z * clip},
		{"distributed/one-missing-min-3", server.UserLevelDistributed, true, 3, "d", 0, z * clip},
		{"distributed/all-report-min-2", server.UserLevelDistributed, true, 2, "", 0, z * clip * math.Sqrt2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := userLevelConfig(3, 4, tc.mode, z, clip)
			if tc.secAgg {
				cfg = userLevelSecAgg(cfg)
				cfg.SecAgg.MinContributions = tc.minContrib
				cfg.Sampling.MinFit = max(2, tc.minContrib)
			}
			trs := zeroTrainers("a", "b", "c", "d")
			if tc.fail != "" {
				trs[tc.fail].Fail = true
			}
			n := newNetwork(t, cfg, userLevelOptions(11), trs)
			initial := n.c.Global()
			n.run()
			rounds := recordsOf[server.RoundRecord](n)
			if len(rounds) != 3 {
				t.Fatalf("%d rounds, want 3", len(rounds))
			}
			// 5490 coordinates: the estimate's relative standard error is 1%.
			if got := noiseStd(t, initial, rounds, 4); math.Abs(got-tc.sumStd)/tc.sumStd > 0.05 {
				t.Errorf("noise on the sum has std %.4g, want %.4g (±5%%)", got, tc.sumStd)
			}
			for _, rec := range rounds {
				if got := rec.Metrics["server_noise_std"]; math.Abs(got-tc.serverStd) > 1e-12 {
					t.Errorf("round %d: server noise std %v, want %v", rec.Round, got, tc.serverStd)
				}
				if math.Abs(rec.Metrics["noise_std"]-tc.sumStd) > 1e-12 || rec.Metrics["update_clip"] != clip {
					t.Errorf("round %d metrics %v: want noise_std %v and update_clip %v", rec.Round, rec.Metrics, tc.sumStd, clip)
				}
			}
		})
	}
}

// A distributed round with fewer updates than the shares were sized for is never decrypted:
// the round fails (and still counts for the accountant).
func TestUserLevelDistributedBelowMinimumFails(t *testing.T) {
	cfg := userLevelSecAgg(userLevelConfig(1, 4, server.UserLevelDistributed, 1, 1))
	cfg.SecAgg.MinContributions, cfg.Sampling.MinFit = 4, 4
	trs := zeroTrainers("a", "b", "c", "d")
	trs["d"].Fail = true
	n := newNetwork(t, cfg, userLevelOptions(12), trs)
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || !rounds[0].Failed {
		t.Fatalf("rounds %+v, want one failed round", rounds)
	}
	if recs := recordsOf[server.UserLevelPrivacyRecord](n); len(recs) != 1 || recs[0].Rounds != 1 {
		t.Fatalf("user-level records %+v: the failed round must still be accounted", recs)
	}
	for _, r := range noticesOf[server.RoundFinished](n) {
		if r.Contributors != 0 {
			t.Errorf("round %d released %d contributions", r.Round, r.Contributors)
		}
	}
}

// TestUserLevelFixedDenominatorAndUniformWeights: the noised sum is divided by the
// expected number of clients m, whatever the number that reported and their example
// counts (DP-FedAvg's fixed denominator).
func TestUserLevelFixedDenominatorAndUniformWeights(t *testing.T) {
	cfg := userLevelConfig(1, 4, server.UserLevelCentral, 1e-9, 10)
	cfg.Model = tinyModel()
	trs := trainersFor("a", "b", "c", "d") // shifts 0.01…0.04, 50…200 examples
	trs["d"].Fail = true
	n := newNetwork(t, cfg, userLevelOptions(1), trs)
	initial := n.c.Global()
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 1 || rounds[0].Failed {
		t.Fatalf("rounds %+v, want one successful round", rounds)
	}
	wantShift(t, initial, rounds[0].Params, (0.01+0.02+0.03)/4, 1e-7)
}

// TestUserLevelPoissonSampling: each online client is sampled with probability m/N, so the
// cohort size varies around m.
func TestUserLevelPoissonSampling(t *testing.T) {
	const rounds, clients, m = 40, 40, 8
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%02d", i)
	}
	cfg := userLevelConfig(rounds, m, server.UserLevelCentral, 1, 1)
	cfg.Model = tinyModel()
	n := newNetwork(t, cfg, userLevelOptions(2), zeroTrainers(ids...))
	n.run()
	sizes := map[int]bool{}
	total := 0
	for _, s := range noticesOf[server.RoundStarted](n) {
		sizes[len(s.Clients)] = true
		total += len(s.Clients)
	}
	// The mean of 40 Binomial(40, 0.2) counts has standard deviation 0.4.
	if mean := float64(total) / rounds; math.Abs(mean-m) > 1.6 {
		t.Errorf("mean cohort %.2f, want about %d", mean, m)
	}
	if len(sizes) < 4 {
		t.Errorf("cohort sizes %v: Poisson sampling should vary them", sizes)
	}
}

// TestUserLevelAdaptiveClipTracksTheMedian: clients whose update norms are 1…9 (median 5)
// report their clip indicators; from an initial clip of 0.5 the clip must climb and then
// stay near the median (Andrew et al. 2021).
func TestUserLevelAdaptiveClipTracksTheMedian(t *testing.T) {
	for _, secAgg := range []bool{false, true} {
		t.Run(fmt.Sprintf("secagg=%v", secAgg), func(t *testing.T) {
			const m, rounds = 9, 30
			cfg := baseConfig(rounds, 2)
			cfg.DP.UserLevel = server.UserLevelDPConfig{
				Mode: server.UserLevelCentral, NoiseMultiplier: 0.5, ExpectedClients: m,
				Adaptive: server.AdaptiveClipConfig{InitialClip: 0.5, LearningRate: 0.5, CountNoiseStd: 1, MaxClip: 20},
			}
			if secAgg {
				cfg = userLevelSecAgg(cfg)
				cfg.DP.UserLevel.Mode = server.UserLevelDistributed
				cfg.Sampling.MinFit = 0 // the default: the committee's minimum
			}
			trs := map[string]*fakeTrainer{}
			for i := 1; i <= m; i++ {
				// tinyModel has 8 parameters: a shift of i/√8 is an update of norm i.
				trs[fmt.Sprintf("c%d", i)] = &fakeTrainer{Shift: float64(i) / math.Sqrt(8), N: 10}
			}
			n := newNetwork(t, cfg, userLevelOptions(3), trs)
			n.run()
			recs := recordsOf[server.RoundRecord](n)
			if len(recs) != rounds {
				t.Fatalf("%d rounds, want %d", len(recs), rounds)
			}
			var clips []float64
			for _, rec := range recs {
				if rec.Failed {
					t.Fatalf("round %d failed: %s", rec.Round, rec.Reason)
				}
				clips = append(clips, rec.Metrics["update_clip"])
			}
			if clips[0] != 0.5 || !(clips[5] > 1.2) {
				t.Errorf("clips %v: want 0.5 first, then growing", clips[:6])
			}
			late := 0.0
			for _, c := range clips[rounds-10:] {
				late += c / 10
			}
			if late < 4 || late > 6.5 {
				t.Errorf("clip averages %.3g over the last 10 rounds, want near the median norm 5 (clips %v)", late, clips)
			}
		})
	}
}

// TestUserLevelEpsilonIsAccounted: every round records the user-level ε of DP-FedAvg with
// q = m/N and T = rounds so far, as dp.UserLevelEpsilon computes it.
func TestUserLevelEpsilonIsAccounted(t *testing.T) {
	const z, m, clients = 1.0, 2, 8
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
	}
	cfg := userLevelConfig(4, m, server.UserLevelCentral, z, 1)
	cfg.Sampling.MinFit = 1
	cfg.Model = tinyModel()
	cfg.DP.UserLevel.Delta = 1e-3
	n := newNetwork(t, cfg, userLevelOptions(4), zeroTrainers(ids...))
	n.run()
	recs := recordsOf[server.UserLevelPrivacyRecord](n)
	if len(recs) != 4 {
		t.Fatalf("%d user-level privacy records, want one per round (4)", len(recs))
	}
	prev := 0.0
	for i, rec := range recs {
		want, err := dp.UserLevelEpsilon(dp.UserLevel{NoiseMultiplier: z, ClientsPerRound: m, Population: clients, Rounds: i + 1, Delta: 1e-3}, accountant.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Rounds != i+1 || rec.SampleRate != 0.25 || rec.Epsilon != want.Epsilon || rec.Delta != 1e-3 || !(rec.Epsilon > prev) {
			t.Errorf("record %d: %+v, want T = %d, q = 0.25, ε = %v growing", i, rec, i+1, want.Epsilon)
		}
		prev = rec.Epsilon
	}
	for _, rr := range recordsOf[server.RoundRecord](n) {
		if !rr.Failed && rr.Metrics["user_epsilon"] != recs[rr.Round-1].Epsilon {
			t.Errorf("round %d metrics user_epsilon %v, record %v", rr.Round, rr.Metrics["user_epsilon"], recs[rr.Round-1].Epsilon)
		}
	}
}

// TestUserLevelRejectsBadClipIndicator: in the clear the server checks the indicator.
func TestUserLevelRejectsBadClipIndicator(t *testing.T) {
	cfg := baseConfig(1, 2)
	cfg.DP.UserLevel = server.UserLevelDPConfig{Mode: server.UserLevelCentral, NoiseMultiplier: 0.5, ExpectedClients: 3,
		Adaptive: server.AdaptiveClipConfig{InitialClip: 1, CountNoiseStd: 1}}
	n := newNetwork(t, cfg, userLevelOptions(5), zeroTrainers("a", "b", "c"))
	task := n.queue["a"][0]
	if got := task.GetFit().GetUserLevelDp(); !got.GetClipIndicator() || got.GetNoiseStd() != 0 {
		t.Fatalf("central adaptive fit spec %v: want a clip indicator and no client noise", got)
	}
	n.queue["a"] = n.queue["a"][1:]
	res, err := n.parties["a"].Handle(t.Context(), task)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, 9)
	v[8] = 1 // the uncentred indicator: clients send ±½
	res.Blobs = []*pb.Blob{blob.New(blob.Update, blob.EncodeFloats(v))}
	n.mustStep(server.ResultIn{ClientID: "a", Result: res})
	n.run()
	f := noticesOf[server.RoundFinished](n)
	if len(f) != 1 || len(f[0].Failures) != 1 || f[0].Failures[0].ClientID != "a" || !strings.Contains(f[0].Failures[0].Reason, "clip indicator 1") {
		t.Fatalf("round %+v, want a's update refused for its clip indicator", f)
	}
}

func TestUserLevelConfigRefusals(t *testing.T) {
	ul := func(f func(*server.Config)) server.Config {
		cfg := userLevelConfig(1, 4, server.UserLevelCentral, 1, 1)
		f(&cfg)
		return cfg
	}
	for _, tc := range []struct {
		name  string
		cfg   server.Config
		noise bool
		want  string
	}{
		{"unknown-mode", ul(func(c *server.Config) { c.DP.UserLevel.Mode = "local" }), true, `dp.user_level.mode = "local"`},
		{"distributed-without-secagg", ul(func(c *server.Config) { c.DP.UserLevel.Mode = server.UserLevelDistributed }), true, "needs secure_aggregation.enabled"},
		{"no-noise", ul(func(c *server.Config) { c.DP.UserLevel.NoiseMultiplier = 0 }), true, "dp.user_level.noise_multiplier = 0"},
		{"no-clip", ul(func(c *server.Config) { c.DP.UserLevel.Clip = 0 }), true, "dp.user_level.clip = 0"},
		{"clip-and-adaptive", ul(func(c *server.Config) { c.DP.UserLevel.Adaptive.InitialClip = 1 }), true, "set one, a fixed clip or an adaptive one"},
		{"adaptive-keys-without-initial-clip", ul(func(c *server.Config) { c.DP.UserLevel.Adaptive.TargetQuantile = 0.7 }), true, "need adaptive.initial_clip"},
		{"count-noise-too-small", ul(func(c *server.Config) {
			c.DP.UserLevel.Clip = 0
			c.DP.UserLevel.Adaptive.InitialClip = 1 // count noise 4/20 = 0.2 < z/2
		}), true, "need count_noise_std > noise_multiplier/2"},
		{"no-expected-clients", ul(func(c *server.Config) { c.DP.UserLevel.ExpectedClients = 0 }), true, "dp.user_level.expected_clients = 0"},
		{"num-fit-differs", ul(func(c *server.Config) { c.Sampling.NumFit = 5 }), true, "sampling.num_fit = 5 and dp.user_level.expected_clients = 4 differ"},
		{"min-fit-above-m", ul(func(c *server.Config) { c.Sampling.MinFit = 5 }), true, "sampling.min_fit = 5 exceeds dp.user_level.expected_clients = 4"},
		{"update-clip-conflict", ul(func(c *server.Config) { c.DP.UpdateClipNorm = 3 }), true, "dp.update_clip_norm = 3 conflicts"},
		{"robust-strategy", ul(func(c *server.Config) { c.Strategy.Name = "krum" }), true, `strategy.name "krum" needs every client's individual update, but user-level DP`},
		{"bad-delta", ul(func(c *server.Config) { c.DP.UserLevel.Delta = 2 }), true, "dp.user_level.delta = 2"},
		{"secagg-max-weight", ul(func(c *server.Config) { *c = userLevelSecAgg(*c); c.SecAgg.MaxWeight = 0.5 }), true, "secure_aggregation.max_weight = 0.5"},
		{"secagg-max-contributors", ul(func(c *server.Config) { *c = userLevelSecAgg(*c); c.SecAgg.MaxContributors = 5 }), true, "need at least 16"},
		{"discrete-adaptive", ul(func(c *server.Config) {
			*c = userLevelSecAgg(*c)
			c.DP.UserLevel.Mode, c.SecAgg.ValueBits, c.SecAgg.LogN = server.UserLevelDistributed, new(16), 13
			c.DP.UserLevel.Clip, c.DP.UserLevel.Adaptive = 0, server.AdaptiveClipConfig{InitialClip: 1, CountNoiseStd: 1}
		}), true, "the distributed discrete Gaussian gives every value the same noise"},
		{"discrete-variance-too-large", ul(func(c *server.Config) {
			*c = userLevelSecAgg(*c)
			c.DP.UserLevel.Mode, c.SecAgg.ValueBits, c.SecAgg.LogN, c.DP.UserLevel.NoiseMultiplier = server.UserLevelDistributed, new(24), 13, 1000
		}), true, "above 2^40: lower value_bits or the noise multiplier"},
		{"no-noise-source", ul(func(*server.Config) {}), false, "needs a noise source: set Options.Noise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts server.Options
			if tc.noise {
				opts.Noise = dp.NewDeterministicNoise(1)
			}
			_, err := server.New(tc.cfg, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	// The defaults: expected clients from num_fit, δ from dp.delta, the adaptive ones from
	// Andrew et al. 2021, and the update clip norm from the user-level clip.
	cfg := baseConfig(1, 2)
	cfg.Sampling.NumFit = 40
	cfg.DP.UserLevel = server.UserLevelDPConfig{Mode: server.UserLevelCentral, NoiseMultiplier: 1, Adaptive: server.AdaptiveClipConfig{InitialClip: 0.1}}
	c, err := server.New(cfg, server.Options{Noise: dp.NewDeterministicNoise(1)})
	if err != nil {
		t.Fatal(err)
	}
	u := c.Config().DP.UserLevel
	a := u.Adaptive
	if u.ExpectedClients != 40 || u.Delta != 1e-5 || a.TargetQuantile != 0.5 || a.LearningRate != 0.2 || a.CountNoiseStd != 2 || a.MaxClip != 1 || c.Config().DP.UpdateClipNorm != 1 {
		t.Fatalf("defaults %+v (update_clip_norm %v)", u, c.Config().DP.UpdateClipNorm)
	}
}

// TestUserLevelDiscreteNoise: distributed user-level DP with the packed encoding
// (value_bits) is the distributed discrete Gaussian (Kairouz, Liu and Steinke 2021): the
// fit tasks ask for no floating-point noise and carry each client's integer share variance
// σ_z² = ⌈(z·Δ2)²/m_min⌉ in the secure-aggregation parameters, with Δ2 = S/δ + √d in
// quantisation steps δ; zero updates leave in the decrypted sum noise of std
// √(count·σ_z²)·δ; and the rounds' ε is the discrete mechanism's, every round charged in
// full (dp.DiscreteUserLevel.Epsilon).
func TestUserLevelDiscreteNoise(t *testing.T) {
	const z, clip, bitsPerValue, rounds = 1.5, 2.0, 16, 3
	cfg := userLevelSecAgg(userLevelConfig(rounds, 4, server.UserLevelDistributed, z, clip))
	cfg.SecAgg.MinContributions, cfg.Sampling.MinFit = 4, 4
	cfg.SecAgg.ValueBits, cfg.SecAgg.LogN = new(bitsPerValue), 13
	if !cfg.DiscreteUserLevel() {
		t.Fatal("distributed user-level DP with value_bits is not the discrete mechanism")
	}
	dim, err := cfg.Model.NumParams()
	if err != nil {
		t.Fatal(err)
	}
	step := 2 * clip / float64(1<<bitsPerValue-1)
	l2 := clip/step + math.Sqrt(float64(dim))
	variance := math.Ceil(z * z * l2 * l2 / 4)
	n := newNetwork(t, cfg, userLevelOptions(11), zeroTrainers("a", "b", "c", "d"))
	initial := n.c.Global()
	var tasks, maxShares int
	n.inspect = func(to string, task *pb.Task) {
		if task.GetKind() != pb.TaskKind_TASK_KIND_FIT {
			return
		}
		tasks++
		maxShares = int(task.GetFit().GetSecagg().GetParams().GetMaxContributors())
		if got := task.GetFit().GetSecagg().GetParams().GetNoiseVariance(); float64(got) != variance {
			t.Errorf("fit task to %s: noise_variance %d, want ⌈(z·Δ2)²/m_min⌉ = %v", to, got, variance)
		}
		if std := task.GetFit().GetUserLevelDp().GetNoiseStd(); std != 0 {
			t.Errorf("fit task to %s asks for floating-point noise of std %v as well", to, std)
		}
	}
	n.run()
	if tasks == 0 {
		t.Fatal("no fit task inspected")
	}
	recs := recordsOf[server.RoundRecord](n)
	want := math.Sqrt(4*variance) * step
	if got := noiseStd(t, initial, recs, 4); math.Abs(got-want)/want > 0.05 {
		t.Errorf("noise on the sum has std %.5g, want √(4σ_z²)·δ = %.5g (±5%%)", got, want)
	}
	for _, rec := range recs {
		if math.Abs(rec.Metrics["noise_std"]-want) > 1e-9*want || rec.Metrics["server_noise_std"] != 0 {
			t.Errorf("round %d metrics %v: want noise_std %v, server_noise_std 0", rec.Round, rec.Metrics, want)
		}
	}
	ul := recordsOf[server.UserLevelPrivacyRecord](n)
	if len(ul) != rounds {
		t.Fatalf("%d user-level records, want %d", len(ul), rounds)
	}
	d := dp.DiscreteUserLevel{NoiseMultiplier: z, Clip: clip, MaxWeight: 1, Step: step, Dim: dim, MinShares: 4, MaxShares: maxShares}
	res, err := d.Epsilon(rounds, ul[rounds-1].Delta, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	last := ul[rounds-1]
	if math.Abs(last.Epsilon-res.Epsilon) > 1e-12 || !strings.Contains(last.Accounting, "discrete Gaussian") {
		t.Errorf("user-level record ε %v (%s), want the discrete mechanism's %v", last.Epsilon, last.Accounting, res.Epsilon)
	}
	gauss, err := dp.UserLevelEpsilon(dp.UserLevel{NoiseMultiplier: z, ClientsPerRound: 4, Population: 4, Rounds: rounds, Delta: last.Delta}, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Every client is in every round here (q = 1): the discrete mechanism with its variance
	// rounded up and a negligible τ costs what the Gaussian does at the same z.
	if math.Abs(res.Epsilon-gauss.Epsilon) > 1e-3*gauss.Epsilon {
		t.Errorf("discrete ε %v against the Gaussian's %v at q = 1: want them within 0.1%%", res.Epsilon, gauss.Epsilon)
	}
}
