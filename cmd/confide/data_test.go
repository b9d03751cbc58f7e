package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
)

// TestExampleHousingDataIsTheGenerators checks that examples/tabular/data holds exactly what
// `confide data generate housing` writes with its defaults, so the shipped table is
// reproducible from the documented generator.
func TestExampleHousingDataIsTheGenerators(t *testing.T) {
	dir := t.TempDir()
	if _, err := runConfide(t, "data", "generate", "housing", "--out", dir); err != nil {
		t.Fatal(err)
	}
	names := []string{"eval.csv"}
	for _, r := range data.HousingRegions {
		names = append(names, "train-"+r+".csv")
	}
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "examples", "tabular", "data", n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("examples/tabular/data/%s differs from the generator's output: regenerate it with confide data generate housing --out examples/tabular/data --overwrite", n)
		}
	}
	if _, err := runConfide(t, "data", "generate", "housing", "--out", dir); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("generating over existing files: err = %v, want a hint at --overwrite", err)
	}
}

// TestExampleSpecsAreFederationReady checks that the example specs carry everything a
// federation ships (classes, categories, statistics) and agree with what `confide data
// schema` drafts from the public evaluation set.
func TestExampleSpecsAreFederationReady(t *testing.T) {
	for _, c := range []struct{ file, args string }{
		{"housing-price.yaml", "--target price_k --ignore price_band"},
		{"housing-band.yaml", "--label price_band --ignore price_k"},
	} {
		path := filepath.Join("..", "..", "examples", "tabular", c.file)
		s, err := data.ReadSchemaFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ValidateFederated(); err != nil {
			t.Errorf("%s: %v", c.file, err)
		}
		out, err := runConfide(t, append([]string{"data", "schema", filepath.Join("..", "..", "examples", "tabular", "data", "eval.csv"), "--group", "region"}, strings.Fields(c.args)...)...)
		if err != nil {
			t.Fatal(err)
		}
		drafted, err := data.ParseSchema([]byte(out), "")
		if err != nil {
			t.Fatalf("confide data schema printed an invalid spec: %v\n%s", err, out)
		}
		if got, want := drafted.FeatureDim(), s.FeatureDim(); got != want || len(drafted.Columns) != len(s.Columns) {
			t.Errorf("%s: %d columns (%d features), the draft %d (%d)", c.file, len(s.Columns), want, len(drafted.Columns), got)
		}
		for i := range s.Columns {
			a, b := s.Columns[i], drafted.Columns[i]
			if a.Name != b.Name || (a.Mean != nil) != (b.Mean != nil) || (a.Mean != nil && *a.Mean != *b.Mean) {
				t.Errorf("%s: column %d is %+v, the draft's %+v", c.file, i, a, b)
			}
		}
	}
}

func TestTrainOnSpecFileRegressionAndClassification(t *testing.T) {
	spec := filepath.Join("..", "..", "examples", "tabular", "housing-price.yaml")
	res := runJSON(t, "train", "--dataset", spec, "--hidden", "32", "--epochs", "8", "--lr", "0.01", "--batch", "32")
	reg, ok := res["test_regression"].(map[string]any)
	if !ok {
		t.Fatalf("no test_regression in %v", res)
	}
	if r2, _ := reg["r2"].(float64); r2 < 0.8 {
		t.Errorf("test R² %v, want ≥ 0.8 (a 17-32-1 MLP explains most of the synthetic price)", r2)
	}
	if m := res["model"].(map[string]any); m["loss"] != "mse" || m["output"] != 1.0 {
		t.Errorf("model %v, want loss mse and one output", m)
	}
	band := filepath.Join("..", "..", "examples", "tabular", "housing-band.yaml")
	res = runJSON(t, "train", "--dataset", band, "--hidden", "32", "--epochs", "8", "--lr", "0.01", "--batch", "32")
	if acc, _ := res["test_accuracy"].(float64); acc < 0.75 {
		t.Errorf("test accuracy %v, want ≥ 0.75", acc)
	}
	if _, ok := res["test_regression"]; ok {
		t.Error("a classifier reports regression errors")
	}
}

func TestTrainOnSpecFileBadRows(t *testing.T) {
	dir := t.TempDir()
	csv := "a,b,y\n1,2,3\n4,x,5\n6,7,8\n9,10,11\n12,13,14\n15,16,17\n"
	if err := os.WriteFile(filepath.Join(dir, "t.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(spec, []byte("format: csv\npath: t.csv\ntest_fraction: 0.4\ntarget: {column: y}\ncolumns: [{name: a}, {name: b}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runConfide(t, "train", "--dataset", spec, "--epochs", "1", "--hidden", "4")
	if !errors.Is(err, data.ErrFormat) || !strings.Contains(err.Error(), `t.csv:3: column 2 ("b"): "x" is not a finite number`) {
		t.Fatalf("err = %v, want the bad row named", err)
	}
	res := runJSON(t, "train", "--dataset", spec, "--epochs", "1", "--hidden", "4", "--skip-bad-rows")
	if res["train_examples"] != 3.0 {
		t.Errorf("train_examples %v, want 3 of the 5 good rows (2 held out)", res["train_examples"])
	}
}

// TestDataFetchMirrorAndOfflineMessage fetches tiny Shakespeare from a local mirror into a
// fresh cache (the shared copy, when this checkout has one), and without a reachable
// source checks the one-line message naming the file and where to put it.
func TestDataFetchMirrorAndOfflineMessage(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	empty := httptest.NewServer(http.NotFoundHandler())
	defer empty.Close()
	_, err := runConfide(t, "data", "fetch", "shakespeare", "--mirror", empty.URL)
	want := filepath.Join(cache, "confide", "shakespeare", "tinyshakespeare.txt")
	if !errors.Is(err, data.ErrNotFetched) || !strings.Contains(err.Error(), "save it as "+want) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unreachable mirror: %v", err)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "tinyshakespeare.txt"))
	if err != nil {
		t.Skip("no ../shared/data/tinyshakespeare.txt to serve as a mirror")
	}
	mirror := httptest.NewServer(http.StripPrefix("/shakespeare/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "tinyshakespeare.txt" {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})))
	defer mirror.Close()
	res := runJSON(t, "data", "fetch", "shakespeare", "--mirror", mirror.URL)
	if res["shakespeare"] != want {
		t.Fatalf("fetched to %v, want %s", res["shakespeare"], want)
	}
	// First use of --dataset shakespeare now reads the cache, no --data-path needed.
	out := runJSON(t, "train", "--dataset", "shakespeare", "--model", "lstm", "--hidden", "8", "--embed", "4", "--epochs", "1", "--batch", "512", "--seq-len", "20")
	if out["dataset"] != "shakespeare" {
		t.Errorf("train on the fetched file: %v", out["dataset"])
	}
}
