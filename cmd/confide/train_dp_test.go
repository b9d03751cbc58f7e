package main

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/model"
)

// trainFlags registers train's flags on a fresh command and parses args.
func trainFlags(t *testing.T, args ...string) (*modelFlags, *optimFlags, *dpFlags, *featureFlags) {
	t.Helper()
	cmd := &cobra.Command{Use: "train"}
	var (
		mf modelFlags
		of optimFlags
		pf dpFlags
		ff featureFlags
	)
	mf.register(cmd)
	of.register(cmd, 2, 32, 0.05, 0.9, "cosine")
	pf.register(cmd)
	ff.register(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return &mf, &of, &pf, &ff
}

func TestFeaturesFlag(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		dataset string
		dp      bool
		want    bool
		wantErr bool
	}{
		{"auto_dp_mnist", nil, "mnist", true, true, false},
		{"auto_dp_fashion", nil, "fashion-mnist", true, true, false},
		{"auto_without_dp", nil, "mnist", false, false, false},
		{"auto_dp_text", []string{"--model", "lstm"}, "shakespeare", true, false, false},
		{"auto_dp_spec_file", []string{"--model-spec", "m.yaml"}, "mnist", true, false, false},
		{"none", []string{"--features", "none"}, "mnist", true, false, false},
		{"scattering_without_dp", []string{"--features", "scattering"}, "mnist", false, true, false},
		{"scattering_on_text", []string{"--features", "scattering"}, "spam", false, false, true},
		{"scattering_on_lstm", []string{"--features", "scattering", "--model", "lstm"}, "mnist", false, false, true},
		{"unknown", []string{"--features", "pca"}, "mnist", true, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mf, _, _, ff := trainFlags(t, c.args...)
			got, err := ff.scattering(c.dataset, c.dp, mf)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("scattering = %v, %v; want %v (error %v)", got, err, c.want, c.wantErr)
			}
		})
	}
}

// TestDPRecipeDefaults: the recipe fills only the flags the user left unset; the scattering
// recipe makes the MLP linear unless --hidden is given.
func TestDPRecipeDefaults(t *testing.T) {
	mf, of, pf, _ := trainFlags(t, "--lr", "2", "--max-grad-norm", "0.5")
	applyDPDefaults(of, mf, pf, dpScatteringRecipe(2))
	if of.lr != 2 || pf.maxGradNorm != 0.5 {
		t.Errorf("set flags overridden: lr %v, C %v", of.lr, pf.maxGradNorm)
	}
	r := dpScatteringRecipe(2)
	if of.epochs != r.epochs || of.batch != r.batch || of.momentum != r.momentum || of.schedule != r.schedule {
		t.Errorf("unset flags not from the recipe: %+v", of)
	}
	if len(mf.hidden) != 0 {
		t.Errorf("scattering recipe keeps hidden layers %v", mf.hidden)
	}

	mf, of, pf, _ = trainFlags(t, "--hidden", "32")
	applyDPDefaults(of, mf, pf, dpScatteringRecipe(2))
	if len(mf.hidden) != 1 || mf.hidden[0] != 32 {
		t.Errorf("--hidden 32 became %v", mf.hidden)
	}

	mf, of, pf, _ = trainFlags(t)
	applyDPDefaults(of, mf, pf, dpRecipe)
	if mf.activation != model.ActTanh || len(mf.hidden) != 2 || pf.maxGradNorm != dpRecipe.clip || of.batch != dpRecipe.batch {
		t.Errorf("plain recipe: activation %s hidden %v C %v batch %d", mf.activation, mf.hidden, pf.maxGradNorm, of.batch)
	}
}

func TestDPClippingFlag(t *testing.T) {
	_, of, pf, _ := trainFlags(t, "--dp", "--noise-multiplier", "1", "--dp-clipping", "per-layer")
	cfg := of.config()
	d, err := pf.resolve(cfg, 1000)
	if err != nil || d.Clipping != "per-layer" {
		t.Fatalf("resolve: %+v, %v", d, err)
	}
	_, of, pf, _ = trainFlags(t, "--dp", "--noise-multiplier", "1", "--dp-clipping", "layer")
	if _, err := pf.resolve(of.config(), 1000); err == nil {
		t.Error("--dp-clipping layer accepted")
	}
}

func TestDPScatteringRecipeByEpsilon(t *testing.T) {
	for _, c := range []struct {
		eps    float64
		epochs int
	}{{0, 40}, {0.5, 20}, {0.99, 20}, {1, 40}, {2, 40}, {3.99, 40}, {4, 60}, {8, 60}, {100, 60}} {
		if got := dpScatteringRecipe(c.eps).epochs; got != c.epochs {
			t.Errorf("ε = %v: %d epochs, want %d", c.eps, got, c.epochs)
		}
	}
}
