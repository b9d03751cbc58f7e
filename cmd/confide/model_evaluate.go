package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// evaluateResult is what 'confide model evaluate' reports.
type evaluateResult struct {
	Model     string `json:"model"`
	ModelName string `json:"model_name"`
	Dataset   string `json:"dataset"`
	Split     string `json:"split"`
	Examples  int    `json:"examples"`
	// Task is classify or next-token; Rows counts the predictions scored: examples, or the
	// predicted positions (characters) of a language model.
	Task     string  `json:"task"`
	Rows     int64   `json:"rows"`
	Accuracy float64 `json:"accuracy"`
	// Regression holds a regression model's errors in the target's units (R², RMSE, MAE,
	// MSE); the classification fields are then empty.
	Regression *metrics.RegressionReport `json:"regression,omitempty"`
	// Loss is the mean cross-entropy (nats) per row; Perplexity exp(Loss), language models only.
	Loss         float64               `json:"loss"`
	Perplexity   *float64              `json:"perplexity,omitempty"`
	MacroF1      float64               `json:"macro_f1"`
	MacroClasses int                   `json:"macro_classes"`
	ROCAUC       *float64              `json:"roc_auc,omitempty"`
	PerClass     []metrics.ClassReport `json:"per_class"`
	// Confusion[i][j] counts rows of class i predicted as j (up to 256 classes).
	Confusion    [][]int64 `json:"confusion,omitempty"`
	ConfusionPNG string    `json:"confusion_png,omitempty"`
	Seconds      float64   `json:"seconds"`
}

type evaluateFlags struct {
	df          dataFlags
	split       string
	batch       int
	maxExamples int
	seed        uint64
	png         string
}

func newModelEvaluateCmd(g *globalOptions) *cobra.Command {
	f := &evaluateFlags{}
	cmd := &cobra.Command{
		Use:   "evaluate FILE --dataset NAME",
		Short: "Evaluate a model file on a dataset: accuracy, loss, per-class precision/recall/F1, ROC AUC, confusion matrix, perplexity; R², RMSE, MAE of a regressor",
		Long: `Evaluate a model file on the test split (or --split train) of a dataset the CLI knows:
mnist, fashion-mnist, shakespeare (next character) or spam, located as for 'confide train'
(--data-dir, --data-path), or of a dataset spec file (--dataset SPEC.yaml).

A model trained on a dataset spec (confide train --dataset SPEC.yaml, or a federation's
checkpoint) records the spec, and its data is read with that recorded spec: the same
classes, categories and normalisation statistics as in training (a federation's estimated
ones included), nothing fitted again. --dataset SPEC.yaml says where the files are (its
path and test_path; a spec with a test_path alone is evaluated on all of it), or
--data-path FILE names one file, all of whose rows are evaluated. A regressor (loss mse) is
reported by R², RMSE, MAE and MSE in the target's units.

Reports accuracy, the mean cross-entropy loss, per-class precision, recall and F1, macro-F1
(over the classes among the labels or predictions), ROC AUC of class 1 for two classes, the
confusion matrix (rows: true class, columns: predicted; also as a PNG with --confusion-png)
and, for language models, perplexity (exp of the loss per character).

Text is encoded with the tokenizer the model file records, so the data set is read as the
model was trained to read it; spam's test split follows from --seed, which defaults to the
seed the model was trained with (as its provenance records), so that the model is tested on
e-mails it did not train on.

A dataset that does not fit the model (other input size, class count or class names, text
for an image model) is a usage error (exit code 2) that names what the model expects.`,
		Example: `  confide model evaluate model.confide --dataset mnist
  confide model evaluate price.confide --data-path examples/tabular/data/eval.csv
  confide model evaluate model.confide --dataset mnist --confusion-png confusion.png -o json
  confide model evaluate spam.confide --dataset spam --data-path spamassassin.jsonl.gz
  confide model evaluate lm.confide --dataset shakespeare --data-path tinyshakespeare.txt`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelEvaluate(ctx, g, cmd, cmd.OutOrStdout(), args[0], f)
		},
	}
	f.df.register(cmd)
	cmd.Flags().StringVar(&f.split, "split", "test", "which split to evaluate on: test or train")
	cmd.Flags().IntVar(&f.batch, "batch", 256, "examples per forward pass")
	cmd.Flags().IntVar(&f.maxExamples, "max-examples", 0, "evaluate on the first N examples of the split only (0: all)")
	cmd.Flags().Uint64Var(&f.seed, "seed", 1, "seed of the dataset's random split (spam); default: the seed the model was trained with")
	cmd.Flags().StringVar(&f.png, "confusion-png", "", "also draw the confusion matrix into this PNG file")
	return cmd
}

