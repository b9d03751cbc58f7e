package server

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/dp/dpsgd"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// Config is the coordinator's configuration: one typed struct filled from the server's
// YAML config, validated in one place by Validate.
type Config struct {
	// Rounds is the number of federated rounds to run.
	Rounds int `yaml:"rounds"`
	// Model is the architecture shipped to the clients.
	Model model.Spec `yaml:"model"`
	// Seed, when non-zero, fixes the initial model, the client sampling, the committee draw
	// and the session ids, for experiments and tests. It makes the sample public to anyone
	// who knows it, and privacy amplification by sampling assumes a secret sample: leave it
	// 0 in production, where all of them are drawn from crypto/rand.
	Seed      uint64          `yaml:"seed"`
	Sampling  SamplingConfig  `yaml:"sampling"`
	Deadlines DeadlineConfig  `yaml:"deadlines"`
	Strategy  strategy.Config `yaml:"strategy"`
	Training  TrainingConfig  `yaml:"training"`
	DP        DPConfig        `yaml:"dp"`
	SecAgg    SecAggConfig    `yaml:"secure_aggregation"`
	// Dataset, when set, is the schema every client reads its own files with (confide
	// client --data): shipped in every task, so all clients encode features, classes and
	// targets the same way. It must carry its statistics (data.Schema.ValidateFederated),
	// or give a numeric column's (or the target's) range without mean and std to have them
	// estimated by a statistics round before the first round (dp.statistics_noise_multiplier).
	Dataset *data.Schema `yaml:"dataset"`
}

// SamplingConfig says how many clients a round uses (Flower's fraction_fit,
// min_fit_clients, min_available_clients, fraction_evaluate, min_evaluate_clients).
type SamplingConfig struct {
	// FractionFit of the available clients train each round (at least MinFit). Default 1.
	FractionFit float64 `yaml:"fraction_fit"`
	// NumFit, when set, samples exactly this many clients (at least MinFit) instead of a
	// fraction.
	NumFit int `yaml:"num_fit"`
	// MinFit is the fewest clients sampled for training, and the fewest successful results
	// a round needs to update the model. Default 2.
	MinFit int `yaml:"min_fit"`
	// MinAvailable is the fewest connected clients before a round starts. Default MinFit.
	MinAvailable int `yaml:"min_available"`
	// FractionEvaluate and MinEvaluate size federated evaluation; both 0 (the default)
	// turns it off.
	FractionEvaluate float64 `yaml:"fraction_evaluate"`
	MinEvaluate      int     `yaml:"min_evaluate"`
}

// DeadlineConfig bounds each phase; a client that misses a deadline counts as dropped.
type DeadlineConfig struct {
	Fit      time.Duration `yaml:"fit"`       // default 10m
	Evaluate time.Duration `yaml:"evaluate"`  // default 2m
	KeySetup time.Duration `yaml:"key_setup"` // per key-setup stage, default 2m
	Decrypt  time.Duration `yaml:"decrypt"`   // default 2m
	// ClientTimeout: a client not heard from for this long is offline (default 30s).
	ClientTimeout time.Duration `yaml:"client_timeout"`
	// RegistrationTTL: a client offline for this long is forgotten (default 24h): its
	// registration no longer counts towards max_clients and it joins afresh. Its privacy
	// account stays. Members of the current key committee are kept.
	RegistrationTTL time.Duration `yaml:"registration_ttl"`
}

