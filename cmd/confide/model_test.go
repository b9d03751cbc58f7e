package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// oneJSONObject checks that out is exactly one JSON object and decodes it.
func oneJSONObject(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, out)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON object:\n%s", out)
	}
	return obj
}

// saveModel builds a model of spec (seeded), attaches meta and saves it in dir.
func saveModel(t *testing.T, dir, name string, spec model.Spec, meta model.Meta) (string, *model.Model) {
	t.Helper()
	m, err := model.New(spec, rand.New(rand.NewPCG(5, 6)))
	if err != nil {
		t.Fatal(err)
	}
	m.Meta = meta
	path := filepath.Join(dir, name)
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, m
}

// tinyMNISTModel saves an MLP 784-16-10 with the metadata train --out records for MNIST,
// and returns the path, the model and the data directory of writeTinyMNIST.
func tinyMNISTModel(t *testing.T) (string, *model.Model, string, *data.Dataset) {
	t.Helper()
	dir := writeTinyMNIST(t, 20, 30)
	_, test, err := data.LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{16}, Output: 10}
	meta := train.DatasetMeta(test, spec)
	meta.Provenance = &model.Provenance{Mode: model.TrainedCentral, Dataset: "mnist", Epochs: 2, Seed: 1,
		Privacy: []model.PrivacyGuarantee{{Level: model.PrivacyRecord, Mechanism: "DP-SGD", Epsilon: 2, Delta: 1e-5}}}
	path, m := saveModel(t, t.TempDir(), "mnist.confide", spec, meta)
	return path, m, dir, test
}

func TestModelInspect(t *testing.T) {
	dir := t.TempDir()
	spec := model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Params {
		m.Params[i] = 0.5
	}
	clear(m.Params[:6]) // 6 of the first layer's 15 parameters are exact zeros
	m.Meta = model.Meta{ClassNames: []string{"no", "yes"}, Input: &model.InputMeta{Kind: model.InputImage, Shape: []int{2, 2}, Mean: []float64{0}, Std: []float64{255}},
		Provenance: &model.Provenance{Mode: model.TrainedSim, Dataset: "mnist", Strategy: "fedavg", Rounds: 7, Clients: 100,
			Privacy: []model.PrivacyGuarantee{{Level: model.PrivacyUser, Mechanism: "DP-FedAvg", Epsilon: 3, Delta: 1e-6}}}}
	path := filepath.Join(dir, "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	out, err := runConfide(t, "model", "inspect", path, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	res := oneJSONObject(t, out)
	if res["params"] != 23.0 || res["zero_params"] != 6.0 || math.Abs(res["sparsity"].(float64)-6.0/23) > 1e-12 ||
		res["precision"] != "float64" || res["format_version"] != 2.0 || res["model_name"] != "MLP 4-3-2 (relu)" {
		t.Fatalf("inspect: %v", res)
	}
	layers := res["layers"].([]any)
	if len(layers) != 2 || layers[0].(map[string]any)["zero_params"] != 6.0 || layers[1].(map[string]any)["params"] != 8.0 {
		t.Fatalf("layers %v", layers)
	}
	meta := res["metadata"].(map[string]any)
	prov := meta["provenance"].(map[string]any)
	if prov["rounds"] != 7.0 || prov["strategy"] != "fedavg" || !strings.Contains(res["privacy"].(string), "user-level (ε = 3, δ = 1e-06) by DP-FedAvg") {
		t.Fatalf("provenance %v, privacy %v", prov, res["privacy"])
	}
	text, err := runConfide(t, "model", "inspect", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MLP 4-3-2 (relu), 23 parameters", "sparsity 26.09%", `classes:    "no" "yes"`,
		"a greyscale image of 2×2", "trained in a simulated federation, on mnist, strategy fedavg, 100 clients, 7 rounds", "user-level (ε = 3"} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, text)
		}
	}
	// A version-1 file (written before metadata) is inspected too; it records nothing more.
	v1 := runJSON(t, "model", "inspect", filepath.Join("..", "..", "model", "testdata", "v1-lstm.confide"))
	if v1["format_version"] != 1.0 || !strings.HasPrefix(v1["privacy"].(string), "unknown") {
		t.Fatalf("version-1 file: %v", v1)
	}
}

