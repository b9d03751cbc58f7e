package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// trainTabular trains a model on an examples/tabular spec for one epoch and returns its
// file and train's -o json result.
func trainTabular(t *testing.T, spec string) (string, map[string]any) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "model.confide")
	res := runJSON(t, "train", "--dataset", filepath.Join("..", "..", "examples", "tabular", spec), "--epochs", "2", "--out", out)
	return out, res
}

// predictValues runs predict with -o json and returns its result.
func predictJSON(t *testing.T, modelFile, input string) predictResultJSON {
	t.Helper()
	out, err := runConfide(t, "model", "predict", modelFile, "--input", input, "-o", "json")
	if err != nil {
		t.Fatalf("predict %s: %v", input, err)
	}
	var r predictResultJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// loadRecordedSchema loads a model file and the dataset schema it records.
func loadRecordedSchema(t *testing.T, modelFile string) (*model.Model, *data.Schema) {
	t.Helper()
	m, err := model.Load(modelFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := data.ParseSchemaJSON(m.Meta.Dataset)
	if err != nil {
		t.Fatalf("recorded schema: %v", err)
	}
	return m, s
}

type predictResultJSON struct {
	Count       int      `json:"count"`
	Classes     []string `json:"classes"`
	Target      string   `json:"target"`
	Predictions []struct {
		ID            any       `json:"id"`
		Value         float64   `json:"value"`
		Class         string    `json:"class"`
		Probabilities []float64 `json:"probabilities"`
	} `json:"predictions"`
}

const housingRowsCSV = `id,energy,garden,distance_km,age_years,area_m2,rooms,region
h1,B,yes,5,25,80,3,north
h2,,no,2,NA,140,5,south
h3,G,yes,30,90,60,2,west
`

// TestTrainRecordsTheSchemaAndPredictReadsRawRows: confide train --dataset SPEC.yaml
// records the schema as applied (no paths, every statistic), and predict reads the table's
// raw rows with it: on the evaluation file its values give the RMSE train reported for the
// test set (the reference), and the same rows as csv (columns reordered, no target, an
// id), tsv and JSON lines give the same values, in the target's units.
func TestTrainRecordsTheSchemaAndPredictReadsRawRows(t *testing.T) {
	modelFile, trained := trainTabular(t, "housing-price.yaml")
	m, s := loadRecordedSchema(t, modelFile)
	if s.Path != "" || s.TestPath != "" || s.Target == nil || s.Target.Mean == nil || s.Columns[1].Mean == nil {
		t.Fatalf("recorded schema %s: want no paths, the target's and columns' statistics", m.Meta.Dataset)
	}

	eval := filepath.Join("..", "..", "examples", "tabular", "data", "eval.csv")
	r := predictJSON(t, modelFile, eval)
	if r.Target != "price_k" || r.Count != 1000 {
		t.Fatalf("target %q, %d predictions; want price_k, 1000", r.Target, r.Count)
	}
	var se float64
	for i, y := range columnValues(t, eval, "price_k") {
		se += (r.Predictions[i].Value - y) * (r.Predictions[i].Value - y)
	}
	rmse := math.Sqrt(se / 1000)
	want := trained["test_regression"].(map[string]any)["rmse"].(float64)
	if math.Abs(rmse-want) > 1e-9*want {
		t.Errorf("RMSE of predict's values on eval.csv %.12g, train reported %.12g", rmse, want)
	}
	// model evaluate reads the file with the recorded schema too: the spec's own files,
	// or any file (--data-path).
	for _, args := range [][]string{{"--dataset", filepath.Join("..", "..", "examples", "tabular", "housing-price.yaml")}, {"--data-path", eval}} {
		ev := runJSON(t, append([]string{"model", "evaluate", modelFile}, args...)...)
		if got := ev["regression"].(map[string]any)["rmse"].(float64); math.Abs(got-want) > 1e-9*want {
			t.Errorf("model evaluate %s: RMSE %.12g, train reported %.12g", strings.Join(args, " "), got, want)
		}
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jsonl := `{"id": "h1", "region": "north", "rooms": 3, "area_m2": 80, "age_years": 25, "distance_km": 5, "garden": "yes", "energy": "B"}
{"id": "h2", "region": "south", "rooms": 5, "area_m2": 140, "age_years": null, "distance_km": 2, "garden": "no", "price_k": 300}
{"id": "h3", "region": "west", "rooms": 2, "area_m2": 60, "age_years": 90, "distance_km": 30, "garden": "yes", "energy": "G"}
`
	ref := predictJSON(t, modelFile, write("rows.csv", housingRowsCSV))
	for _, in := range []string{write("rows.tsv", strings.ReplaceAll(housingRowsCSV, ",", "\t")), write("rows.jsonl", jsonl)} {
		got := predictJSON(t, modelFile, in)
		if got.Count != 3 {
			t.Fatalf("%s: %d predictions, want 3", in, got.Count)
		}
		for i, p := range got.Predictions {
			if p.Value != ref.Predictions[i].Value || p.ID != ref.Predictions[i].ID {
				t.Errorf("%s row %d: %v (id %v), csv gave %v (id %v)", filepath.Base(in), i, p.Value, p.ID, ref.Predictions[i].Value, ref.Predictions[i].ID)
			}
		}
	}
	// Prices in thousands: a standardised output (|z| of a few) would be far below.
	if v := ref.Predictions[1].Value; v < 50 || v > 1000 {
		t.Errorf("predicted price %v: not in the target's units", v)
	}
}

// TestPredictTableRowsClassifier: a classifier trained on a spec names its classes and
// reads rows with or without the label column.
func TestPredictTableRowsClassifier(t *testing.T) {
	modelFile, _ := trainTabular(t, "housing-band.yaml")
	r := predictJSON(t, modelFile, filepath.Join("..", "..", "examples", "tabular", "data", "eval.csv"))
	if strings.Join(r.Classes, ",") != "high,low,mid" || r.Count != 1000 {
		t.Fatalf("classes %v, %d predictions", r.Classes, r.Count)
	}
	p := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(p, []byte(housingRowsCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	r = predictJSON(t, modelFile, p)
	for _, q := range r.Predictions {
		sum := 0.0
		for _, v := range q.Probabilities {
			sum += v
		}
		if len(q.Probabilities) != 3 || math.Abs(sum-1) > 1e-9 || !strings.Contains("high,low,mid", q.Class) {
			t.Errorf("prediction %+v", q)
		}
	}
}

// TestPredictTableRowsBadRow: a row that does not fit the recorded schema is a usage
// error naming the file, line and column.
func TestPredictTableRowsBadRow(t *testing.T) {
	modelFile, _ := trainTabular(t, "housing-price.yaml")
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"bad.csv", "rooms,area_m2,age_years,distance_km,garden,energy,region\n3,80,25,5,yes,B,north\n3,80,old,5,yes,B,north\n", `bad.csv:3: column 3 ("age_years")`},
		{"unknown.csv", "rooms,area_m2,age_years,distance_km,garden,energy,region\n3,80,25,5,yes,B,mars\n", `unknown.csv:2: column 7 ("region"): category "mars"`},
		{"missing.jsonl", `{"rooms": 3, "area_m2": 80, "age_years": 25, "garden": "yes", "region": "north"}` + "\n", `missing.jsonl:1: column 5 ("distance_km"): missing value`},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := runConfide(t, "model", "predict", modelFile, "--input", p)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want exit code 2 naming %s", tc.name, err, tc.want)
		}
	}
}

// columnValues returns the numbers of a csv file's column.
func columnValues(t *testing.T, path, column string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(recs[0], column)
	if col < 0 {
		t.Fatalf("%s has no column %s", path, column)
	}
	out := make([]float64, len(recs)-1)
	for i, rec := range recs[1:] {
		if out[i], err = strconv.ParseFloat(rec[col], 64); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestPredictTextRowsByTheSchemasField: a text model trained on a jsonl spec whose text
// field is "body" reads the dataset's own records (label ignored), as it reads {"text": …}.
func TestPredictTextRowsByTheSchemasField(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("..", "..", "data", "testdata", "mails.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	mails := filepath.Join(dir, "mails.jsonl")
	if err := os.WriteFile(mails, bytes.ReplaceAll(raw, []byte(`"text":`), []byte(`"body":`)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "mails.yaml")
	if err := os.WriteFile(spec, []byte("format: jsonl\npath: mails.jsonl\ntest_fraction: 0.25\nlabel: {column: label}\ntext: {column: body, tokenizer: word, max_len: 32, min_count: 1, strip_email_headers: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	modelFile := filepath.Join(dir, "mails.confide")
	runJSON(t, "train", "--dataset", spec, "--model", "gru", "--epochs", "1", "--out", modelFile)
	byBody := predictJSON(t, modelFile, mails)
	byText := predictJSON(t, modelFile, filepath.Join("..", "..", "data", "testdata", "mails.jsonl"))
	if byBody.Count != 7 || byText.Count != 7 {
		t.Fatalf("%d and %d predictions, want one for each of the 7 mails", byBody.Count, byText.Count)
	}
	for i := range byBody.Predictions {
		if !slices.Equal(byBody.Predictions[i].Probabilities, byText.Predictions[i].Probabilities) {
			t.Errorf("mail %d: %v by body, %v by text", i, byBody.Predictions[i].Probabilities, byText.Predictions[i].Probabilities)
		}
	}
}
