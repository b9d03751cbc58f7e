package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// Usage errors of confide aggregator exit with 2 and name the flag to fix.
func TestAggregatorUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no_upstream", []string{"--insecure"}, "--upstream is not set"},
		{"insecure_with_tls", []string{"--upstream", "127.0.0.1:1", "--insecure", "--ca", "ca.crt"}, "choose TLS or plaintext"},
		{"no_upstream_key", []string{"--upstream", "127.0.0.1:1", "--ca", "ca.crt", "--tls-cert", "a.crt", "--tls-key", "a.key", "--upstream-cert", "b.crt"}, "--upstream-key is not set"},
		{"missing_files", []string{"--upstream", "127.0.0.1:1", "--ca", "ca.crt", "--tls-cert", "a.crt", "--tls-key", "a.key", "--upstream-cert", "b.crt", "--upstream-key", "b.key"}, "check --tls-cert, --tls-key and --ca"},
		{"client_timeout", []string{"--upstream", "127.0.0.1:1", "--insecure", "--client-timeout", "0s"}, "--client-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := confideProcess(t, t.TempDir(), append([]string{"aggregator"}, tc.args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if code := exitStatus(t, cmd.Run()); code != 2 || !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.msg)
			}
		})
	}
}

// A server's aggregators list needs valid names and TLS.
func TestServerAggregatorsChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		sf   serverFile
		msg  string
	}{
		{"bad_name", serverFile{Insecure: true, Aggregators: []string{"agg 0"}}, "aggregators: aggregator 0"},
		{"twice", serverFile{Insecure: true, Aggregators: []string{"agg-0", "agg-0"}}, `"agg-0" is listed twice`},
		{"insecure", serverFile{Insecure: true, Aggregators: []string{"agg-0"}}, "needs TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runServer(t.Context(), &globalOptions{}, io.Discard, tc.sf)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("runServer: %v; want a usage error with %q", err, tc.msg)
			}
		})
	}
}

// relayTestTrainer adds Shift to every parameter.
type relayTestTrainer struct{ Shift float64 }

func (f relayTestTrainer) Fit(_ context.Context, global []float64, _ client.FitConfig) (client.FitResult, error) {
	p := slices.Clone(global)
	for i := range p {
		p[i] += f.Shift
	}
	return client.FitResult{Params: p, NumExamples: 10, Metrics: map[string]float64{"loss": 1}}, nil
}

func (f relayTestTrainer) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{NumExamples: 10, Loss: 0.5}, nil
}

// The confide aggregator process relays a federation: two clients that dial only the
// aggregator complete two rounds on a server in this process (plaintext, loopback), and
// the aggregator exits 130 (interrupted) on an interrupt.
func TestAggregatorCommandRelaysAFederation(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const rounds, n = 2, 2
	coord, err := server.New(server.Config{
		Rounds: rounds, Model: model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{3}, Output: 2},
		Sampling:  server.SamplingConfig{FractionFit: 1, MinFit: n, MinAvailable: n},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, ClientTimeout: 30 * time.Second},
		Training:  server.TrainingConfig{Epochs: 1, BatchSize: 8},
	}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	svc, upstream, stopped := serveLoopback(t, ctx, coord)
	initial := coord.Global()

	agg := confideProcess(t, t.TempDir(), "aggregator", "--insecure", "--upstream", upstream, "--listen", "127.0.0.1:0")
	stderr, err := agg.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Start(); err != nil {
		t.Fatal(err)
	}
	defer agg.Process.Kill()
	listening := regexp.MustCompile(`confide aggregator listening on (\S+),`)
	sc := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("the aggregator did not say where it listens: %v", sc.Err())
	}
	go io.Copy(io.Discard, stderr)

	var cfgs []client.Config
	var trainers []client.Trainer
	for i := range n {
		cfgs = append(cfgs, client.Config{Server: addr, Name: []string{"relayed-a", "relayed-b"}[i], Insecure: true, PollWait: 2 * time.Second, Logger: quiet})
		trainers = append(trainers, relayTestTrainer{Shift: 1e-3 * float64(i+1)})
	}
	runClients(t, ctx, svc, cfgs, trainers)
	cancel()
	stopped()
	// Each round averages shifts of 1e-3 and 2e-3 (equal weights).
	want := 1.5e-3 * rounds
	for j, p := range coord.Global() {
		if d := p - initial[j]; math.Abs(d-want) > 1e-9 {
			t.Fatalf("parameter %d moved by %g, want %g", j, d, want)
		}
	}
	if err := agg.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, agg.Wait()); code != 130 {
		t.Fatalf("the aggregator exited with %d on an interrupt, want 130 (interrupted)", code)
	}
}