func runModelEvaluate(ctx context.Context, g *globalOptions, cmd *cobra.Command, w io.Writer, path string, f *evaluateFlags) error {
	switch {
	case f.split != "test" && f.split != "train":
		return usageErr("--split %q: use test or train", f.split)
	case f.batch <= 0:
		return usageErr("--batch %d: must be ≥ 1", f.batch)
	case f.maxExamples < 0:
		return usageErr("--max-examples %d: must be ≥ 0 (0: all)", f.maxExamples)
	case f.df.opts.SeqLen < 0:
		return usageErr("--seq-len %d: must be ≥ 0", f.df.opts.SeqLen)
	}
	if f.png != "" && !strings.EqualFold(filepath.Ext(f.png), ".png") {
		return usageErr("--confusion-png %q: give a file name ending in .png", f.png)
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	var seed uint64 // 0: the seed the model was trained with
	if cmd.Flags().Changed("seed") {
		seed = f.seed
	}
	df := f.df
	if !cmd.Flags().Changed("dataset") && len(m.Meta.Dataset) > 0 {
		df.name = "" // the model's recorded spec reads --data-path
		if df.opts.Path == "" {
			return usageErr("model %s was trained on a dataset spec: give the data, --data-path FILE (read with the spec the model records) or --dataset SPEC.yaml", path)
		}
	}
	trainSet, testSet, err := modelDatasets(ctx, m, path, df, seed)
	if err != nil {
		return err
	}
	ds := testSet
	if f.split == "train" {
		ds = trainSet
	}
	if f.maxExamples > 0 && f.maxExamples < ds.N {
		idx := make([]int, f.maxExamples)
		for i := range idx {
			idx[i] = i
		}
		ds = ds.Subset(idx)
	}
	dsName := df.name
	if dsName == "" {
		dsName = df.opts.Path
	}
	if m.Spec.Loss == model.LossMSE {
		return evaluateRegressor(g, w, path, m, ds, dsName, f)
	}
	acc, err := metrics.NewClassification(m.Spec.Output)
	if err != nil {
		return usageErr("model %s: %v", path, err)
	}
	start := time.Now()
	bar := newProgress(int64(ds.N), "evaluate")
	err = train.EachOutput(ctx, m, ds, f.batch, func(z []float64, y int32) error {
		return acc.AddLogits(z, int(y))
	}, func(n int) {
		if bar != nil {
			bar.Add(n)
		}
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	names := m.Meta.OutputNames(m.Spec)
	if names == nil && len(ds.ClassNames) == m.Spec.Output {
		names = ds.ClassNames
	}
	rep := acc.Report(names)
	res := evaluateResult{
		Model: path, ModelName: modelName(m.Spec), Dataset: dsName, Split: f.split, Examples: ds.N, Task: ds.Task.String(),
		Rows: rep.Rows, Accuracy: rep.Accuracy, Loss: rep.Loss, MacroF1: rep.MacroF1, MacroClasses: rep.MacroClasses,
		ROCAUC: rep.ROCAUC, PerClass: rep.PerClass, Confusion: rep.Confusion, Seconds: time.Since(start).Seconds(),
	}
	if ds.Task == data.TaskNextToken {
		res.Perplexity = &rep.Perplexity
	}
	if f.png != "" {
		if rep.Confusion == nil {
			return usageErr("--confusion-png: %d classes are too many to draw (at most %d)", m.Spec.Output, metrics.MaxConfusionClasses)
		}
		title := fmt.Sprintf("%s\n%s %s: accuracy %.4f (colour: share of the true class)", res.ModelName, dsName, f.split, res.Accuracy)
		if err := writeConfusionPNG(f.png, title, rep); err != nil {
			return err
		}
		res.ConfusionPNG = f.png
	}
	return g.emit(w, res, func(w io.Writer) { res.print(w) })
}

// evaluateRegressor reports a regression model's errors on ds in the target's units.
func evaluateRegressor(g *globalOptions, w io.Writer, path string, m *model.Model, ds *data.Dataset, dsName string, f *evaluateFlags) error {
	if f.png != "" {
		return usageErr("--confusion-png: model %s is a regression model (loss mse), which has no confusion matrix", path)
	}
	if ds.Task != data.TaskRegress {
		return usageErr("model %s is a regression model (loss mse); dataset %s is a classification task", path, dsName)
	}
	start := time.Now()
	r, err := train.Evaluate(m, ds, f.batch)
	if err != nil {
		return usageErr("model %s does not fit dataset %s: %v", path, dsName, err)
	}
	res := evaluateResult{Model: path, ModelName: modelName(m.Spec), Dataset: dsName, Split: f.split, Examples: ds.N, Task: ds.Task.String(),
		Rows: int64(ds.N), Loss: r.Loss, Regression: r.Regression, Seconds: time.Since(start).Seconds()}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s (%s) on %s %s: %s examples\n", res.Model, res.ModelName, res.Dataset, res.Split, thousands(res.Examples))
		if g := r.Regression; g != nil {
			fmt.Fprintf(w, "R² %.4f  RMSE %.4g  MAE %.4g  MSE %.4g (in the target's units)  loss %.4f  (%.1fs)\n", g.R2, g.RMSE, g.MAE, g.MSE, res.Loss, res.Seconds)
		}
	})
}

// fitDataset checks that m can read ds, and re-encodes ds's text with the tokenizer m's
// file records, naming what the model expects on a mismatch.
func fitDataset(m *model.Model, ds *data.Dataset) error {
	s := m.Spec
	switch {
	case s.IsSequence() && !ds.IsText():
		return fmt.Errorf("the model reads text (%s); the dataset holds %d dense features an example", inputShape(m), ds.Dim)
	case !s.IsSequence() && ds.IsText():
		return fmt.Errorf("the model reads %s; the dataset holds text", inputShape(m))
	case s.Task == model.TaskNextToken && ds.Task != data.TaskNextToken:
		return fmt.Errorf("the model predicts the next token; the dataset is a classification task")
	case s.Task != model.TaskNextToken && ds.Task == data.TaskNextToken:
		return fmt.Errorf("the model classifies into %d classes; the dataset is a next-token task", s.Output)
	case !s.IsSequence() && ds.Dim != s.Input:
		return fmt.Errorf("the model reads %s; the dataset's examples have %d", inputShape(m), ds.Dim)
	case ds.Task == data.TaskClassify && ds.NumClasses != s.Output:
		return fmt.Errorf("the model has %d outputs; the dataset has %d classes", s.Output, ds.NumClasses)
	case ds.Task == data.TaskClassify && len(m.Meta.ClassNames) > 0 && len(ds.ClassNames) > 0 && !slices.Equal(m.Meta.ClassNames, ds.ClassNames):
		return fmt.Errorf("the model's classes are %s; the dataset's are %s", shortNames(m.Meta.ClassNames), shortNames(ds.ClassNames))
	}
	if !ds.IsText() {
		if in := m.Meta.Input; in != nil && ds.Normalization != nil &&
			(!slices.Equal(in.Mean, ds.Normalization.Mean) || !slices.Equal(in.Std, ds.Normalization.Std)) {
			return fmt.Errorf("the model reads raw inputs normalised as (x − %s) / %s; the dataset's are normalised as (x − %s) / %s",
				shortList(in.Mean), shortList(in.Std), shortList(ds.Normalization.Mean), shortList(ds.Normalization.Std))
		}
		return nil
	}
	t := m.Meta.Tokenizer
	if t == nil || ds.Text == nil {
		if ds.VocabSize > s.Vocab {
			return fmt.Errorf("the model's vocabulary has %d token ids, the dataset's %d (and the model file records no tokenizer to re-encode it with)", s.Vocab, ds.VocabSize)
		}
		slog.Warn("the model file records no tokenizer: the dataset's own token ids are assumed to be the model's", "dataset", ds.Name)
		return nil
	}
	if t.Type != ds.Text.Tokenizer {
		return fmt.Errorf("the model reads %s tokens; the dataset is encoded as %s tokens", t.Type, ds.Text.Tokenizer)
	}
	// Map the dataset's ids to the model's by token; tokens the model does not know become
	// UnknownID, as they would have in training.
	ids := make(map[string]int32, len(t.Vocab))
	for i, tok := range t.Vocab {
		ids[tok] = int32(i + 2)
	}
	remap := make([]int32, ds.VocabSize)
	remap[data.UnknownID] = data.UnknownID
	shared := 0
	for i, tok := range ds.Text.Vocab {
		id, ok := ids[tok]
		if !ok {
			id = data.UnknownID
		} else {
			shared++
		}
		remap[i+2] = id
	}
	if shared != len(t.Vocab) || shared != len(ds.Text.Vocab) {
		slog.Warn("the dataset's vocabulary differs from the model's: tokens only the model knows are read as unknown (for spam, evaluate with the seed the model was trained with)",
			"model_tokens", len(t.Vocab), "dataset_tokens", len(ds.Text.Vocab), "shared", shared)
	}
	for i, id := range ds.Tokens {
		ds.Tokens[i] = remap[id]
	}
	for i, id := range ds.Targets {
		if id >= 0 {
			ds.Targets[i] = remap[id]
		}
	}
	ds.VocabSize = len(t.Vocab) + 2
	ds.Text = &data.TextEncoding{Tokenizer: t.Type, Vocab: t.Vocab, MaxLen: t.MaxLen, StripEmailHeaders: t.StripEmailHeaders, StripHTML: t.StripHTML}
	if ds.VocabSize > s.Vocab {
		return fmt.Errorf("the model's tokenizer has %d ids but its vocab only %d", ds.VocabSize, s.Vocab)
	}
	return nil
}

func (r evaluateResult) print(w io.Writer) {
	fmt.Fprintf(w, "%s (%s) on %s %s: %s examples", r.Model, r.ModelName, r.Dataset, r.Split, thousands(r.Examples))
	if r.Task == data.TaskNextToken.String() {
		fmt.Fprintf(w, ", %s predicted tokens", thousands(int(r.Rows)))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "accuracy %.4f  loss %.4f  macro-F1 %.4f (over %d classes)", r.Accuracy, r.Loss, r.MacroF1, r.MacroClasses)
	if r.Perplexity != nil {
		fmt.Fprintf(w, "  perplexity %.3f", *r.Perplexity)
	}
	if r.ROCAUC != nil {
		fmt.Fprintf(w, "  ROC AUC %.4f", *r.ROCAUC)
	}
	fmt.Fprintf(w, "  (%.1fs)\n", r.Seconds)
	if len(r.PerClass) > 20 {
		fmt.Fprintf(w, "per-class precision, recall, F1 and the confusion matrix of the %d classes: -o json\n", len(r.PerClass))
	} else {
		fmt.Fprintf(w, "%-14s %9s %7s %7s %8s\n", "class", "precision", "recall", "F1", "support")
		for _, c := range r.PerClass {
			name := c.Name
			if name == "" {
				name = fmt.Sprint(c.Class)
			}
			fmt.Fprintf(w, "%-14s %9.4f %7.4f %7.4f %8d\n", name, c.Precision, c.Recall, c.F1, c.Support)
		}
		if r.Confusion != nil {
			fmt.Fprintf(w, "confusion matrix (rows: true class, columns: predicted):\n")
			for _, row := range r.Confusion {
				for j, v := range row {
					if j > 0 {
						fmt.Fprint(w, " ")
					}
					fmt.Fprintf(w, "%6d", v)
				}
				fmt.Fprintln(w)
			}
		}
	}
	if r.ConfusionPNG != "" {
		fmt.Fprintf(w, "confusion matrix drawn in %s\n", r.ConfusionPNG)
	}
}
