package main

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// trainedTinyMNIST trains the MLP of tinyMNISTModel for a few epochs on the tiny data so
// that compression has something to keep, and saves it with its metadata (DP provenance
// included).
func trainedTinyMNIST(t *testing.T) (path, dataDir string) {
	t.Helper()
	path, m, dataDir, _ := tinyMNISTModel(t)
	trainSet, _, err := data.LoadMNIST(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.New(m, train.Config{Epochs: 5, BatchSize: 16, Optimizer: model.OptimizerConfig{LR: 0.05, Momentum: 0.9}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Fit(t.Context(), trainSet, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%v is not a number", v)
	}
	return f
}

// prune: the mask's share of the weights, the file smaller by about the kept share, the
// zeros kept through fine-tuning, accuracy and latency before and after; DP fine-tuning
// adds its guarantee, plain fine-tuning drops the DP guarantee the model had.
func TestModelPrune(t *testing.T) {
	path, dataDir := trainedTinyMNIST(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		args     []string
		privacy  int // guarantees the pruned file records
		finetune bool
	}{
		{"no-fine-tune", nil, 1, false},
		{"per-layer-fine-tune", []string{"--per-layer", "--fine-tune-epochs", "1"}, 0, true},
		{"dp-fine-tune", []string{"--fine-tune-epochs", "1", "--dp", "--noise-multiplier", "1", "--dp-seeded-noise", "--batch", "8"}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".confide")
			res := runJSON(t, append([]string{"model", "prune", path, "--sparsity", "0.8", "--dataset", "mnist", "--data-dir", dataDir, "--out", out}, tc.args...)...)
			pruned, weights := num(t, res["pruned_weights"]), num(t, res["weight_params"])
			if weights != 784*16+16*10 || math.Abs(pruned/weights-0.8) > 0.01 {
				t.Fatalf("%v of %v weights pruned, want 80%%", pruned, weights)
			}
			before, after := res["before"].(map[string]any), res["after"].(map[string]any)
			if _, ok := after["accuracy"].(float64); !ok || num(t, res["size_ratio"]) < 3 || num(t, after["latency_ms"]) <= 0 || num(t, before["examples_per_second"]) <= 0 {
				t.Fatalf("report: before %v after %v size ratio %v", before, after, res["size_ratio"])
			}
			history, _ := res["fine_tune"].([]any)
			if tc.finetune != (len(history) == 1) {
				t.Fatalf("fine-tune history %v", res["fine_tune"])
			}
			if strings.Contains(tc.name, "per-layer") && res["granularity"] != model.PrunePerTensor {
				t.Fatalf("granularity %v", res["granularity"])
			}
			m, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if m.Spec.Mask == nil || float64(m.Spec.Mask.Pruned()) != pruned {
				t.Fatal("the pruned file has no mask of the pruned weights")
			}
			for i, v := range m.Params {
				if m.Spec.Mask.IsPruned(i) && v != 0 {
					t.Fatalf("pruned parameter %d is %v", i, v)
				}
			}
			p := m.Meta.Provenance
			if len(p.Compression) != 1 || !strings.Contains(p.Compression[0], "magnitude pruning to 80.0%") || len(p.Privacy) != tc.privacy {
				t.Fatalf("provenance: compression %q, privacy %+v", p.Compression, p.Privacy)
			}
			if tc.privacy == 2 && (p.Privacy[1].Epsilon != num(t, res["epsilon"]) || !strings.Contains(p.Privacy[1].Meaning, "composes")) {
				t.Fatalf("DP fine-tuning guarantee %+v, reported ε %v", p.Privacy[1], res["epsilon"])
			}
			ins := runJSON(t, "model", "inspect", out)
			if num(t, ins["pruned_params"]) != pruned || num(t, ins["format_version"]) != 3 {
				t.Fatalf("inspect: %v", ins)
			}
		})
	}
}

// quantize: int8 files ≥ 3.5× smaller, accuracy close, predict and evaluate run the int8
// model; --calibration gives static activations and drops the DP guarantee.
func TestModelQuantize(t *testing.T) {
	path, dataDir := trainedTinyMNIST(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "int8.confide")
	res := runJSON(t, "model", "quantize", path, "--out", out, "--dataset", "mnist", "--data-dir", dataDir)
	before, after := res["before"].(map[string]any), res["after"].(map[string]any)
	if after["precision"] != "int8" || before["precision"] != "float64" || num(t, res["size_ratio"]) < 3.5 || res["activations"] != "dynamic" ||
		math.Abs(num(t, res["accuracy_change"])) > 0.05 || num(t, res["tensors"]) != 2 {
		t.Fatalf("quantize: %v", res)
	}
	q, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if q.Precision() != model.PrecisionInt8 || len(q.Meta.Provenance.Privacy) != 1 || !strings.Contains(q.Meta.Provenance.Compression[0], "int8") {
		t.Fatalf("int8 file: precision %s, provenance %+v", q.Precision(), q.Meta.Provenance)
	}
	// predict and evaluate read the int8 file and run its int8 forward pass.
	_, test, err := data.LoadMNIST(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	pr := runJSON(t, "model", "predict", out, "--input", filepath.Join(dataDir, "t10k-images-idx3-ubyte"), "--format", "idx")
	preds := pr["predictions"].([]any)
	for i, p := range preds[:5] {
		fw, err := q.Forward(&model.Input{X: test.X[i*784 : (i+1)*784], B: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, 10)
		metrics.Softmax(want, fw.Row(0))
		got := p.(map[string]any)["probabilities"].([]any)
		for c := range want {
			if math.Abs(num(t, got[c])-want[c]) > 1e-12 {
				t.Fatalf("prediction %d: %v, int8 forward pass %v", i, got, want)
			}
		}
	}
	ev := runJSON(t, "model", "evaluate", out, "--dataset", "mnist", "--data-dir", dataDir)
	if math.Abs(num(t, ev["accuracy"])-num(t, after["accuracy"])) > 1e-12 {
		t.Fatalf("evaluate %v, quantize reported %v", ev["accuracy"], after["accuracy"])
	}
	ins := runJSON(t, "model", "inspect", out)
	if ins["precision"] != "int8" || num(t, ins["param_bytes"]) >= float64(8*q.NumParams())/3.5 || ins["quantization"].(map[string]any)["activations"] != "dynamic" {
		t.Fatalf("inspect %v", ins)
	}
	// Static activations from calibration: the DP guarantee no longer holds.
	static := filepath.Join(dir, "static.confide")
	res = runJSON(t, "model", "quantize", path, "--out", static, "--dataset", "mnist", "--data-dir", dataDir, "--calibration", "20")
	if res["activations"] != "static" || num(t, res["calibration_examples"]) != 20 {
		t.Fatalf("calibrated: %v", res)
	}
	s, err := model.Load(static)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Meta.Provenance.Privacy) != 0 || !strings.Contains(s.Meta.Provenance.Compression[0], "calibrated on 20 training examples") {
		t.Fatalf("calibrated file's provenance %+v", s.Meta.Provenance)
	}
	// Pruned, then quantised: the smallest file, zeros intact.
	pruned := filepath.Join(dir, "pruned.confide")
	runJSON(t, "model", "prune", path, "--sparsity", "0.8", "--out", pruned)
	both := filepath.Join(dir, "both.confide")
	res = runJSON(t, "model", "quantize", pruned, "--out", both)
	if num(t, res["size_ratio"]) < 3 {
		t.Fatalf("pruned int8 vs pruned float64: %v× smaller", res["size_ratio"])
	}
	st, _ := os.Stat(both)
	orig, _ := os.Stat(path)
	if float64(orig.Size())/float64(st.Size()) < 10 {
		t.Fatalf("pruned int8 file %d bytes, the original %d", st.Size(), orig.Size())
	}
}

// distill: a half-width student learns from the teacher with labels, or without them on
// "public" data, inheriting the teacher's DP guarantee only then; a student spec may leave
// the sizes to the teacher.
func TestModelDistill(t *testing.T) {
	path, dataDir := trainedTinyMNIST(t)
	dir := t.TempDir()
	specFile := filepath.Join(dir, "student.yaml")
	os.WriteFile(specFile, []byte("type: mlp\nhidden: [4]\n"), 0o644)
	for _, tc := range []struct {
		name      string
		args      []string
		hidden    int
		inherited bool
	}{
		{"half-width", []string{"--student-width", "0.5"}, 8, false},
		{"spec-unlabeled", []string{"--student-spec", specFile, "--unlabeled"}, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".confide")
			res := runJSON(t, append([]string{"model", "distill", "--teacher", path, "--dataset", "mnist", "--data-dir", dataDir, "--epochs", "2", "--out", out}, tc.args...)...)
			after := res["after"].(map[string]any)
			if _, ok := after["accuracy"].(float64); !ok || num(t, after["params"]) >= num(t, res["before"].(map[string]any)["params"]) || len(res["history"].([]any)) != 2 {
				t.Fatalf("distill: %v", res)
			}
			s, err := model.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if s.Spec.Hidden[0] != tc.hidden || s.Spec.Input != 784 || s.Spec.Output != 10 || len(s.Meta.ClassNames) != 10 || s.Meta.Input == nil {
				t.Fatalf("student %s, meta %s", s.Spec.JSON(), s.Meta.JSON())
			}
			p := s.Meta.Provenance
			if tc.inherited != (len(p.Privacy) == 1) || !strings.Contains(p.Compression[len(p.Compression)-1], "knowledge distillation from") {
				t.Fatalf("student provenance %+v", p)
			}
			if tc.inherited && !strings.Contains(p.Privacy[0].Meaning, "only if the distillation data (mnist) is public") {
				t.Fatalf("inherited guarantee %+v", p.Privacy[0])
			}
		})
	}
}

