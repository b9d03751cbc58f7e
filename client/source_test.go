package client_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// TestDataSourceReadsOwnFileWithShippedSchema runs a fit task whose FitSpec carries the
// federation's dataset schema against a trainer that holds only a path: the client reads
// its own CSV with the schema (a regression target here), trains, and a schema that
// leaves statistics open is refused without touching the data.
func TestDataSourceReadsOwnFileWithShippedSchema(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x1,x2,colour,y\n")
	rng := rand.New(rand.NewPCG(1, 2))
	colours := []string{"red", "blue"}
	for range 120 {
		x1, x2, c := rng.NormFloat64(), rng.NormFloat64(), rng.IntN(2)
		y := 3*x1 - 2*x2 + 4*float64(c) + 10
		b.WriteString(strings.Join([]string{fmtF(x1), fmtF(x2), colours[c], fmtF(y)}, ",") + "\n")
	}
	b.WriteString("1,oops,red,3\n") // a bad row
	path := filepath.Join(dir, "mine.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	schema, err := data.ParseSchema([]byte(`{format: csv, target: {column: y, mean: 12, std: 4},
columns: [{name: x1, mean: 0, std: 1}, {name: x2, mean: 0, std: 1}, {name: colour, type: categorical, categories: [red, blue]}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := schema.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	var loads []*data.Loaded
	tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Seed: 3,
		Source: &client.DataSource{Path: path, SkipBadRows: true, OnLoad: func(ld *data.Loaded) { loads = append(loads, ld) }}})
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 4, Output: 1, Loss: model.LossMSE}
	m, err := model.New(spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewParty(client.PartyConfig{ClientID: "a"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	fit := func(schema []byte) *pb.Result {
		res, err := p.Handle(t.Context(), fitTask(spec, m.Params, &pb.FitSpec{LocalEpochs: 20, BatchSize: 8, Optimizer: "sgd", LearningRate: 0.05, DatasetSchema: schema}))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := fit(nil); r.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(r.Reason, "no dataset schema") {
		t.Fatalf("task without a schema: %v %q", r.Status, r.Reason)
	}
	if r := fit(shipped); r.Status != pb.ResultStatus_RESULT_STATUS_OK {
		t.Fatalf("task with the schema: %v %q", r.Status, r.Reason)
	}
	if len(loads) != 1 || loads[0].Skipped != 1 || loads[0].Train.N+loads[0].Test.N != 120 {
		t.Fatalf("loads %d, skipped %d", len(loads), loads[0].Skipped)
	}
	train, test := tr.Data()
	if train.Task != data.TaskRegress || train.Dim != 4 || test == nil {
		t.Fatalf("local data: task %v, dim %d, test %v", train.Task, train.Dim, test)
	}
	// Evaluate tasks run on the held-out local rows, never the training ones.
	r, err := tr.Evaluate(t.Context(), m.Params, client.EvaluateConfig{Model: spec, BatchSize: 64, Dataset: schema})
	if err != nil {
		t.Fatal(err)
	}
	if r.NumExamples != test.N || !(r.Loss > 0) {
		t.Errorf("evaluation on %d examples with loss %v, want the %d test rows", r.NumExamples, r.Loss, test.N)
	}
	// A schema without statistics is refused before any data is read.
	open, _ := data.ParseSchema([]byte(`{format: csv, target: {column: y}, columns: [{name: x1}]}`), "")
	b2, _ := jsonOf(open)
	if res := fit(b2); res.Status == pb.ResultStatus_RESULT_STATUS_OK || !strings.Contains(res.Reason, "mean and std are missing") {
		t.Fatalf("schema without statistics: %v %q", res.Status, res.Reason)
	}
	if len(loads) != 1 {
		t.Errorf("the data was read %d times, want once (the schema did not change)", len(loads))
	}
}
