package client

import (
	"math"
	"slices"

	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/train"
)

// A training setting crosses the wire in two functions: server.LocalTrainingSpec writes it
// into the FitSpec, FitConfigFromSpec reads it back, and TrainConfig hands it to the
// trainer (TestEveryTrainingSettingReachesTheClient checks the whole way).

// FitConfigFromSpec decodes the local training a fit task asks for (everything but the
// round, the model, the dataset schema and SCAFFOLD's correction, which the party adds).
func FitConfigFromSpec(spec *pb.FitSpec) FitConfig {
	d := spec.GetDp()
	return FitConfig{
		Epochs: int(spec.GetLocalEpochs()), BatchSize: int(spec.GetBatchSize()),
		Optimizer: model.OptimizerConfig{
			Name: spec.GetOptimizer(), LR: spec.GetLearningRate(), Momentum: spec.GetMomentum(), Nesterov: spec.GetNesterov(),
			WeightDecay: spec.GetWeightDecay(), Beta1: spec.GetBeta1(), Beta2: spec.GetBeta2(), Eps: spec.GetEps(),
		},
		Schedule: spec.GetSchedule(), Warmup: int(spec.GetWarmup()), ProximalMu: spec.GetProximalMu(),
		DP: DPConfig{
			NoiseMultiplier: d.GetNoiseMultiplier(), MaxGradNorm: d.GetMaxGradNorm(), Delta: d.GetDelta(),
			SampleRate: d.GetSampleRate(), Steps: int(d.GetSteps()),
			Clipping: d.GetClipping(), LayerMaxGradNorms: slices.Clone(d.GetLayerMaxGradNorms()),
		},
		Config: spec.GetConfig(),
	}
}

// TrainConfig is the trainer's configuration for a fit task on n local examples, seeded
// with seed. Under DP-SGD with the server's schedule (Steps steps at sample rate q) it
// trains one pass of Steps Poisson batches of expected size q·n, which normalises the
// noisy gradient sum, instead of the task's epochs and batch size.
func TrainConfig(cfg FitConfig, n int, seed uint64) train.Config {
	tc := train.Config{
		Epochs: cfg.Epochs, BatchSize: cfg.BatchSize, Optimizer: cfg.Optimizer,
		Schedule: cfg.Schedule, Warmup: cfg.Warmup, Seed: seed,
	}
	d := cfg.DP
	if d.NoiseMultiplier <= 0 {
		return tc
	}
	if d.SampleRate > 0 && d.Steps > 0 {
		tc.Epochs = 1
		tc.BatchSize = max(1, int(math.Round(d.SampleRate*float64(n))))
	}
	tc.DP = &train.DPConfig{NoiseMultiplier: d.NoiseMultiplier, MaxGradNorm: d.MaxGradNorm, SampleRate: d.SampleRate, Steps: d.Steps,
		Clipping: d.Clipping, LayerMaxGradNorms: slices.Clone(d.LayerMaxGradNorms),
		NoiseShares: d.NoiseShares, ExpectedBatch: d.ExpectedBatch, SumClip: d.SumClip}
	return tc
}
