package strategy

import (
	"errors"
	"fmt"
	"math"
)

// Strategy names accepted in configs.
const (
	NameFedAvg      = "fedavg"
	NameFedProx     = "fedprox"
	NameFedAvgM     = "fedavgm"
	NameFedAdagrad  = "fedadagrad"
	NameFedAdam     = "fedadam"
	NameFedYogi     = "fedyogi"
	NameFedMedian   = "fedmedian"
	NameTrimmedMean = "trimmedmean"
	NameKrum        = "krum"
	NameScaffold    = "scaffold"
)

// Names lists every strategy name.
var Names = []string{NameFedAvg, NameFedProx, NameFedAvgM, NameFedAdagrad, NameFedAdam, NameFedYogi, NameFedMedian, NameTrimmedMean, NameKrum, NameScaffold}

// Config selects and configures a strategy; it is what the server config fills. Settings
// that may legitimately be 0 (a momentum, β1, a trim fraction) are pointers: nil (the key
// left out) takes the default, an explicit 0 is 0. The defaults are those of Flower's
// strategies (flwr.server.strategy, noted per field); in Go, set one with e.g.
// ServerLR: new(0.3).
type Config struct {
	// Name is the strategy: fedavg (default), fedprox, fedavgm, fedadam, fedyogi,
	// fedadagrad, scaffold, or without secure aggregation fedmedian, trimmedmean or krum.
	Name string `yaml:"name" json:"name"`
	// ServerLR is the server learning rate η. Flower: server_learning_rate 1.0 (FedAvgM),
	// eta 1e-1 (FedAdam, FedAdagrad), eta 1e-2 (FedYogi).
	ServerLR *float64 `yaml:"server_lr,omitempty" json:"server_lr,omitempty"`
	// Momentum is FedAvgM's server momentum β. Flower: server_momentum 0.0 (plain FedAvg
	// with a server learning rate; Hsu et al. 2019 use e.g. 0.9).
	Momentum *float64 `yaml:"momentum,omitempty" json:"momentum,omitempty"`
	// Beta1, Beta2 and Tau are the adaptive optimizers' moment decays and adaptivity.
	// Flower: beta_1 0.9, beta_2 0.99 (FedAdam, FedYogi), beta_1 0 (FedAdagrad, whose v
	// does not decay); tau 1e-9 (FedAdam, FedAdagrad), 1e-3 (FedYogi). Reddi et al. 2021
	// tune τ over 1e-1…1e-9.
	Beta1 *float64 `yaml:"beta1,omitempty" json:"beta1,omitempty"`
	Beta2 *float64 `yaml:"beta2,omitempty" json:"beta2,omitempty"`
	Tau   *float64 `yaml:"tau,omitempty" json:"tau,omitempty"`
	// ProximalMu is FedProx's μ (required > 0 for fedprox).
	ProximalMu float64 `yaml:"proximal_mu" json:"proximal_mu,omitempty"`
	// TrimFraction is the fraction cut from each end per coordinate (trimmedmean; Flower's
	// FedTrimmedAvg beta 0.2); 0 is the plain mean.
	TrimFraction *float64 `yaml:"trim_fraction,omitempty" json:"trim_fraction,omitempty"`
	// Byzantine is Krum's f, the number of malicious clients tolerated (default 0).
	Byzantine int `yaml:"byzantine" json:"byzantine,omitempty"`
	// KrumKeep is the number of best-scored updates Multi-Krum averages (default 1: Krum).
	KrumKeep int `yaml:"krum_keep" json:"krum_keep,omitempty"`
	// ControlClipNorm bounds the L2 norm of each client's SCAFFOLD control-variate delta
	// (scaffold; required under secure aggregation, whose coordinate bound it joins).
	// Δc_i is about an average gradient, so a bound near dp.max_grad_norm suits DP-SGD.
	ControlClipNorm float64 `yaml:"control_clip_norm" json:"control_clip_norm,omitempty"`
	// ServerLRDecay decays the server's step over the rounds (fedavg, fedprox, fedavgm and
	// the adaptive ones): none (the default), cosine or linear, from the full step at round
	// 1 to ServerLRFinal of it at the last round. A small final step keeps the last
	// rounds' noise (DP, client sampling) out of the final model.
	ServerLRDecay string `yaml:"server_lr_decay" json:"server_lr_decay,omitempty"`
	// ServerLRFinal is the fraction of the step left at the last round (default 0.1; 0
	// decays the step to nothing).
	ServerLRFinal *float64 `yaml:"server_lr_final,omitempty" json:"server_lr_final,omitempty"`
	// EMADecay, when set (β in (0, 1), e.g. 0.9), makes the server release the exponential
	// moving average of the global models instead of the latest one (De et al. 2022 average
	// DP-SGD's parameters so): after round n the average is a_n = a_{n−1} + α_n·(x_n −
	// a_{n−1}) with α_n = (1−β)/(1−β^n), the bias-corrected average weighing round k by
	// about (1−β)·β^{n−k}, so about the last 1/(1−β) rounds count. The central evaluation,
	// the federated evaluation, the checkpoints and the final model are the average (the
	// central evaluation of the global iterate joins it as iterate_accuracy and
	// iterate_loss); the clients keep training from the iterate, and the strategy's own
	// state (momentum, moments) is unchanged. The noise of the last rounds (DP, client
	// sampling) stays in the iterate and is mostly averaged out of the released model.
	// It costs no privacy: the average is computed by the server from global models it
	// released anyway (post-processing of DP outputs). 0 (the default) releases the latest
	// global model.
	EMADecay float64 `yaml:"ema_decay" json:"ema_decay,omitempty"`
	// WeightDecay, when set (λ in (0, 1), e.g. 0.02), makes the server shrink the global
	// model by λ each round, decoupled from the strategy's step: x_{t+1} = step(x_t) −
	// λ·x_t. DP noise lands on every parameter each round, also on those the data hardly
	// moves (a bag of words' rare words), where it adds up as a random walk; the decay
	// bounds its spread to about 1/√(2λ) rounds' worth, and shrinks the learnt weights.
	// Computed by the server from the global model, it costs no privacy, and it works
	// under secure aggregation and dp.distributed, which refuse training.weight_decay.
	// 0 (the default): none.
	WeightDecay float64 `yaml:"weight_decay" json:"weight_decay,omitempty"`
	// Rounds is the number of rounds the decay spans; the server sets it from its own.
	Rounds int `yaml:"-" json:"-"`
}

