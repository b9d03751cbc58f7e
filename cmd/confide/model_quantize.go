package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// quantizeResult is what 'confide model quantize' reports.
type quantizeResult struct {
	Model string `json:"model"`
	Out   string `json:"out"`
	// Tensors weight tensors were quantised (QuantizedParams weights); Activations is
	// dynamic or static, calibrated on CalibrationExamples training examples at the
	// Percentile of their rows' max|x|.
	Tensors             int     `json:"tensors"`
	QuantizedParams     int     `json:"quantized_params"`
	Activations         string  `json:"activations"`
	CalibrationExamples int     `json:"calibration_examples,omitempty"`
	Percentile          float64 `json:"percentile,omitempty"`
	compressionReport
}

type quantizeFlags struct {
	out         string
	calibration int
	percentile  float64
	eval        evalFlags
}

func newModelQuantizeCmd(g *globalOptions) *cobra.Command {
	f := &quantizeFlags{}
	cmd := &cobra.Command{
		Use:   "quantize FILE --out OUT",
		Short: "Quantise a model to int8 after training: smaller on disk, faster to run",
		Long: `Post-training int8 quantisation: every weight tensor (Linear layers, attention projections,
recurrent W_ih and W_hh, embeddings) is stored as int8 values with one float32 scale per
output channel, symmetric (weight = scale × value, value in −127…127, scale = the
channel's largest |weight| / 127). Biases, LayerNorm and position tables stay float64. A
pruned model stays pruned: its zeros are exact, and the file leaves them out.

The quantised model runs in int8: predict, evaluate and serve multiply Linear and
recurrent weights with int8 kernels (AVX-512 VNNI or AVX2 where the CPU has them),
activations quantised row by row to their own largest |x| (dynamic, the default: no
calibration, no clipping). --calibration N instead fixes one activation scale per tensor
from N examples of --dataset's training split (static: the --percentile of the rows'
largest |x|), which clamps rare outliers.

With --dataset, the output compares the model before and after: file size, accuracy on the
test split (--split), and the forward pass's latency (one example) and throughput
(batches of 256).

Privacy: quantising the weights reads only the model. Calibration reads training
examples: a model trained with DP keeps its guarantees with dynamic activations; with
--calibration the activation scales are computed from private data without noise, and the
file records no guarantee any more.`,
		Example: `  confide model quantize mnist.confide --out mnist-int8.confide --dataset mnist
  confide model quantize spam.confide --out spam-int8.confide --dataset spam --data-path spamassassin.jsonl.gz -o json
  confide model quantize mnist.confide --out mnist-int8-static.confide --dataset mnist --calibration 2000`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelQuantize(ctx, g, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.out, "out", "", "write the int8 model to this file")
	cmd.Flags().IntVar(&f.calibration, "calibration", 0, "calibrate static activation scales on this many examples of --dataset's training split (0: dynamic activations)")
	cmd.Flags().Float64Var(&f.percentile, "percentile", model.DefaultCalibrationPercentile, "with --calibration: the percentile of the rows' largest |x| a static scale covers")
	f.eval.register(cmd, "dataset to measure accuracy on (and calibrate on, with --calibration): mnist, fashion-mnist, shakespeare or spam (default: none)")
	return cmd
}

func runModelQuantize(ctx context.Context, g *globalOptions, w io.Writer, path string, f *quantizeFlags) error {
	switch {
	case f.calibration < 0:
		return usageErr("--calibration %d: give a number of examples (0: dynamic activations)", f.calibration)
	case f.calibration > 0 && f.eval.df.name == "":
		return usageErr("--calibration %d needs --dataset: the data to calibrate on (its training split)", f.calibration)
	case !(f.percentile > 0 && f.percentile <= 100):
		return usageErr("--percentile %v: must be in (0, 100]", f.percentile)
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
		return usageErr("model %s is already quantised (%s)", path, m.Precision())
	}
	var trainSet, evalSet *data.Dataset
	if f.eval.df.name != "" {
		var testSet *data.Dataset
		if trainSet, testSet, err = modelDatasets(ctx, m, path, f.eval.df, f.eval.seed); err != nil {
			return err
		}
		evalSet = f.eval.evalSplit(trainSet, testSet)
	}
	res := quantizeResult{Model: path, Out: f.out}
	if res.Before, err = measureModel(ctx, m, path, evalSet); err != nil {
		return err
	}
	q := m.Clone()
	var opts model.QuantizeOptions
	if f.calibration > 0 {
		n := min(f.calibration, trainSet.N)
		opts.Calibration = calibrationBatches(trainSet, n)
		opts.Percentile = f.percentile
		res.CalibrationExamples, res.Percentile = n, f.percentile
	}
	if err := q.Quantize(opts); err != nil {
		return usageErr("%v", err)
	}
	qz := q.Quantization()
	res.Tensors, res.Activations = len(qz.Tensors), qz.Activations
	for _, t := range qz.Tensors {
		res.QuantizedParams += t.Size()
	}
	step := fmt.Sprintf("post-training int8 quantisation: %d weight tensors (%s parameters), per-channel symmetric scales, ", res.Tensors, thousands(res.QuantizedParams))
	meta := q.Meta
	if f.calibration > 0 {
		step += fmt.Sprintf("static activation scales calibrated on %s training examples of %s (percentile %g)", thousands(res.CalibrationExamples), f.eval.df.name, f.percentile)
		if p := meta.Provenance; p != nil && len(p.Privacy) > 0 {
			slog.Warn("--calibration computes activation scales from training examples without noise: the quantised model no longer carries the DP guarantees of the model it came from (quantise with dynamic activations, the default, to keep them)")
			step += "; the DP guarantees the model had do not cover the calibration, so none is recorded"
			meta = withCompression(meta, step)
			meta.Provenance.Privacy = nil
		} else {
			meta = withCompression(meta, step)
		}
	} else {
		meta = withCompression(meta, step+"dynamic activations")
	}
	q.Meta = meta
	if err := q.Save(f.out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if res.After, err = measureModel(ctx, q, f.out, evalSet); err != nil {
		return err
	}
	if err := timeBoth(ctx, m, q, evalSet, &res.compressionReport); err != nil {
		return err
	}
	if evalSet != nil {
		res.Dataset, res.Split, res.Examples = f.eval.df.name, f.eval.split, evalSet.N
	}
	res.compare()
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "quantised %d weight tensors (%s parameters) of %s to int8, %s activations\n", res.Tensors, thousands(res.QuantizedParams), path, res.Activations)
		res.print(w)
		fmt.Fprintf(w, "written to %s\n", f.out)
	})
}

// calibrationBatches are the first n examples of ds as model inputs, in batches of 256.
func calibrationBatches(ds *data.Dataset, n int) []*model.Input {
	var out []*model.Input
	for lo := 0; lo < n; lo += 256 {
		idx := make([]int, min(256, n-lo))
		for i := range idx {
			idx[i] = lo + i
		}
		var b data.Batch
		ds.Gather(&b, idx)
		in := &model.Input{}
		train.Input(ds, &b, in)
		out = append(out, in)
	}
	return out
}
