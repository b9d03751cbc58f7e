package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confide-fl/confide/model"
)

// interrupted runs confide with args in dir, sends SIGINT once its stderr holds ready, and
// returns its stdout and exit code once it stopped.
func interrupted(t *testing.T, dir, ready string, args ...string) ([]byte, int) {
	t.Helper()
	var stdout bytes.Buffer
	var stderr lockedBuffer
	cmd := confideProcess(t, dir, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	deadline := time.After(60 * time.Second)
wait:
	for !strings.Contains(stderr.String(), ready) {
		select {
		case err := <-done:
			t.Fatalf("confide stopped before %q (%v); stderr:\n%s", ready, err, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("no %q within 60 s; stderr:\n%s", ready, stderr.String())
		case <-poll.C:
			continue wait
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return stdout.Bytes(), exitStatus(t, err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit within 60 s of SIGINT; stderr:\n%s", stderr.String())
	}
	return nil, 0
}

// SIGINT during confide sim abandons the round in flight, writes the results of the rounds
// completed (summary.json with interrupted: true, rounds.csv, rounds.json, plots, the
// model), prints the summary as the one JSON object of -o json and exits 130.
func TestSimInterruptKeepsResults(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfg, []byte(`name: interrupt
seed: 1
rounds: 1000000
clients: 6
clients_per_round: 3
dataset: {name: synthetic, synthetic: {alpha: 1, beta: 1}}
partition: natural
model: {type: mlp}
training: {epochs: 1, batch_size: 10, optimizer: sgd, lr: 0.01}
evaluation: {every: 1}
results_dir: results
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, code := interrupted(t, dir, "round=3 ", "sim", "--config", cfg, "-o", "json", "--log-level", "info")
	if code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130", code)
	}
	var printed map[string]any
	if err := json.Unmarshal(stdout, &printed); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	var written map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "results", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &written); err != nil {
		t.Fatal(err)
	}
	rounds, _ := printed["rounds"].(float64)
	for name, s := range map[string]map[string]any{"printed": printed, "summary.json": written} {
		if s["interrupted"] != true || s["rounds"] != rounds || s["rounds_planned"] != 1e6 {
			t.Errorf("%s summary: interrupted %v, rounds %v, rounds_planned %v; want true, %v, 1e6", name, s["interrupted"], s["rounds"], s["rounds_planned"], rounds)
		}
	}
	if rounds < 3 || rounds >= 1e6 {
		t.Fatalf("rounds completed %v, want ≥ 3 (seen before the interrupt) and fewer than planned", rounds)
	}
	f, err := os.Open(filepath.Join(dir, "results", "rounds.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != int(rounds)+1 {
		t.Errorf("rounds.csv has %d rows, want a header and %v rounds", len(rows), rounds)
	}
	for _, name := range []string{"rounds.json", "config.yaml", "accuracy.png", "loss.png", "bytes.png"} {
		if _, err := os.Stat(filepath.Join(dir, "results", name)); err != nil {
			t.Errorf("results: %v", err)
		}
	}
	m, err := model.Load(filepath.Join(dir, "results", "model.confide"))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Meta.Provenance; p == nil || p.Rounds != int(rounds) {
		t.Errorf("model.confide's provenance %+v, want the %v rounds completed", p, rounds)
	}
}

// SIGINT during confide train --out keeps the model of the last epoch completed, reports it
// as the one JSON object of -o json with interrupted: true, and exits 130.
func TestTrainInterruptKeepsLastEpoch(t *testing.T) {
	data := writeTinyMNIST(t, 120, 20)
	dir := t.TempDir()
	out := filepath.Join(dir, "model.confide")
	stdout, code := interrupted(t, dir, "epoch=2 ", "train", "--dataset", "mnist", "--data-dir", data, "--hidden", "8",
		"--epochs", "1000000", "--batch", "32", "--out", out, "-o", "json", "--log-level", "info")
	if code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130", code)
	}
	var res map[string]any
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
	}
	done, _ := res["epochs_completed"].(float64)
	if res["interrupted"] != true || done < 2 || done >= 1e6 || res["model_path"] != out {
		t.Fatalf("interrupted %v, epochs_completed %v, model_path %v; want true, 2 ≤ epochs < 1e6, %s", res["interrupted"], done, res["model_path"], out)
	}
	if h, _ := res["history"].([]any); len(h) != int(done) {
		t.Errorf("history has %d epochs, want the %v completed", len(h), done)
	}
	m, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Meta.Provenance; p == nil || p.Epochs != int(done) {
		t.Errorf("the model's provenance %+v, want the %v epochs completed", p, done)
	}
}