// Server learning-rate decays.
const (
	DecayNone   = "none"
	DecayCosine = "cosine"
	DecayLinear = "linear"
)

// LRSchedule scales a strategy's server step by round; the zero value keeps it constant.
type LRSchedule struct {
	Kind   string  // DecayCosine, DecayLinear, or "" / DecayNone
	Final  float64 // the factor at the last round
	Rounds int     // the last round
}

// Factor returns the step's factor in round (1-based): 1 at round 1, Final at round Rounds
// and after, cosine (Loshchilov and Hutter 2017, without restarts) or linear in between.
func (s LRSchedule) Factor(round uint64) float64 {
	if s.Kind == "" || s.Kind == DecayNone || s.Rounds <= 1 || round <= 1 {
		return 1
	}
	t := min(1, float64(round-1)/float64(s.Rounds-1))
	if s.Kind == DecayLinear {
		return 1 - (1-s.Final)*t
	}
	return s.Final + (1-s.Final)*(1+math.Cos(math.Pi*t))/2
}

// IsRobust reports whether the named strategy needs every individual update.
func IsRobust(name string) bool {
	switch name {
	case NameFedMedian, NameTrimmedMean, NameKrum:
		return true
	}
	return false
}

// Validate checks the configuration, naming the key and the fix. secureAggregation says
// whether the federation runs secure aggregation, under which robust strategies cannot work.
func (c Config) Validate(secureAggregation bool) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("strategy."+format, a...)) }
	known := false
	for _, n := range Names {
		known = known || c.Name == n
	}
	if !known {
		bad("name %q unknown: use one of %v", c.Name, Names)
	}
	if IsRobust(c.Name) && secureAggregation {
		bad("name %q needs every client's individual update, but secure aggregation lets the server see only their sum: use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad, or turn secure_aggregation.enabled off", c.Name)
	}
	if v := c.ServerLR; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0) {
		bad("server_lr = %v: must be a finite number ≥ 0", *v)
	}
	if v := c.Tau; v != nil && !(*v > 0 && !math.IsInf(*v, 0)) {
		bad("tau = %v: must be a finite number > 0 (it keeps m/(√v + τ) finite where v = 0; e.g. 1e-9)", *v)
	}
	if v := c.ProximalMu; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		bad("proximal_mu = %v: must be a finite number ≥ 0", v)
	}
	for _, f := range []struct {
		key string
		v   *float64
	}{{"momentum", c.Momentum}, {"beta1", c.Beta1}, {"beta2", c.Beta2}} {
		if f.v != nil && (math.IsNaN(*f.v) || *f.v < 0 || *f.v >= 1) {
			bad("%s = %v: must be in [0, 1)", f.key, *f.v)
		}
	}
	if v := c.ControlClipNorm; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		bad("control_clip_norm = %v: must be a finite number ≥ 0", v)
	} else if v > 0 && c.Name != NameScaffold {
		bad("control_clip_norm = %v: only scaffold keeps control variates; drop it", v)
	} else if c.Name == NameScaffold && secureAggregation && v == 0 {
		bad("control_clip_norm: scaffold under secure aggregation needs a bound on the clients' control-variate deltas (e.g. dp.max_grad_norm, about an average gradient's norm)")
	}
	if c.Name == NameFedProx && !(c.ProximalMu > 0) {
		bad("proximal_mu = %v: fedprox needs μ > 0 (e.g. 0.01; μ = 0 is fedavg)", c.ProximalMu)
	}
	if v := c.TrimFraction; v != nil && (math.IsNaN(*v) || *v < 0 || *v >= 0.5) {
		bad("trim_fraction = %v: must be in [0, 0.5)", *v)
	}
	if c.Byzantine < 0 {
		bad("byzantine = %d: must be ≥ 0", c.Byzantine)
	}
	if c.KrumKeep < 0 {
		bad("krum_keep = %d: must be ≥ 0", c.KrumKeep)
	}
	switch c.ServerLRDecay {
	case "", DecayNone, DecayCosine, DecayLinear:
	default:
		bad("server_lr_decay = %q: use none, cosine or linear", c.ServerLRDecay)
	}
	if IsRobust(c.Name) && c.ServerLRDecay != "" && c.ServerLRDecay != DecayNone {
		bad("server_lr_decay = %q: %s takes no server step to decay; drop it", c.ServerLRDecay, c.Name)
	}
	if v := c.ServerLRFinal; v != nil && (math.IsNaN(*v) || *v < 0 || *v > 1) {
		bad("server_lr_final = %v: must be in [0, 1] (the fraction of the step left at the last round)", *v)
	}
	if v := c.EMADecay; math.IsNaN(v) || v < 0 || v >= 1 {
		bad("ema_decay = %v: must be in [0, 1) (e.g. 0.9 averages about the last 10 rounds; 0 releases the latest model)", v)
	}
	if v := c.WeightDecay; math.IsNaN(v) || v < 0 || v >= 1 {
		bad("weight_decay = %v: must be in [0, 1) (the fraction of the global model taken off each round, e.g. 0.02; 0: none)", v)
	}
	return errors.Join(errs...)
}

