package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// writeTinyMNIST writes an MNIST-shaped IDX set (28×28 images, 10 classes) of nTrain and
// nTest examples into a temporary directory and returns it. Class c lights a 7×7 block
// whose position depends on c, so a few steps learn something.
func writeTinyMNIST(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	dir := t.TempDir()
	idx := func(dims []int, elems []byte) []byte {
		b := []byte{0, 0, 0x08, byte(len(dims))} // unsigned bytes, len(dims) dimensions
		for _, d := range dims {
			b = binary.BigEndian.AppendUint32(b, uint32(d))
		}
		return append(b, elems...)
	}
	write := func(name string, n int) {
		px := make([]byte, n*28*28)
		labels := make([]byte, n)
		for i := range n {
			c := i % 10
			labels[i] = byte(c)
			r0, c0 := 7*(c/4), 7*(c%4)
			for r := r0; r < r0+7; r++ {
				for col := c0; col < c0+7; col++ {
					px[i*784+r*28+col] = byte(128 + (i*31+r*7+col)%128)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-images-idx3-ubyte"), idx([]int{n, 28, 28}, px), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-labels-idx1-ubyte"), idx([]int{n}, labels), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("train", nTrain)
	write("t10k", nTest)
	return dir
}

// TestTrainDPJSONNamesModelAndHoldsOut runs `confide train --dp -o json` on tiny MNIST-shaped
// data with the scattering stage (the default) and without it, and checks the model name and
// that every epoch reports only metrics on the held-out examples.
func TestTrainDPJSONNamesModelAndHoldsOut(t *testing.T) {
	dir := writeTinyMNIST(t, 240, 40)
	base := []string{"train", "--dataset", "mnist", "--data-dir", dir, "--dp", "--noise-multiplier", "1",
		"--dp-seeded-noise", "--epochs", "2", "--batch", "32"}
	for _, c := range []struct {
		name     string
		args     []string
		model    string
		features bool
	}{
		{"features_auto", nil, "linear on scattering(J=2, L=8)", true},
		{"features_scattering_hidden_16", []string{"--features", "scattering", "--hidden", "16"}, "MLP 3969-16-10 (relu) on scattering(J=2, L=8)", true},
		{"features_none", []string{"--features", "none"}, "MLP 784-256-128-10 (tanh)", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := runJSON(t, append(base, c.args...)...)
			if res["model_name"] != c.model {
				t.Errorf("model_name %q, want %q", res["model_name"], c.model)
			}
			if _, ok := res["features"]; ok != c.features {
				t.Errorf("features %v in the output: %v, want %v", res["features"], ok, c.features)
			}
			// Default --holdout: 1/12 of the 240 training examples.
			if res["held_out"] != 20.0 || res["train_examples"] != 220.0 {
				t.Errorf("held_out %v, train_examples %v; want 20, 220", res["held_out"], res["train_examples"])
			}
			if m, _ := res["epoch_metrics"].(string); !strings.HasPrefix(m, "validation (held-out 20 of the 240 training examples, not trained on") {
				t.Errorf("epoch_metrics %q does not say the metrics are on the 20 held-out examples", m)
			}
			for _, k := range []string{"train_accuracy", "train_loss"} {
				if _, ok := res[k]; ok {
					t.Errorf("DP run reports %s, an un-noised statistic of the training set", k)
				}
			}
			if _, ok := res["validation_accuracy"].(float64); !ok {
				t.Errorf("validation_accuracy missing: %v", res["validation_accuracy"])
			}
			if _, ok := res["test_accuracy"].(float64); !ok {
				t.Errorf("test_accuracy missing: %v", res["test_accuracy"])
			}
			checkHistory(t, res, []string{"validation"}, 20)
		})
	}
}

// checkHistory checks that every epoch of res's history has exactly the metric keys want,
// the first of them over examples examples.
func checkHistory(t *testing.T, res map[string]any, want []string, examples float64) {
	t.Helper()
	h, _ := res["history"].([]any)
	if len(h) != int(res["epochs"].(float64)) {
		t.Fatalf("history has %d epochs, want %v", len(h), res["epochs"])
	}
	for i, e := range h {
		e := e.(map[string]any)
		var got []string
		for _, k := range []string{"train", "validation", "test"} {
			if _, ok := e[k]; ok {
				got = append(got, k)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("epoch %d reports %v, want %v", i+1, got, want)
			continue
		}
		if len(want) > 0 {
			if n := e[want[0]].(map[string]any)["examples"]; n != examples {
				t.Errorf("epoch %d: %s metrics over %v examples, want %v", i+1, want[0], n, examples)
			}
		}
	}
}

func TestTrainDPHoldoutZeroReportsNoEpochMetrics(t *testing.T) {
	dir := writeTinyMNIST(t, 120, 20)
	res := runJSON(t, "train", "--dataset", "mnist", "--data-dir", dir, "--dp", "--noise-multiplier", "1",
		"--dp-seeded-noise", "--epochs", "2", "--batch", "32", "--features", "none", "--holdout", "0")
	if res["train_examples"] != 120.0 {
		t.Errorf("train_examples %v, want 120", res["train_examples"])
	}
	if _, ok := res["held_out"]; ok {
		t.Errorf("held_out %v with --holdout 0", res["held_out"])
	}
	if m, _ := res["epoch_metrics"].(string); !strings.HasPrefix(m, "none") {
		t.Errorf("epoch_metrics %q, want none", m)
	}
	checkHistory(t, res, nil, 0)
}

// TestTrainWithoutDPKeepsTrainAndTestMetrics: the history of a non-DP run is unchanged.
func TestTrainWithoutDPKeepsTrainAndTestMetrics(t *testing.T) {
	dir := writeTinyMNIST(t, 120, 20)
	res := runJSON(t, "train", "--dataset", "mnist", "--data-dir", dir, "--epochs", "1", "--hidden", "8")
	if res["model_name"] != "MLP 784-8-10 (relu)" || res["train_examples"] != 120.0 {
		t.Errorf("model_name %q, train_examples %v", res["model_name"], res["train_examples"])
	}
	if _, ok := res["train_accuracy"].(float64); !ok {
		t.Errorf("train_accuracy missing: %v", res["train_accuracy"])
	}
	checkHistory(t, res, []string{"train", "test"}, 120)
}

// TestTrainDPHumanOutput: the human output names the model, says how to get the plain MLP
// and labels the per-epoch metrics as validation on the held-out examples.
func TestTrainDPHumanOutput(t *testing.T) {
	dir := writeTinyMNIST(t, 120, 20)
	out, err := runConfide(t, "train", "--dataset", "mnist", "--data-dir", dir, "--dp", "--noise-multiplier", "1",
		"--dp-seeded-noise", "--epochs", "1", "--batch", "32")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"per-epoch metrics: validation (held-out 10 of the 120 training examples, not trained on",
		"epoch 1/1  validation loss",
		"mnist linear on scattering(J=2, L=8) (",
		"--features none",
		"trained on 110 examples; validation on the 10 held out",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"mnist MLP", "train loss", "epoch 1/1  test"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains %q:\n%s", bad, out)
		}
	}
}

func TestHoldoutFlag(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		n       int
		want    int
		wantErr bool
	}{
		{"auto_mnist", []string{"--dp"}, 60000, 5000, false},
		{"auto_tiny", []string{"--dp"}, 11, 0, false},
		{"count", []string{"--dp", "--holdout", "1000"}, 60000, 1000, false},
		{"zero", []string{"--dp", "--holdout", "0"}, 60000, 0, false},
		{"all", []string{"--dp", "--holdout", "60000"}, 60000, 0, true},
		{"negative", []string{"--dp", "--holdout", "-1"}, 60000, 0, true},
		{"fraction", []string{"--dp", "--holdout", "0.1"}, 60000, 0, true},
		{"without_dp", []string{"--holdout", "10"}, 60000, 0, true},
		{"without_dp_unset", nil, 60000, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, pf, _ := trainFlags(t, c.args...)
			got, err := pf.heldOut(c.n)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("heldOut(%d) = %d, %v; want %d (error %v)", c.n, got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestHoldOutSplitsDisjointly: the held-out and training parts partition the examples,
// keep their order and depend only on the seed.
func TestHoldOutSplitsDisjointly(t *testing.T) {
	ds := &data.Dataset{Name: "d", N: 100, Dim: 1, X: make([]float64, 100), Y: make([]int32, 100), NumClasses: 2, Task: data.TaskClassify}
	for i := range ds.N {
		ds.X[i] = float64(i)
	}
	ids := func(d *data.Dataset) []int {
		var s []int
		for _, x := range d.X {
			s = append(s, int(x))
		}
		return s
	}
	tr, held := holdOut(ds, 12, 7)
	if tr.N != 88 || held.N != 12 {
		t.Fatalf("split %d + %d, want 88 + 12", tr.N, held.N)
	}
	all := append(ids(tr), ids(held)...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("the parts are not a partition of the examples: %v", all)
		}
	}
	if !slices.IsSorted(ids(tr)) || !slices.IsSorted(ids(held)) {
		t.Errorf("parts not in the dataset's order: %v, %v", ids(tr), ids(held))
	}
	_, again := holdOut(ds, 12, 7)
	_, other := holdOut(ds, 12, 8)
	if !slices.Equal(ids(held), ids(again)) || slices.Equal(ids(held), ids(other)) {
		t.Errorf("held-out examples %v (same seed %v, other seed %v) do not follow the seed", ids(held), ids(again), ids(other))
	}
}

func TestModelName(t *testing.T) {
	scat := &model.FeatureSpec{Type: model.FeaturesScattering, J: 2, L: 8, Shape: []int{28, 28}}
	scatDefaultL := &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, Shape: []int{28, 28}}
	for _, c := range []struct {
		spec model.Spec
		want string
	}{
		{model.Spec{Type: model.TypeMLP, Input: 784, Output: 10, Features: scat}, "linear on scattering(J=2, L=8)"},
		{model.Spec{Type: model.TypeMLP, Input: 784, Output: 10, Features: scatDefaultL}, "linear on scattering(J=1, L=8)"},
		{model.Spec{Type: model.TypeMLP, Input: 784, Output: 10}, "linear"},
		{model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10, Activation: model.ActTanh}, "MLP 784-256-128-10 (tanh)"},
		{model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{64}, Output: 10, Features: scat}, "MLP 3969-64-10 (relu) on scattering(J=2, L=8)"},
		{model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{16}, Output: 3, Embeddings: []model.EmbeddingSpec{{Name: "shop", Column: 0, Categories: 12, Dim: 4}}},
			"MLP 5-16-3 (relu) with embeddings shop 12×4"},
		{model.Spec{Type: model.TypeLSTM}, "LSTM"},
	} {
		if got := modelName(c.spec); got != c.want {
			t.Errorf("modelName(%+v) = %q, want %q", c.spec, got, c.want)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 60000: "60,000", 1234567: "1,234,567", -5000: "-5,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
