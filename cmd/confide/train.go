package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

func init() { registerCommand(newTrainCmd) }

// modelFlags select and shape a model; shared by train, bench and sim.
type modelFlags struct {
	model      string
	specFile   string
	hidden     []int
	activation string
	dropout    float64
}

func (f *modelFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.model, "model", "mlp", "model type: mlp")
	cmd.Flags().StringVar(&f.specFile, "model-spec", "", "YAML/JSON model spec file (overrides --model and its shape flags)")
	cmd.Flags().IntSliceVar(&f.hidden, "hidden", []int{256, 128}, "hidden layer widths of the mlp")
	cmd.Flags().StringVar(&f.activation, "activation", "relu", "hidden activation: relu, gelu, tanh or sigmoid")
	cmd.Flags().Float64Var(&f.dropout, "dropout", 0, "dropout probability after hidden layers")
}

// spec returns the model spec for a dataset.
func (f *modelFlags) spec(ds *data.Dataset) (model.Spec, error) {
	if f.specFile != "" {
		b, err := os.ReadFile(f.specFile)
		if err != nil {
			return model.Spec{}, fmt.Errorf("--model-spec: %w", err)
		}
		s, err := model.ParseSpec(b)
		if err != nil {
			return model.Spec{}, fmt.Errorf("--model-spec %s: %w", f.specFile, err)
		}
		return s, nil
	}
	switch f.model {
	case model.TypeMLP:
		if ds.IsText() {
			return model.Spec{}, fmt.Errorf("--model mlp needs dense features; dataset %s is text", ds.Name)
		}
		s := model.Spec{Type: model.TypeMLP, Input: ds.Dim, Hidden: f.hidden, Output: ds.NumClasses, Activation: f.activation, Dropout: f.dropout}
		return s, s.Validate()
	}
	return model.Spec{}, fmt.Errorf("--model %q unknown (use mlp, or --model-spec for a spec file)", f.model)
}

// optimFlags configure local training.
type optimFlags struct {
	epochs      int
	batch       int
	optimizer   string
	lr          float64
	momentum    float64
	weightDecay float64
	schedule    string
	warmup      int
	seed        uint64
}

func (f *optimFlags) register(cmd *cobra.Command, epochs, batch int, lr, momentum float64, schedule string) {
	cmd.Flags().IntVar(&f.epochs, "epochs", epochs, "passes over the training set")
	cmd.Flags().IntVar(&f.batch, "batch", batch, "mini-batch size (expected size under DP-SGD's Poisson sampling)")
	cmd.Flags().StringVar(&f.optimizer, "optimizer", "sgd", "optimizer: sgd, adam or adamw")
	cmd.Flags().Float64Var(&f.lr, "lr", lr, "learning rate")
	cmd.Flags().Float64Var(&f.momentum, "momentum", momentum, "SGD momentum")
	cmd.Flags().Float64Var(&f.weightDecay, "weight-decay", 0, "weight decay (L2 for sgd/adam, decoupled for adamw)")
	cmd.Flags().StringVar(&f.schedule, "schedule", schedule, "learning-rate schedule: constant or cosine")
	cmd.Flags().IntVar(&f.warmup, "warmup", 0, "linear learning-rate warm-up steps")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "random seed (initialisation, shuffling, dropout)")
}

func (f *optimFlags) config() train.Config {
	return train.Config{
		Epochs: f.epochs, BatchSize: f.batch, Schedule: f.schedule, Warmup: f.warmup, Seed: f.seed,
		Optimizer: model.OptimizerConfig{Name: f.optimizer, LR: f.lr, Momentum: f.momentum, WeightDecay: f.weightDecay},
	}
}

