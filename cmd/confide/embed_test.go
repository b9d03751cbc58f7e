package main

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/train"
)

// shopsSpec is a table whose label only a learned vector per shop separates (see the
// spec's comment): testdata/embedded/shops.yaml, with an embedded column of 12 shops.
var shopsSpec = filepath.Join("testdata", "embedded", "shops.yaml")

// TestTrainEmbeddedColumnCSV: confide train on a CSV whose categorical column has
// encoding: embedding gives --model mlp the schema's embedding table, learns what the shop
// means (in the clear and with DP-SGD), writes a model file that keeps the table, and
// model evaluate and model predict (rows of encoded features: the shop's index) run it.
func TestTrainEmbeddedColumnCSV(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shops.confide")
	res := runJSON(t, "train", "--dataset", shopsSpec, "--hidden", "16", "--epochs", "20", "--lr", "0.1", "--out", path)
	if res["model_name"] != "MLP 5-16-3 (relu) with embeddings shop 12×4" {
		t.Errorf("model_name %q, want the MLP on the shop's 4-vector and x", res["model_name"])
	}
	if acc, _ := res["test_accuracy"].(float64); acc < 0.9 {
		t.Errorf("test accuracy %v, want ≥ 0.9", res["test_accuracy"])
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := model.EmbeddingSpec{Name: "shop", Column: 0, Categories: 12, Dim: 4}
	if len(m.Spec.Embeddings) != 1 || m.Spec.Embeddings[0] != want {
		t.Fatalf("the model file's embeddings %+v, want [%+v]", m.Spec.Embeddings, want)
	}
	ev := runJSON(t, "model", "evaluate", path, "--dataset", shopsSpec)
	if math.Abs(ev["accuracy"].(float64)-res["test_accuracy"].(float64)) > 1e-12 {
		t.Errorf("evaluate accuracy %v, train's test accuracy %v", ev["accuracy"], res["test_accuracy"])
	}

	// Raw rows, read with the model's recorded schema: the shop's name (none: no shop)
	// and x. Shop 3 with x > 0 is class 3 mod 3 = c0; shop 4 with x < 0 is class
	// (4 mod 3 + 1) mod 3 = c2.
	rows := filepath.Join(dir, "rows.csv")
	if err := os.WriteFile(rows, []byte("id,shop,x\na,s3,0.8\nb,,0.5\nc,s4,-1.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr := runJSON(t, "model", "predict", path, "--input", rows)
	preds, _ := pr["predictions"].([]any)
	if pr["count"] != 3.0 || len(preds) != 3 {
		t.Fatalf("predict: %v", pr)
	}
	for i, w := range map[int]string{0: "c0", 2: "c2"} {
		if got := preds[i].(map[string]any)["class"]; got != w {
			t.Errorf("row %d predicted %v, want %s", i, got, w)
		}
	}
	// Compression without a dataset measures on synthetic rows, whose shops are indices.
	for _, args := range [][]string{
		{"model", "quantize", path, "--out", filepath.Join(dir, "int8.confide")},
		{"model", "prune", path, "--out", filepath.Join(dir, "pruned.confide"), "--sparsity", "0.5"},
	} {
		if _, err := runConfide(t, args...); err != nil {
			t.Errorf("confide %s: %v", strings.Join(args[:2], " "), err)
		}
	}
	// Encoded rows (no header naming the schema's columns): the shop's index and x.
	if err := os.WriteFile(rows, []byte("12,0.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runConfide(t, "model", "predict", path, "--input", rows); err == nil || !strings.Contains(err.Error(), "want a category index in [0, 12)") {
		t.Errorf("predict on shop index 12: %v, want the index refused", err)
	}

	// DP-SGD: the tables' per-example gradients are clipped with the rest (ε ≈ 12 on
	// these 734 training rows).
	dp := runJSON(t, "train", "--dataset", shopsSpec, "--hidden", "16", "--epochs", "30", "--lr", "0.5", "--batch", "64",
		"--dp", "--noise-multiplier", "1", "--dp-seeded-noise")
	if acc, _ := dp["test_accuracy"].(float64); acc < 0.8 {
		t.Errorf("DP-SGD test accuracy %v, want ≥ 0.8", dp["test_accuracy"])
	}
	if eps, _ := dp["epsilon"].(float64); !(eps > 0 && eps < 20) {
		t.Errorf("DP-SGD ε %v, want a finite ε", dp["epsilon"])
	}
}

// TestTrainEmbeddedColumnModelChoices: a --model-spec that leaves out embeddings takes the
// schema's, one that lists other dims is refused naming both, and a cnn, which has no
// embedding stage, is refused too.
func TestTrainEmbeddedColumnModelChoices(t *testing.T) {
	dir := t.TempDir()
	write := func(name, spec string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain.yaml", "{type: mlp, input: 2, hidden: [8], output: 3}")
	res := runJSON(t, "train", "--dataset", shopsSpec, "--model-spec", plain, "--epochs", "1")
	if res["model_name"] != "MLP 5-8-3 (relu) with embeddings shop 12×4" {
		t.Errorf("model_name %q, want the spec with the schema's embedding", res["model_name"])
	}
	other := write("other.yaml", "{type: mlp, input: 2, hidden: [8], output: 3, embeddings: [{column: 0, categories: 12, dim: 6}]}")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"other dims", []string{"--model-spec", other}, "differ from the dataset's embedded columns [{column 0, categories 12, dim 4}]"},
		{"cnn", []string{"--model", "cnn"}, "reads images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"train", "--dataset", shopsSpec, "--epochs", "1"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestHousingBandEmbeddedExample: examples/tabular/housing-band-embedded.yaml (region and
// energy embedded) is ready for a federation, server-band-embedded.yaml's mlp of 8 inputs
// gets both tables from it, and it trains centrally as its comment says (one-hot:
// housing-band.yaml, 0.836–0.847 over seeds 1–3; embedded: 0.842–0.851).
func TestHousingBandEmbeddedExample(t *testing.T) {
	t.Chdir(filepath.Join("..", "..")) // the server file names its datasets from the repository's root
	spec := filepath.Join("examples", "tabular", "housing-band-embedded.yaml")
	s, err := data.ReadSchemaFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateFederated(); err != nil {
		t.Fatal(err)
	}
	sf, err := readServerFile(filepath.Join("examples", "tabular", "server-band-embedded.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fed := sf.Federation.WithDefaults()
	if err := fed.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := fed.Model.Embeddings; len(got) != 2 || got[0].Name != "region" || got[1] != (model.EmbeddingSpec{Name: "energy", Column: 7, Categories: 7, Dim: 3}) {
		t.Fatalf("the federation's model embeds %+v, want region and energy (7 classes × 3)", got)
	}
	res := runJSON(t, "train", "--dataset", spec, "--hidden", "32", "--epochs", "30", "--lr", "0.05")
	if res["model_name"] != "MLP 11-32-3 (relu) with embeddings region 4×2, energy 7×3" {
		t.Errorf("model_name %q", res["model_name"])
	}
	if acc, _ := res["test_accuracy"].(float64); acc < 0.8 {
		t.Errorf("test accuracy %v, want ≥ 0.8", res["test_accuracy"])
	}
}

// TestFederationShipsEmbeddedSchema: a server whose federation has the shops schema and an
// mlp without embeddings ships both; two clients (gRPC on loopback) read their own halves of
// the CSV with the shipped schema, build the model with the schema's table and train it; the
// global model classifies the test file as a central model does.
func TestFederationShipsEmbeddedSchema(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	schema, err := data.ReadSchemaFile(shopsSpec)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	coord, err := server.New(server.Config{
		Rounds: 4, Model: model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{16}, Output: 3}, Dataset: schema,
		Sampling:  server.SamplingConfig{FractionFit: 1, MinFit: n, MinAvailable: n},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, ClientTimeout: 30 * time.Second},
		Training:  server.TrainingConfig{Epochs: 3, BatchSize: 16, LR: 0.1},
	}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := coord.Config().Model.Embeddings; len(got) != 1 || got[0].Categories != 12 || got[0].Dim != 4 {
		t.Fatalf("the shipped model embeds %+v, want the schema's shop table (12×4)", got)
	}
	quiet := slog.New(slog.DiscardHandler)
	svc, addr, stopped := serveLoopback(t, ctx, coord)

	// Each client's own file: half of shops.csv.
	raw, err := os.ReadFile(filepath.Join("testdata", "embedded", "shops.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n")
	header, rows := lines[0], lines[1:]
	dir := t.TempDir()
	var cfgs []client.Config
	var trainers []client.Trainer
	for i := range n {
		path := filepath.Join(dir, []string{"a.csv", "b.csv"}[i])
		half := rows[i*len(rows)/n : (i+1)*len(rows)/n]
		if err := os.WriteFile(path, []byte(header+strings.Join(half, "")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Source: &client.DataSource{Path: path, Seed: uint64(i + 1)}, Seed: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		cfgs = append(cfgs, client.Config{Server: addr, Name: []string{"shop-a", "shop-b"}[i], Insecure: true, PollWait: 2 * time.Second, Logger: quiet})
		trainers = append(trainers, tr)
	}
	runClients(t, ctx, svc, cfgs, trainers)
	cancel()
	stopped()

	m, err := model.New(coord.Config().Model, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetParams(coord.Global()); err != nil {
		t.Fatal(err)
	}
	ld, err := data.LoadSchema(t.Context(), schema, data.LoadOptions{Path: schema.Resolve(schema.TestPath), NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := train.Evaluate(m, ld.Train, 256)
	if err != nil {
		t.Fatal(err)
	}
	if r.Accuracy < 0.85 {
		t.Fatalf("the global model's test accuracy %.3f, want ≥ 0.85", r.Accuracy)
	}
	t.Logf("federated test accuracy %.3f", r.Accuracy)
}

// TestDataSchemaDraftsEmbeddedColumns: --embed drafts a column as an embedded categorical
// one with fastai's width for its categories, and names a column the file lacks.
func TestDataSchemaDraftsEmbeddedColumns(t *testing.T) {
	csv := filepath.Join("testdata", "embedded", "shops.csv")
	out, err := runConfide(t, "data", "schema", csv, "--label", "label", "--embed", "shop")
	if err != nil {
		t.Fatal(err)
	}
	s, err := data.ParseSchema([]byte(out), "")
	if err != nil {
		t.Fatalf("the draft does not parse: %v\n%s", err, out)
	}
	c := s.Columns[0]
	if c.Name != "shop" || c.Encoding != data.EncodeEmbedding || len(c.Categories) != 12 || c.Dim != 6 || c.Missing != data.MissingZero {
		t.Errorf("shop drafted as %+v, want embedding of 12 categories, dim 6 (round(1.6·12^0.56)), missing: zero", c)
	}
	if _, err := runConfide(t, "data", "schema", csv, "--label", "label", "--embed", "store"); err == nil || !strings.Contains(err.Error(), `no column "store"`) {
		t.Errorf("--embed store: %v, want the missing column named", err)
	}
}

// TestServeRefusesABadCategoryIndexAlone: confide model serve answers a request whose
// embedded column holds no category index with 400 naming it, before it joins a batch
// (where it would fail the other requests' forward pass), and serves good rows.
func TestServeRefusesABadCategoryIndexAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shops.confide")
	runJSON(t, "train", "--dataset", shopsSpec, "--hidden", "8", "--epochs", "2", "--out", path)
	s := startServe(t, path)
	c := &http.Client{Timeout: 10 * time.Second}
	code, ans := post(t, c, s.url, []byte(`{"inputs": [[3, 0.8], [-1, 0.5]]}`))
	if preds, _ := ans["predictions"].([]any); code != http.StatusOK || len(preds) != 2 {
		t.Fatalf("good rows: %d %v", code, ans)
	}
	code, ans = post(t, c, s.url, []byte(`{"inputs": [[3, 0.8], [12, 0.5]]}`))
	if msg, _ := ans["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "input 1: model: feature 0 (embedded column shop) = 12: want a category index in [0, 12)") {
		t.Fatalf("a bad index: %d %v", code, ans)
	}
}

// TestServerEvaluatesAnEmbeddedModel: the server's central evaluation builds the model the
// coordinator ships (the schema's embeddings filled in), so an mlp spec without them
// evaluates on a test file whose column is embedded.
func TestServerEvaluatesAnEmbeddedModel(t *testing.T) {
	schema, err := data.ReadSchemaFile(shopsSpec)
	if err != nil {
		t.Fatal(err)
	}
	fed := server.Config{Rounds: 1, Dataset: schema, Model: model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{8}, Output: 3}}
	ce, err := newCentralEvaluation(t.Context(), serverEvaluation{Dataset: shopsSpec}, fed)
	if err != nil {
		t.Fatal(err)
	}
	if len(ce.m.Spec.Embeddings) != 1 || ce.test.N != 200 {
		t.Fatalf("evaluation model embeds %+v on %d rows, want the shop table on the 200 test rows", ce.m.Spec.Embeddings, ce.test.N)
	}
}