// Missing, corrupt and unreadable model files, and bad arguments, are usage errors (exit
// code 2) naming the problem; so are flag values that do not parse.
func TestModelCommandErrors(t *testing.T) {
	dir := t.TempDir()
	good, _, dataDir, _ := tinyMNISTModel(t)
	corrupt := corruptCopy(t, good, dir)
	notModel := filepath.Join(dir, "notes.txt")
	os.WriteFile(notModel, []byte("hello"), 0o644)
	csvIn := filepath.Join(dir, "in.csv")
	os.WriteFile(csvIn, []byte("1,2,3,4,5\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing", []string{"model", "inspect", filepath.Join(dir, "none.confide")}, []string{"none.confide does not exist", "confide train --out"}},
		{"corrupt", []string{"model", "evaluate", corrupt, "--dataset", "mnist", "--data-dir", dataDir}, []string{"checksum mismatch", "damaged"}},
		{"not-a-model", []string{"model", "predict", notModel, "--input", csvIn}, []string{"bad magic"}},
		{"no-argument", []string{"model", "inspect"}, []string{"takes one argument, the model file"}},
		{"two-arguments", []string{"model", "inspect", good, good}, []string{"got 2"}},
		{"split", []string{"model", "evaluate", good, "--dataset", "mnist", "--split", "validation"}, []string{`--split "validation"`}},
		{"batch", []string{"model", "evaluate", good, "--dataset", "mnist", "--batch", "0"}, []string{"--batch 0"}},
		{"batch-syntax", []string{"model", "evaluate", good, "--dataset", "mnist", "--batch", "many"}, []string{`invalid argument "many"`}},
		{"png-name", []string{"model", "evaluate", good, "--dataset", "mnist", "--confusion-png", "c.svg"}, []string{"ending in .png"}},
		{"output-format", []string{"model", "predict", good, "--input", csvIn, "--output-format", "xml"}, []string{`--output-format "xml"`}},
		{"format", []string{"model", "predict", good, "--input", csvIn, "--format", "bmp"}, []string{`--format "bmp" unknown`}},
		{"no-input", []string{"model", "predict", good}, []string{"--input is required"}},
		{"unknown-extension", []string{"model", "predict", good, "--input", notModel}, []string{"cannot tell its format", "--format"}},
		{"input-shape", []string{"model", "predict", good, "--input", csvIn}, []string{"row 1 has 5 values", "784 features (a greyscale image of 28×28)"}},
		{"dataset-text-for-image-model", []string{"model", "evaluate", good, "--dataset", "shakespeare", "--data-path", filepath.Join("..", "..", "data", "testdata", "plays.txt")},
			[]string{"does not fit dataset shakespeare", "the model reads 784 features (a greyscale image of 28×28); the dataset holds text"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, tc.args...)
			wantUsageError(t, err, tc.want...)
		})
	}
}

