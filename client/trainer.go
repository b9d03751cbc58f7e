package client

import (
	"context"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
)

// ErrBudgetExceeded is what a Trainer returns (wrapped) when a task would exceed the client's
// privacy budget; the client then refuses the task and tells the server why. It is
// dp.ErrBudgetExceeded, so refusals from a dp.Ledger are recognised too.
var ErrBudgetExceeded = dp.ErrBudgetExceeded

// Trainer is what a client brings to a federation: training and evaluation on its local
// data. Any Go program can implement it. Implementations need not be safe for concurrent
// use: a client runs one task at a time.
type Trainer interface {
	// Fit trains from the global parameters (which it must not modify) and returns the
	// locally trained parameters. A refusal on privacy grounds wraps ErrBudgetExceeded.
	Fit(ctx context.Context, global []float64, cfg FitConfig) (FitResult, error)
	// Evaluate computes loss and metrics of params on local test data.
	Evaluate(ctx context.Context, params []float64, cfg EvaluateConfig) (EvaluateResult, error)
}

// FitConfig is a fit task's settings, decoded from the server's FitSpec.
type FitConfig struct {
	Round     uint64
	Model     model.Spec
	Epochs    int
	BatchSize int
	Optimizer model.OptimizerConfig
	// Schedule of the learning rate over the task's steps (constant or cosine) after
	// Warmup steps of linear warm-up (see train.Config).
	Schedule   string
	Warmup     int
	ProximalMu float64 // FedProx μ; 0 disables the proximal term
	// Correction is SCAFFOLD's c − c_i, added to every local gradient (after DP-SGD's
	// noise); nil without SCAFFOLD. A Trainer that gets one must report Steps.
	Correction []float64
	DP         DPConfig
	Config     map[string]string
	// Dataset is the federation's dataset schema, nil when the server ships none: how a
	// client that brings its own files reads them (ModelTrainerConfig.Source).
	Dataset *data.Schema
}

// DPConfig is the DP-SGD setting of a fit task; NoiseMultiplier 0 means no DP-SGD. The
// server fixes the schedule: Steps steps on Poisson batches that hold each local example
// with probability SampleRate (expected batch SampleRate·n), so that the ε of the task is
// known without the client's data. A Trainer that keeps a ledger charges exactly
// {NoiseMultiplier, SampleRate, Steps, NoiseShares}.
type DPConfig struct {
	NoiseMultiplier float64
	MaxGradNorm     float64
	Delta           float64
	SampleRate      float64
	Steps           int
	// Clipping is flat or per-layer, with LayerMaxGradNorms its thresholds (dp/dpsgd).
	Clipping          string
	LayerMaxGradNorms []float64
	// Distributed noise (the task's dp.distributed, checked and filled in by the Party):
	// NoiseShares > 1 means the step adds noise of multiplier NoiseMultiplier/√NoiseShares,
	// the noisy sum is divided by ExpectedBatch (not by SampleRate·n) after the clipped sum
	// is projected onto the ball of radius SumClip, and the ledger records the step at
	// NoiseMultiplier with shares NoiseShares (train.DPConfig). A Trainer that ignores
	// them adds the whole noise itself, which is safe and only less accurate.
	NoiseShares   int
	ExpectedBatch float64
	SumClip       float64
}

// FitResult is a Trainer's answer to a fit task.
type FitResult struct {
	// Params are the locally trained parameters (the round logic forms, clips and
	// encrypts the update Params − global).
	Params      []float64
	NumExamples int
	// Metrics such as loss and accuracy; "epsilon" is the client's total ε after the task.
	Metrics map[string]float64
	// Steps is the number of local optimizer steps taken (SCAFFOLD's K; 0 if unknown).
	Steps int
}

// EvaluateConfig is an evaluate task's settings.
type EvaluateConfig struct {
	Round     uint64
	Model     model.Spec
	BatchSize int
	Config    map[string]string
	Dataset   *data.Schema // as FitConfig.Dataset
}

// EvaluateResult is a Trainer's answer to an evaluate task.
type EvaluateResult struct {
	NumExamples int
	Loss        float64
	Metrics     map[string]float64
}
