package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditJSON runs confide audit on tiny MNIST-shaped data (blank but for one 7×7 patch
// an image, so most first-layer weights are quiet): without DP the white-box canaries are
// found, and with DP at ε = 2 the bound stays within [0, 2]; the JSON object holds the
// keys the issue names, and --png writes the plot.
func TestAuditJSON(t *testing.T) {
	dir := writeTinyMNIST(t, 400, 40)
	base := []string{"audit", "--dataset", "mnist", "--data-dir", dir, "--hidden", "16", "--canaries", "300", "--seed", "2"}
	for _, tc := range []struct {
		name   string
		args   []string
		lo, hi float64
	}{
		{"no-dp", []string{"--no-dp", "--epochs", "2", "--batch", "20"}, 2, 100},
		{"dp-eps-2", []string{"--dp", "--target-epsilon", "2", "--delta", "1e-5", "--epochs", "5", "--batch", "40", "--dp-seeded-noise"}, 0, 2},
		{"dp-black-box", []string{"--target-epsilon", "2", "--epochs", "2", "--batch", "20", "--dp-seeded-noise", "--mode", "black-box", "--canaries", "100"}, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			png := filepath.Join(t.TempDir(), "audit.png")
			res := runJSON(t, append(append(base, tc.args...), "--png", png)...)
			for _, k := range []string{"epsilon_lower", "epsilon_claimed", "confidence", "canaries", "guesses", "correct", "mode", "seconds", "curve"} {
				if _, ok := res[k]; !ok {
					t.Errorf("JSON lacks %q: %v", k, res)
				}
			}
			eps, _ := res["epsilon_lower"].(float64)
			if eps < tc.lo || eps > tc.hi {
				t.Errorf("epsilon_lower %v, want in [%v, %v]", eps, tc.lo, tc.hi)
			}
			claimed, dp := res["epsilon_claimed"].(float64)
			if dp != (tc.name != "no-dp") || (dp && (claimed < 1.9 || claimed > 2.01)) {
				t.Errorf("epsilon_claimed %v: want null without DP, 2 with --target-epsilon 2", res["epsilon_claimed"])
			}
			if res["confidence"] != 0.95 || res["guesses"].(float64) < 1 || res["correct"].(float64) > res["guesses"].(float64) {
				t.Errorf("confidence %v, %v of %v guesses right", res["confidence"], res["correct"], res["guesses"])
			}
			if st, err := os.Stat(png); err != nil || st.Size() == 0 {
				t.Errorf("--png: %v", err)
			}
		})
	}
}

func TestAuditFederatedJSON(t *testing.T) {
	dir := writeTinyMNIST(t, 400, 40)
	cfg := filepath.Join(t.TempDir(), "fed.yaml")
	yaml := fmt.Sprintf(`name: audit-test
seed: 1
rounds: 4
clients: 10
clients_per_round: 5
dataset: {name: mnist, dir: %s}
model: {type: mlp, hidden: [8]}
training: {epochs: 1, batch_size: 10, lr: 0.1}
dp:
  delta: 1.0e-5
  user_level: {mode: central, noise_multiplier: 1.0, clip: 1.0}
`, dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runJSON(t, "audit", "--federated", cfg, "--canaries", "50")
	if res["setting"] != "federated" || res["canaries"] != 50.0 || res["updates_seen"] != 4.0 || res["accountant"] != "rdp" || res["model_name"] != "MLP 784-8-10 (relu)" {
		t.Fatalf("setting %v, canaries %v, rounds seen %v, accountant %v, model %v: want federated, 50, 4, rdp, MLP 784-8-10 (relu)",
			res["setting"], res["canaries"], res["updates_seen"], res["accountant"], res["model_name"])
	}
	claimed, _ := res["epsilon_claimed"].(float64)
	if eps := res["epsilon_lower"].(float64); !(claimed > 0) || eps < 0 || eps > claimed {
		t.Errorf("epsilon_lower %v, claimed %v", eps, claimed)
	}
}

// TestAuditUsageErrors: bad flag values exit 2 with a message naming the flag.
func TestAuditUsageErrors(t *testing.T) {
	noUserLevel := filepath.Join(t.TempDir(), "plain.yaml")
	if err := os.WriteFile(noUserLevel, []byte("name: plain\nrounds: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mode", []string{"--no-dp", "--mode", "grey-box"}, "--mode"},
		{"canaries", []string{"--no-dp", "--canaries", "0"}, "--canaries"},
		{"confidence", []string{"--no-dp", "--confidence", "1"}, "--confidence"},
		{"dp-and-no-dp", []string{"--dp", "--no-dp"}, "--no-dp"},
		{"no-dp-with-target", []string{"--no-dp", "--target-epsilon", "2"}, "--target-epsilon"},
		{"no-claim", nil, "--target-epsilon"},
		{"accountant", []string{"--target-epsilon", "2", "--accountant", "moments"}, "--accountant"},
		{"delta", []string{"--target-epsilon", "2", "--delta", "0"}, "--delta"},
		{"black-box-next-char", []string{"--no-dp", "--dataset", "shakespeare", "--mode", "black-box"}, "--mode black-box"},
		{"per-layer-white-box", []string{"--target-epsilon", "2", "--dp-clipping", "per-layer"}, "--dp-clipping"},
		{"federated-with-dataset", []string{"--federated", noUserLevel, "--dataset", "mnist"}, "--dataset"},
		{"federated-black-box", []string{"--federated", noUserLevel, "--mode", "black-box"}, "--mode"},
		{"federated-no-user-level", []string{"--federated", noUserLevel}, "dp.user_level"},
		{"federated-missing", []string{"--federated", "no-such.yaml"}, "--federated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"audit"}, tc.args...)...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("err = %v, want a usage error (exit code 2)", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}
