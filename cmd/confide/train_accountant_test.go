package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// TestTrainAccountantPicksLessNoise: --target-epsilon by the PRV accountant needs less
// noise than by RDP for the same run, and --accountant without --dp is refused.
func TestTrainAccountantPicksLessNoise(t *testing.T) {
	sigma := func(args ...string) float64 {
		t.Helper()
		cmd := &cobra.Command{Use: "train"}
		var pf dpFlags
		pf.register(cmd)
		pf.registerAccountant(cmd)
		if err := cmd.ParseFlags(append([]string{"--dp", "--target-epsilon", "2", "--delta", "1e-5"}, args...)); err != nil {
			t.Fatal(err)
		}
		cfg := train.Config{Epochs: 10, BatchSize: 256, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1}}
		d, err := pf.resolve(cfg, 60000)
		if err != nil {
			t.Fatal(err)
		}
		return d.NoiseMultiplier
	}
	rdp, prv := sigma(), sigma("--accountant", "prv")
	if !(prv < rdp) || prv <= 0 {
		t.Errorf("σ for ε = 2: PRV %v, RDP %v: want PRV smaller", prv, rdp)
	}
	if _, err := runConfide(t, "train", "--accountant", "prv"); err == nil || !strings.Contains(err.Error(), "--dp") {
		t.Errorf("--accountant without --dp: %v", err)
	}
	if _, err := runConfide(t, "train", "--dp", "--target-epsilon", "2", "--accountant", "moments"); err == nil || !strings.Contains(err.Error(), "--accountant") {
		t.Errorf("--accountant moments: %v", err)
	}
}
