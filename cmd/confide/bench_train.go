package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/dpsgd"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

func init() { benchChildren = append(benchChildren, newBenchTrainCmd) }

type benchTrainResult struct {
	Model             model.Spec `json:"model"`
	Params            int        `json:"params"`
	Batch             int        `json:"batch"`
	DP                bool       `json:"dp"`
	Precision         string     `json:"precision"`
	Threads           int        `json:"threads"`
	ExamplesPerSecond float64    `json:"examples_per_second"`
	Min               float64    `json:"examples_per_second_min"`
	Max               float64    `json:"examples_per_second_max"`
	Runs              int        `json:"runs"`
	StepsPerRun       int        `json:"steps_per_run"`
}

func newBenchTrainCmd(g *globalOptions) *cobra.Command {
	var (
		mf       modelFlags
		batch    int
		runs     int
		seconds  float64
		useDP    bool
		clip     float64
		sigma    float64
		examples int
		prec     = model.Float32
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Training throughput (examples/s) on synthetic data, float32 or float64",
		Long: `Measure training throughput of a model on synthetic data, the way
../shared/bench/pytorch_reference.py measures PyTorch: warm-up, then the median of several
timed runs of plain SGD steps. Compare with the reference run on the same machine:

  OPENBLAS_NUM_THREADS=1 python3 pytorch_reference.py mlp 2 float32

--precision float64 times the float64 layer math (compare with the reference's float64).

--model lstm and --model transformer (batch 32 unless --batch is given) use the shapes of
the reference's lstm128 and tfm benches, --model cnn (batch 64) its cnn bench's CNN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("batch") && mf.model != model.TypeMLP && mf.model != model.TypeCNN {
				batch = 32 // pytorch_reference.py's batch for lstm128 and tfm
			}
			if batch <= 0 || runs <= 0 || seconds <= 0 {
				return fmt.Errorf("--batch, --runs and --seconds must be > 0")
			}
			ds := syntheticDataset(mf.model, examples, 0)
			spec, err := mf.spec(ds)
			if err != nil {
				return err
			}
			m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				return err
			}
			if err := m.SetPrecision(prec); err != nil {
				return err
			}
			step, err := benchStepper(m, ds, batch, useDP, clip, sigma)
			if err != nil {
				return err
			}
			res := benchTrainResult{Model: m.Spec, Params: m.NumParams(), Batch: batch, DP: useDP, Precision: prec.String(), Threads: runtime.GOMAXPROCS(0), Runs: runs}
			res.ExamplesPerSecond, res.Min, res.Max, res.StepsPerRun, err = measureSteps(cmd.Context(), step, batch, runs, seconds)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), res, func(w io.Writer) {
				mode := "non-DP"
				if useDP {
					mode = "DP-SGD"
				}
				fmt.Fprintf(w, "%s %s %s batch %d (%d params, %d threads): median %.0f examples/s (min %.0f, max %.0f; %d runs × %d steps)\n",
					spec.Type, mode, prec, batch, m.NumParams(), res.Threads, res.ExamplesPerSecond, res.Min, res.Max, runs, res.StepsPerRun)
			})
		},
	}
	mf.register(cmd)
	cmd.Flags().IntVar(&batch, "batch", 64, "batch size (32 for sequence models)")
	cmd.Flags().IntVar(&runs, "runs", 7, "timed runs (the median is reported)")
	cmd.Flags().Float64Var(&seconds, "seconds", 1, "target duration of one timed run")
	cmd.Flags().BoolVar(&useDP, "dp", false, "time DP-SGD steps (per-example clipping via ghost norms, noise)")
	cmd.Flags().Float64Var(&clip, "max-grad-norm", 1, "DP-SGD clipping norm C")
	cmd.Flags().Float64Var(&sigma, "noise-multiplier", 1, "DP-SGD noise multiplier σ")
	cmd.Flags().IntVar(&examples, "examples", 3200, "synthetic examples cycled through")
	addPrecisionFlag(cmd, &prec)
	return cmd
}

// syntheticDataset returns random data shaped for the model type as pytorch_reference.py
// makes it: 784 features (28×28 images) and 10 classes for the MLP and the CNN; for the recurrent models (lstm128)
// sequences of 80 tokens from a vocabulary of 80 with 80 classes; for the transformer (tfm)
// sequences of 64 tokens from a vocabulary of 100 with 10 classes.
func syntheticDataset(modelType string, n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x73796e))
	var ds *data.Dataset
	switch modelType {
	case model.TypeRNN, model.TypeLSTM, model.TypeGRU, model.TypeTransformer:
		T, V, C := 80, 80, 80
		if modelType == model.TypeTransformer {
			T, V, C = 64, 100, 10
		}
		ds = &data.Dataset{Name: "synthetic", N: n, SeqLen: T, VocabSize: V, Tokens: make([]int32, n*T),
			Lengths: make([]int32, n), Y: make([]int32, n), NumClasses: C}
		for i := range ds.Tokens {
			ds.Tokens[i] = int32(rng.IntN(V))
		}
		for i := range ds.Lengths {
			ds.Lengths[i] = int32(T)
		}
	default:
		ds = &data.Dataset{Name: "synthetic", N: n, Dim: 784, Shape: []int{28, 28}, X: make([]float64, n*784), Y: make([]int32, n), NumClasses: 10}
		for i := range ds.X {
			ds.X[i] = rng.NormFloat64()
		}
	}
	for i := range ds.Y {
		ds.Y[i] = int32(rng.IntN(ds.NumClasses))
	}
	return ds
}

// benchStepper returns a function doing one training step on the next batch of ds.
func benchStepper(m *model.Model, ds *data.Dataset, batch int, useDP bool, clip, sigma float64) (func() error, error) {
	opt, err := model.NewOptimizer(model.OptimizerConfig{Name: "sgd", LR: 0.05})
	if err != nil {
		return nil, err
	}
	// DP-SGD steps on the same fixed-size batches, with the production noise source, so the
	// two modes differ only by per-example clipping and noise.
	var dpOpt *dpsgd.Optimizer
	if useDP {
		noise, err := dp.NewSecureNoise()
		if err != nil {
			return nil, err
		}
		if dpOpt, err = dpsgd.New(m, opt, noise, dpsgd.Config{NoiseMultiplier: sigma, MaxGradNorm: clip, ExpectedBatch: float64(batch)}); err != nil {
			return nil, err
		}
	}
	if batch > ds.N {
		return nil, fmt.Errorf("--batch %d: more than the %d synthetic examples (--examples)", batch, ds.N)
	}
	var in model.Input
	pos := 0
	return func() error {
		// Contiguous batches, viewed in place as the reference's next_batch slices its
		// tensors (X[i:i+b], the start advancing by b modulo N−b+1): no copy on either side.
		b := batchView(ds, pos, batch)
		pos = (pos + batch) % (ds.N - batch + 1)
		tg := train.Input(ds, &b, &in)
		if dpOpt != nil {
			_, err := dpOpt.Step(m, &in, tg, nil)
			return err
		}
		_, _, err := m.TrainStep(&in, tg, 1/float64(batch), nil, opt)
		return err
	}, nil
}

// batchView is the batch of examples [pos, pos+n) of ds (features, tokens and classes, as
// syntheticDataset makes them) as views into ds.
func batchView(ds *data.Dataset, pos, n int) data.Batch {
	b := data.Batch{N: n, Y: ds.Y[pos : pos+n]}
	if ds.X != nil {
		b.X = ds.X[pos*ds.Dim : (pos+n)*ds.Dim]
	}
	if ds.Tokens != nil {
		b.Tokens, b.Lengths = ds.Tokens[pos*ds.SeqLen:(pos+n)*ds.SeqLen], ds.Lengths[pos:pos+n]
	}
	return b
}

// measureSteps mirrors pytorch_reference.py's bench_loop: 5 warm-up steps, calibrate the
// step count to the target duration, then time `runs` runs and report median, min, max.
func measureSteps(ctx context.Context, step func() error, batch, runs int, target float64) (median, lo, hi float64, steps int, err error) {
	for i := 0; i < 5; i++ {
		if err := step(); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	t0 := time.Now()
	n := 0
	for time.Since(t0) < 300*time.Millisecond {
		if err := step(); err != nil {
			return 0, 0, 0, 0, err
		}
		n++
	}
	steps = max(3, int(float64(n)*target/time.Since(t0).Seconds()))
	rates := make([]float64, runs)
	for r := range rates {
		if ctx != nil && ctx.Err() != nil {
			return 0, 0, 0, 0, ctx.Err()
		}
		t := time.Now()
		for i := 0; i < steps; i++ {
			if err := step(); err != nil {
				return 0, 0, 0, 0, err
			}
		}
		rates[r] = float64(batch*steps) / time.Since(t).Seconds()
	}
	sort.Float64s(rates)
	return rates[len(rates)/2], rates[0], rates[len(rates)-1], steps, nil
}
