package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// recordedSchema returns the dataset schema a model file records (model.Meta.Dataset), nil
// when it records none; a recorded schema that does not parse is a usage error.
func recordedSchema(m *model.Model, path string) (*data.Schema, error) {
	if len(m.Meta.Dataset) == 0 {
		return nil, nil
	}
	s, err := data.ParseSchemaJSON(m.Meta.Dataset)
	if err != nil {
		return nil, usageErr("model %s: its recorded dataset spec: %v", path, err)
	}
	return s, nil
}

// isTable reports whether s describes a table (csv or tsv).
func isTable(s *data.Schema) bool {
	return s != nil && (s.Format == data.FormatCSV || s.Format == data.FormatTSV)
}

// readTableInputs reads path as raw rows of the table the model was trained on, encoded
// with its recorded schema, when it holds them: a tsv file, a csv file whose header names
// one of the schema's columns, or JSON lines of objects keyed by column name (not arrays,
// nor objects with "features"). table is false when the model records no table schema or
// path holds something else (feature arrays, text), which readInputs reads.
func readTableInputs(ctx context.Context, path, format string, s inputSpec) (ins []predictInput, table bool, err error) {
	if !isTable(s.schema) {
		if format == formatTSV {
			return nil, false, usageErr("--input %s: tsv rows are read with a model file that records its table's dataset spec (confide train --dataset SPEC.yaml, or a federation's checkpoint); this model reads %s", path, s.expected())
		}
		return nil, false, nil
	}
	switch format {
	case formatCSV:
		header, err := firstRecord(path)
		if err != nil {
			return nil, false, usageErr("--input %s: %v", path, err)
		}
		if !slices.ContainsFunc(header, s.namesColumn) {
			return nil, false, nil // encoded features, with or without a header
		}
	case formatJSONL:
		if ok, err := jsonObjectRows(path); err != nil || !ok {
			return nil, false, err
		}
	case formatTSV:
	default:
		return nil, false, nil
	}
	rows, err := s.schema.EncodeRows(ctx, path, format, "id")
	if err != nil {
		return nil, true, usageErr("--input: %v", err)
	}
	x := rows.Features
	if x.Dim != s.dim() {
		return nil, true, usageErr("--input %s: the model's dataset spec encodes %d features a row, but the model reads %s", path, x.Dim, s.expected())
	}
	ins = make([]predictInput, x.N)
	for i := range ins {
		ins[i].X = x.X[i*x.Dim : (i+1)*x.Dim]
		if rows.IDs != nil {
			ins[i].ID = rows.IDs[i]
		}
	}
	return ins, true, nil
}

// namesColumn reports whether a header field names a column of the schema (a feature, the
// label or the target).
func (s inputSpec) namesColumn(field string) bool {
	field = strings.TrimSpace(strings.TrimPrefix(field, "\ufeff"))
	sc := s.schema
	if sc.Label != nil && field == sc.Label.Column || sc.Target != nil && field == sc.Target.Column {
		return true
	}
	return slices.ContainsFunc(sc.Columns, func(c data.Column) bool { return c.Name == field })
}

// firstRecord returns the first record of a csv file (nil when it is empty).
func firstRecord(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	cr.FieldsPerRecord = -1
	rec, err := cr.Read()
	if err == io.EOF {
		return nil, nil
	}
	return rec, err
}

// jsonObjectRows reports whether the first line of a JSON-lines file that is not blank is
// an object keyed by column name: not an array, a string, or an object with "features" or
// "text" (predict's other JSON inputs).
func jsonObjectRows(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, usageErr("--input: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxInputLine)
	for sc.Scan() {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if b[0] != '{' || json.Unmarshal(b, &obj) != nil {
			return false, nil
		}
		_, features := obj["features"]
		_, text := obj["text"]
		return !features && !text, nil
	}
	return false, nil
}

// predictedTarget is what a regressor predicts: the target's column and how its outputs
// map back to the target's units.
type predictedTarget struct {
	name string
	// mean and std undo the standardisation the target was trained with (value·std +
	// mean); normalized says whether there was one.
	mean, std  float64
	normalized bool
}

// regressionTarget returns the target of a regressor trained on schema (nil: unknown).
func regressionTarget(spec model.Spec, schema *data.Schema) predictedTarget {
	t := predictedTarget{name: "value", std: 1}
	if schema == nil || schema.Target == nil || spec.Output != 1 {
		return t
	}
	tg := schema.Target
	t.name = tg.Column
	if tg.Normalize != data.NormalizeNone && tg.Mean != nil && tg.Std != nil {
		t.mean, t.std, t.normalized = *tg.Mean, *tg.Std, true
	}
	return t
}

// unit says in words what the predicted values are.
func (t predictedTarget) unit() string {
	if t.normalized {
		return fmt.Sprintf("%s as the dataset's files hold it (the model's output × %g + %g)", t.name, t.std, t.mean)
	}
	if t.name == "value" {
		return "the model's outputs as trained (the model file records no dataset spec saying how its target was normalised)"
	}
	return t.name + " as the dataset's files hold it"
}

// valuePrediction is one line of a regressor's predictions.
type valuePrediction struct {
	Index int `json:"index"`
	ID    any `json:"id,omitempty"`
	// Value is the predicted target in the dataset's units (the standardisation it was
	// trained with undone); Values lists every output of a model with several.
	Value  float64   `json:"value"`
	Values []float64 `json:"values,omitempty"`
}

// valuePredictions are a regressor's predictions.
type valuePredictions struct {
	target predictedTarget
	preds  []valuePrediction
}

func (v *valuePredictions) add(i int, in predictInput, out []float64) valuePrediction {
	p := valuePrediction{Index: i, ID: in.ID, Value: out[0]*v.target.std + v.target.mean}
	if len(out) > 1 {
		p.Values = out
	}
	return p
}

func (v *valuePredictions) list() any { return v.preds }

// write writes the predictions as JSON lines, or as CSV with the header index, id and the
// target's name (then value_1, … for further outputs).
func (v *valuePredictions) write(w io.Writer, format string) error {
	if format == "jsonl" {
		enc := json.NewEncoder(w)
		for _, p := range v.preds {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	}
	cw := csv.NewWriter(w)
	header := []string{"index", "id", v.target.name}
	if len(v.preds) > 0 {
		for k := 1; k < len(v.preds[0].Values); k++ {
			header = append(header, "value_"+strconv.Itoa(k))
		}
	}
	cw.Write(header)
	for _, p := range v.preds {
		id := ""
		if p.ID != nil {
			id = fmt.Sprint(p.ID)
		}
		rec := []string{strconv.Itoa(p.Index), id, strconv.FormatFloat(p.Value, 'g', -1, 64)}
		for k := 1; k < len(p.Values); k++ {
			rec = append(rec, strconv.FormatFloat(p.Values[k], 'g', -1, 64))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}