// New validates c (for a federation with or without secure aggregation) and returns the
// strategy it names, with Flower's defaults for the settings left unset, wrapped as c's
// server-side options say (Wrap).
func New(c Config, secureAggregation bool) (Strategy, error) {
	if err := c.Validate(secureAggregation); err != nil {
		return nil, err
	}
	s, err := named(c)
	if err != nil {
		return nil, err
	}
	return Wrap(s, c), nil
}

// Wrap returns s with c's options that work on any strategy: the weight decay of the
// global model (WeightDecay), and the release of the average of the decayed global models
// (EMA).
func Wrap(s Strategy, c Config) Strategy {
	return WithEMA(WithWeightDecay(s, c.WeightDecay), c.EMADecay)
}

// named returns the strategy c names (c validated).
func named(c Config) (Strategy, error) {
	or := func(v *float64, d float64) float64 {
		if v == nil {
			return d
		}
		return *v
	}
	decay := LRSchedule{Kind: c.ServerLRDecay, Final: or(c.ServerLRFinal, 0.1), Rounds: c.Rounds}
	// Flower's defaults: fedadam.py eta 1e-1, beta_1 0.9, beta_2 0.99, tau 1e-9;
	// fedyogi.py eta 1e-2, beta_1 0.9, beta_2 0.99, tau 1e-3; fedadagrad.py eta 1e-1,
	// tau 1e-9 and beta_1 = 0 (β2 is unused: Adagrad's v only accumulates).
	adaptive := func(opt Optimizer, lr, beta1, tau float64) Strategy {
		a := NewAdaptive(opt, or(c.ServerLR, lr), or(c.Beta1, beta1), or(c.Beta2, 0.99), or(c.Tau, tau))
		a.Decay = decay
		return a
	}
	switch c.Name {
	case NameFedAvg:
		return &FedAvg{Decay: decay}, nil
	case NameFedProx:
		return &FedProx{FedAvg: FedAvg{Decay: decay}, Mu: c.ProximalMu}, nil
	case NameFedAvgM:
		// fedavgm.py: server_learning_rate 1.0, server_momentum 0.0.
		return &FedAvgM{LR: or(c.ServerLR, 1), Momentum: or(c.Momentum, 0), Decay: decay}, nil
	case NameFedAdagrad:
		return adaptive(Adagrad, 0.1, 0, 1e-9), nil
	case NameFedAdam:
		return adaptive(Adam, 0.1, 0.9, 1e-9), nil
	case NameFedYogi:
		return adaptive(Yogi, 0.01, 0.9, 1e-3), nil
	case NameFedMedian:
		return &FedMedian{}, nil
	case NameTrimmedMean:
		return &TrimmedMean{Beta: or(c.TrimFraction, 0.2)}, nil
	case NameKrum:
		return &Krum{Byzantine: c.Byzantine, Keep: max(c.KrumKeep, 1)}, nil
	case NameScaffold:
		// The paper's experiments use the global step size η_g = 1.
		return &Scaffold{FedAvg: FedAvg{Decay: decay}, LR: or(c.ServerLR, 1), ClipNorm: c.ControlClipNorm}, nil
	}
	return nil, fmt.Errorf("strategy: name %q unknown", c.Name)
}
