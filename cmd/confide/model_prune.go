package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// pruneResult is what 'confide model prune' reports.
type pruneResult struct {
	Model string `json:"model"`
	Out   string `json:"out"`
	// TargetSparsity of the weight tensors, pruned Granularity (global or per-tensor):
	// PrunedWeights of WeightParams weights are now fixed at zero.
	TargetSparsity float64 `json:"target_sparsity"`
	Granularity    string  `json:"granularity"`
	PrunedWeights  int     `json:"pruned_weights"`
	WeightParams   int     `json:"weight_params"`
	// PrunedAccuracy is the accuracy right after pruning, before fine-tuning.
	PrunedAccuracy  *float64      `json:"pruned_accuracy,omitempty"`
	FineTuneEpochs  int           `json:"fine_tune_epochs"`
	FineTune        []epochReport `json:"fine_tune,omitempty"`
	FineTuneSeconds float64       `json:"fine_tune_seconds,omitempty"`
	// Epsilon and Delta are the DP-SGD guarantee of the fine-tuning (--dp).
	Epsilon *float64 `json:"epsilon,omitempty"`
	Delta   *float64 `json:"delta,omitempty"`
	compressionReport
}

// tuneFlags are the optimisation flags of fine-tuning (prune) and distillation.
type tuneFlags struct {
	epochs, batch, warmup     int
	optimizer, schedule       string
	lr, momentum, weightDecay float64
	seed                      uint64
	precision                 model.Precision
	epochsName                string
	flags                     *pflag.FlagSet
}

func (f *tuneFlags) register(cmd *cobra.Command, epochsName string, epochs int, epochsHelp string) {
	f.flags, f.epochsName = cmd.Flags(), epochsName
	cmd.Flags().IntVar(&f.epochs, epochsName, epochs, epochsHelp)
	cmd.Flags().IntVar(&f.batch, "batch", 32, "mini-batch size (expected size under DP-SGD's Poisson sampling; default: the dataset's and model's training default)")
	cmd.Flags().StringVar(&f.optimizer, "optimizer", "sgd", "optimizer: sgd, adam or adamw (default: the dataset's and model's training default)")
	cmd.Flags().Float64Var(&f.lr, "lr", 0, "learning rate (default: per dataset and model)")
	cmd.Flags().Float64Var(&f.momentum, "momentum", 0.9, "SGD momentum")
	cmd.Flags().Float64Var(&f.weightDecay, "weight-decay", 0, "weight decay (L2 for sgd/adam, decoupled for adamw)")
	cmd.Flags().StringVar(&f.schedule, "schedule", "cosine", "learning-rate schedule: constant or cosine")
	cmd.Flags().IntVar(&f.warmup, "warmup", 0, "linear learning-rate warm-up steps")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "random seed (initialisation, shuffling, dropout)")
	f.precision = model.Float32
	addPrecisionFlag(cmd, &f.precision)
}

// config returns the training configuration: the flags given, and for the others the
// training defaults of dataset and model type, with the learning rate scaled by lrScale
// (fine-tuning starts from a trained model and takes smaller steps).
func (f *tuneFlags) config(dataset, modelType string, lrScale float64) train.Config {
	d, ok := trainDefaultsFor[dataset+"/"+modelType]
	if !ok {
		d = trainDefaults{batch: 32, optimizer: "sgd", lr: 0.05, schedule: "cosine"}
	}
	set := func(name string) bool { return f.flags.Changed(name) }
	cfg := train.Config{
		Epochs: f.epochs, BatchSize: d.batch, Schedule: d.schedule, Warmup: f.warmup, Seed: f.seed,
		Optimizer: model.OptimizerConfig{Name: d.optimizer, LR: d.lr * lrScale, Momentum: f.momentum, WeightDecay: f.weightDecay},
	}
	if set("batch") {
		cfg.BatchSize = f.batch
	}
	if set("optimizer") {
		cfg.Optimizer.Name = f.optimizer
	}
	if set("lr") {
		cfg.Optimizer.LR = f.lr
	}
	if set("schedule") {
		cfg.Schedule = f.schedule
	}
	if cfg.Optimizer.Name != "sgd" && !set("momentum") {
		cfg.Optimizer.Momentum = 0
	}
	return cfg
}