type trainResult struct {
	Dataset           string              `json:"dataset"`
	Model             model.Spec          `json:"model"`
	Params            int                 `json:"params"`
	Epochs            int                 `json:"epochs"`
	TestAccuracy      float64             `json:"test_accuracy"`
	TestLoss          float64             `json:"test_loss"`
	TrainAccuracy     float64             `json:"train_accuracy"`
	TrainLoss         float64             `json:"train_loss"`
	ExamplesPerSecond float64             `json:"examples_per_second"`
	TrainSeconds      float64             `json:"train_seconds"`
	ModelPath         string              `json:"model_path,omitempty"`
	History           []train.EpochReport `json:"history"`
}

func newTrainCmd(g *globalOptions) *cobra.Command {
	var (
		dataset, dataDir, out string
		mf                    modelFlags
		of                    optimFlags
	)
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model centrally on a dataset",
		Long: `Train a model centrally (no federation) and report test accuracy.

The default trains an MLP 784-256-128-10 on MNIST for 2 epochs; MNIST is copied into your
cache directory on first use.`,
		Example: `  confide train
  confide train --dataset fashion-mnist --epochs 5 -o json
  confide train --model-spec examples/mlp.yaml --out model.confide`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runTrain(ctx, g, cmd.OutOrStdout(), dataset, dataDir, out, &mf, &of)
		},
	}
	cmd.Flags().StringVar(&dataset, "dataset", "mnist", "dataset: mnist or fashion-mnist")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "directory holding the dataset files (default: cache or system location)")
	cmd.Flags().StringVar(&out, "out", "", "write the trained model to this file")
	mf.register(cmd)
	of.register(cmd, 2, 32, 0.05, 0.9, "cosine")
	return cmd
}

func runTrain(ctx context.Context, g *globalOptions, w io.Writer, dataset, dataDir, out string, mf *modelFlags, of *optimFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := of.config()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid training flags: %w", err)
	}
	trainSet, testSet, err := loadDataset(ctx, dataset, dataDir)
	if err != nil {
		return err
	}
	spec, err := mf.spec(trainSet)
	if err != nil {
		return err
	}
	m, err := model.New(spec, rand.New(rand.NewPCG(of.seed, 0x696e6974)))
	if err != nil {
		return err
	}
	tr, err := train.New(m, cfg)
	if err != nil {
		return err
	}
	bar := newProgress(int64(trainSet.N*cfg.Epochs), "train")
	progress := func(n int) {
		if bar != nil {
			bar.Add(n)
		}
	}
	human := g.output != "json"
	start := time.Now()
	history, err := tr.Fit(ctx, trainSet, testSet, func(r train.EpochReport) {
		if bar != nil {
			bar.Clear()
		}
		if human {
			fmt.Fprintf(w, "epoch %d/%d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  (%.1fs)\n",
				r.Epoch, cfg.Epochs, r.Train.Loss, r.Train.Accuracy, r.Test.Loss, r.Test.Accuracy, r.Duration.Seconds())
		}
	}, progress)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	// Throughput counts training time only, not the per-epoch evaluation.
	var trainDur time.Duration
	for _, r := range history {
		trainDur += r.Duration
	}
	last := history[len(history)-1]
	res := trainResult{
		Dataset: dataset, Model: m.Spec, Params: m.NumParams(), Epochs: cfg.Epochs,
		TestAccuracy: last.Test.Accuracy, TestLoss: last.Test.Loss,
		TrainAccuracy: last.Train.Accuracy, TrainLoss: last.Train.Loss,
		ExamplesPerSecond: float64(trainSet.N*cfg.Epochs) / trainDur.Seconds(),
		TrainSeconds:      elapsed.Seconds(),
		History:           history,
	}
	if out != "" {
		if err := m.Save(out); err != nil {
			return err
		}
		res.ModelPath = out
	}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s (%d parameters): test accuracy %.4f, test loss %.4f, %.0f examples/s, %.1fs\n",
			dataset, strings.ToUpper(spec.Type), m.NumParams(), res.TestAccuracy, res.TestLoss, res.ExamplesPerSecond, res.TrainSeconds)
		if out != "" {
			fmt.Fprintf(w, "model written to %s\n", out)
		}
	})
}
