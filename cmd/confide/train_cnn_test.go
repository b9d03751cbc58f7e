package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/confide-fl/confide/model"
)

// --model cnn is pytorch_reference.py's CNN on the dataset's images; --hidden, --activation
// and --dropout change it; a dataset without images is refused.
func TestCNNModelFlag(t *testing.T) {
	images := syntheticDataset(model.TypeCNN, 8, 1)
	for _, c := range []struct {
		name    string
		args    []string
		check   func(model.Spec) bool
		wantErr string
	}{
		{"default", nil, func(s model.Spec) bool {
			n, err := s.NumParams()
			return err == nil && n == 26010 && s.Activation == model.ActTanh && len(s.Conv) == 2 && s.Input == 784
		}, ""},
		{"hidden_activation_dropout", []string{"--hidden", "64,16", "--activation", "relu", "--dropout", "0.2"}, func(s model.Spec) bool {
			return len(s.Hidden) == 2 && s.Hidden[0] == 64 && s.Activation == model.ActReLU && s.Dropout == 0.2
		}, ""},
		{"bad_activation", []string{"--activation", "swish"}, nil, "unknown activation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mf, _, _, _ := trainFlags(t, append([]string{"--model", "cnn"}, c.args...)...)
			s, err := mf.spec(images)
			switch {
			case c.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want it to mention %q", err, c.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !c.check(s):
				t.Fatalf("spec %s", s.JSON())
			}
		})
	}
	mf, _, _, _ := trainFlags(t, "--model", "cnn")
	text := syntheticDataset(model.TypeLSTM, 4, 1)
	if _, err := mf.spec(text); err == nil || !strings.Contains(err.Error(), "--model cnn reads images") {
		t.Fatalf("text dataset: %v", err)
	}
}

// Under --dp, --model cnn takes its own recipe, with plain SGD even where the dataset's
// non-DP defaults pick Adam.
func TestCNNDPRecipe(t *testing.T) {
	mf, of, pf, ff := trainFlags(t, "--model", "cnn", "--dp", "--target-epsilon", "2")
	of.applyDefaults("mnist", mf.model)
	if of.optimizer != "adam" {
		t.Fatalf("non-DP default optimizer %s, want adam", of.optimizer)
	}
	scatter, err := ff.scattering("mnist", true, mf)
	if err != nil || scatter {
		t.Fatalf("--features auto gave scattering %v (%v) for a cnn", scatter, err)
	}
	applyDPDefaults(of, mf, pf, dpRecipeFor(mf, scatter, 2))
	r := dpCNNRecipe
	if of.optimizer != "sgd" || of.batch != r.batch || of.lr != r.lr || of.epochs != r.epochs || pf.maxGradNorm != r.clip {
		t.Fatalf("flags %+v, C %v; want the cnn recipe %+v", of, pf.maxGradNorm, r)
	}
	mf, _, _, _ = trainFlags(t, "--model-spec", "m.yaml")
	if got := dpRecipeFor(mf, false, 2); got != dpRecipe {
		t.Fatalf("a spec file got recipe %+v", got)
	}
}

func TestBenchTrainCNN(t *testing.T) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"bench", "train", "--model", "cnn", "--runs", "1", "--seconds", "0.05", "--examples", "128", "--dp", "-o", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var res benchTrainResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.Model.Type != model.TypeCNN || res.Params != 26010 || res.Batch != 64 || !res.DP || !(res.ExamplesPerSecond > 0) {
		t.Fatalf("result %+v", res)
	}
}