type pruneFlags struct {
	sparsity float64
	perLayer bool
	out      string
	eval     evalFlags
	tune     tuneFlags
	dp       dpFlags
}

func newModelPruneCmd(g *globalOptions) *cobra.Command {
	f := &pruneFlags{}
	cmd := &cobra.Command{
		Use:   "prune FILE --sparsity S --out OUT",
		Short: "Prune a model by weight magnitude to a target sparsity, optionally fine-tuning it (also under DP-SGD)",
		Long: `Magnitude pruning (Han et al. 2015): the fraction --sparsity of the model's weights with
the smallest magnitudes is set to zero, with one threshold over all weight tensors, or with
--per-layer each weight tensor pruned to --sparsity on its own (a small layer cannot lose
all its weights). Weight tensors are those of Linear layers, attention projections,
recurrent layers and embeddings; biases, LayerNorm and position tables are kept. One
threshold suits tensors of one scale: beside a Transformer's embedding, drawn from N(0, 1),
its Xavier-scaled projections and classifier fall almost wholly below it (98% of them at
80% sparsity on spam), so prune such models --per-layer.

The pruned positions are recorded in the model's spec (its mask), so they stay zero
wherever the model goes: through --fine-tune-epochs of training on --dataset's training
split (with --dp, under DP-SGD, whose noise is zeroed on them again after every step), and
in a federation that fine-tunes the pruned model, whose server ships the spec, mask
included, to every client (the client's trainer keeps the zeros).

With --dataset, the output compares the model before and after: file size, sparsity,
accuracy on the test split (--split), and the forward pass's latency (one example) and
throughput (batches of 256). Fine-tuning takes the dataset's and model's training
defaults for the flags not given, with a fifth of the learning rate.

Privacy: pruning by magnitude reads only the model. Fine-tuning reads the training data:
with --dp its DP-SGD guarantee is added to the model's provenance (it composes with the
guarantees the model had: on the same data the ε add up); without --dp, a model trained
with DP no longer carries a guarantee for its training data, and the file says so.`,
		Example: `  confide model prune mnist.confide --sparsity 0.8 --out mnist-pruned.confide --dataset mnist
  confide model prune mnist.confide --sparsity 0.8 --fine-tune-epochs 2 --dataset mnist --out mnist-pruned.confide -o json
  confide model prune spam.confide --sparsity 0.8 --per-layer --fine-tune-epochs 1 --dataset spam --data-path spamassassin.jsonl.gz --out spam-pruned.confide
  confide model prune mnist-dp.confide --sparsity 0.5 --fine-tune-epochs 2 --dataset mnist --dp --noise-multiplier 1 --batch 1024 --lr 0.5 --out pruned-dp.confide`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelPrune(ctx, g, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().Float64Var(&f.sparsity, "sparsity", 0, "fraction of the weights to set to zero, in (0, 1), e.g. 0.8")
	cmd.Flags().BoolVar(&f.perLayer, "per-layer", false, "prune every weight tensor to --sparsity (default: one magnitude threshold over all weights)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the pruned model to this file")
	f.eval.register(cmd, "dataset to fine-tune on (training split) and to measure accuracy on: mnist, fashion-mnist, shakespeare or spam (default: none)")
	f.tune.register(cmd, "fine-tune-epochs", 0, "epochs of fine-tuning after pruning, on --dataset's training split (0: none)")
	f.dp.register(cmd)
	cmd.Flags().MarkHidden("holdout") // fine-tuning under DP trains on the whole training split
	return cmd
}

func runModelPrune(ctx context.Context, g *globalOptions, w io.Writer, path string, f *pruneFlags) error {
	switch {
	case !(f.sparsity > 0 && f.sparsity < 1):
		return usageErr("--sparsity %v: give the fraction of weights to prune, in (0, 1), e.g. 0.8", f.sparsity)
	case f.tune.epochs < 0:
		return usageErr("--fine-tune-epochs %d: must be ≥ 0", f.tune.epochs)
	case f.tune.epochs > 0 && f.eval.df.name == "":
		return usageErr("--fine-tune-epochs %d needs --dataset: the data to fine-tune on", f.tune.epochs)
	case f.dp.enabled && f.tune.epochs == 0:
		return usageErr("--dp applies to fine-tuning: give --fine-tune-epochs")
	case f.dp.flags.Changed("holdout"):
		return usageErr("--holdout does not apply to prune: fine-tuning trains on the whole training split")
	}
	if err := f.eval.check(); err != nil {
		return err
	}
	if err := checkOut(f.out, path); err != nil {
		return err
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	if m.Quantization() != nil {
		return usageErr("model %s is quantised (int8): prune the float64 model, then quantise the pruned one", path)
	}
	granularity := model.PruneGlobal
	if f.perLayer {
		granularity = model.PrunePerTensor
	}
	var trainSet, evalSet *data.Dataset
	if f.eval.df.name != "" {
		var testSet *data.Dataset
		if trainSet, testSet, err = modelDatasets(ctx, m, path, f.eval.df, f.eval.seed); err != nil {
			return err
		}
		evalSet = f.eval.evalSplit(trainSet, testSet)
	}
	res := pruneResult{Model: path, Out: f.out, TargetSparsity: f.sparsity, Granularity: granularity, FineTuneEpochs: f.tune.epochs}
	if res.Before, err = measureModel(ctx, m, path, evalSet); err != nil {
		return err
	}
	pruned := m.Clone()
	if err := pruned.Prune(f.sparsity, granularity); err != nil {
		return usageErr("%v", err)
	}
	for _, wt := range pruned.WeightTensors() {
		res.WeightParams += wt.Size()
	}
	res.PrunedWeights = pruned.Spec.Mask.Pruned()
	if evalSet != nil {
		met, err := train.Evaluate(pruned, evalSet, 256)
		if err != nil {
			return err
		}
		res.PrunedAccuracy = &met.Accuracy
	}
	how := "global magnitude threshold"
	if f.perLayer {
		how = "each weight tensor on its own"
	}
	step := fmt.Sprintf("magnitude pruning to %s of the weights (%s of %s pruned, %s)", percent(f.sparsity), thousands(res.PrunedWeights), thousands(res.WeightParams), how)
	meta := pruned.Meta
	if f.tune.epochs > 0 {
		note, err := fineTune(ctx, g, w, pruned, trainSet, f, &res)
		if err != nil {
			return err
		}
		step += "; " + note
		if res.Epsilon == nil && meta.Provenance != nil && len(meta.Provenance.Privacy) > 0 {
			slog.Warn("fine-tuning without --dp reads the training data with no privacy guarantee: the pruned model no longer carries the DP guarantees of the model it came from")
			meta = withCompression(meta, step+"; the DP guarantees the model had do not cover this fine-tuning, so none is recorded")
			meta.Provenance.Privacy = nil
		} else {
			meta = withCompression(meta, step)
			if res.Epsilon != nil && meta.Provenance != nil {
				meta.Provenance.Privacy = append(meta.Provenance.Privacy, model.PrivacyGuarantee{
					Level: model.PrivacyRecord, Mechanism: "DP-SGD fine-tuning after pruning, RDP accountant", Epsilon: *res.Epsilon, Delta: *res.Delta,
					NoiseMultiplier: f.dp.noiseMultiplier,
					Meaning:         fmt.Sprintf("record-level DP of each example of %s's training split during the %s of fine-tuning; it composes with the guarantees above (on the same examples the ε add up)", f.eval.df.name, plural(f.tune.epochs, "epoch")),
				})
			}
		}
	} else {
		meta = withCompression(meta, step)
	}
	pruned.Meta = meta
	if err := pruned.Save(f.out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if res.After, err = measureModel(ctx, pruned, f.out, evalSet); err != nil {
		return err
	}
	if err := timeBoth(ctx, m, pruned, evalSet, &res.compressionReport); err != nil {
		return err
	}
	if evalSet != nil {
		res.Dataset, res.Split, res.Examples = f.eval.df.name, f.eval.split, evalSet.N
	}
	res.compare()
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "pruned %s of %s weights of %s (%s)", thousands(res.PrunedWeights), thousands(res.WeightParams), path, how)
		if res.PrunedAccuracy != nil {
			fmt.Fprintf(w, ": accuracy %.4f before fine-tuning", *res.PrunedAccuracy)
		}
		fmt.Fprintln(w)
		if res.Epsilon != nil {
			fmt.Fprintf(w, "fine-tuned under DP-SGD: (ε = %.3g, δ = %g), recorded in the model's provenance\n", *res.Epsilon, *res.Delta)
		}
		res.print(w)
		fmt.Fprintf(w, "written to %s\n", f.out)
	})
}

// fineTune trains the pruned model on trainSet (its mask applied after every step) and
// returns the provenance note.
func fineTune(ctx context.Context, g *globalOptions, w io.Writer, m *model.Model, trainSet *data.Dataset, f *pruneFlags, res *pruneResult) (string, error) {
	dataset := f.eval.df.name
	cfg := f.tune.config(dataset, m.Spec.Type, 0.2)
	if err := cfg.Validate(); err != nil {
		return "", usageErr("fine-tuning flags: %v", err)
	}
	if f.dp.enabled {
		var err error
		if cfg.DP, err = f.dp.resolve(cfg, trainSet.N); err != nil {
			return "", usageErr("%v", err)
		}
	}
	if err := m.SetPrecision(f.tune.precision); err != nil {
		return "", err
	}
	tr, err := train.New(m, cfg)
	if err != nil {
		return "", usageErr("fine-tuning: %v", err)
	}
	noiseLabel := ""
	if f.dp.enabled {
		noise, sampler, label, err := f.dp.noiseSources(f.tune.seed)
		if err != nil {
			return "", err
		}
		if err := tr.EnableDP(noise, sampler); err != nil {
			return "", usageErr("fine-tuning: %v", err)
		}
		noiseLabel = label
	}
	bar := newProgress(int64(trainSet.N*cfg.Epochs), "fine-tune")
	start := time.Now()
	_, err = tr.Fit(ctx, trainSet, nil, func(r train.EpochReport) {
		e := epochReport{Epoch: r.Epoch, LR: r.LR, Duration: r.Duration}
		if !f.dp.enabled {
			e.Train = &r.Train // under DP, the un-noised batch statistics are not reported
		}
		res.FineTune = append(res.FineTune, e)
		if bar != nil {
			bar.Clear()
		}
		if g.output != "json" {
			fmt.Fprintln(w, e.line(cfg.Epochs))
		}
	}, func(n int) {
		if bar != nil {
			bar.Add(n)
		}
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return "", err
	}
	res.FineTuneSeconds = time.Since(start).Seconds()
	note := fmt.Sprintf("fine-tuned %s on %s (%s, lr %g, batch %d)", plural(cfg.Epochs, "epoch"), dataset, cfg.Optimizer.Name, cfg.Optimizer.LR, cfg.BatchSize)
	if f.dp.enabled {
		r, err := accountant.Epsilon(tr.DPSteps(), f.dp.delta, accountant.Config{})
		if err != nil {
			return "", err
		}
		res.Epsilon, res.Delta = &r.Epsilon, &f.dp.delta
		note += fmt.Sprintf(" under DP-SGD (σ = %.4g, C = %g; ε = %.3g, δ = %g; noise %s)", cfg.DP.NoiseMultiplier, cfg.DP.MaxGradNorm, r.Epsilon, f.dp.delta, noiseLabel)
	}
	return note, nil
}
