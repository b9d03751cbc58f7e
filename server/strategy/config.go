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
)

// Names lists every strategy name.
var Names = []string{NameFedAvg, NameFedProx, NameFedAvgM, NameFedAdagrad, NameFedAdam, NameFedYogi, NameFedMedian, NameTrimmedMean, NameKrum}

// Config selects and configures a strategy; it is what the server config fills. Zero fields
// take the defaults of Flower's implementations (noted per field).
type Config struct {
	Name string `yaml:"name" json:"name"`
	// ServerLR is the server learning rate η: 1 for fedavgm, 0.1 for the adaptive ones.
	ServerLR float64 `yaml:"server_lr" json:"server_lr,omitempty"`
	// Momentum is FedAvgM's server momentum β (default 0.9).
	Momentum float64 `yaml:"momentum" json:"momentum,omitempty"`
	// Beta1, Beta2 and Tau are the adaptive optimizers' moment decays and adaptivity
	// (defaults 0.9, 0.99, 1e-3; Reddi et al. 2021 tune τ over 1e-1…1e-9).
	Beta1 float64 `yaml:"beta1" json:"beta1,omitempty"`
	Beta2 float64 `yaml:"beta2" json:"beta2,omitempty"`
	Tau   float64 `yaml:"tau" json:"tau,omitempty"`
	// ProximalMu is FedProx's μ (required > 0 for fedprox).
	ProximalMu float64 `yaml:"proximal_mu" json:"proximal_mu,omitempty"`
	// TrimFraction is the fraction cut from each end per coordinate (trimmedmean, default 0.2).
	TrimFraction float64 `yaml:"trim_fraction" json:"trim_fraction,omitempty"`
	// Byzantine is Krum's f, the number of malicious clients tolerated (default 0).
	Byzantine int `yaml:"byzantine" json:"byzantine,omitempty"`
	// KrumKeep is the number of best-scored updates Multi-Krum averages (default 1: Krum).
	KrumKeep int `yaml:"krum_keep" json:"krum_keep,omitempty"`
	// ServerLRDecay decays the server's step over the rounds (fedavg, fedprox, fedavgm and
	// the adaptive ones): none (the default), cosine or linear, from the full step at round
	// 1 to ServerLRFinal of it at the last round. A small final step keeps the last
	// rounds' noise (DP, client sampling) out of the final model.
	ServerLRDecay string `yaml:"server_lr_decay" json:"server_lr_decay,omitempty"`
	// ServerLRFinal is the fraction of the step left at the last round (default 0.1).
	ServerLRFinal float64 `yaml:"server_lr_final" json:"server_lr_final,omitempty"`
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
	nonNeg := func(key string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad("%s = %v: must be a finite number ≥ 0", key, v)
		}
	}
	nonNeg("server_lr", c.ServerLR)
	nonNeg("tau", c.Tau)
	nonNeg("proximal_mu", c.ProximalMu)
	for key, v := range map[string]float64{"momentum": c.Momentum, "beta1": c.Beta1, "beta2": c.Beta2} {
		if math.IsNaN(v) || v < 0 || v >= 1 {
			bad("%s = %v: must be in [0, 1)", key, v)
		}
	}
	if c.Name == NameFedProx && !(c.ProximalMu > 0) {
		bad("proximal_mu = %v: fedprox needs μ > 0 (e.g. 0.01; μ = 0 is fedavg)", c.ProximalMu)
	}
	if math.IsNaN(c.TrimFraction) || c.TrimFraction < 0 || c.TrimFraction >= 0.5 {
		bad("trim_fraction = %v: must be in [0, 0.5)", c.TrimFraction)
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
	if math.IsNaN(c.ServerLRFinal) || c.ServerLRFinal < 0 || c.ServerLRFinal > 1 {
		bad("server_lr_final = %v: must be in [0, 1] (the fraction of the step left at the last round)", c.ServerLRFinal)
	}
	return errors.Join(errs...)
}

// New validates c (for a federation with or without secure aggregation) and returns the
// strategy it names, with Flower's defaults for the zero fields.
func New(c Config, secureAggregation bool) (Strategy, error) {
	if err := c.Validate(secureAggregation); err != nil {
		return nil, err
	}
	or := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	decay := LRSchedule{Kind: c.ServerLRDecay, Final: or(c.ServerLRFinal, 0.1), Rounds: c.Rounds}
	adaptive := func(opt Optimizer) Strategy {
		a := NewAdaptive(opt, or(c.ServerLR, 0.1), or(c.Beta1, 0.9), or(c.Beta2, 0.99), or(c.Tau, 1e-3))
		a.Decay = decay
		return a
	}
	switch c.Name {
	case NameFedAvg:
		return &FedAvg{Decay: decay}, nil
	case NameFedProx:
		return &FedProx{FedAvg: FedAvg{Decay: decay}, Mu: c.ProximalMu}, nil
	case NameFedAvgM:
		return &FedAvgM{LR: or(c.ServerLR, 1), Momentum: or(c.Momentum, 0.9), Decay: decay}, nil
	case NameFedAdagrad:
		return adaptive(Adagrad), nil
	case NameFedAdam:
		return adaptive(Adam), nil
	case NameFedYogi:
		return adaptive(Yogi), nil
	case NameFedMedian:
		return &FedMedian{}, nil
	case NameTrimmedMean:
		return &TrimmedMean{Beta: or(c.TrimFraction, 0.2)}, nil
	case NameKrum:
		return &Krum{Byzantine: c.Byzantine, Keep: max(c.KrumKeep, 1)}, nil
	}
	return nil, fmt.Errorf("strategy: name %q unknown", c.Name)
}
