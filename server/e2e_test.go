package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMultiProcessMNIST is the acceptance run: it builds confide and starts one server and 6
// client processes on loopback (MNIST MLP, DP-SGD, secure aggregation with K = 4 and t = 3,
// 3 rounds) for FedAvg, FedAdam and FedProx, and checks that the central test accuracy rises
// every round and ends ≥ 0.85. It then checks that Krum with secure aggregation is refused.
// It takes about 2 minutes on 2 cores and needs MNIST (see data.MNISTDir), so it runs only
// with CONFIDE_E2E=1; the in-process TestFederationOverGRPC in package client runs always.
func TestMultiProcessMNIST(t *testing.T) {
	if os.Getenv("CONFIDE_E2E") != "1" {
		t.Skip("set CONFIDE_E2E=1 to run the multi-process MNIST federation (about 2 minutes)")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "confide")
	build := exec.Command("go", "build", "-o", bin, "./cmd/confide")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base, err := os.ReadFile(filepath.Join(root, "examples", "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	strategyLine := regexp.MustCompile(`(?m)^    name: fedavg .*$`)
	for i, tc := range []struct{ name, block string }{
		{"fedavg", "    name: fedavg"},
		{"fedadam", "    name: fedadam\n    server_lr: 0.03"},
		{"fedprox", "    name: fedprox\n    proximal_mu: 0.01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := 17170 + i
			cfg := strategyLine.ReplaceAllString(string(base), tc.block)
			cfg = regexp.MustCompile(`(?m)^listen: .*$`).ReplaceAllString(cfg, fmt.Sprintf("listen: 127.0.0.1:%d", port))
			cfg = regexp.MustCompile(`(?m)^metrics_listen: .*$`).ReplaceAllString(cfg, `metrics_listen: ""`)
			acc := runFederationProcesses(t, root, bin, cfg, port)
			t.Logf("%s: central accuracy by round %v", tc.name, acc)
			for r := 1; r < len(acc); r++ {
				if acc[r] <= acc[r-1] {
					t.Errorf("accuracy did not rise in round %d: %v", r, acc)
				}
			}
			if len(acc) != 4 || acc[3] < 0.85 {
				t.Fatalf("accuracy by round %v: want rounds 0–3 ending ≥ 0.85", acc)
			}
		})
	}
	t.Run("robust-with-secagg-refused", func(t *testing.T) {
		cfg := strategyLine.ReplaceAllString(string(base), "    name: trimmedmean")
		path := filepath.Join(t.TempDir(), "robust.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "server", "--config", path).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "secure aggregation lets the server see only their sum") {
			t.Fatalf("trimmedmean with secure aggregation: err %v, output %s", err, out)
		}
	})
}

type serverOutput struct {
	InitialAccuracy *float64 `json:"initial_accuracy"`
	History         []struct {
		Round      int      `json:"round"`
		Failed     bool     `json:"failed"`
		Reason     string   `json:"reason"`
		CentralAcc *float64 `json:"central_accuracy"`
	} `json:"history"`
}

// runFederationProcesses runs the server and 6 clients and returns the central accuracy of
// rounds 0…3.
func runFederationProcesses(t *testing.T, root, bin, cfg string, port int) []float64 {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	var stdout, serverLog bytes.Buffer
	srv := exec.CommandContext(ctx, bin, "server", "--config", cfgPath, "-o", "json", "--log-level", "info")
	srv.Stdout, srv.Stderr = &stdout, &serverLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	clients := make([]*exec.Cmd, 6)
	logs := make([]bytes.Buffer, 6)
	for i := range clients {
		c := exec.CommandContext(ctx, bin, "client", "--config", filepath.Join(root, "examples", "client.yaml"),
			"--server", fmt.Sprintf("127.0.0.1:%d", port), "--client-index", fmt.Sprint(i),
			"--state-dir", filepath.Join(dir, fmt.Sprintf("state-%d", i)))
		c.Stdout, c.Stderr = &logs[i], &logs[i]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("server: %v\n%s", err, tail(serverLog.String(), 3000))
	}
	for i, c := range clients {
		if err := c.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, tail(logs[i].String(), 2000))
		}
	}
	var out serverOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("server output: %v\n%s", err, stdout.String())
	}
	if out.InitialAccuracy == nil {
		t.Fatal("no initial accuracy")
	}
	acc := []float64{*out.InitialAccuracy}
	for _, r := range out.History {
		if r.Failed || r.CentralAcc == nil {
			t.Fatalf("round %d failed: %s\n%s", r.Round, r.Reason, tail(serverLog.String(), 3000))
		}
		acc = append(acc, *r.CentralAcc)
	}
	return acc
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
