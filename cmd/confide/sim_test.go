package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/confide-fl/confide/sim"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSimConfigWithoutFileIsTheDefaultExperiment(t *testing.T) {
	t.Setenv("CONFIDE_CONFIG", "")
	c, err := loadSimConfig("")
	if err != nil {
		t.Fatal(err)
	}
	d := sim.Default()
	if c.Rounds != d.Rounds || c.Partition != d.Partition || !c.SecureAggregation.Enabled || c.DP.NoiseMultiplier != d.DP.NoiseMultiplier || c.Training.LR != d.Training.LR {
		t.Fatalf("config %+v, want the default experiment %+v", c, d)
	}
}

func TestSimConfigFileOverBareDefaultsThenEnvironment(t *testing.T) {
	p := writeFile(t, "c.yaml", "rounds: 7\nclients: 20\nclients_per_round: 5\ndataset: {name: mnist}\nmodel: {type: mlp, hidden: [32, 16]}\ndeadlines: {fit: 90s}\n")
	t.Setenv("CONFIDE_TRAINING_LR", "0.05")
	c, err := loadSimConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rounds != 7 || c.Clients != 20 || len(c.Model.Hidden) != 2 || c.Deadlines.Fit.Seconds() != 90 {
		t.Fatalf("config %+v does not hold the file's values", c)
	}
	if c.Training.LR != 0.05 {
		t.Fatalf("training.lr = %v, want 0.05 from CONFIDE_TRAINING_LR", c.Training.LR)
	}
	if c.SecureAggregation.Enabled || c.DP.NoiseMultiplier != 0 {
		t.Fatalf("keys left out of a file must take the bare defaults (no DP, no secure aggregation): %+v", c)
	}
}

func TestSimConfigUnknownKeyIsNamed(t *testing.T) {
	p := writeFile(t, "c.yaml", "rounds: 7\ntraining:\n  learning_rate: 0.1\n")
	_, err := loadSimConfig(p)
	if err == nil || !strings.Contains(err.Error(), "training.learning_rate") || !strings.Contains(err.Error(), "training takes batch_size, beta1, beta2, epochs, eps, loss_cap, lr, momentum, nesterov, optimizer, schedule, warmup, weight_decay, weight_scale") {
		t.Fatalf("error %v, want one naming training.learning_rate and listing the keys of training", err)
	}
}

func TestSimCommandOnTheExamples(t *testing.T) {
	for _, f := range []string{"mnist-mlp", "fashion-mnist", "shakespeare-lstm", "spam-transformer", "synthetic", "mcmahan-2nn-iid", "mcmahan-2nn-noniid", "scale-10k", "scale-1m", "mnist-user-level", "mnist-scattering", "fashion-mnist-cnn", "fashion-mnist-scattering", "shakespeare-causal", "shakespeare-lstm-dp", "synthetic-scaffold"} {
		c, err := loadSimConfig(filepath.Join("..", "..", "examples", f+".yaml"))
		if err != nil {
			t.Fatalf("examples/%s.yaml: %v", f, err)
		}
		if err := c.WithDefaults().Validate(); err != nil {
			t.Fatalf("examples/%s.yaml: %v", f, err)
		}
	}
}

// TestDefaultExperimentMatchesItsExample: examples/mnist-mlp.yaml is what `confide sim`
// runs without a config.
func TestDefaultExperimentMatchesItsExample(t *testing.T) {
	t.Setenv("CONFIDE_CONFIG", "")
	def, err := loadSimConfig("")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := loadSimConfig(filepath.Join("..", "..", "examples", "mnist-mlp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(def.WithDefaults(), ex.WithDefaults()) {
		t.Fatalf("default experiment\n%+v\nexamples/mnist-mlp.yaml\n%+v", def.WithDefaults(), ex.WithDefaults())
	}
}

// TestSimConfigFeatureKeys: model.features and its keys are read from a file; a misspelt
// one is named with the keys the section takes.
func TestSimConfigFeatureKeys(t *testing.T) {
	p := writeFile(t, "c.yaml", "dataset: {name: mnist}\nmodel:\n  type: mlp\n  hidden: []\n  features: {type: scattering, j: 2, l: 8, shape: [28, 28], norm: group, groups: 27}\n")
	c, err := loadSimConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Model.Features
	if f == nil || f.Type != "scattering" || f.J != 2 || f.L != 8 || !reflect.DeepEqual(f.Shape, []int{28, 28}) || f.Norm != "group" || f.Groups != 27 || len(c.Model.Hidden) != 0 {
		t.Fatalf("model %+v, features %+v: the file's values were not read", c.Model, f)
	}
	bare, err := loadSimConfig(writeFile(t, "b.yaml", "dataset: {name: mnist}\nmodel: {type: mlp}\n"))
	if err != nil || bare.Model.Features != nil {
		t.Fatalf("a model without features got %+v (error %v)", bare.Model.Features, err)
	}
	p = writeFile(t, "c.yaml", "model:\n  type: mlp\n  features: {type: scattering, j: 2, grups: 27}\n")
	_, err = loadSimConfig(p)
	if err == nil || !strings.Contains(err.Error(), "unknown key model.features.grups") || !strings.Contains(err.Error(), "model.features takes groups, j, l, layout, norm, shape, type") {
		t.Fatalf("error %v, want one naming model.features.grups and the keys of model.features", err)
	}
}
