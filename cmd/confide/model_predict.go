package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/internal/atomicfile"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// prediction is one line of predict's output.
type prediction struct {
	Index int `json:"index"`
	ID    any `json:"id,omitempty"`
	// Class is the predicted class's name (its id when the file names none), ClassID its
	// output index, Probability its probability.
	Class         string    `json:"class"`
	ClassID       int       `json:"class_id"`
	Probability   float64   `json:"probability"`
	Probabilities []float64 `json:"probabilities"`
}

// predictResult is predict's -o json object (and, with --out, its summary).
type predictResult struct {
	Model        string `json:"model"`
	Input        string `json:"input"`
	Format       string `json:"format"`
	Count        int    `json:"count"`
	Out          string `json:"out,omitempty"`
	OutputFormat string `json:"output_format,omitempty"`
	// Classes names the entries of every prediction's probabilities.
	Classes     []string     `json:"classes"`
	Predictions []prediction `json:"predictions,omitempty"`
}

type predictFlags struct {
	input, format, out, outputFormat string
	batch                            int
	invert, noNormalize              bool
}

func newModelPredictCmd(g *globalOptions) *cobra.Command {
	f := &predictFlags{}
	cmd := &cobra.Command{
		Use:   "predict FILE --input PATH",
		Short: "Predict classes and class probabilities for new inputs: CSV, JSONL, IDX or PNG",
		Long: `Run a model file on new inputs and write, for each, the predicted class (its name when the
model file records class names) and the probability of every class.

Inputs (--input PATH; --format, default from the file name):
  csv    one example a row of raw feature values (a header row is optional; a column named
         id is the example's id); for a text model, a header naming a text column
  jsonl  one example a line: a string of text, an array of raw feature values, or an object
         {"id": ..., "text": "..."} or {"id": ..., "features": [...]}
  idx    an IDX file of N examples (N×rows×cols images, N×features), gzipped or not
  png    a PNG image, or a directory of them: converted to grey, composited over black,
         resized to the model's image shape (--invert for dark drawings on light paper)

Raw feature values are those of the dataset's files (pixels 0–255 for the image
datasets); the model file's normalisation is applied to them (--no-normalize if the values
are already normalised). Text is encoded with the tokenizer the model file records; a
language model predicts the token after the text.

Output: JSON lines (--output-format jsonl, default) or CSV, one line per input in input
order, to --out or stdout. With -o json and no --out, stdout holds one JSON object with the
predictions; with --out, a summary. An input that does not fit the model is a usage error
(exit code 2) naming the input the model expects.`,
		Example: `  confide model predict model.confide --input t10k-images-idx3-ubyte.gz --out predictions.jsonl
  confide model predict model.confide --input digit.png
  confide model predict model.confide --input drawings/ --invert --output-format csv
  confide model predict spam.confide --input mails.jsonl -o json`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelPredict(ctx, g, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.input, "input", "", "the inputs: a CSV, JSONL, IDX or PNG file, or a directory of PNG files")
	cmd.Flags().StringVar(&f.format, "format", "", "input format: csv, jsonl, idx or png (default: from the file name)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the predictions to this file (default: stdout)")
	cmd.Flags().StringVar(&f.outputFormat, "output-format", "jsonl", "predictions as jsonl or csv")
	cmd.Flags().IntVar(&f.batch, "batch", 256, "inputs per forward pass")
	cmd.Flags().BoolVar(&f.invert, "invert", false, "PNG: invert grey levels (dark drawings on light paper; MNIST digits are light on dark)")
	cmd.Flags().BoolVar(&f.noNormalize, "no-normalize", false, "feature values are already normalised: skip the model file's input normalisation")
	return cmd
}

func runModelPredict(ctx context.Context, g *globalOptions, w io.Writer, path string, f *predictFlags) error {
	switch {
	case f.input == "":
		return usageErr("--input is required: the file of inputs (CSV, JSONL, IDX or PNG) or a directory of PNG images")
	case f.outputFormat != "jsonl" && f.outputFormat != "csv":
		return usageErr("--output-format %q: use jsonl or csv", f.outputFormat)
	case f.batch <= 0:
		return usageErr("--batch %d: must be ≥ 1", f.batch)
	}
	format, err := detectFormat(f.input, f.format)
	if err != nil {
		return err
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	if m.Spec.Loss == model.LossMSE {
		return usageErr("model %s is a regression model (loss mse): predict reads classifiers (loss cross_entropy)", path)
	}
	s := inputSpec{m: m}
	var enc *data.TextEncoder
	if s.text() {
		if m.Meta.Tokenizer == nil {
			return usageErr("model %s records no tokenizer (it was written before model files carried one): its text inputs cannot be encoded; retrain it, or use a model file written by this confide", path)
		}
		if enc, err = train.TextEncoder(m.Meta.Tokenizer); err != nil {
			return usageErr("model %s: tokenizer: %v", path, err)
		}
	}
	if !s.text() && m.Meta.Input == nil && !f.noNormalize {
		slog.Warn("the model file records no input normalisation: feature values are fed to the model as given, so give them as its training data was (e.g. pixels divided by 255)", "model", path)
	}
	ins, err := readInputs(f.input, format, s, f.invert)
	if err != nil {
		return err
	}
	if len(ins) == 0 {
		return usageErr("--input %s holds no inputs", f.input)
	}
	names := m.Meta.OutputNames(m.Spec)
	if names == nil {
		names = make([]string, m.Spec.Output)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
	}
	preds := make([]prediction, 0, len(ins))
	p := predictor{m: m, enc: enc, normalize: !f.noNormalize}
	for lo := 0; lo < len(ins); lo += f.batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := ins[lo:min(lo+f.batch, len(ins))]
		probs, err := p.predict(batch, lo)
		if err != nil {
			return err
		}
		for k, pr := range probs {
			c := metrics.ArgMax(pr)
			preds = append(preds, prediction{Index: lo + k, ID: batch[k].ID, Class: names[c], ClassID: c, Probability: pr[c], Probabilities: pr})
		}
	}
	res := predictResult{Model: path, Input: f.input, Format: format, Count: len(preds), Classes: names}
	if f.out == "" {
		if g.output == "json" {
			res.Predictions = preds
			return g.emit(w, res, nil)
		}
		bw := bufio.NewWriter(w)
		if err := writePredictions(bw, f.outputFormat, names, preds); err != nil {
			return err
		}
		return bw.Flush()
	}
	var buf bufferWriter
	if err := writePredictions(&buf, f.outputFormat, names, preds); err != nil {
		return err
	}
	if err := atomicfile.Write(f.out, buf.b, 0o644); err != nil {
		return fmt.Errorf("--out %s: %w", f.out, err)
	}
	res.Out, res.OutputFormat = f.out, f.outputFormat
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s predictions of %s written to %s (%s)\n", thousands(len(preds)), path, f.out, f.outputFormat)
	})
}

