package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/internal/atomicfile"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/onnxexport"
)

// exportResult is what 'confide model export' reports.
type exportResult struct {
	Model  string `json:"model"`
	File   string `json:"file"`
	Bytes  int    `json:"bytes"`
	Format string `json:"format"`
	Opset  int    `json:"opset"`
	// Weights says what the graph's float32 initializers hold: the model's weights, or an
	// int8 model's dequantised ones.
	Weights string              `json:"weights"`
	Inputs  []onnxexport.Tensor `json:"inputs"`
	Outputs []onnxexport.Tensor `json:"outputs"`
	// NormalizedInput: the graph applies the model file's input normalisation (mlp).
	NormalizedInput bool `json:"normalized_input,omitempty"`
	// MaxLen is the longest sequence the graph accepts (sequence models with position
	// tables or masks; 0: unbounded).
	MaxLen int `json:"max_len,omitempty"`
}

type exportFlags struct {
	format      string
	out         string
	noNormalize bool
	maxLen      int
}

func newModelExportCmd(g *globalOptions) *cobra.Command {
	f := &exportFlags{}
	cmd := &cobra.Command{
		Use:   "export FILE --format onnx --out OUT",
		Short: "Export a model to ONNX (opset 13) for other runtimes",
		Long: fmt.Sprintf(`Write the model as an ONNX graph (opset 13), for onnxruntime, gonnx and the other ONNX
runtimes: MLPs, RNN, LSTM and GRU models, and Transformers, classifiers and next-token
models alike. Its outputs equal Confide's forward pass to float32 rounding (the tests check
1e-5 in a pure-Go ONNX runtime, and run the onnx checker).

Inputs and outputs:
  mlp                 input    float32 [batch, features]: raw features, normalised inside
                               the graph with the model file's mean and std (as 'confide
                               model predict' does; --no-normalize: the graph reads
                               normalised ones)
  rnn, lstm, gru,     tokens   int64 [batch, seq]: token ids (the tokenizer in the model
  transformer                  file's metadata turns text into them)
                      lengths  int64 [batch], classifiers only: row i's first lengths[i]
                               tokens are its text, the rest padding
  outputs             logits and probabilities (softmax), or output for an mse model:
                      [batch, classes], or [batch, seq, vocab] for a next-token model
                      (position t predicts token t+1; outputs past a row's end mean nothing)

Weights are written as float32. A quantised (int8) model exports its dequantised weights,
run in float32 rather than with Confide's int8 kernels, and a pruned model its zeros. The
ONNX model's metadata carries the spec, class names, input normalisation, tokenizer and
provenance as JSON (keys confide.*). Sequences may be as long as the spec's max_len; a
recurrent classifier without one accepts --max-len tokens (default: the tokenizer's
max_len, else %d).

Not exportable: an MLP with a feature stage (the scattering transform).`, onnxexport.DefaultMaxLen),
		Example: `  confide model export mnist.confide --format onnx --out mnist.onnx
  confide model export spam.confide --format onnx --out spam.onnx -o json`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelExport(g, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.format, "format", "onnx", "export format: onnx (the only one)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the exported model to this file (e.g. model.onnx)")
	cmd.Flags().BoolVar(&f.noNormalize, "no-normalize", false, "mlp: leave the model file's input normalisation out of the graph, which then reads normalised features")
	cmd.Flags().IntVar(&f.maxLen, "max-len", 0, fmt.Sprintf("recurrent classifiers whose spec has no max_len: the longest sequence the graph accepts (default: the tokenizer's max_len, else %d)", onnxexport.DefaultMaxLen))
	return cmd
}

func runModelExport(g *globalOptions, w io.Writer, path string, f *exportFlags) error {
	if f.format != "onnx" {
		return usageErr("--format %q: the only export format is onnx", f.format)
	}
	if f.maxLen < 0 {
		return usageErr("--max-len %d: give the longest sequence the exported model accepts (> 0), or omit it", f.maxLen)
	}
	if err := checkOut(f.out, path); err != nil {
		return err
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	exp, err := onnxexport.Export(m, onnxexport.Options{Normalize: !f.noNormalize, MaxLen: f.maxLen, ProducerVersion: version})
	if errors.Is(err, onnxexport.ErrUnsupported) {
		return usageErr("model %s: %v", path, err)
	}
	if err != nil {
		return err
	}
	raw, err := exp.Marshal()
	if err != nil {
		return fmt.Errorf("encode ONNX: %w", err)
	}
	if err := atomicfile.Write(f.out, raw, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	res := exportResult{Model: path, File: f.out, Bytes: len(raw), Format: "onnx", Opset: onnxexport.Opset,
		Weights: "float32", Inputs: exp.Inputs, Outputs: exp.Outputs, NormalizedInput: exp.Normalized, MaxLen: exp.MaxLen}
	if p := m.Precision(); p != model.PrecisionFloat64 {
		res.Weights = "float32, dequantised from " + p
	}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "exported %s (%s) to %s: ONNX opset %d, %s bytes, weights %s\n", path, m.Spec.Type, f.out, res.Opset, thousands(res.Bytes), res.Weights)
		for _, t := range res.Inputs {
			fmt.Fprintf(w, "  input   %s\n", t)
		}
		for _, t := range res.Outputs {
			fmt.Fprintf(w, "  output  %s\n", t)
		}
		if res.NormalizedInput {
			fmt.Fprintln(w, "  the graph normalises raw features with the model file's mean and std")
		}
		if res.MaxLen > 0 {
			fmt.Fprintf(w, "  sequences of at most %d tokens\n", res.MaxLen)
		}
		if m.Spec.Task == model.TaskClassify {
			fmt.Fprintln(w, "  lengths[i]: the number of valid tokens of row i (the rest is padding)")
		}
	})
}
