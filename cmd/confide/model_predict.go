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
	// Classes names the entries of every prediction's probabilities (classifiers).
	Classes []string `json:"classes,omitempty"`
	// Target names a regressor's predicted column, Unit says in what unit its values are.
	Target string `json:"target,omitempty"`
	Unit   string `json:"unit,omitempty"`
	// Predictions are []prediction for a classifier, []valuePrediction for a regressor.
	Predictions any `json:"predictions,omitempty"`
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
		Short: "Predict classes and class probabilities (or a regressor's values) for new inputs: CSV, TSV, JSONL, IDX or PNG",
		Long: `Run a model file on new inputs and write, for each, the predicted class (its name when the
model file records class names) and the probability of every class; for a regression model
(loss mse), the predicted value of its target.

Inputs (--input PATH; --format, default from the file name):
  csv    one example a row of raw feature values (a header row is optional; a column named
         id is the example's id); for a text model, a header naming a text column
  tsv    a table's rows, tab-separated (models trained on a dataset spec, below)
  jsonl  one example a line: a string of text, an array of raw feature values, or an object
         {"id": ..., "text": "..."} or {"id": ..., "features": [...]}
  idx    an IDX file of N examples (N×rows×cols images, N×features), gzipped or not
  png    a PNG image, or a directory of them: converted to grey, composited over black,
         resized to the model's image shape (--invert for dark drawings on light paper)

A model trained on a table described by a dataset spec (confide train --dataset SPEC.yaml,
or a federation's checkpoint) records the spec, and reads the table's raw rows: a csv or
tsv file whose header names the columns (in any order), or JSON lines of objects keyed by
column name. Each row is encoded as in training: categorical values mapped to the same
categories, missing values filled as the spec says, numeric columns normalised with the
recorded statistics. The label or target column may be there or not (it is ignored); an id
column names the row. A row that does not fit is an error naming its line and column.

Raw feature values are those of the dataset's files (pixels 0–255 for the image
datasets); the model file's normalisation is applied to them (--no-normalize if the values
are already normalised). Text is encoded with the tokenizer the model file records; a
language model predicts the token after the text.

A regressor's value is in the target's own units: the standardisation of the target that
the recorded spec gives is undone (-o json says so in "unit").

Output: JSON lines (--output-format jsonl, default) or CSV, one line per input in input
order, to --out or stdout. With -o json and no --out, stdout holds one JSON object with the
predictions; with --out, a summary. An input that does not fit the model is a usage error
(exit code 2) naming the input the model expects.`,
		Example: `  confide model predict model.confide --input t10k-images-idx3-ubyte.gz --out predictions.jsonl
  confide model predict model.confide --input digit.png
  confide model predict model.confide --input drawings/ --invert --output-format csv
  confide model predict spam.confide --input mails.jsonl -o json
  confide train --dataset examples/tabular/housing-price.yaml --out price.confide
  confide model predict price.confide --input examples/tabular/data/eval.csv --output-format csv`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelPredict(ctx, g, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.input, "input", "", "the inputs: a CSV, TSV, JSONL, IDX or PNG file, or a directory of PNG files")
	cmd.Flags().StringVar(&f.format, "format", "", "input format: csv, tsv, jsonl, idx or png (default: from the file name)")
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
		return usageErr("--input is required: the file of inputs (CSV, TSV, JSONL, IDX or PNG) or a directory of PNG images")
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
	schema, err := recordedSchema(m, path)
	if err != nil {
		return err
	}
	s := inputSpec{m: m, schema: schema}
	var enc *data.TextEncoder
	if m.Spec.IsSequence() {
		if m.Meta.Tokenizer == nil {
			return usageErr("model %s records no tokenizer (it was written before model files carried one): its text inputs cannot be encoded; retrain it, or use a model file written by this confide", path)
		}
		if enc, err = train.TextEncoder(m.Meta.Tokenizer); err != nil {
			return usageErr("model %s: tokenizer: %v", path, err)
		}
	}
	ins, table, err := readTableInputs(ctx, f.input, format, s)
	if err != nil {
		return err
	}
	switch {
	case table && f.noNormalize:
		return usageErr("--no-normalize applies to arrays of feature values; the rows of %s are raw and encoded with the model's dataset spec", f.input)
	case !table:
		if !s.text() && m.Meta.Input == nil && !f.noNormalize {
			slog.Warn("the model file records no input normalisation: feature values are fed to the model as given, so give them as its training data was (e.g. pixels divided by 255)", "model", path)
		}
		if ins, err = readInputs(f.input, format, s, f.invert); err != nil {
			return err
		}
	}
	if len(ins) == 0 {
		return usageErr("--input %s holds no inputs", f.input)
	}
	if s.bag() {
		if err := s.encodeBags(ins); err != nil {
			return usageErr("model %s: %v", path, err)
		}
	}
	p := predictor{m: m, enc: enc, normalize: !f.noNormalize && !table && !s.bag()}
	res := predictResult{Model: path, Input: f.input, Format: format}
	var out predictionWriter
	if m.Spec.Loss == model.LossMSE {
		vp := valuePredictions{target: regressionTarget(m.Spec, schema)}
		res.Target, res.Unit = vp.target.name, vp.target.unit()
		if vp.preds, err = predictAll(ctx, &p, ins, f.batch, vp.add); err != nil {
			return err
		}
		res.Count, out = len(vp.preds), &vp
	} else {
		cp := classPredictions{names: m.Meta.OutputNames(m.Spec)}
		if cp.names == nil && schema != nil && schema.Label != nil && len(schema.Label.Classes) == m.Spec.Output {
			cp.names = schema.Label.Classes
		}
		if cp.names == nil {
			cp.names = make([]string, m.Spec.Output)
			for i := range cp.names {
				cp.names[i] = strconv.Itoa(i)
			}
		}
		if cp.preds, err = predictAll(ctx, &p, ins, f.batch, cp.add); err != nil {
			return err
		}
		res.Classes, res.Count, out = cp.names, len(cp.preds), &cp
	}
	if f.out == "" {
		if g.output == "json" {
			res.Predictions = out.list()
			return g.emit(w, res, nil)
		}
		bw := bufio.NewWriter(w)
		if err := out.write(bw, f.outputFormat); err != nil {
			return err
		}
		return bw.Flush()
	}
	var buf bufferWriter
	if err := out.write(&buf, f.outputFormat); err != nil {
		return err
	}
	if err := atomicfile.Write(f.out, buf.b, 0o644); err != nil {
		return fmt.Errorf("--out %s: %w", f.out, err)
	}
	res.Out, res.OutputFormat = f.out, f.outputFormat
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "%s predictions of %s written to %s (%s)\n", thousands(res.Count), path, f.out, f.outputFormat)
	})
}