func TestModelEvaluateMNIST(t *testing.T) {
	path, m, dataDir, test := tinyMNISTModel(t)
	pngPath := filepath.Join(t.TempDir(), "confusion.png")
	out, err := runConfide(t, "model", "evaluate", path, "--dataset", "mnist", "--data-dir", dataDir, "--confusion-png", pngPath, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	res := oneJSONObject(t, out)
	want, err := train.Evaluate(m, test, 64)
	if err != nil {
		t.Fatal(err)
	}
	if res["examples"] != 30.0 || math.Abs(res["accuracy"].(float64)-want.Accuracy) > 1e-12 || math.Abs(res["loss"].(float64)-want.Loss) > 1e-9 {
		t.Fatalf("evaluate: examples %v accuracy %v loss %v; train.Evaluate: %v", res["examples"], res["accuracy"], res["loss"], want)
	}
	if _, ok := res["perplexity"]; ok {
		t.Error("a classifier's evaluation reports perplexity")
	}
	if _, ok := res["roc_auc"]; ok {
		t.Error("a 10-class evaluation reports a ROC AUC")
	}
	var total float64
	for _, row := range res["confusion"].([]any) {
		for _, v := range row.([]any) {
			total += v.(float64)
		}
	}
	perClass := res["per_class"].([]any)
	if total != 30 || len(perClass) != 10 || perClass[3].(map[string]any)["name"] != "3" || perClass[3].(map[string]any)["support"] != 3.0 {
		t.Fatalf("confusion total %v, per-class %v", total, perClass)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width < 100 {
		t.Fatalf("confusion PNG: %v, %+v", err, cfg)
	}
	// A model of other classes (Fashion-MNIST's) on MNIST of the same shape is refused.
	other := m.Clone()
	other.Meta.ClassNames = slices.Clone(data.FashionMNISTClassNames)
	otherPath := filepath.Join(t.TempDir(), "fashion.confide")
	if err := other.Save(otherPath); err != nil {
		t.Fatal(err)
	}
	_, err = runConfide(t, "model", "evaluate", otherPath, "--dataset", "mnist", "--data-dir", dataDir)
	wantUsageError(t, err, `the model's classes are "T-shirt/top"`, `the dataset's are "0" "1"`)
}

// The spam classifier reads e-mails with its recorded tokenizer: evaluate agrees with the
// library on the test split (same seed), reports ROC AUC; predict on raw e-mails gives the
// probabilities of a forward pass on the loader's encoding.
func TestModelEvaluateAndPredictSpam(t *testing.T) {
	mails := filepath.Join("..", "..", "data", "testdata", "mails.jsonl")
	c, err := data.LoadSpamAssassin(mails, data.SpamOptions{MaxLen: 8}, rand.New(rand.NewPCG(3, 0x7370616d)))
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeGRU, Vocab: c.Train.VocabSize, Embed: 4, Hidden: []int{5}, Output: 2}
	meta := train.DatasetMeta(c.Train, spec)
	meta.Provenance = &model.Provenance{Mode: model.TrainedCentral, Dataset: "spam", Seed: 3}
	path, m := saveModel(t, t.TempDir(), "spam.confide", spec, meta)

	res := runJSON(t, "model", "evaluate", path, "--dataset", "spam", "--data-path", mails)
	want, err := train.Evaluate(m, c.Test, 16)
	if err != nil {
		t.Fatal(err)
	}
	if res["examples"] != float64(c.Test.N) || math.Abs(res["accuracy"].(float64)-want.Accuracy) > 1e-12 || math.Abs(res["loss"].(float64)-want.Loss) > 1e-9 {
		t.Fatalf("evaluate %v; train.Evaluate on the seed-3 test split: %+v", res, want)
	}
	if _, ok := res["roc_auc"].(float64); !ok {
		t.Fatalf("no ROC AUC for two classes: %v", res["roc_auc"])
	}

	in := filepath.Join(t.TempDir(), "mails.jsonl")
	lines := `{"id": "a", "text": "Subject: WIN\n\n<p>FREE money, click www.win.example now</p>"}` + "\n" +
		`"Are we still on for lunch?"` + "\n"
	os.WriteFile(in, []byte(lines), 0o644)
	out, err := runConfide(t, "model", "predict", path, "--input", in)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := train.TextEncoder(meta.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"Subject: WIN\n\n<p>FREE money, click www.win.example now</p>", "Are we still on for lunch?"}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 2 {
		t.Fatalf("%d prediction lines, want 2:\n%s", len(got), out)
	}
	for i, text := range texts {
		ids := enc.Encode(nil, text)
		fw, err := m.Forward(&model.Input{Tokens: ids, B: 1, T: len(ids)})
		if err != nil {
			t.Fatal(err)
		}
		p := make([]float64, 2)
		metrics.Softmax(p, fw.Row(0))
		var line prediction
		if err := json.Unmarshal([]byte(got[i]), &line); err != nil {
			t.Fatal(err)
		}
		if line.Index != i || line.Class != data.SpamClassNames[metrics.ArgMax(p)] || math.Abs(line.Probabilities[1]-p[1]) > 1e-12 {
			t.Fatalf("line %d: %+v; forward pass gives %v", i, line, p)
		}
	}
	var first prediction
	json.Unmarshal([]byte(got[0]), &first)
	if first.ID != "a" {
		t.Fatalf("id %v, want a", first.ID)
	}
	// Features for a text model are refused with the input it expects.
	os.WriteFile(in, []byte("[1, 2, 3]\n"), 0o644)
	_, err = runConfide(t, "model", "predict", path, "--input", in)
	wantUsageError(t, err, "line 1 holds features; the model reads text (token ids below")
}

// A character language model: evaluate reports perplexity over the predicted characters;
// predict names the next character.
func TestModelEvaluateAndPredictShakespeare(t *testing.T) {
	plays := filepath.Join("..", "..", "data", "testdata", "plays.txt")
	c, err := data.LoadShakespeare(plays, data.ShakespeareOptions{SeqLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeLSTM, Vocab: c.Train.VocabSize, Embed: 4, Hidden: []int{6}, Task: model.TaskNextToken}
	path, m := saveModel(t, t.TempDir(), "lm.confide", spec, train.DatasetMeta(c.Train, spec))
	res := runJSON(t, "model", "evaluate", path, "--dataset", "shakespeare", "--data-path", plays, "--seq-len", "10", "--split", "train")
	want, err := train.Evaluate(m, c.Train, 16)
	if err != nil {
		t.Fatal(err)
	}
	ppl, ok := res["perplexity"].(float64)
	if !ok || math.Abs(ppl-math.Exp(res["loss"].(float64))) > 1e-9 || math.Abs(res["accuracy"].(float64)-want.Accuracy) > 1e-12 {
		t.Fatalf("evaluate %v; train.Evaluate %+v", res, want)
	}
	if res["task"] != "next-token" || res["rows"].(float64) <= res["examples"].(float64) {
		t.Fatalf("task %v, rows %v for %v examples", res["task"], res["rows"], res["examples"])
	}
	in := filepath.Join(t.TempDir(), "prompts.csv")
	os.WriteFile(in, []byte("id,text\np1,FIRST CITIZEN: Spe\n"), 0o644)
	out, err := runConfide(t, "model", "predict", path, "--input", in, "--output-format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "index,id,class,class_id,probability,p_<pad>,p_<unk>,") || !strings.HasPrefix(rows[1], "0,p1,") {
		t.Fatalf("CSV predictions:\n%s", out)
	}
	obj := runJSON(t, "model", "predict", path, "--input", in)
	preds := obj["predictions"].([]any)
	p0 := preds[0].(map[string]any)
	if obj["count"] != 1.0 || len([]rune(p0["class"].(string))) != 1 && !strings.HasPrefix(p0["class"].(string), "<") {
		t.Fatalf("predict -o json: %v", obj)
	}
}

// predict reads IDX, PNG, CSV and JSONL images and features, applies the model file's
// normalisation, and gives the probabilities of a forward pass on the normalised pixels.
func TestModelPredictImages(t *testing.T) {
	path, m, dataDir, test := tinyMNISTModel(t)
	// The forward pass on the test set's (normalised) images.
	want := make([][]float64, test.N)
	for i := range want {
		out, err := m.Forward(&model.Input{X: test.X[i*784 : (i+1)*784], B: 1})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = make([]float64, 10)
		metrics.Softmax(want[i], out.Row(0))
	}
	check := func(name string, out string, idx []int) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(idx) {
			t.Fatalf("%s: %d lines, want %d", name, len(lines), len(idx))
		}
		for k, i := range idx {
			var p prediction
			if err := json.Unmarshal([]byte(lines[k]), &p); err != nil {
				t.Fatal(err)
			}
			for c := range want[i] {
				if math.Abs(p.Probabilities[c]-want[i][c]) > 1e-9 {
					t.Fatalf("%s: input %d: probabilities %v, want %v", name, k, p.Probabilities, want[i])
				}
			}
			if p.Class != data.MNISTClassNames[p.ClassID] || p.Probability != p.Probabilities[p.ClassID] {
				t.Fatalf("%s: %+v", name, p)
			}
		}
	}
	all := make([]int, test.N)
	for i := range all {
		all[i] = i
	}
	idxPath := filepath.Join(dataDir, "t10k-images-idx3-ubyte")
	out, err := runConfide(t, "model", "predict", path, "--input", idxPath, "--format", "idx")
	if err != nil {
		t.Fatal(err)
	}
	check("idx", out, all)

	// Image 4 as raw pixels 0–255, in CSV (with a header and an id), JSONL and PNG.
	raw := make([]byte, 784)
	for j := range raw {
		raw[j] = byte(math.Round(test.X[4*784+j] * 255))
	}
	dir := t.TempDir()
	var csvText, jsonText strings.Builder
	csvText.WriteString("id")
	for j := range 784 {
		csvText.WriteString(",px" + strconv.Itoa(j))
	}
	csvText.WriteString("\nimg4")
	jsonText.WriteString(`{"id": 4, "features": [`)
	for j, v := range raw {
		csvText.WriteString("," + strconv.Itoa(int(v)))
		if j > 0 {
			jsonText.WriteString(",")
		}
		jsonText.WriteString(strconv.Itoa(int(v)))
	}
	csvText.WriteString("\n")
	jsonText.WriteString("]}\n")
	img := image.NewGray(image.Rect(0, 0, 28, 28))
	copy(img.Pix, raw)
	var pngBytes bytes.Buffer
	png.Encode(&pngBytes, img)
	// The same digit at 56×56, RGBA, dark on light: --invert and the 2×2 averaging give it back.
	big := image.NewRGBA(image.Rect(0, 0, 56, 56))
	for y := range 56 {
		for x := range 56 {
			v := 255 - raw[(y/2)*28+x/2]
			big.Set(x, y, color.RGBA{v, v, v, 255})
		}
	}
	var bigBytes bytes.Buffer
	png.Encode(&bigBytes, big)
	files := map[string][]byte{"in.csv": []byte(csvText.String()), "in.jsonl": []byte(jsonText.String()), "digit.png": pngBytes.Bytes()}
	for name, b := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		out, err := runConfide(t, "model", "predict", path, "--input", p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		check(name, out, []int{4})
	}
	bigDir := filepath.Join(dir, "drawings")
	os.Mkdir(bigDir, 0o755)
	os.WriteFile(filepath.Join(bigDir, "a.png"), bigBytes.Bytes(), 0o644)
	out, err = runConfide(t, "model", "predict", path, "--input", bigDir, "--invert")
	if err != nil {
		t.Fatal(err)
	}
	check("drawings/ --invert", out, []int{4})
	if !strings.Contains(out, `"id":"a.png"`) {
		t.Errorf("PNG predictions lack the file name as id: %s", out)
	}

	// --out: predictions in the file (CSV), a summary as the one JSON object on stdout.
	outFile := filepath.Join(dir, "pred.csv")
	stdout, err := runConfide(t, "model", "predict", path, "--input", idxPath, "--out", outFile, "--output-format", "csv", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	sum := oneJSONObject(t, stdout)
	written, _ := os.ReadFile(outFile)
	if sum["count"] != float64(test.N) || sum["out"] != outFile || strings.Count(string(written), "\n") != test.N+1 {
		t.Fatalf("summary %v; file has %d lines", sum, strings.Count(string(written), "\n"))
	}

	// An IDX file of other dimensions is refused naming the expected shape.
	bad := filepath.Join(dir, "bad-idx3-ubyte")
	hdr := []byte{0, 0, 8, 3}
	for _, d := range []uint32{2, 14, 14} {
		hdr = binary.BigEndian.AppendUint32(hdr, d)
	}
	os.WriteFile(bad, append(hdr, make([]byte, 2*14*14)...), 0o644)
	_, err = runConfide(t, "model", "predict", path, "--input", bad)
	wantUsageError(t, err, "IDX dims [2 14 14]", "the model reads 784 features (a greyscale image of 28×28) (dims N×28×28)")
}

// 'confide train --out' writes what inference needs and how the model was trained; model
// evaluate then reproduces train's test accuracy, and predict reads the IDX test images.
func TestTrainOutRecordsMetadata(t *testing.T) {
	dataDir := writeTinyMNIST(t, 120, 30)
	for _, tc := range []struct {
		name string
		args []string
		dp   bool
	}{
		{"plain", nil, false},
		{"dp", []string{"--dp", "--noise-multiplier", "1", "--dp-seeded-noise", "--features", "none", "--batch", "32"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.confide")
			res := runJSON(t, append([]string{"train", "--dataset", "mnist", "--data-dir", dataDir, "--epochs", "1", "--hidden", "8", "--seed", "3", "--out", path}, tc.args...)...)
			m, err := model.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			meta := m.Meta
			p := meta.Provenance
			if !slices.Equal(meta.ClassNames, data.MNISTClassNames) || meta.Input == nil || !slices.Equal(meta.Input.Shape, []int{28, 28}) ||
				!slices.Equal(meta.Input.Std, []float64{255}) || p == nil || p.Mode != model.TrainedCentral || p.Dataset != "mnist" || p.Epochs != 1 || p.Seed != 3 {
				t.Fatalf("metadata %s", meta.JSON())
			}
			if tc.dp != (len(p.Privacy) == 1) || (tc.dp && (p.Privacy[0].Epsilon != res["epsilon"] || p.Privacy[0].Level != model.PrivacyRecord)) {
				t.Fatalf("privacy %+v; train reported ε %v", p.Privacy, res["epsilon"])
			}
			ev := runJSON(t, "model", "evaluate", path, "--dataset", "mnist", "--data-dir", dataDir)
			if math.Abs(ev["accuracy"].(float64)-res["test_accuracy"].(float64)) > 1e-12 {
				t.Fatalf("evaluate accuracy %v, train's test accuracy %v", ev["accuracy"], res["test_accuracy"])
			}
			pr := runJSON(t, "model", "predict", path, "--input", filepath.Join(dataDir, "t10k-images-idx3-ubyte"), "--format", "idx")
			if pr["count"] != 30.0 {
				t.Fatalf("predict count %v", pr["count"])
			}
		})
	}
}
