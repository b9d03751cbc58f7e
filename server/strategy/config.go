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
	switch c.Name {
	case NameFedAvg:
		return &FedAvg{}, nil
	case NameFedProx:
		return &FedProx{Mu: c.ProximalMu}, nil
	case NameFedAvgM:
		return &FedAvgM{LR: or(c.ServerLR, 1), Momentum: or(c.Momentum, 0.9)}, nil
	case NameFedAdagrad:
		return NewAdaptive(Adagrad, or(c.ServerLR, 0.1), or(c.Beta1, 0.9), or(c.Beta2, 0.99), or(c.Tau, 1e-3)), nil
	case NameFedAdam:
		return NewAdaptive(Adam, or(c.ServerLR, 0.1), or(c.Beta1, 0.9), or(c.Beta2, 0.99), or(c.Tau, 1e-3)), nil
	case NameFedYogi:
		return NewAdaptive(Yogi, or(c.ServerLR, 0.1), or(c.Beta1, 0.9), or(c.Beta2, 0.99), or(c.Tau, 1e-3)), nil
	case NameFedMedian:
		return &FedMedian{}, nil
	case NameTrimmedMean:
		return &TrimmedMean{Beta: or(c.TrimFraction, 0.2)}, nil
	case NameKrum:
		return &Krum{Byzantine: c.Byzantine, Keep: max(c.KrumKeep, 1)}, nil
	}
	return nil, fmt.Errorf("strategy: name %q unknown", c.Name)
}
