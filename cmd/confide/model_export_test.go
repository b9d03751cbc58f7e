package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx"

	"github.com/confide-fl/confide/model"
)

// TestModelExportONNX: export writes an ONNX file and reports it as one JSON object whose
// inputs and outputs are the graph's; the file carries the model file's metadata.
func TestModelExportONNX(t *testing.T) {
	dir := t.TempDir()
	spec := model.Spec{Type: model.TypeTransformer, Vocab: 6, Embed: 8, Layers: 1, Heads: 2, FF: 16, MaxLen: 12, Output: 2}
	meta := model.Meta{ClassNames: []string{"ham", "spam"}, Tokenizer: &model.TokenizerMeta{Type: model.TokenizerWord, Vocab: []string{"buy", "now", "hello", "friend"}}}
	path, _ := saveModel(t, dir, "spam.confide", spec, meta)
	out := filepath.Join(dir, "spam.onnx")
	stdout, err := runConfide(t, "model", "export", path, "--format", "onnx", "--out", out, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	res := oneJSONObject(t, stdout)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res["file"] != out || res["bytes"] != float64(len(raw)) || res["opset"] != 13.0 || res["format"] != "onnx" || res["max_len"] != 12.0 {
		t.Fatalf("report: %v (file of %d bytes)", res, len(raw))
	}
	shapes := func(key string) string {
		b, _ := json.Marshal(res[key])
		return string(b)
	}
	if got, want := shapes("inputs"), `[{"name":"tokens","shape":["batch","seq"],"type":"int64"},{"name":"lengths","shape":["batch"],"type":"int64"}]`; got != want {
		t.Errorf("inputs %s, want %s", got, want)
	}
	if got, want := shapes("outputs"), `[{"name":"logits","shape":["batch",2],"type":"float32"},{"name":"probabilities","shape":["batch",2],"type":"float32"}]`; got != want {
		t.Errorf("outputs %s, want %s", got, want)
	}
	mp, err := gonnx.ModelProtoFromBytes(raw)
	if err != nil {
		t.Fatalf("the file is not an ONNX model: %v", err)
	}
	props := map[string]string{}
	for _, p := range mp.MetadataProps {
		props[p.Key] = p.Value
	}
	if props["confide.class_names"] != `["ham","spam"]` || !strings.Contains(props["confide.tokenizer"], `"friend"`) {
		t.Errorf("metadata %v lacks the class names or the tokenizer", props)
	}
}

// TestModelExportHuman: the text report names the file, the graph's inputs and outputs and
// what the weights are; an int8 model exports its dequantised weights, and an mlp's graph
// normalises raw features unless --no-normalize.
func TestModelExportHuman(t *testing.T) {
	path, m, _, _ := tinyMNISTModel(t)
	dir := t.TempDir()
	if err := m.Quantize(model.QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	int8Path := filepath.Join(dir, "int8.confide")
	if err := m.Save(int8Path); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mnist.onnx")
	text, err := runConfide(t, "model", "export", int8Path, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ONNX opset 13", "weights float32, dequantised from int8", "input   input float32[batch, 784]",
		"output  probabilities float32[batch, 10]", "normalises raw features"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	res := oneJSONObject(t, mustRun(t, "model", "export", path, "--out", out, "--no-normalize", "-o", "json"))
	if _, ok := res["normalized_input"]; ok || res["weights"] != "float32" {
		t.Errorf("--no-normalize of a float64 model: %v", res)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runConfide(t, args...)
	if err != nil {
		t.Fatalf("confide %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// Missing or corrupt model files, bad flags and models ONNX export does not cover are
// usage errors (exit code 2) naming the problem.
func TestModelExportErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := saveModel(t, dir, "mlp.confide", model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}, model.Meta{})
	corrupt := filepath.Join(dir, "corrupt.confide")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	if err := os.WriteFile(corrupt, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	scattering, _ := saveModel(t, dir, "scattering.confide", model.Spec{Type: model.TypeMLP, Input: 64, Output: 2,
		Features: &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 2, Shape: []int{8, 8}}}, model.Meta{})
	out := filepath.Join(dir, "out.onnx")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing", []string{good + ".none", "--out", out}, []string{"does not exist"}},
		{"corrupt", []string{corrupt, "--out", out}, []string{"checksum mismatch", "damaged"}},
		{"format", []string{good, "--format", "tflite", "--out", out}, []string{`--format "tflite"`, "only export format is onnx"}},
		{"no-out", []string{good}, []string{"--out is required"}},
		{"out-is-input", []string{good, "--out", good}, []string{"is the input model file"}},
		{"max-len", []string{good, "--out", out, "--max-len", "-1"}, []string{"--max-len -1"}},
		{"max-len-syntax", []string{good, "--out", out, "--max-len", "long"}, []string{`invalid argument "long"`}},
		{"feature-stage", []string{scattering, "--out", out}, []string{"not exportable to ONNX", "feature stage"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"model", "export"}, tc.args...)...)
			wantUsageError(t, err, tc.want...)
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s behind (%v)", out, err)
	}
}
