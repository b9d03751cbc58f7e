package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMemory200Rounds is the long-run memory check of issue 13: the federation of
// examples/server.yaml (MNIST MLP 784-128-10, DP-SGD, authenticated secure aggregation
// with K = 4, t = 3, FedAvg, central evaluation on the MNIST test set) through one
// `confide server --state-dir` process and 6 `confide client` processes over mutual TLS
// with certificates from `confide ca`, as scripts/e2e.sh starts them, but for 200 rounds
// (CONFIDE_LOAD_MEMORY_ROUNDS). So that 200 rounds take minutes rather than hours, every
// fit task runs dp.steps = 10 DP-SGD steps (CONFIDE_LOAD_MEMORY_STEPS; the example's
// 2 epochs are 157), and each client's budget is ε = 1000 (--epsilon) so that none
// refuses a round: the server's work per round (key material, encrypted sum, threshold
// decryption, evaluation, store) is the same. It samples the server's VmRSS every second,
// maps the samples to rounds through the server log's `msg="round finished" round=N`, and
// checks that the RSS stays flat after the first rounds: from round 50 to the last it may
// grow by at most 16 MiB. It needs MNIST (see data.MNISTDir) and runs only with
// CONFIDE_LOAD=1 (scripts/load.sh memory).
func TestMemory200Rounds(t *testing.T) {
	loadEnabled(t)
	rounds := envInt(t, "CONFIDE_LOAD_MEMORY_ROUNDS", 200)
	steps := envInt(t, "CONFIDE_LOAD_MEMORY_STEPS", 10)
	port := envInt(t, "CONFIDE_LOAD_PORT", 17370) + 1
	if rounds < 50 {
		t.Fatalf("CONFIDE_LOAD_MEMORY_ROUNDS=%d: want ≥ 50", rounds)
	}
	bin := buildConfide(t)
	pki := issueCertificates(t, bin)
	base, err := os.ReadFile(filepath.Join(loadRepo, "examples", "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(base)
	for _, r := range []struct{ re, repl string }{
		{`(?m)^listen: .*$`, fmt.Sprintf("listen: 127.0.0.1:%d", port)},
		{`(?m)^metrics_listen: .*$`, `metrics_listen: ""`},
		{`(?m)^  rounds: 3$`, fmt.Sprintf("  rounds: %d", rounds)},
		{`(?m)^(    sample_rate: .*)$`, fmt.Sprintf("$1\n    steps: %d", steps)},
	} {
		next := regexp.MustCompile(r.re).ReplaceAllString(cfg, r.repl)
		if next == cfg {
			t.Fatalf("examples/server.yaml has no line matching %s", r.re)
		}
		cfg = next
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Hour)
	defer cancel()
	var serverLog syncBuffer
	srv := exec.CommandContext(ctx, bin, append([]string{"server", "--config", cfgPath, "--state-dir", filepath.Join(dir, "server-state"), "--log-level", "info"}, pki.serverFlags()...)...)
	srv.Stderr = &serverLog
	load0 := loadAverage()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, ctx, &serverLog, `msg="server listening"`)
	sampler := startProcSampler(srv.Process.Pid, time.Second)
	clients := make([]*exec.Cmd, 6)
	logs := make([]syncBuffer, 6)
	for i := range clients {
		c := exec.CommandContext(ctx, bin, append([]string{"client", "--config", filepath.Join(loadRepo, "examples", "client.yaml"),
			"--server", fmt.Sprintf("127.0.0.1:%d", port), "--client-index", fmt.Sprint(i), "--state-dir", filepath.Join(dir, fmt.Sprintf("state-%d", i)),
			"--epsilon", "1000"}, pki.clientFlags(pki.dir, fmt.Sprintf("client-%d", i))...)...)
		c.Stdout, c.Stderr = &logs[i], &logs[i]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	waitErr := srv.Wait()
	samples := sampler.stop()
	load1 := loadAverage()
	if waitErr != nil {
		t.Fatalf("server: %v\n%s", waitErr, tail(serverLog.String(), 3000))
	}
	for i, c := range clients {
		if err := c.Wait(); err != nil {
			t.Errorf("client %d: %v\n%s", i, err, tail(logs[i].String(), 2000))
		}
	}
	times := roundTimes(serverLog.String())
	finished := 0
	for _, r := range times {
		if r.outcome == "finished" {
			finished++
		}
	}
	if finished != rounds {
		t.Errorf("%d of %d rounds finished", finished, rounds)
	}
	if len(times) == 0 {
		t.Fatal("no rounds in the server log")
	}
	t.Logf("%d rounds (dp.steps %d) in %.0f s; load average before %s, after %s; server CPU %.1f s, peak RSS (VmHWM) %.1f MiB",
		rounds, steps, times[len(times)-1].end.Sub(times[0].start).Seconds(), load0, load1, samples.last().cpu.Seconds(), kib(samples.peak().hwmKiB))
	// RSS when each reported round finished (the last sample taken by then).
	rss := func(round int) float64 {
		for _, r := range times {
			if r.round == round {
				return kib(samples.at(r.end).rssKiB)
			}
		}
		return 0
	}
	marks := []int{1, 10}
	for n := 50; n <= rounds; n += 50 {
		marks = append(marks, n)
	}
	if rounds%50 != 0 {
		marks = append(marks, rounds)
	}
	var report []string
	for _, n := range marks {
		report = append(report, fmt.Sprintf("round %d: %.1f MiB", n, rss(n)))
	}
	t.Logf("server VmRSS at the end of %s", strings.Join(report, ", "))
	// Least-squares slope of the RSS over the rounds from 50 on.
	var sx, sy, sxx, sxy, n float64
	for _, r := range times {
		if r.round < 50 {
			continue
		}
		x, y := float64(r.round), rss(r.round)
		sx, sy, sxx, sxy, n = sx+x, sy+y, sxx+x*x, sxy+x*y, n+1
	}
	if n > 1 {
		slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
		t.Logf("from round 50 to %d: %+.1f MiB, least-squares slope %+.3f MiB a round", rounds, rss(rounds)-rss(50), slope)
	}
	if grow := rss(rounds) - rss(50); grow > 16 {
		t.Errorf("server RSS grew by %.1f MiB from round 50 to round %d (want ≤ 16 MiB: flat)", grow, rounds)
	}
}