// predictAll runs p over ins in batches of size batch, handing every input's outputs
// (probabilities, or a regression model's values) to add with its index.
func predictAll[T any](ctx context.Context, p *predictor, ins []predictInput, batch int, add func(i int, in predictInput, out []float64) T) ([]T, error) {
	preds := make([]T, 0, len(ins))
	for lo := 0; lo < len(ins); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		part := ins[lo:min(lo+batch, len(ins))]
		outs, err := p.predict(part, lo)
		if err != nil {
			return nil, err
		}
		for k, o := range outs {
			preds = append(preds, add(lo+k, part[k], o))
		}
	}
	return preds, nil
}

// predictionWriter is the predictions of a run: of a classifier or of a regressor.
type predictionWriter interface {
	list() any
	// write writes them as JSON lines or CSV.
	write(w io.Writer, format string) error
}

// classPredictions are a classifier's predictions; names name its classes.
type classPredictions struct {
	names []string
	preds []prediction
}

func (c *classPredictions) add(i int, in predictInput, probs []float64) prediction {
	k := metrics.ArgMax(probs)
	return prediction{Index: i, ID: in.ID, Class: c.names[k], ClassID: k, Probability: probs[k], Probabilities: probs}
}

func (c *classPredictions) list() any { return c.preds }

func (c *classPredictions) write(w io.Writer, format string) error {
	return writePredictions(w, format, c.names, c.preds)
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
// first of the whole input, for messages); for a regression model (loss mse), its outputs.
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
	rows := make([][]float64, len(batch))
	for i := range batch {
		rows[i] = make([]float64, out.Cols)
		if s.Loss == model.LossMSE {
			copy(rows[i], out.Row(rowOf(i)))
		} else {
			metrics.Softmax(rows[i], out.Row(rowOf(i)))
		}
	}
	return rows, nil
}