// bufferWriter collects bytes (predictions are written to --out atomically, in one piece).
type bufferWriter struct{ b []byte }

func (w *bufferWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// writePredictions writes preds as JSON lines or CSV (header: index, id, class, class_id,
// probability, then p_NAME for every class).
func writePredictions(w io.Writer, format string, names []string, preds []prediction) error {
	if format == "jsonl" {
		enc := json.NewEncoder(w)
		for _, p := range preds {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	}
	cw := csv.NewWriter(w)
	header := []string{"index", "id", "class", "class_id", "probability"}
	for _, n := range names {
		header = append(header, "p_"+n)
	}
	cw.Write(header)
	for _, p := range preds {
		id := ""
		if p.ID != nil {
			id = fmt.Sprint(p.ID)
		}
		rec := []string{strconv.Itoa(p.Index), id, p.Class, strconv.Itoa(p.ClassID), strconv.FormatFloat(p.Probability, 'g', -1, 64)}
		for _, q := range p.Probabilities {
			rec = append(rec, strconv.FormatFloat(q, 'g', -1, 64))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// predictor runs a model on batches of predictInputs.
type predictor struct {
	m         *model.Model
	enc       *data.TextEncoder
	normalize bool
}

// predict returns the class probabilities of every input of batch (the first at index
// first of the whole input, for messages).
func (p *predictor) predict(batch []predictInput, first int) ([][]float64, error) {
	s := p.m.Spec
	in := &model.Input{B: len(batch)}
	// rowOf is the output row holding input i's prediction.
	rowOf := func(i int) int { return i }
	if s.IsSequence() {
		seqs := make([][]int32, len(batch))
		T := 0
		for i, x := range batch {
			ids := p.enc.Encode(nil, *x.Text)
			switch {
			case len(ids) == 0 && s.Task == model.TaskNextToken:
				return nil, usageErr("input %d: empty text: a language model needs at least one token of context", first+i)
			case len(ids) == 0:
				ids = []int32{data.UnknownID} // as the spam loader encodes an e-mail without words
			}
			if s.MaxLen > 0 && len(ids) > s.MaxLen {
				if s.Task == model.TaskNextToken {
					ids = ids[len(ids)-s.MaxLen:] // the context nearest the next token
				} else {
					ids = ids[:s.MaxLen] // the first tokens, as in training
				}
			}
			seqs[i] = ids
			T = max(T, len(ids))
		}
		in.T = T
		in.Tokens = make([]int32, len(batch)*T)
		in.Lengths = make([]int32, len(batch))
		for i, ids := range seqs {
			copy(in.Tokens[i*T:], ids)
			in.Lengths[i] = int32(len(ids))
		}
		if s.Task == model.TaskNextToken {
			rowOf = func(i int) int { return i*T + int(in.Lengths[i]) - 1 }
		}
	} else {
		in.X = make([]float64, 0, len(batch)*s.Input)
		for _, x := range batch {
			in.X = append(in.X, x.X...)
			if norm := p.m.Meta.Input; norm != nil && p.normalize {
				row := in.X[len(in.X)-len(x.X):]
				norm.Normalize(row, row)
			}
		}
	}
	out, err := p.m.Forward(in)
	if err != nil {
		return nil, usageErr("inputs %d–%d: %v", first, first+len(batch)-1, err)
	}
	probs := make([][]float64, len(batch))
	for i := range batch {
		probs[i] = make([]float64, out.Cols)
		metrics.Softmax(probs[i], out.Row(rowOf(i)))
	}
	return probs, nil
}
