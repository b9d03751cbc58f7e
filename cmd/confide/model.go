package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

func init() { registerCommand(newModelCmd) }

func newModelCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Use a trained model file: inspect, evaluate, predict, serve, export, generate; prune, quantize, distill",
		Long: `Commands on a model file: what 'confide train --out FILE' writes, the model.confide of a
simulation's results directory, or a server checkpoint (--checkpoint-dir).

A model file holds the architecture (spec), the parameters, and what inference needs:
class names, how raw inputs were normalised (images) or tokenised (text, with the
vocabulary), and how the model was trained (central or federated, rounds or epochs,
differential-privacy guarantees, data set, date, confide version, and the compression steps
that made it). Files written before metadata existed (format version 1) load too; they say
nothing beyond spec and parameters.

Compression: prune (magnitude pruning to a sparsity, kept through fine-tuning, DP-SGD and
federations), quantize (int8 weights, run with int8 kernels by predict, evaluate and
serve), distill (a smaller student trained on the model's softened outputs). Each reports
file size, accuracy and latency before and after.

Explanations: explain (integrated gradients with saliency and token maps, permutation
importance, Transformer attention maps). An explanation discloses the data it is computed
on: explain on public data, not on private training data.

Export: export writes the model as an ONNX graph (opset 13) for other runtimes.

Language models: generate continues a prompt with a causal Transformer (a KV cache spares
recomputing the prefix for every token).

Exit codes: 0 success, 1 runtime failure, 2 a usage error: a bad flag value, a missing or
corrupt model file, or data that does not fit the model.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newModelInspectCmd(g), newModelEvaluateCmd(g), newModelPredictCmd(g), newModelPruneCmd(g), newModelQuantizeCmd(g), newModelDistillCmd(g), newModelServeCmd(g), newModelExportCmd(g))
	cmd.AddCommand(newModelExplainCmd(g))
	cmd.AddCommand(newModelGenerateCmd(g))
	return cmd
}

// usageErr is an error that exits with code 2 (a usage or input error, see main.go).
func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

// modelFileArg accepts exactly one argument, the model file.
func modelFileArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErr("'%s' takes one argument, the model file, got %d (e.g. %s model.confide; 'confide train --out model.confide' writes one)",
			cmd.CommandPath(), len(args), cmd.CommandPath())
	}
	return nil
}

// modelFile is a loaded model file.
type modelFile struct {
	path    string
	version uint32
	bytes   int64
	m       *model.Model
}

// loadModelFile reads a model file; a missing, unreadable or corrupt file is a usage error
// naming the path and the fix.
func loadModelFile(path string) (*modelFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErr("model file %s does not exist: give the path of a model file ('confide train --out FILE' writes one; a sim writes results/NAME-TIME/model.confide, a server round-NNNN.confide in --checkpoint-dir)", path)
		}
		return nil, usageErr("model file %s: %v", path, err)
	}
	m, err := model.Unmarshal(raw)
	if err != nil {
		fix := "it is not a model file this confide can read"
		if errors.Is(err, model.ErrCorrupt) {
			fix = "the file is damaged or not a model file: restore or retrain it"
		}
		return nil, usageErr("model file %s: %v (%s)", path, err, fix)
	}
	return &modelFile{path: path, version: binary.LittleEndian.Uint32(raw[8:]), bytes: int64(len(raw)), m: m}, nil
}

// inputShape says in words what a model reads: "784 features (a 28×28 image)", "token ids
// (vocabulary of 67, sequences of at most 64)".
func inputShape(m *model.Model) string {
	s := m.Spec
	if s.IsSequence() {
		out := fmt.Sprintf("token ids below %d", s.Vocab)
		if s.MaxLen > 0 {
			out += fmt.Sprintf(", sequences of at most %d", s.MaxLen)
		}
		return out
	}
	out := fmt.Sprintf("%d features", s.Input)
	if in := m.Meta.Input; in != nil && len(in.Shape) > 0 {
		dims := make([]string, len(in.Shape))
		for i, d := range in.Shape {
			dims[i] = fmt.Sprint(d)
		}
		what := "an example of shape"
		if in.Kind == model.InputImage {
			what = "a greyscale image of"
		}
		out += fmt.Sprintf(" (%s %s)", what, strings.Join(dims, "×"))
	}
	return out
}

// centralMeta is what 'confide train --out' records in the model file: how to read raw
// inputs (from the training set ds, and the dataset schema it was read with, if any) and
// how the model was trained, with the DP-SGD guarantee of res when it has one.
func centralMeta(ds *data.Dataset, spec model.Spec, res trainResult, seed uint64, schema *data.Schema) model.Meta {
	meta, err := train.SchemaMeta(ds, spec, schema)
	if err != nil {
		slog.Warn("the model file does not record the dataset spec: predict and evaluate cannot encode raw rows with it", "err", err)
	}
	p := model.NewProvenance(model.TrainedCentral)
	if version != "" {
		p.ConfideVersion = version
	}
	p.Dataset, p.Epochs, p.Seed = res.Dataset, res.EpochsCompleted, seed
	if res.Epsilon != nil && !math.IsInf(*res.Epsilon, 0) && !math.IsNaN(*res.Epsilon) {
		meaning := "record-level (example-level) DP of each training example: DP-SGD with Poisson sampling and per-example clipping"
		if res.HeldOut > 0 {
			meaning += fmt.Sprintf("; the %d examples held out for validation are not covered", res.HeldOut)
		}
		p.Privacy = []model.PrivacyGuarantee{{Level: model.PrivacyRecord, Mechanism: "DP-SGD, " + res.Accounting + "; noise " + res.NoiseSource,
			Epsilon: *res.Epsilon, Delta: *res.Delta, NoiseMultiplier: *res.NoiseMultiplier, Meaning: meaning}}
	}
	meta.Provenance = p
	return meta
}
