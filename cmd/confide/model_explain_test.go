package main

import (
	"bytes"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

func TestModelExplainImages(t *testing.T) {
	path, _, dataDir, test := tinyMNISTModel(t)
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "saliency.png")
	res := runJSON(t, "model", "explain", path, "--dataset", "mnist", "--data-dir", dataDir, "--index", "0,3", "--png", pngPath)
	ex := res["examples"].([]any)
	if len(ex) != 2 || res["png"] != pngPath || !strings.Contains(res["privacy"].(string), "discloses") {
		t.Fatalf("explain: %v", res)
	}
	for _, e := range ex {
		e := e.(map[string]any)
		attr := e["attributions"].([]any)
		sum := 0.0
		for _, v := range attr {
			sum += num(t, v)
		}
		f, base := num(t, e["f"]), num(t, e["baseline"])
		if len(attr) != 784 || math.Abs(sum-(f-base)) > 0.01*math.Abs(f-base) || e["target"] != e["predicted"] {
			t.Fatalf("example %v: %d attributions summing to %g, f(x) − f(baseline) = %g", e["index"], len(attr), sum, f-base)
		}
	}
	checkPNG(t, pngPath)

	imp := filepath.Join(dir, "importance.png")
	res = runJSON(t, "model", "explain", path, "--dataset", "mnist", "--data-dir", dataDir, "--method", "permutation", "--patch", "7", "--repeats", "2", "--png", imp)
	p := res["permutation"].(map[string]any)
	if got := len(p["importances"].([]any)); got != 16 || p["examples"] != float64(test.N) || res["patch"] != 7.0 {
		t.Fatalf("permutation: %d groups of 7×7 patches (want 16), %v", got, res)
	}
	checkPNG(t, imp)
}

func TestModelExplainText(t *testing.T) {
	path, mails, _ := tinySpamTransformer(t, 2)
	dir := t.TempDir()
	html, tokPNG := filepath.Join(dir, "tokens.html"), filepath.Join(dir, "tokens.png")
	res := runJSON(t, "model", "explain", path, "--dataset", "spam", "--data-path", mails, "--index", "0,1", "--target", "spam", "--of", "probability", "--html", html, "--png", tokPNG)
	for _, e := range res["examples"].([]any) {
		e := e.(map[string]any)
		toks, attr := e["tokens"].([]any), e["attributions"].([]any)
		if len(toks) == 0 || len(toks) != len(attr) || e["target_name"] != "spam" || e["output"] != "probability" {
			t.Fatalf("example %v", e)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<span") {
		t.Fatalf("HTML: %v\n%s", err, page)
	}
	checkPNG(t, tokPNG)

	attn := filepath.Join(dir, "attention.png")
	res = runJSON(t, "model", "explain", path, "--dataset", "spam", "--data-path", mails, "--method", "attention", "--index", "1", "--head", "all", "--max-tokens", "5", "--png", attn)
	a := res["attention"].(map[string]any)
	maps := a["maps"].([]any)
	if len(maps) != 4 || a["layers"] != 2.0 {
		t.Fatalf("2 layers × 2 heads: %d maps, %v", len(maps), a)
	}
	w := maps[0].(map[string]any)["weights"].([]any)
	if n := len(a["tokens"].([]any)); len(w) != n || n > 5 {
		t.Fatalf("%d rows for %d tokens", len(w), n)
	}
	checkPNG(t, attn)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"permutation-on-text", []string{"--method", "permutation"}, []string{"reads text", "permutation importance needs dense features"}},
		{"bad-target", []string{"--target", "eggs"}, []string{`--target "eggs"`, "ham"}},
		{"attention-two-examples", []string{"--method", "attention", "--index", "0,1"}, []string{"one example at a time"}},
		{"bad-head", []string{"--method", "attention", "--head", "3"}, []string{"--head 3", "2 heads"}},
		{"bad-layer", []string{"--method", "attention", "--layer", "3"}, []string{"--layer 3", "2 attention layers"}},
		{"index-past-split", []string{"--index", "100000"}, []string{"--index 100000", "examples"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"model", "explain", path, "--dataset", "spam", "--data-path", mails}, tc.args...)...)
			wantUsageError(t, err, tc.want...)
		})
	}
}

func TestModelExplainErrors(t *testing.T) {
	good, _, dataDir, _ := tinyMNISTModel(t)
	dir := t.TempDir()
	corrupt := corruptCopy(t, good, dir)
	scatter, _ := saveModel(t, dir, "scatter.confide", model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{}, Output: 10,
		Features: &model.FeatureSpec{Type: "scattering", J: 2, L: 2, Shape: []int{28, 28}}}, model.Meta{})
	mnist := []string{"--dataset", "mnist", "--data-dir", dataDir}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing", []string{filepath.Join(dir, "none.confide")}, []string{"none.confide does not exist"}},
		{"corrupt", append([]string{corrupt}, mnist...), []string{"checksum mismatch", "damaged"}},
		{"method", []string{good, "--method", "shap"}, []string{`--method "shap"`}},
		{"of", []string{good, "--of", "softmax"}, []string{`--of "softmax"`}},
		{"steps", []string{good, "--steps", "0"}, []string{"--steps 0"}},
		{"tolerance", []string{good, "--tolerance", "0"}, []string{"--tolerance 0"}},
		{"patch", []string{good, "--patch", "0"}, []string{"--patch 0"}},
		{"head", []string{good, "--head", "first"}, []string{`--head "first"`}},
		{"png-name", []string{good, "--png", "s.jpg"}, []string{"ending in .png"}},
		{"html-for-image", append([]string{good, "--html", "s.html"}, mnist...), []string{"HTML token maps are for text models"}},
		{"attention-on-mlp", append([]string{good, "--method", "attention"}, mnist...), []string{"no attention layers"}},
		{"scattering-ig", append([]string{scatter}, mnist...), []string{"scattering transform", "--method permutation"}},
		{"dataset-text-for-image-model", []string{good, "--dataset", "shakespeare", "--data-path", filepath.Join("..", "..", "data", "testdata", "plays.txt")},
			[]string{"does not fit dataset shakespeare"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"model", "explain"}, tc.args...)...)
			wantUsageError(t, err, tc.want...)
		})
	}
}

// tinySpamTransformer saves an untrained Transformer of the given layers (d 8, 2 heads)
// with the metadata train --out records for the test mails (seed 3), and returns its path,
// the mails' path and its meta.
func tinySpamTransformer(t *testing.T, layers int) (path, mails string, meta model.Meta) {
	t.Helper()
	mails = filepath.Join("..", "..", "data", "testdata", "mails.jsonl")
	c, err := data.LoadSpamAssassin(mails, data.SpamOptions{MaxLen: 8}, rand.New(rand.NewPCG(3, 0x7370616d)))
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeTransformer, Vocab: c.Train.VocabSize, Embed: 8, Heads: 2, FF: 16, Layers: layers, MaxLen: 8, Output: 2}
	meta = train.DatasetMeta(c.Train, spec)
	meta.Provenance = &model.Provenance{Mode: model.TrainedCentral, Dataset: "spam", Seed: 3}
	path, _ = saveModel(t, t.TempDir(), "spam.confide", spec, meta)
	return path, mails, meta
}

// corruptCopy writes good with one bit flipped into dir and returns its path.
func corruptCopy(t *testing.T, good, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.confide")
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 1
	if err := os.WriteFile(corrupt, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	return corrupt
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
