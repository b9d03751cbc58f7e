package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/server"
)

// TestCustomTrainerFederation runs examples/sdk/server.yaml's federation in process (the
// real coordinator and gRPC service over an in-memory connection) with three clients of
// this command, then audits a client's ledger with `confide privacy ledger`: the ε it
// reports is the one the ledger recorded, and the one the server accounted.
func TestCustomTrainerFederation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Federation server.Config `yaml:"federation"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	cfg := file.Federation
	cfg.SecAgg.LogN = 12 // smaller ring: faster, same protocol
	coord, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := server.NewService(coord, server.ServiceConfig{TickInterval: 50 * time.Millisecond, Store: &server.MemoryStore{}, Logger: quiet})
	lis := bufconn.Listen(1 << 20)
	g := svc.NewGRPCServer()
	go g.Serve(lis)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	go svc.Run(ctx)
	defer svc.Shutdown(g, time.Second)
	dial := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	dir := t.TempDir()
	start := time.Now()
	var (
		wg   sync.WaitGroup
		outs = make([]bytes.Buffer, 3)
		errs = make([]error, 3)
	)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := options{server: "passthrough:///bufnet", stateDir: filepath.Join(dir, "sdk", string(rune('0'+i))), clientIndex: i, examples: 500, dim: 8,
				epsilon: 8, delta: 1e-5, lr: 0.5, seed: 1, giveUpAfter: 20 * time.Second}
			errs[i] = run(ctx, &outs[i], o, client.Config{DialOptions: dial, Logger: quiet, PollWait: 200 * time.Millisecond})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Logf("client %d: %s", i, strings.TrimSpace(outs[i].String()))
		if !strings.Contains(outs[i].String(), "ε spent") {
			t.Errorf("client %d printed %q", i, outs[i].String())
		}
	}
	t.Logf("federation done after %v", time.Since(start))
	ledger := filepath.Join(dir, "sdk", "0", client.LedgerName)
	snap, err := dp.ReadLedger(ledger)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.History) == 0 {
		t.Fatal("the ledger holds no charge")
	}
	// The audit of the CLI a privacy officer runs (building confide takes half a minute on
	// a cold cache: -short leaves it out).
	if testing.Short() {
		t.Skip("-short: not building confide to audit the ledger")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run confide privacy ledger")
	}
	cmd := exec.Command(goBin, "run", "./cmd/confide", "privacy", "ledger", ledger, "-o", "json")
	cmd.Dir = filepath.Join("..", "..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("confide privacy ledger: %v", err)
	}
	var audit struct {
		Epsilon float64 `json:"epsilon"`
		Charges int     `json:"charges"`
	}
	if err := json.Unmarshal(out, &audit); err != nil {
		t.Fatalf("confide privacy ledger -o json: %v\n%s", err, out)
	}
	// 5 rounds of σ = 1, q = 0.05, 20 steps: the audit recomputes ε from the history.
	want, err := accountant.Epsilon(snap.History, 1e-5, accountant.Config{Method: snap.Accountant})
	if err != nil {
		t.Fatal(err)
	}
	eps := want.Epsilon
	if snap.Charges != 5 || audit.Charges != 5 || math.Abs(audit.Epsilon-eps) > 1e-9 || !(eps > 0 && eps < 8) {
		t.Errorf("audit: ε %v over %d charges; the ledger's ε %v (want 5 charges, 0 < ε < 8)", audit.Epsilon, audit.Charges, eps)
	}
}
