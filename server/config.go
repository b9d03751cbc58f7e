package server

import (
	"errors"
	"fmt"
	"math"
	"time"

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
	// Seed drives the initial model and client sampling. Production servers draw it from
	// crypto/rand when it is 0 (the CLI does that); tests set it for determinism.
	Seed      uint64          `yaml:"seed"`
	Sampling  SamplingConfig  `yaml:"sampling"`
	Deadlines DeadlineConfig  `yaml:"deadlines"`
	Strategy  strategy.Config `yaml:"strategy"`
	Training  TrainingConfig  `yaml:"training"`
	DP        DPConfig        `yaml:"dp"`
	SecAgg    SecAggConfig    `yaml:"secure_aggregation"`
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
}

// TrainingConfig is the local training every fit task asks for.
type TrainingConfig struct {
	Epochs    int     `yaml:"epochs"`     // default 1
	BatchSize int     `yaml:"batch_size"` // default 64 (expected size under Poisson sampling)
	Optimizer string  `yaml:"optimizer"`  // sgd (default), adam or adamw
	LR        float64 `yaml:"lr"`         // default 0.1
	Momentum  float64 `yaml:"momentum"`
	// WeightScale: a client's aggregation weight is min(examples / WeightScale, MaxWeight).
	// Set it to about the largest client's example count. Default 10000.
	WeightScale float64 `yaml:"weight_scale"`
}

// DPConfig is the differential privacy asked of the clients.
type DPConfig struct {
	// NoiseMultiplier σ and MaxGradNorm C of DP-SGD; σ = 0 turns DP-SGD off.
	NoiseMultiplier float64 `yaml:"noise_multiplier"`
	MaxGradNorm     float64 `yaml:"max_grad_norm"` // default 1
	Delta           float64 `yaml:"delta"`         // default 1e-5
	// UpdateClipNorm bounds ‖Δ‖₂ of every client update (DP-FedAvg user-level clipping).
	// Required under secure aggregation, where it also bounds every coordinate. Default 0
	// without secure aggregation (no clipping), 10 with it.
	UpdateClipNorm float64 `yaml:"update_clip_norm"`
}

// SecAggConfig turns on secure aggregation and sizes the key committee and the CKKS
// parameters (zero fields take secagg's defaults).
type SecAggConfig struct {
	Enabled bool `yaml:"enabled"`
	// CommitteeSize K and Threshold t: any t of the K members decrypt; up to K−t may drop.
	CommitteeSize int `yaml:"committee_size"`
	Threshold     int `yaml:"threshold"`
	// MinContributions m: members refuse to decrypt aggregates of fewer updates.
	// Default min(2, Sampling.MinFit).
	MinContributions int `yaml:"min_contributions"`
	// RotateEvery starts a new committee every this many rounds (0: keep it while it can
	// decrypt).
	RotateEvery     int     `yaml:"rotate_every"`
	LogN            int     `yaml:"log_n"`
	LogScale        int     `yaml:"log_scale"`
	FloodingSigma   float64 `yaml:"flooding_sigma"`
	MaxContributors int     `yaml:"max_contributors"`
	// MaxWeight bounds a client's aggregation weight (default 1).
	MaxWeight float64 `yaml:"max_weight"`
}