// TrainingConfig is the local training every fit task asks for.
type TrainingConfig struct {
	Epochs    int     `yaml:"epochs"`     // default 1
	BatchSize int     `yaml:"batch_size"` // default 64 (expected size under Poisson sampling)
	Optimizer string  `yaml:"optimizer"`  // sgd (default), adam or adamw
	LR        float64 `yaml:"lr"`         // default 0.1
	Momentum  float64 `yaml:"momentum"`   // sgd's momentum (0: none)
	// Nesterov momentum (sgd); WeightDecay (L2 for sgd and adam, decoupled for adamw);
	// Beta1, Beta2 and Eps of adam and adamw (0: 0.9, 0.999, 1e-8).
	Nesterov    bool    `yaml:"nesterov"`
	WeightDecay float64 `yaml:"weight_decay"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	// Schedule of the learning rate over a task's local steps: constant (default) or
	// cosine; Warmup steps of linear warm-up first.
	Schedule string `yaml:"schedule"`
	Warmup   int    `yaml:"warmup"`
	// WeightScale: a client's aggregation weight is min(examples / WeightScale, MaxWeight).
	// Set it to about the largest client's example count. Default 10000.
	WeightScale float64 `yaml:"weight_scale"`
	// LossCap bounds the loss a client reports inside the secure aggregate (training and
	// evaluation statistics travel there as bounded slots; larger losses count as the cap).
	// Default 20.
	LossCap float64 `yaml:"loss_cap"`
}

// OptimizerConfig is the clients' local optimizer.
func (t TrainingConfig) OptimizerConfig() model.OptimizerConfig {
	return model.OptimizerConfig{Name: t.Optimizer, LR: t.LR, Momentum: t.Momentum, Nesterov: t.Nesterov,
		WeightDecay: t.WeightDecay, Beta1: t.Beta1, Beta2: t.Beta2, Eps: t.Eps}
}

// DPConfig is the differential privacy asked of the clients.
type DPConfig struct {
	// NoiseMultiplier σ of DP-SGD on every client (record-level DP); 0 turns DP-SGD off.
	NoiseMultiplier float64 `yaml:"noise_multiplier"`
	// MaxGradNorm is DP-SGD's per-example clipping bound C (default 1).
	MaxGradNorm float64 `yaml:"max_grad_norm"`
	// Delta is the δ of every reported ε (default 1e-5).
	Delta float64 `yaml:"delta"`
	// BudgetEpsilon is every client's lifetime record-level budget at Delta (0: no limit,
	// still accounted). The server samples a round's clients only among those whose ε, as
	// it accounts it (the fit tasks it issued them, less those they refused), leaves room
	// for the round's task, so it does not send tasks that clients with this budget would
	// refuse, nor tasks to a client that refused one on its own budget (with or without
	// budget_epsilon; forgotten on a restart): the sample is still drawn with the server's
	// generator (seeded by seed), from the clients with room. The ε of a task follows from σ, q and the steps alone, so
	// skipping clients changes no one's ε (amplification by sampling is counted only over
	// the records of a client's DP-SGD batches). A client's own budget (confide client
	// --budget-epsilon; in confide sim, every client's) still refuses what would pass it.
	// User-level DP's Poisson sampling of clients is left as its accountant assumes.
	BudgetEpsilon float64 `yaml:"budget_epsilon"`
	// SampleRate q is the DP-SGD schedule the server fixes for every client: each step's
	// batch holds every local example independently with probability q (expected batch
	// q·n), and a round runs Steps steps (default ⌈training.epochs / q⌉, i.e. epochs passes
	// in expectation). Because the schedule does not depend on a client's data, the server
	// accounts every client's record-level ε from the tasks it issued, and the ε a client
	// reports reveals nothing about its data. The server requires it when noise_multiplier
	// > 0: choose about training.batch_size / (examples of a typical client), which confide
	// sim takes by default (its mean client).
	SampleRate float64 `yaml:"sample_rate"`
	Steps      int     `yaml:"steps"`
	// Clipping of DP-SGD's per-example gradients: flat (default) or per-layer, with
	// LayerMaxGradNorms the thresholds C_l of the model's parametrised layers
	// (Σ_l C_l² = max_grad_norm²; none: max_grad_norm split equally). See dp/dpsgd.
	Clipping          string    `yaml:"clipping"`
	LayerMaxGradNorms []float64 `yaml:"layer_max_grad_norms"`
	// UpdateClipNorm bounds ‖Δ‖₂ of every client update (DP-FedAvg user-level clipping).
	// Required under secure aggregation, where it also bounds every coordinate. Default 0
	// without secure aggregation (no clipping), 10 with it. Under user-level DP it is
	// UserLevel's clip (the largest adaptive clip): leave it unset.
	UpdateClipNorm float64 `yaml:"update_clip_norm"`
	// Distributed splits DP-SGD's noise across the clients of each secure aggregate
	// (DP-FedSGD with distributed noise): every sampled client takes one DP-SGD step
	// (dp.steps 1, plain SGD) and adds noise of multiplier noise_multiplier/√m, m the
	// secure aggregation's min_contributions, so every sum the committee decrypts carries
	// noise_multiplier's noise and each client's record-level ε is that of central DP-SGD
	// at noise_multiplier and sample_rate — √m times less noise in the model than every
	// client adding all of it, on the assumption that the other updates in a sum are
	// honest. Clients divide by sample_rate·training.weight_scale and send weight 1. Needs
	// secure aggregation with secure_aggregation.threshold above half the committee; against
	// an active server, its authenticated form (passive mode trusts the server to present
	// honest aggregates). Not with user-level DP or scaffold; the fit tasks carry no
	// training statistics. A client with --local-noise-only refuses it.
	Distributed bool `yaml:"distributed"`
	// UserLevel turns on user-level DP for the rounds (DP-FedAvg).
	UserLevel UserLevelDPConfig `yaml:"user_level"`
	// Accountant computes every ε the server reports, record-level and user-level: rdp
	// (the default) or prv (tighter; see dp/accountant).
	Accountant string `yaml:"accountant"`
	// StatisticsNoiseMultiplier z (default 5) of the statistics round that estimates the
	// mean and std of the dataset's columns given with a range and without them, before
	// the first round: a Gaussian mechanism over one row's sensitivity, charged to every
	// sampled client's ledger and to the server's record-level account.
	StatisticsNoiseMultiplier float64 `yaml:"statistics_noise_multiplier"`
	// StatisticsMaxRows (default 100,000) is the most rows of a client the statistics
	// round sums (it scales the sums into secure aggregation's coordinate bound).
	StatisticsMaxRows int `yaml:"statistics_max_rows"`
}

// validateDistributed checks dp.distributed against what its guarantee needs (see
// dp.DistributedStep; the clients check the same on every task).
func (c Config) validateDistributed(bad func(string, ...any)) {
	d, t := c.DP, c.Training
	if !d.Distributed {
		return
	}
	switch {
	case !(d.NoiseMultiplier > 0):
		bad("dp.distributed splits DP-SGD's noise across clients: set dp.noise_multiplier")
		return
	case !c.SecAgg.Enabled:
		bad("dp.distributed needs secure_aggregation.enabled: only sums of the clients' noise shares may ever be decrypted")
		return
	case d.Steps != 1:
		bad("dp.distributed takes one DP-SGD step a round: set dp.steps: 1 (got %d); a second local step would act on an update that carries only a share of the noise", d.Steps)
	case d.UserLevel.On() || c.Strategy.Name == strategy.NameScaffold:
		bad("dp.distributed does not combine with dp.user_level or the scaffold strategy")
	case (t.Optimizer != "" && t.Optimizer != "sgd") || t.Nesterov || t.WeightDecay != 0 || t.Warmup != 0:
		bad("dp.distributed needs plain SGD on the clients (training.optimizer sgd without nesterov, weight_decay or warmup), whose one step is linear in the noised gradient")
	case c.SecAgg.MaxWeight < 1:
		bad("secure_aggregation.max_weight = %v: dp.distributed gives every client weight 1; raise it to 1 (the default)", c.SecAgg.MaxWeight)
	case c.valueBits() != 0:
		bad("dp.distributed with secure_aggregation.value_bits %d: the packed encoding rounds each client's update after its noise share is drawn, so the decrypted sum is no longer the Gaussian mechanism the clients account; use the float encoding (value_bits 0, or leave value_bits unset)", c.valueBits())
	}
	dim, err := c.Model.NumParams()
	if err != nil {
		return
	}
	st := dp.DistributedStep{NoiseMultiplier: d.NoiseMultiplier, MaxGradNorm: d.MaxGradNorm, SampleRate: d.SampleRate, WeightScale: t.WeightScale,
		LR: t.LR, UpdateClip: d.UpdateClipNorm, Shares: c.SecAgg.MinContributions, Dim: dim}
	if _, err := st.SumClip(); err != nil {
		bad("%v", err)
	}
}

// Accounting returns the accountant configuration dp.accountant selects.
func (d DPConfig) Accounting() (accountant.Config, error) {
	m, err := accountant.ParseMethod(d.Accountant)
	if err != nil {
		return accountant.Config{}, fmt.Errorf("dp.accountant = %q: use rdp or prv", d.Accountant)
	}
	return accountant.Config{Method: m}, nil
}

// User-level DP modes: where the Gaussian noise on the sum of updates is drawn.
const (
	// UserLevelCentral: the server adds N(0, z²S²) to the (decrypted) sum. The clients and
	// whoever sees the model are protected; the server is trusted with the un-noised sum.
	UserLevelCentral = "central"
	// UserLevelDistributed: each of the m expected clients adds N(0, z²S²/m) to its clipped
	// update before encrypting it, so the decrypted sum is already noised and the server
	// never sees an un-noised one. Needs secure aggregation.
	UserLevelDistributed = "distributed"
)

// UserLevelDPConfig is user-level differential privacy for federated rounds: DP-FedAvg
// (McMahan et al. 2018, "Learning Differentially Private Recurrent Language Models").
// Every client clips its whole update to L2 norm S; Gaussian noise of standard deviation z·S
// is added to the sum of the updates (centrally, or split across the clients); the sum is
// divided by the expected number of clients m, not by how many reported or by their
// examples. Clients are Poisson-sampled with probability m / (clients online), and the
// server accounts the user-level (ε, δ) of the rounds with the accountant of dp.accountant
// for the subsampled Gaussian (q = m / population, T = rounds).
//
// Aggregation weights are uniform under user-level DP: the weighted mean Σ w_i Δ_i / Σ w_i
// divides by a data-dependent total weight, which is itself not private, so every client
// counts 1 and the denominator is the constant m.
type UserLevelDPConfig struct {
	// Mode is central or distributed (see the constants); empty turns user-level DP off.
	Mode string `yaml:"mode"`
	// NoiseMultiplier z: the noise on the sum has standard deviation z·S. It is the
	// multiplier accounted for; with adaptive clipping the update gets a slightly larger
	// one, so that update and clip count together cost no more (Andrew et al. 2021, Sec. 3).
	NoiseMultiplier float64 `yaml:"noise_multiplier"`
	// Clip is the fixed clip norm S of every update. Set it, or Adaptive.InitialClip.
	Clip float64 `yaml:"clip"`
	// Adaptive clipping tracks a quantile of the update norms instead of a fixed S.
	Adaptive AdaptiveClipConfig `yaml:"adaptive"`
	// ExpectedClients m per round (default sampling.num_fit). Each online client is
	// sampled with probability m / (clients online).
	ExpectedClients int `yaml:"expected_clients"`
	// Delta is the δ of the user-level ε (default dp.delta); keep it well below
	// 1 / (number of clients).
	Delta float64 `yaml:"delta"`
}

// AdaptiveClipConfig is adaptive clipping (Andrew et al. 2021, "Differentially Private
// Learning with Adaptive Clipping"): each client reports, inside the secure aggregate, whether
// its update norm was within the round's clip; the server updates the clip geometrically
// towards the target quantile of the norms from the noisy count. Zero fields take the
// paper's defaults.
type AdaptiveClipConfig struct {
	// InitialClip > 0 turns adaptive clipping on and is the first round's clip norm.
	InitialClip float64 `yaml:"initial_clip"`
	// TargetQuantile γ of the update norms the clip tracks (default 0.5, the median).
	TargetQuantile float64 `yaml:"target_quantile"`
	// LearningRate η of the geometric update C ← C·exp(−η(b̄ − γ)) (default 0.2).
	LearningRate float64 `yaml:"learning_rate"`
	// CountNoiseStd σ_b of the noise on the count of clients under the clip (default
	// expected_clients / 20). It must exceed noise_multiplier / 2.
	CountNoiseStd float64 `yaml:"count_noise_std"`
	// MaxClip caps the clip (default 10 × initial_clip); secure aggregation's bound on every
	// coordinate is sized for it.
	MaxClip float64 `yaml:"max_clip"`
}

// On reports whether user-level DP is configured.
func (u UserLevelDPConfig) On() bool { return u.Mode != "" }

// IsAdaptive reports whether the clip norm is adaptive.
func (u UserLevelDPConfig) IsAdaptive() bool { return u.Adaptive.InitialClip != 0 }

// MaxClip is the largest clip norm a round can use: the fixed clip, or the adaptive cap.
func (u UserLevelDPConfig) MaxClip() float64 {
	if u.IsAdaptive() {
		return u.Adaptive.MaxClip
	}
	return u.Clip
}

// UpdateNoiseMultiplier is z_Δ, the multiplier of the noise on the update: z, or with
// adaptive clipping the larger one that leaves room for the count noise. It fails when the
// count noise is too small for z.
func (u UserLevelDPConfig) UpdateNoiseMultiplier() (float64, error) {
	if !u.IsAdaptive() {
		return u.NoiseMultiplier, nil
	}
	return dp.UpdateNoiseMultiplier(u.NoiseMultiplier, u.Adaptive.CountNoiseStd)
}

// userLevelTailSigmas bounds a client's distributed noise for the secure-aggregation
// coordinate bound: a draw beyond 10 standard deviations has probability 1.5e-23, and
// a client whose noised value exceeds the bound fails its task rather than send it.
const userLevelTailSigmas = 10

// coordinateBound is the largest |value| a client puts in any coordinate of its update
// vector: the clip norm, plus under distributed noise (shares sized for sums of at least
// minContributions updates) the noise's tail, and the centred clip indicator (±½) with its
// noise.
func (u UserLevelDPConfig) coordinateBound(minContributions int) float64 {
	s := u.MaxClip()
	b := s
	if u.Mode == UserLevelDistributed {
		if z, err := u.UpdateNoiseMultiplier(); err == nil && minContributions > 0 {
			b += userLevelTailSigmas * z * s / math.Sqrt(float64(minContributions))
		}
	}
	if u.IsAdaptive() {
		ind := 0.5
		if u.Mode == UserLevelDistributed && minContributions > 0 {
			ind += userLevelTailSigmas * u.Adaptive.CountNoiseStd / math.Sqrt(float64(minContributions))
		}
		b = max(b, ind)
	}
	return b
}

// DistributedMinContributions is the default secure_aggregation.min_contributions under
// distributed user-level DP with m expected clients: ⌊m − 2√m⌋ (at least 2). The committee
// decrypts no sum of fewer updates, and each client's noise share is sized so that this
// many shares make the accounted noise; a Poisson(m) round falls below it with probability
// about 2%, and then fails without a release (it still counts for the accountant). A
// larger value wastes less noise in the typical round and fails more rounds.
func DistributedMinContributions(m int) int {
	return max(2, int(math.Floor(float64(m)-2*math.Sqrt(float64(m)))))
}

// SecAggConfig turns on secure aggregation and sizes the key committee and the CKKS
// parameters (zero fields take secagg's defaults).
type SecAggConfig struct {
	// Enabled turns secure aggregation on: the server sees only the sum of the updates.
	Enabled bool `yaml:"enabled"`
	// CommitteeSize K and Threshold t: any t of the K members decrypt; up to K−t may drop.
	// t must exceed K/2, so that any two decrypting sets share a member, who opens one
	// aggregate a round (two disjoint sets could open a sum with and without a client);
	// against c members colluding with the server, t > (K + c)/2.
	CommitteeSize int `yaml:"committee_size"`
	Threshold     int `yaml:"threshold"`
	// MinContributions m: members refuse to decrypt aggregates of fewer updates. At least
	// 2 (an aggregate of one update is that client's update) and at most sampling.min_fit.
	// Default 2.
	MinContributions int `yaml:"min_contributions"`
	// RotateEvery starts a new committee every this many rounds (0: keep it while it can
	// decrypt).
	RotateEvery int `yaml:"rotate_every"`
	// Passive runs secure aggregation without identities: nobody signs key material or
	// uploads and committee members decrypt what the server presents, which protects
	// updates from an honest-but-curious server only. By default a server with a client CA
	// (mutual TLS) and the simulator run the authenticated protocol; passive is for
	// measuring what it costs.
	Passive bool `yaml:"passive"`
	// LogN is log2 of the CKKS ring degree, the values a ciphertext carries (12…16;
	// default 14).
	LogN int `yaml:"log_n"`
	// LogScale is log2 of the float encoding's scale: more bits, more precision, less room
	// for the sum (default 45). Setting it selects the float encoding when value_bits is
	// unset.
	LogScale int `yaml:"log_scale"`
	// FloodingSigma is the flooding noise of the committee's decryption shares (at least
	// 2^20; default 2^30).
	FloodingSigma float64 `yaml:"flooding_sigma"`
	// MaxContributors is the most updates one aggregate may hold: by default the largest
	// count secagg's overflow budget allows for the coordinate bound, at most 1000.
	MaxContributors int `yaml:"max_contributors"`
	// MaxWeight bounds a client's aggregation weight min(examples / training.weight_scale,
	// max_weight), with or without secure aggregation, so both modes weight clients alike
	// (default 1).
	MaxWeight float64 `yaml:"max_weight"`
	// ValueBits selects the encoding of the encrypted updates. 1…24 is secagg's packed
	// encoding: every value a client encrypts is quantised to this many bits (unbiased
	// stochastic rounding over ±the coordinate bound) and several share a ciphertext
	// coefficient, with room for the sum of max_contributors updates and for the
	// decryption noise, so the rounding is the only error; log_scale stays 0 with it. 0
	// is the float encoding: one value per coefficient at scale 2^log_scale, 16 bytes per
	// value. At 10^6 parameters and 1000 contributors an upload is 0.98× the raw float64
	// bytes at 14 bits (0.92× at 11) against the float encoding's 2.03×; a model of
	// 50,890 parameters takes one ciphertext of 3 primes (787 kB) instead of 4 of one
	// (1.05 MB). Unset (the default): the packed encoding at 14 bits, or the float
	// encoding where the configuration relies on it — log_scale set; dp.user_level
	// (distributed noise shares would become the distributed discrete Gaussian, accounted
	// without amplification by sampling; central noise is calibrated to a clip the
	// rounding can exceed); dp.distributed and a dataset's statistics round (their noise
	// shares would be rounded after they are drawn); log_n 12 (one 60-bit prime; the
	// packed encoding needs two). Set explicitly, value_bits > 0 with dp.user_level.mode
	// distributed makes the clients' noise shares the distributed discrete Gaussian
	// (integer shares added after quantising; Kairouz, Liu and Steinke 2021), accounted
	// with every round charged in full; with dp.distributed, central user-level DP or a
	// statistics round it is refused, since their accounting does not cover the rounding.
	ValueBits *int `yaml:"value_bits"`
	// Primes is the packed encoding's number of 60-bit primes (0: the fewest bytes per
	// value).
	Primes int `yaml:"primes"`
}

// WithDefaults returns c with its zero fields filled.
func (c Config) WithDefaults() Config {
	s := &c.Sampling
	minFitSet := s.MinFit != 0
	if s.FractionFit == 0 {
		s.FractionFit = 1
	}
	if s.MinFit == 0 {
		s.MinFit = 2
	}
	if s.MinAvailable == 0 {
		s.MinAvailable = s.MinFit
	}
	d := &c.Deadlines
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setDur(&d.Fit, 10*time.Minute)
	setDur(&d.Evaluate, 2*time.Minute)
	setDur(&d.KeySetup, 2*time.Minute)
	setDur(&d.Decrypt, 2*time.Minute)
	setDur(&d.ClientTimeout, 30*time.Second)
	setDur(&d.RegistrationTTL, 24*time.Hour)
	if c.Strategy.Name == "" {
		c.Strategy.Name = strategy.NameFedAvg
	}
	c.Strategy.Rounds = c.Rounds // the span of a server learning-rate decay
	t := &c.Training
	if t.Epochs == 0 {
		t.Epochs = 1
	}
	if t.BatchSize == 0 {
		t.BatchSize = 64
	}
	if t.Optimizer == "" {
		t.Optimizer = "sgd"
	}
	if t.LR == 0 {
		t.LR = 0.1
	}
	if t.WeightScale == 0 {
		t.WeightScale = 10000
	}
	if t.LossCap == 0 {
		t.LossCap = 20
	}
	if d := &c.DP; d.NoiseMultiplier > 0 && d.SampleRate > 0 && d.SampleRate <= 1 && d.Steps == 0 {
		d.Steps = DPStepsPerRound(t.Epochs, d.SampleRate)
	}
	if c.DP.MaxGradNorm == 0 {
		c.DP.MaxGradNorm = 1
	}
	if c.DP.Delta == 0 {
		c.DP.Delta = 1e-5
	}
	if u := &c.DP.UserLevel; u.On() {
		if u.ExpectedClients == 0 {
			u.ExpectedClients = s.NumFit
		}
		if u.Delta == 0 {
			u.Delta = c.DP.Delta
		}
		if a := &u.Adaptive; u.IsAdaptive() {
			if a.TargetQuantile == 0 {
				a.TargetQuantile = 0.5
			}
			if a.LearningRate == 0 {
				a.LearningRate = 0.2
			}
			if a.CountNoiseStd == 0 {
				a.CountNoiseStd = float64(u.ExpectedClients) / 20
			}
			if a.MaxClip == 0 {
				a.MaxClip = 10 * a.InitialClip
			}
		}
		if c.DP.UpdateClipNorm == 0 {
			c.DP.UpdateClipNorm = u.MaxClip()
		}
	}
	if c.SecAgg.MaxWeight == 0 {
		c.SecAgg.MaxWeight = secagg.DefaultMaxWeight
	}
	if c.SecAgg.Enabled {
		if c.DP.UpdateClipNorm == 0 {
			c.DP.UpdateClipNorm = 10
		}
		if c.SecAgg.ValueBits == nil {
			b := c.defaultValueBits()
			c.SecAgg.ValueBits = &b
		}
		if c.SecAgg.MinContributions == 0 {
			c.SecAgg.MinContributions = secagg.MinContributions
			if u := c.DP.UserLevel; u.Mode == UserLevelDistributed && u.ExpectedClients > 0 {
				c.SecAgg.MinContributions = DistributedMinContributions(u.ExpectedClients)
			}
		}
		if !minFitSet && s.MinFit < c.SecAgg.MinContributions {
			// A round needs at least as many updates as the committee decrypts.
			s.MinFit = c.SecAgg.MinContributions
			s.MinAvailable = max(s.MinAvailable, s.MinFit)
		}
		if c.SecAgg.MaxContributors == 0 {
			// The largest count secagg's overflow budget allows for these parameters (the
			// coordinate bound, weights, scale, modulus), up to secagg's default. Invalid
			// parameters keep the default: Validate reports them.
			c.SecAgg.MaxContributors = secagg.DefaultMaxContributors
			if n, err := secagg.MaxContributorsFor(c.secAggLiteral()); err == nil {
				c.SecAgg.MaxContributors = min(secagg.DefaultMaxContributors, n)
			}
		}
	}
	c.Model = c.datasetEmbeddings()
	return c
}

// Validate checks the configuration (after WithDefaults), naming the key and the fix.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Rounds < 1 {
		bad("rounds = %d: must be ≥ 1", c.Rounds)
	}
	if err := c.Model.Validate(); err != nil {
		bad("model: %v", err)
	}
	c.validateDataset(bad)
	s := c.Sampling
	if !(s.FractionFit > 0 && s.FractionFit <= 1) {
		bad("sampling.fraction_fit = %v: must be in (0, 1]", s.FractionFit)
	}
	if s.NumFit < 0 {
		bad("sampling.num_fit = %d: must be ≥ 0 (0: use fraction_fit)", s.NumFit)
	}
	if s.MinFit < 1 {
		bad("sampling.min_fit = %d: must be ≥ 1", s.MinFit)
	}
	if s.MinAvailable < s.MinFit {
		bad("sampling.min_available = %d: must be ≥ sampling.min_fit (%d)", s.MinAvailable, s.MinFit)
	}
	if s.FractionEvaluate < 0 || s.FractionEvaluate > 1 {
		bad("sampling.fraction_evaluate = %v: must be in [0, 1]", s.FractionEvaluate)
	}
	if s.MinEvaluate < 0 {
		bad("sampling.min_evaluate = %d: must be ≥ 0", s.MinEvaluate)
	}
	for key, d := range map[string]time.Duration{"fit": c.Deadlines.Fit, "evaluate": c.Deadlines.Evaluate, "key_setup": c.Deadlines.KeySetup, "decrypt": c.Deadlines.Decrypt, "client_timeout": c.Deadlines.ClientTimeout} {
		if d <= 0 {
			bad("deadlines.%s = %v: must be positive (e.g. 2m)", key, d)
		}
	}
	if err := c.Strategy.Validate(c.SecAgg.Enabled); err != nil {
		errs = append(errs, err)
	}
	if f := c.Strategy.Byzantine; c.Strategy.Name == strategy.NameKrum && s.MinFit <= 2*f+2 {
		bad("sampling.min_fit = %d with strategy.byzantine = %d: Krum needs more than 2f + 2 = %d updates a round (Blanchard et al. 2017); raise sampling.min_fit or lower strategy.byzantine", s.MinFit, f, 2*f+2)
	}
	t := c.Training
	if _, err := model.NewOptimizer(t.OptimizerConfig()); err != nil {
		bad("training: %v", err)
	}
	switch t.Schedule {
	case "", "constant", "cosine":
	default:
		bad("training.schedule = %q: use constant or cosine", t.Schedule)
	}
	if t.Warmup < 0 {
		bad("training.warmup = %d: must be ≥ 0 (steps of linear warm-up)", t.Warmup)
	}
	if t.Epochs < 1 {
		bad("training.epochs = %d: must be ≥ 1", t.Epochs)
	}
	if t.BatchSize < 1 {
		bad("training.batch_size = %d: must be ≥ 1", t.BatchSize)
	}
	if !(t.WeightScale > 0) || math.IsInf(t.WeightScale, 0) {
		bad("training.weight_scale = %v: must be positive", t.WeightScale)
	}
	if !(t.LossCap > 0) || math.IsInf(t.LossCap, 0) {
		bad("training.loss_cap = %v: must be finite and > 0 (default 20)", t.LossCap)
	}
	d := c.DP
	if d.NoiseMultiplier < 0 || math.IsNaN(d.NoiseMultiplier) || math.IsInf(d.NoiseMultiplier, 0) {
		bad("dp.noise_multiplier = %v: must be ≥ 0 (0 turns DP-SGD off)", d.NoiseMultiplier)
	}
	if !(d.MaxGradNorm > 0) || math.IsInf(d.MaxGradNorm, 0) {
		bad("dp.max_grad_norm = %v: must be positive", d.MaxGradNorm)
	}
	if !(d.Delta > 0 && d.Delta < 1) {
		bad("dp.delta = %v: must be in (0, 1), typically below 1/number of examples", d.Delta)
	}
	if d.BudgetEpsilon < 0 || math.IsNaN(d.BudgetEpsilon) || math.IsInf(d.BudgetEpsilon, 0) {
		bad("dp.budget_epsilon = %v: must be ≥ 0 (0: no limit)", d.BudgetEpsilon)
	}
	if _, err := d.Accounting(); err != nil {
		bad("%v", err)
	}
	if d.UpdateClipNorm < 0 || math.IsNaN(d.UpdateClipNorm) || math.IsInf(d.UpdateClipNorm, 0) {
		bad("dp.update_clip_norm = %v: must be ≥ 0", d.UpdateClipNorm)
	}
	if d.NoiseMultiplier > 0 {
		switch {
		case d.SampleRate == 0:
			bad("dp.sample_rate is not set: DP-SGD (dp.noise_multiplier = %v) needs the server to fix the sampling rate q, so that every client's ε follows from its tasks and not from its data; set it to about training.batch_size / (examples of a typical client), e.g. %.3g for %d of 1000", d.NoiseMultiplier, min(1, float64(t.BatchSize)/1000), t.BatchSize)
		case !(d.SampleRate > 0 && d.SampleRate <= 1):
			bad("dp.sample_rate = %v: must be in (0, 1]", d.SampleRate)
		case d.Steps < 1:
			bad("dp.steps = %d: must be ≥ 1 (default ⌈training.epochs / dp.sample_rate⌉)", d.Steps)
		}
		if err := (dpsgd.Config{NoiseMultiplier: d.NoiseMultiplier, MaxGradNorm: d.MaxGradNorm, ExpectedBatch: 1, Clipping: d.Clipping, LayerMaxGradNorms: d.LayerMaxGradNorms}).Validate(); err != nil {
			bad("dp: %v", err)
		}
	} else if d.SampleRate != 0 || d.Steps != 0 {
		bad("dp.sample_rate and dp.steps schedule DP-SGD, which is off (dp.noise_multiplier = 0): drop them or set dp.noise_multiplier")
	}
	c.validateUserLevel(bad)
	c.validateDistributed(bad)
	if w := c.SecAgg.MaxWeight; !(w > 0) || math.IsInf(w, 0) {
		bad("secure_aggregation.max_weight = %v: must be positive (the largest aggregation weight of a client, default 1)", w)
	}
	if c.SecAgg.Enabled && c.Strategy.Name == strategy.NameScaffold && c.SecAgg.MaxWeight < 1 {
		bad("secure_aggregation.max_weight = %v: scaffold gives every client weight 1; raise it to 1 (the default)", c.SecAgg.MaxWeight)
	}
	if c.SecAgg.Enabled {
		if !(d.UpdateClipNorm > 0) {
			bad("dp.update_clip_norm = %v: secure aggregation needs clipped updates (> 0) to bound the encrypted sum", d.UpdateClipNorm)
		} else if _, err := c.secAggParams(); err != nil {
			bad("%v", secAggKeys(err))
		} else if err := c.committeeConfig().Validate(mustParams(c)); err != nil {
			bad("%v", secAggKeys(err))
		}
		if c.SecAgg.CommitteeSize > s.MinAvailable {
			bad("secure_aggregation.committee_size = %d exceeds sampling.min_available = %d: the committee is drawn from the connected clients", c.SecAgg.CommitteeSize, s.MinAvailable)
		}
		if c.SecAgg.MaxContributors > 0 && s.MinFit > c.SecAgg.MaxContributors {
			bad("sampling.min_fit = %d exceeds secure_aggregation.max_contributors = %d (the overflow budget of one aggregate)", s.MinFit, c.SecAgg.MaxContributors)
		}
		if s.MinFit < c.SecAgg.MinContributions {
			bad("sampling.min_fit = %d is below secure_aggregation.min_contributions = %d: a round could succeed with fewer updates than the committee decrypts (with one, the server would see that client's update); raise sampling.min_fit to at least %d", s.MinFit, c.SecAgg.MinContributions, c.SecAgg.MinContributions)
		}
		if c.SecAgg.RotateEvery < 0 {
			bad("secure_aggregation.rotate_every = %d: must be ≥ 0", c.SecAgg.RotateEvery)
		}
	}
	return errors.Join(errs...)
}

// validateUserLevel checks dp.user_level (after WithDefaults) against the rest.
func (c Config) validateUserLevel(bad func(format string, a ...any)) {
	u := c.DP.UserLevel
	if !u.On() {
		return
	}
	switch u.Mode {
	case UserLevelCentral:
		if c.SecAgg.Enabled && c.valueBits() != 0 {
			bad("dp.user_level.mode = central with secure_aggregation.value_bits %d: the packed encoding rounds every client's update to its grid, which can take its norm past dp.user_level's clip by up to √d grid steps, and the server's noise is calibrated to the clip alone; use the float encoding (value_bits 0, or leave value_bits unset) or mode: distributed", c.valueBits())
		}
	case UserLevelDistributed:
		if !c.SecAgg.Enabled {
			bad("dp.user_level.mode = distributed needs secure_aggregation.enabled: without it the server sees every client's update with only its 1/√m share of the noise; use mode: central or turn secure aggregation on")
		}
		if c.DiscreteUserLevel() {
			if u.IsAdaptive() {
				bad("dp.user_level.adaptive with mode distributed and secure_aggregation.value_bits %d: the distributed discrete Gaussian gives every value the same noise, and the clip indicator needs its own; use a fixed dp.user_level.clip, or the float encoding (value_bits 0)", c.valueBits())
			} else if _, err := c.discreteUserLevel(); err != nil {
				bad("dp.user_level with secure_aggregation.value_bits %d: %v", c.valueBits(), err)
			}
		}
	default:
		bad("dp.user_level.mode = %q: use central (the server adds the noise) or distributed (the clients add shares of it under secure aggregation); leave it empty to turn user-level DP off", u.Mode)
	}
	if !(u.NoiseMultiplier > 0) || math.IsInf(u.NoiseMultiplier, 0) {
		bad("dp.user_level.noise_multiplier = %v: must be finite and > 0 (e.g. 1)", u.NoiseMultiplier)
	}
	switch {
	case u.IsAdaptive() && u.Clip != 0:
		bad("dp.user_level.clip = %v and dp.user_level.adaptive.initial_clip = %v: set one, a fixed clip or an adaptive one", u.Clip, u.Adaptive.InitialClip)
	case !u.IsAdaptive() && (!(u.Clip > 0) || math.IsInf(u.Clip, 0)):
		bad("dp.user_level.clip = %v: must be finite and > 0 (the L2 bound S of every update), or set dp.user_level.adaptive.initial_clip", u.Clip)
	}
	if a := u.Adaptive; u.IsAdaptive() {
		if _, err := dp.NewAdaptiveClipper(a.literal(u.ExpectedClients)); err != nil {
			bad("dp.user_level.adaptive: %v", err)
		}
		_, zErr := u.UpdateNoiseMultiplier()
		switch {
		case !(a.CountNoiseStd > 0):
			bad("dp.user_level.adaptive.count_noise_std = %v: must be > 0 (default expected_clients/20): a noiseless count of clipped updates is not private", a.CountNoiseStd)
		case zErr != nil && u.NoiseMultiplier > 0:
			bad("dp.user_level.adaptive.count_noise_std = %v leaves no budget for the update at noise_multiplier %v: need count_noise_std > noise_multiplier/2 = %v; raise count_noise_std (its default is expected_clients/20) or lower noise_multiplier", a.CountNoiseStd, u.NoiseMultiplier, u.NoiseMultiplier/2)
		}
	} else if a := u.Adaptive; a.TargetQuantile != 0 || a.LearningRate != 0 || a.CountNoiseStd != 0 || a.MaxClip != 0 {
		bad("dp.user_level.adaptive: target_quantile, learning_rate, count_noise_std and max_clip need adaptive.initial_clip > 0 (adaptive clipping is off without it)")
	}
	s := c.Sampling
	switch {
	case u.ExpectedClients < 1:
		bad("dp.user_level.expected_clients = %d: must be ≥ 1 (the clients m a round expects; the sum is divided by m); set it or sampling.num_fit", u.ExpectedClients)
	case s.NumFit > 0 && s.NumFit != u.ExpectedClients:
		bad("sampling.num_fit = %d and dp.user_level.expected_clients = %d differ: under user-level DP clients are Poisson-sampled with m = expected_clients per round; drop sampling.num_fit", s.NumFit, u.ExpectedClients)
	case s.MinFit > u.ExpectedClients:
		bad("sampling.min_fit = %d exceeds dp.user_level.expected_clients = %d: most rounds would fail", s.MinFit, u.ExpectedClients)
	}
	if !(u.Delta > 0 && u.Delta < 1) {
		bad("dp.user_level.delta = %v: must be in (0, 1), well below 1/(number of clients)", u.Delta)
	}
	if c.DP.UpdateClipNorm != u.MaxClip() {
		bad("dp.update_clip_norm = %v conflicts with user-level DP's clip %v: under dp.user_level the clip is dp.user_level.clip (or adaptive.max_clip); leave dp.update_clip_norm unset", c.DP.UpdateClipNorm, u.MaxClip())
	}
	if s.FractionEvaluate > 0 || s.MinEvaluate > 0 {
		bad("sampling.fraction_evaluate = %v, sampling.min_evaluate = %d: federated evaluation releases statistics of the clients' test data that the user-level guarantee does not cover; evaluate centrally under dp.user_level", s.FractionEvaluate, s.MinEvaluate)
	}
	if c.Strategy.Name == strategy.NameScaffold {
		bad("strategy.name scaffold: its control-variate deltas would need their own clipping and noise under user-level DP; use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, or turn dp.user_level off")
	}
	if strategy.IsRobust(c.Strategy.Name) {
		bad("strategy.name %q needs every client's individual update, but user-level DP releases only the noised sum: use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, or turn dp.user_level off", c.Strategy.Name)
	}
	if sa := c.SecAgg; sa.Enabled {
		if sa.MaxWeight < 1 {
			bad("secure_aggregation.max_weight = %v: user-level DP gives every client weight 1; raise it to 1 (the default)", sa.MaxWeight)
		}
		if m := u.ExpectedClients; m > 0 && sa.MaxContributors > 0 && sa.MaxContributors < poissonHeadroom(m) {
			bad("secure_aggregation.max_contributors = %d leaves no room for Poisson sampling above dp.user_level.expected_clients = %d: need at least %d (m + 6√m)", sa.MaxContributors, m, poissonHeadroom(m))
		}
	}
}

// DPStepsPerRound is the DP-SGD steps of a round of epochs passes in expectation at sample
// rate q: ⌈epochs/q⌉.
func DPStepsPerRound(epochs int, q float64) int {
	return max(1, int(math.Ceil(float64(epochs)/q-1e-9)))
}

// poissonHeadroom is m + 6√m, rounded up: a Poisson-sampled round of mean m exceeds it with
// probability below 1e-7.
func poissonHeadroom(m int) int { return m + int(math.Ceil(6*math.Sqrt(float64(m)))) }

// literal is the dp.AdaptiveClipper literal of the configuration for m expected clients.
func (a AdaptiveClipConfig) literal(m int) dp.AdaptiveClipperLiteral {
	return dp.AdaptiveClipperLiteral{
		InitialClip: a.InitialClip, TargetQuantile: a.TargetQuantile, LearningRate: a.LearningRate,
		ExpectedClients: float64(m), CountNoiseStd: a.CountNoiseStd, MaxClip: a.MaxClip,
	}
}

// DiscreteUserLevel reports whether distributed user-level DP draws the distributed discrete
// Gaussian (Kairouz, Liu and Steinke 2021; dp.DiscreteUserLevel): with secure aggregation's
// packed encoding (value_bits), every client adds an integer share N_Z(0, σ_z²) to each of
// its quantised values instead of a floating-point Gaussian share before quantising, and the
// accountant composes the discrete mechanism's RDP over the rounds (each charged in full).
func (c Config) DiscreteUserLevel() bool {
	return c.DP.UserLevel.Mode == UserLevelDistributed && c.SecAgg.Enabled && c.valueBits() != 0
}

// valueBits is secure_aggregation.value_bits, or what leaving it unset means
// (defaultValueBits): 0 for the float encoding, the packed encoding's bits per value
// otherwise.
func (c Config) valueBits() int {
	if b := c.SecAgg.ValueBits; b != nil {
		return *b
	}
	return c.defaultValueBits()
}

// defaultValueBits is what an unset secure_aggregation.value_bits means: the packed
// encoding at secagg.DefaultValueBits, or the float encoding (0) where the configuration
// relies on what only the float encoding gives. The packed encoding rounds every value a
// client encrypts to a grid of its clip bound: after local DP-SGD noise that is
// post-processing of the client's own private update, but a noise share drawn before the
// rounding (dp.distributed, distributed user-level noise, the statistics round's shares)
// would no longer sum to the Gaussian the accountant charges, distributed user-level DP
// would become the discrete mechanism (accounted without amplification by sampling, and
// without adaptive clipping), and central user-level noise would be calibrated to a clip
// the rounding can exceed by up to √d grid steps. log_scale is a setting of the float
// encoding only, and the packed encoding needs two 60-bit primes, which log_n 12 does not
// allow.
func (c Config) defaultValueBits() int {
	switch {
	case c.SecAgg.LogScale != 0, c.DP.UserLevel.On(), c.DP.Distributed,
		c.Dataset != nil && len(c.Dataset.Estimates()) > 0:
		return 0
	}
	if _, err := secagg.NewParameters(c.secAggLiteralBits(secagg.DefaultValueBits)); err != nil {
		return 0
	}
	return secagg.DefaultValueBits
}

// discreteUserLevel is the distributed discrete Gaussian of the configuration: the
// quantisation step of the packed encoding, 2·C·W/(2^b − 1) with C the coordinate bound
// (the clip norm: the noise has its own headroom in the slots) and W the largest weight,
// and the model's parameter count. MaxShares is left to the coordinator (secagg's default
// maximum of contributors).
func (c Config) discreteUserLevel() (dp.DiscreteUserLevel, error) {
	dim, err := c.Model.NumParams()
	if err != nil {
		return dp.DiscreteUserLevel{}, err
	}
	w := c.SecAgg.MaxWeight
	if w == 0 {
		w = secagg.DefaultMaxWeight
	}
	b := c.coordinateBound()
	d := dp.DiscreteUserLevel{NoiseMultiplier: c.DP.UserLevel.NoiseMultiplier, Clip: c.DP.UserLevel.Clip, MaxWeight: w,
		Step: secagg.PackedStep(b, w, c.valueBits()), Dim: dim, MinShares: max(c.SecAgg.MinContributions, 1)}
	_, err = d.LocalVariance()
	return d, err
}

// coordinateBound is secure aggregation's bound on every value a client encrypts.
func (c Config) coordinateBound() float64 {
	if c.DiscreteUserLevel() {
		// The discrete noise is added after quantising, in headroom of its own.
		return max(c.DP.UpdateClipNorm, c.DP.UserLevel.MaxClip())
	}
	if c.DP.UserLevel.On() {
		return max(c.DP.UpdateClipNorm, c.DP.UserLevel.coordinateBound(c.SecAgg.MinContributions))
	}
	// SCAFFOLD's control-variate deltas travel in the same vector.
	return max(c.DP.UpdateClipNorm, c.Strategy.ControlClipNorm)
}

func mustParams(c Config) secagg.Parameters {
	p, _ := c.secAggParams()
	return p
}

// secAggLiteral is the secagg parameter literal of the configuration.
func (c Config) secAggLiteral() secagg.ParametersLiteral {
	return c.secAggLiteralBits(c.valueBits())
}

// secAggLiteralBits is secAggLiteral with valueBits bits per value (0: the float encoding).
func (c Config) secAggLiteralBits(valueBits int) secagg.ParametersLiteral {
	lit := secagg.ParametersLiteral{
		LogN: c.SecAgg.LogN, LogScale: c.SecAgg.LogScale, FloodingSigma: c.SecAgg.FloodingSigma,
		ClipBound: c.coordinateBound(), MaxWeight: c.SecAgg.MaxWeight, MaxContributors: c.SecAgg.MaxContributors,
		ValueBits: valueBits, Primes: c.SecAgg.Primes,
	}
	if c.DiscreteUserLevel() {
		if d, err := c.discreteUserLevel(); err == nil {
			lit.NoiseVariance, _ = d.LocalVariance() // Validate reports an error
		}
	}
	return lit
}

func (c Config) secAggParams() (secagg.Parameters, error) {
	return secagg.NewParameters(c.secAggLiteral())
}

// secAggKeys words an error of secagg's parameter and committee checks in the keys of this
// configuration: secagg's FieldErrors name its own fields (ClipBound, Threshold, …), which
// a user of the server's YAML never wrote.
func secAggKeys(err error) error {
	var fe *secagg.FieldError
	if errors.As(err, &fe) {
		return errors.New(fe.Explain(secAggKey))
	}
	return err
}

// secAggKey is the config key that sets a field of secagg's parameters or committee.
func secAggKey(f secagg.Field) string {
	switch f {
	case secagg.FieldCommitteeSize:
		return "secure_aggregation.committee_size"
	case secagg.FieldThreshold:
		return "secure_aggregation.threshold"
	case secagg.FieldMinContributions:
		return "secure_aggregation.min_contributions"
	case secagg.FieldMaxContributors:
		return "secure_aggregation.max_contributors"
	case secagg.FieldMaxWeight:
		return "secure_aggregation.max_weight"
	case secagg.FieldClipBound:
		return "dp.update_clip_norm"
	case secagg.FieldLogScale:
		return "secure_aggregation.log_scale"
	case secagg.FieldLogN:
		return "secure_aggregation.log_n"
	case secagg.FieldFloodingSigma:
		return "secure_aggregation.flooding_sigma"
	case secagg.FieldLogQ:
		return "the modulus bits (fixed)"
	case secagg.FieldValueBits:
		return "secure_aggregation.value_bits"
	case secagg.FieldPrimes:
		return "secure_aggregation.primes"
	}
	return f.String()
}

func (c Config) committeeConfig() secagg.CommitteeConfig {
	return secagg.CommitteeConfig{Size: c.SecAgg.CommitteeSize, Threshold: c.SecAgg.Threshold, MinContributions: c.SecAgg.MinContributions}
}