// Quantising and distilling a text model: the Transformer reads e-mails with its
// tokenizer; the int8 file predicts like its int8 forward pass.
func TestModelCompressText(t *testing.T) {
	path, mails, meta := tinySpamTransformer(t, 1)
	c, err := data.LoadSpamAssassin(mails, data.SpamOptions{MaxLen: 8}, rand.New(rand.NewPCG(3, 0x7370616d)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "int8.confide")
	res := runJSON(t, "model", "quantize", path, "--out", out, "--dataset", "spam", "--data-path", mails)
	if res["after"].(map[string]any)["precision"] != "int8" || num(t, res["tensors"]) != 6 || res["examples"] != float64(c.Test.N) {
		t.Fatalf("quantize: %v", res)
	}
	q, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "mails.jsonl")
	os.WriteFile(in, []byte(`{"id": "a", "text": "Subject: WIN\n\nFREE money now"}`+"\n"), 0o644)
	pr := runJSON(t, "model", "predict", out, "--input", in)
	enc, err := train.TextEncoder(meta.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	ids := enc.Encode(nil, "Subject: WIN\n\nFREE money now")
	fw, err := q.Forward(&model.Input{Tokens: ids, B: 1, T: len(ids), Lengths: []int32{int32(len(ids))}})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, 2)
	metrics.Softmax(want, fw.Row(0))
	got := pr["predictions"].([]any)[0].(map[string]any)["probabilities"].([]any)
	if math.Abs(num(t, got[1])-want[1]) > 1e-12 {
		t.Fatalf("int8 prediction %v, forward pass %v", got, want)
	}
	student := filepath.Join(dir, "half.confide")
	res = runJSON(t, "model", "distill", "--teacher", path, "--student-width", "0.5", "--dataset", "spam", "--data-path", mails, "--epochs", "1", "--out", student)
	if s := res["student"].(map[string]any); s["embed"] != 4.0 || s["ff"] != 8.0 || s["heads"] != 2.0 {
		t.Fatalf("student spec %v", s)
	}
}