// WithDefaults returns c with its zero fields filled.
func (c Config) WithDefaults() Config {
	s := &c.Sampling
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
	if c.Strategy.Name == "" {
		c.Strategy.Name = strategy.NameFedAvg
	}
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
	if c.DP.MaxGradNorm == 0 {
		c.DP.MaxGradNorm = 1
	}
	if c.DP.Delta == 0 {
		c.DP.Delta = 1e-5
	}
	if c.SecAgg.Enabled {
		if c.DP.UpdateClipNorm == 0 {
			c.DP.UpdateClipNorm = 10
		}
		if c.SecAgg.MinContributions == 0 {
			c.SecAgg.MinContributions = min(2, s.MinFit)
		}
		if c.SecAgg.MaxWeight == 0 {
			c.SecAgg.MaxWeight = 1
		}
		if c.SecAgg.MaxContributors == 0 {
			// The largest count the overflow budget allows for the clip bound, up to
			// secagg's default: MaxContributors·max(C,1)·2^LogScale must stay below Q/8.
			c.SecAgg.MaxContributors = secagg.DefaultMaxContributors
			if c.DP.UpdateClipNorm > 1 {
				c.SecAgg.MaxContributors = min(secagg.DefaultMaxContributors, int(math.Floor(3000/(c.DP.UpdateClipNorm*c.SecAgg.MaxWeight))))
			}
		}
	}
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
	t := c.Training
	if _, err := model.NewOptimizer(model.OptimizerConfig{Name: t.Optimizer, LR: t.LR, Momentum: t.Momentum}); err != nil {
		bad("training: %v", err)
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
	if d.UpdateClipNorm < 0 || math.IsNaN(d.UpdateClipNorm) || math.IsInf(d.UpdateClipNorm, 0) {
		bad("dp.update_clip_norm = %v: must be ≥ 0", d.UpdateClipNorm)
	}
	if c.SecAgg.Enabled {
		if !(d.UpdateClipNorm > 0) {
			bad("dp.update_clip_norm = %v: secure aggregation needs clipped updates (> 0) to bound the encrypted sum", d.UpdateClipNorm)
		} else if _, err := c.secAggParams(); err != nil {
			bad("secure_aggregation: %v", err)
		} else if err := c.committeeConfig().Validate(mustParams(c)); err != nil {
			bad("secure_aggregation: %v", err)
		}
		if c.SecAgg.CommitteeSize < 1 {
			bad("secure_aggregation.committee_size = %d: must be ≥ 1", c.SecAgg.CommitteeSize)
		}
		if c.SecAgg.CommitteeSize > s.MinAvailable {
			bad("secure_aggregation.committee_size = %d exceeds sampling.min_available = %d: the committee is drawn from the connected clients", c.SecAgg.CommitteeSize, s.MinAvailable)
		}
		if c.SecAgg.MaxContributors > 0 && s.MinFit > c.SecAgg.MaxContributors {
			bad("sampling.min_fit = %d exceeds secure_aggregation.max_contributors = %d (the overflow budget of one aggregate)", s.MinFit, c.SecAgg.MaxContributors)
		}
		if c.SecAgg.MinContributions > s.MinFit {
			bad("secure_aggregation.min_contributions = %d exceeds sampling.min_fit = %d: a round with min_fit results could never be decrypted", c.SecAgg.MinContributions, s.MinFit)
		}
		if c.SecAgg.RotateEvery < 0 {
			bad("secure_aggregation.rotate_every = %d: must be ≥ 0", c.SecAgg.RotateEvery)
		}
	}
	return errors.Join(errs...)
}

func mustParams(c Config) secagg.Parameters {
	p, _ := c.secAggParams()
	return p
}

// secAggLiteral is the secagg parameter literal of the configuration.
func (c Config) secAggLiteral() secagg.ParametersLiteral {
	return secagg.ParametersLiteral{
		LogN: c.SecAgg.LogN, LogScale: c.SecAgg.LogScale, FloodingSigma: c.SecAgg.FloodingSigma,
		ClipBound: c.DP.UpdateClipNorm, MaxWeight: c.SecAgg.MaxWeight, MaxContributors: c.SecAgg.MaxContributors,
	}
}

func (c Config) secAggParams() (secagg.Parameters, error) {
	return secagg.NewParameters(c.secAggLiteral())
}

func (c Config) committeeConfig() secagg.CommitteeConfig {
	return secagg.CommitteeConfig{Size: c.SecAgg.CommitteeSize, Threshold: c.SecAgg.Threshold, MinContributions: c.SecAgg.MinContributions}
}
