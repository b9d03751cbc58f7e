package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// virtualFleetSpec is examples/tabular's price-band schema, whose path reads the four
// regions' tables (4,000 rows) for training and the public evaluation table for testing: a
// dataset every client of a fleet (and the server's central evaluation) loads by name.
func virtualFleetSpec(t *testing.T) string {
	t.Helper()
	spec, err := filepath.Abs(filepath.Join("..", "..", "examples", "tabular", "housing-band.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestVirtualFleetCompletesRounds is issue 17 item 4's loopback test: one 'confide server'
// and one 'confide client --virtual 20' (each client its own certificate from
// --identity-dir, state directory, ledger and shard) complete two rounds of DP-SGD under
// authenticated secure aggregation (K = 4, t = 3), 10 clients sampled a round.
func TestVirtualFleetCompletesRounds(t *testing.T) {
	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("client-", i)
	}
	pki := caDir(t, names...)
	spec := virtualFleetSpec(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf(`listen: %s
metrics_listen: ""
evaluation:
  dataset: %s
federation:
  rounds: 2
  model: {type: mlp, input: 17, hidden: [16], output: 3}
  sampling: {fraction_fit: 0.5, min_fit: 10, min_available: %d}
  deadlines: {fit: 2m, key_setup: 2m, decrypt: 2m, client_timeout: 30s}
  strategy: {name: fedavg}
  training: {epochs: 1, batch_size: 16, optimizer: sgd, lr: 0.2, weight_scale: 50}
  dp: {noise_multiplier: 1.0, sample_rate: 0.2, max_grad_norm: 1.0, delta: 1.0e-5, update_clip_norm: 5}
  secure_aggregation: {enabled: true, committee_size: 4, threshold: 3}
`, addr, spec, n)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) (*bytes.Buffer, <-chan error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(append(args, "-o", "json"))
		done := make(chan error, 1)
		go func() { done <- root.ExecuteContext(ctx) }()
		return &out, done
	}
	state := filepath.Join(dir, "fleet")
	// federate runs a server with config cfg and state serverState, and the fleet.
	federate := func(cfg, addr, serverState string) (serverOut, fleetOut *bytes.Buffer) {
		t.Helper()
		serverOut, serverDone := run("server", "--config", cfg, "--state-dir", serverState,
			"--tls-cert", filepath.Join(pki, "server.crt"), "--tls-key", filepath.Join(pki, "server.key"), "--client-ca", filepath.Join(pki, "ca.crt"))
		fleetOut, fleetDone := run("client", "--virtual", fmt.Sprint(n), "--num-clients", fmt.Sprint(n), "--dataset", spec, "--server", addr,
			"--ca", filepath.Join(pki, "ca.crt"), "--identity-dir", pki, "--state-dir", state, "--epsilon", "8", "--delta", "1e-5")
		if err := <-serverDone; err != nil {
			t.Fatalf("server: %v", err)
		}
		if err := <-fleetDone; err != nil {
			t.Fatalf("client --virtual %d: %v", n, err)
		}
		return serverOut, fleetOut
	}
	serverOut, fleetOut := federate(cfg, addr, filepath.Join(dir, "server"))
	var srv serverResult
	if err := json.Unmarshal(serverOut.Bytes(), &srv); err != nil {
		t.Fatalf("server output: %v\n%s", err, serverOut)
	}
	if len(srv.History) != 2 || !srv.SecAgg || !srv.DPSGD {
		t.Fatalf("server: %d rounds, secure aggregation %v, DP-SGD %v; want 2 rounds with both", len(srv.History), srv.SecAgg, srv.DPSGD)
	}
	for i, r := range srv.History {
		if r.Failed || r.Contributors != 10 {
			t.Fatalf("round %d: failed %v (%s), %d contributors; want 10", r.Round, r.Failed, r.Reason, r.Contributors)
		}
		if r.ElapsedSeconds <= 0 || (i > 0 && r.ElapsedSeconds < srv.History[i-1].ElapsedSeconds) {
			t.Fatalf("round %d ended %v s after the server's start (previous rounds: %+v); want a positive, growing time", r.Round, r.ElapsedSeconds, srv.History[:i])
		}
	}
	var fleet virtualResult
	if err := json.Unmarshal(fleetOut.Bytes(), &fleet); err != nil {
		t.Fatalf("fleet output: %v\n%s", err, fleetOut)
	}
	if fleet.Virtual != n || len(fleet.Clients) != n || fleet.Failed != 0 || fleet.TasksRefused+fleet.TasksFailed+fleet.ResultsRefused != 0 {
		t.Fatalf("fleet: %+v; want %d clients, none failed, nothing refused", fleet, n)
	}
	// 20 fits (10 a round) and the committee's key-setup and decryption tasks.
	if fleet.TasksDone < 20 || fleet.EpsilonMax == nil || !(*fleet.EpsilonMax > 0) || *fleet.EpsilonMax > 8 {
		t.Fatalf("fleet: %d tasks done, largest ε %v; want ≥ 20 tasks and 0 < ε ≤ 8", fleet.TasksDone, fleet.EpsilonMax)
	}
	trained := 0
	total := 0
	for i, c := range fleet.Clients {
		if c.Name != names[i] {
			t.Fatalf("virtual client %d is named %q, want %q", i, c.Name, names[i])
		}
		total += c.Examples
		if want := filepath.Join(state, c.Name, "privacy-ledger.json"); c.Ledger != want {
			t.Fatalf("%s: ledger %q, want its own %q", c.Name, c.Ledger, want)
		}
		if _, err := os.Stat(c.Ledger); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if c.Epsilon != nil && *c.Epsilon > 0 {
			trained++
		}
	}
	// Each client trained on its own shard: the shards partition the 4,000 training rows
	// (less the schema's held-out fraction, if any), and the ε spent is each client's own
	// (10 sampled a round, so 10 to 20 clients spent some).
	if total != fleet.Clients[0].Examples*n || total < 3000 || total > 4000 || trained < 10 {
		t.Fatalf("shards hold %d examples (want 200 each of the 4,000 rows), %d clients spent ε (want ≥ 10)", total, trained)
	}

	// The fleet restarted for another federation (one round, 10 clients sampled) opens
	// every client's own ledger again: each is charged on top of what it spent.
	addr2 := freeAddr(t)
	cfg2 := filepath.Join(dir, "server2.yaml")
	yaml2 := strings.Replace(strings.Replace(yaml, "listen: "+addr, "listen: "+addr2, 1), "rounds: 2", "rounds: 1", 1)
	if err := os.WriteFile(cfg2, []byte(yaml2), 0o600); err != nil {
		t.Fatal(err)
	}
	_, fleetOut2 := federate(cfg2, addr2, filepath.Join(dir, "server2"))
	var again virtualResult
	if err := json.Unmarshal(fleetOut2.Bytes(), &again); err != nil {
		t.Fatalf("fleet output: %v\n%s", err, fleetOut2)
	}
	charged := 0
	for i, c := range again.Clients {
		before, after := fleet.Clients[i].Epsilon, c.Epsilon
		if before == nil || after == nil || *after < *before {
			t.Fatalf("%s: ε %v after the restart, %v before: the ledger was not kept", c.Name, after, before)
		}
		if *after > *before {
			charged++
		}
	}
	if charged < 10 {
		t.Fatalf("%d clients were charged in the second federation, want the 10 sampled", charged)
	}
}

func TestVirtualFleetRefusesBadFlags(t *testing.T) {
	pki := caDir(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero", []string{"--virtual", "0", "--insecure"}, "--virtual 0"},
		{"beyond num-clients", []string{"--virtual", "5", "--client-index", "8", "--num-clients", "10", "--insecure"}, "must lie in 0…--num-clients−1"},
		{"own data", []string{"--virtual", "2", "--num-clients", "2", "--data", "x.csv", "--insecure"}, "--data with --virtual"},
		{"one certificate", []string{"--virtual", "2", "--num-clients", "2", "--tls-cert", "a.crt", "--tls-key", "a.key", "--ca", "ca.crt"}, "--identity-dir"},
		{"no identities", []string{"--virtual", "2", "--num-clients", "2"}, "set --ca"},
		{"name without index", []string{"--virtual", "2", "--num-clients", "2", "--insecure", "--name", "alice"}, "one %d"},
		{"missing certificate", []string{"--virtual", "2", "--num-clients", "2", "--dataset", virtualFleetSpec(t), "--ca", filepath.Join(pki, "ca.crt"), "--identity-dir", pki}, "issue them with 'confide ca issue --name client-0'"},
		{"identity-dir alone", []string{"--identity-dir", pki, "--insecure"}, "--identity-dir is for a fleet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"client", "--epsilon", "8", "--delta", "1e-5", "--state-dir", t.TempDir()}, tc.args...)
			_, err := runConfide(t, args...)
			wantUsageError(t, err, tc.want)
		})
	}
	if !strings.Contains(virtualName("site3-%04d", 7), "site3-0007") {
		t.Fatalf("virtualName(site3-%%04d, 7) = %q", virtualName("site3-%04d", 7))
	}
}