// Every compression command's errors: missing or corrupt model files, bad flags and data
// that does not fit are usage errors (exit code 2) naming the problem.
func TestModelCompressErrors(t *testing.T) {
	path, _, dataDir, _ := tinyMNISTModel(t)
	dir := t.TempDir()
	raw, _ := os.ReadFile(path)
	corrupt := filepath.Join(dir, "corrupt.confide")
	os.WriteFile(corrupt, append(bytes.Clone(raw[:len(raw)-1]), raw[len(raw)-1]^1), 0o644)
	out := filepath.Join(dir, "out.confide")
	int8File := filepath.Join(dir, "int8.confide")
	if _, err := runConfide(t, "model", "quantize", path, "--out", int8File); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.yaml")
	os.WriteFile(garbage, []byte("type: mlp\nhiden: [4]\n"), 0o644)
	plays := filepath.Join("..", "..", "data", "testdata", "plays.txt")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"prune-missing", []string{"model", "prune", filepath.Join(dir, "none.confide"), "--sparsity", "0.5", "--out", out}, []string{"does not exist"}},
		{"prune-corrupt", []string{"model", "prune", corrupt, "--sparsity", "0.5", "--out", out}, []string{"checksum mismatch"}},
		{"prune-sparsity", []string{"model", "prune", path, "--sparsity", "1.5", "--out", out}, []string{"--sparsity 1.5", "in (0, 1)"}},
		{"prune-no-sparsity", []string{"model", "prune", path, "--out", out}, []string{"--sparsity 0"}},
		{"prune-no-out", []string{"model", "prune", path, "--sparsity", "0.5"}, []string{"--out is required"}},
		{"prune-out-is-input", []string{"model", "prune", path, "--sparsity", "0.5", "--out", path}, []string{"is the input model file"}},
		{"prune-fine-tune-no-data", []string{"model", "prune", path, "--sparsity", "0.5", "--fine-tune-epochs", "1", "--out", out}, []string{"needs --dataset"}},
		{"prune-dp-no-fine-tune", []string{"model", "prune", path, "--sparsity", "0.5", "--dp", "--out", out}, []string{"--dp applies to fine-tuning"}},
		{"prune-quantized", []string{"model", "prune", int8File, "--sparsity", "0.5", "--out", out}, []string{"is quantised"}},
		{"prune-dataset-mismatch", []string{"model", "prune", path, "--sparsity", "0.5", "--dataset", "shakespeare", "--data-path", plays, "--out", out}, []string{"does not fit dataset shakespeare"}},
		{"prune-split", []string{"model", "prune", path, "--sparsity", "0.5", "--dataset", "mnist", "--data-dir", dataDir, "--split", "dev", "--out", out}, []string{`--split "dev"`}},
		{"prune-flag-syntax", []string{"model", "prune", path, "--sparsity", "lots", "--out", out}, []string{`invalid argument "lots"`}},
		{"quantize-twice", []string{"model", "quantize", int8File, "--out", out}, []string{"already quantised"}},
		{"quantize-calibration-no-data", []string{"model", "quantize", path, "--calibration", "10", "--out", out}, []string{"needs --dataset"}},
		{"quantize-percentile", []string{"model", "quantize", path, "--percentile", "0", "--out", out}, []string{"--percentile 0"}},
		{"quantize-no-out", []string{"model", "quantize", path}, []string{"--out is required"}},
		{"distill-no-teacher", []string{"model", "distill", "--student-width", "0.5", "--dataset", "mnist", "--out", out}, []string{"--teacher is required"}},
		{"distill-no-student", []string{"model", "distill", "--teacher", path, "--dataset", "mnist", "--out", out}, []string{"--student-spec FILE or --student-width"}},
		{"distill-both-students", []string{"model", "distill", "--teacher", path, "--student-width", "0.5", "--student-spec", garbage, "--dataset", "mnist", "--out", out}, []string{"one of them"}},
		{"distill-bad-spec", []string{"model", "distill", "--teacher", path, "--student-spec", garbage, "--dataset", "mnist", "--data-dir", dataDir, "--out", out}, []string{"hiden"}},
		{"distill-temperature", []string{"model", "distill", "--teacher", path, "--student-width", "0.5", "--temperature", "-1", "--dataset", "mnist", "--out", out}, []string{"--temperature -1"}},
		{"distill-no-dataset", []string{"model", "distill", "--teacher", path, "--student-width", "0.5", "--out", out}, []string{"--dataset is required"}},
		{"distill-teacher-corrupt", []string{"model", "distill", "--teacher", corrupt, "--student-width", "0.5", "--dataset", "mnist", "--out", out}, []string{"checksum mismatch"}},
		{"distill-dataset-mismatch", []string{"model", "distill", "--teacher", path, "--student-width", "0.5", "--dataset", "shakespeare", "--data-path", plays, "--out", out}, []string{"does not fit dataset shakespeare"}},
		{"distill-args", []string{"model", "distill", path}, []string{"unknown command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, tc.args...)
			if tc.name == "distill-args" {
				if err == nil {
					t.Fatal("a positional argument was accepted")
				}
				return
			}
			wantUsageError(t, err, tc.want...)
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed command wrote --out")
	}
}
