package dashboard_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/confide-fl/confide/dashboard"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// chromium returns the headless browser the tests drive. Without one the test is skipped,
// except under CI (CI set), whose .ci/run installs Debian's chromium: there its absence is
// a failure, not a silent pass.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH under CI: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// browser starts the browser and returns a tab's context, its console messages, and a
// function that fails the test on any console error or uncaught exception.
func browser(t *testing.T, path string) (context.Context, func()) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900),
		// Nothing leaves the machine: host names resolve nowhere, and a request for another
		// origin (the browser's own background fetches) goes to a closed port on loopback,
		// which the dashboard's loopback address bypasses.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first Run starts the browser, on a context without a deadline (a deadline would
	// stop the browser with it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	return ctx, func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(problems) > 0 {
			t.Errorf("the page logged errors: %q", problems)
		}
	}
}

// screenshot writes a PNG into the test's directory, or into $CONFIDE_SCREENSHOT_DIR when
// set, a relative path being taken from the repository's root (CONFIDE_SCREENSHOT_DIR=docs
// makes the README's picture).
func screenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := os.Getenv("CONFIDE_SCREENSHOT_DIR")
	switch {
	case dir == "":
		dir = t.TempDir()
	case !filepath.IsAbs(dir):
		dir = filepath.Join("..", dir) // tests run in the package's directory
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", p, len(png))
}

// pageState is what the test reads off the page.
type pageState struct {
	Kind, State, Round, Rounds, Online, Registered string
	EpsMax, EpsMean, EpsClients                    string
	Received                                       string `json:"rounds_received"`
	Points                                         map[string]int
	Accuracy, Epsilon, MBDown                      []float64
	ClientRows                                     int
	ClientRounds, ClientSampled                    int
	Committee                                      string
	Checkpoints                                    []string
}

const readPage = `(() => {
  const v = (id) => document.getElementById(id).dataset.value || document.getElementById(id).textContent;
  const points = {};
  for (const fig of document.querySelectorAll('figure.chart')) {
    let n = 0;
    for (const p of fig.querySelectorAll('path.series')) n = Math.max(n, Number(p.dataset.points));
    points[fig.dataset.chart] = n;
  }
  // The plotted values of a chart's first series, by round.
  const values = (chart) => [...document.querySelectorAll('#chart-' + chart + ' circle.s0')].map((c) => Number(c.dataset.value));
  let rounds = 0, sampled = 0;
  const rows = [...document.querySelectorAll('#clients tbody tr')];
  for (const tr of rows) {
    sampled += Number(tr.children[3].textContent);
    rounds += Number(tr.children[4].textContent);
  }
  return {
    Kind: v('kind'), State: v('state'), Round: v('round'), Rounds: v('rounds'),
    Online: v('clients-online'), Registered: v('clients-registered'),
    EpsMax: v('eps-max'), EpsMean: v('eps-mean'), EpsClients: v('eps-clients'),
    rounds_received: document.body.dataset.rounds, Points: points,
    Accuracy: values('accuracy'), Epsilon: values('epsilon'), MBDown: values('bytes'),
    ClientRows: rows.length, ClientRounds: rounds, ClientSampled: sampled,
    Committee: document.getElementById('committee').textContent,
    Checkpoints: [...document.querySelectorAll('#checkpoints a')].map((a) => a.getAttribute('href')),
  };
})()`

// TestBrowserFollowsASimulation serves the dashboard of a small simulation (DP-SGD and
// secure aggregation, 8 clients, 4 a round, 5 rounds) on loopback and drives Chromium
// through it: the page loads with every chart drawn, the charts gain a point per round
// over server-sent events without a reload, the overview, charts and clients table agree
// with the run's report, the final model is offered for download, and the page logs no
// error.
func TestBrowserFollowsASimulation(t *testing.T) {
	path := chromium(t)
	start := time.Now()
	const rounds, hold = 5, 2
	cfg := sim.Config{
		Name: "browser", Seed: 11, Rounds: rounds, Clients: 8, ClientsPerRound: 4, Partition: "natural",
		// FedProx's synthetic data, IID across the 8 devices: generated, not read.
		Dataset:           sim.DatasetConfig{Name: "synthetic", Synthetic: sim.SyntheticConfig{IID: true, Dim: 10, Classes: 3}},
		Model:             model.Spec{Type: model.TypeMLP, Hidden: []int{8}},
		Training:          sim.TrainingConfig{Epochs: 2, BatchSize: 10, LR: 0.3},
		DP:                sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 1, UpdateClipNorm: 5}},
		SecureAggregation: server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12},
		ResultsDir:        t.TempDir(), Plots: new(false),
	}
	live := server.NewLive(server.LiveConfig{Kind: "simulation", Name: cfg.Name, VirtualTime: true})
	h, err := dashboard.New(dashboard.Config{Source: live})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dashboard.Listen("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// The run pauses after round `hold` until the test has looked at the page.
	paused := make(chan struct{})
	release := sync.OnceFunc(func() { close(paused) })
	defer release()
	type result struct {
		rep *sim.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := sim.Run(context.Background(), cfg, sim.Options{
			Live: live,
			OnRound: func(m sim.RoundMetrics) {
				if m.Round == hold {
					<-paused
				}
			},
		})
		live.Notify() // the results directory now holds the model
		done <- result{rep, err}
	}()

	ctx, checkConsole := browser(t, path)
	wait := func(cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			st := read(t, ctx)
			t.Fatalf("waiting for %s: %v; the page shows %+v", cond, err, st)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL())); err != nil {
		t.Fatal(err)
	}
	wait(fmt.Sprintf(`document.body.dataset.rounds === "%d" && document.getElementById('round').dataset.value === "%d"`, hold, hold))
	st := read(t, ctx)
	if st.Kind != "simulation" || st.Rounds != strconv.Itoa(rounds) || st.Online != "8" || st.Registered != "8" {
		t.Errorf("overview while paused: %+v", st)
	}
	for _, chart := range []string{"accuracy", "loss", "epsilon", "bytes", "seconds", "dropouts"} {
		if st.Points[chart] != hold {
			t.Errorf("chart %s has %d points after %d rounds: %+v", chart, st.Points[chart], hold, st.Points)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, "dashboard-live.png", png)

	release()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	rep := res.rep
	// Every round arrives over the same event stream: the page is not reloaded.
	wait(fmt.Sprintf(`document.body.dataset.rounds === "%d" && document.getElementById('state').textContent === "finished" && document.querySelectorAll('#checkpoints a').length > 0`, rounds))
	st = read(t, ctx)
	s := rep.Summary
	if st.Round != strconv.Itoa(s.Rounds) {
		t.Errorf("page shows round %s, the run did %d", st.Round, s.Rounds)
	}
	for chart, n := range st.Points {
		if n != s.Rounds {
			t.Errorf("chart %s has %d points after %d rounds", chart, n, s.Rounds)
		}
	}
	// Each chart's points are the run's per-round figures (rounds.csv).
	if len(st.Accuracy) != len(rep.Rounds) || len(st.Epsilon) != len(rep.Rounds) || len(st.MBDown) != len(rep.Rounds) {
		t.Fatalf("plotted %d accuracies, %d ε, %d traffic values for %d rounds", len(st.Accuracy), len(st.Epsilon), len(st.MBDown), len(rep.Rounds))
	}
	for i, r := range rep.Rounds {
		if r.Accuracy == nil || st.Accuracy[i] != *r.Accuracy || st.Epsilon[i] != r.Epsilon || math.Abs(st.MBDown[i]*1e6-float64(r.BytesDown)) > 1e-6 {
			t.Errorf("round %d plotted: accuracy %v, ε %v, %v MB down; the run: %v, %v, %d bytes", r.Round, st.Accuracy[i], st.Epsilon[i], st.MBDown[i], r.Accuracy, r.Epsilon, r.BytesDown)
		}
	}
	if s.FinalAccuracy == nil || st.Accuracy[len(st.Accuracy)-1] != *s.FinalAccuracy {
		t.Errorf("last accuracy point %v, the run's final accuracy %v", st.Accuracy, s.FinalAccuracy)
	}
	// The server's own accounting from the tasks it issued equals the clients' ledgers
	// (every sampled client trained: no dropouts, no refusals).
	p := s.Privacy
	for _, c := range []struct {
		name       string
		page, want float64
	}{{"worst ε", parse(t, st.EpsMax), p.Epsilon}, {"mean ε", parse(t, st.EpsMean), p.EpsilonMean}} {
		if math.Abs(c.page-c.want) > 1e-9*c.want || c.want == 0 {
			t.Errorf("%s: page %v, report %v", c.name, c.page, c.want)
		}
	}
	if st.EpsClients != strconv.Itoa(p.ClientsAccounted) {
		t.Errorf("ε over %s clients on the page, %d in the report", st.EpsClients, p.ClientsAccounted)
	}
	sampled, contributed := 0, 0
	for _, r := range rep.Rounds {
		sampled += r.Sampled
		contributed += r.Contributors
	}
	if st.ClientRows != s.Clients || st.ClientSampled != sampled || st.ClientRounds != contributed {
		t.Errorf("clients table: %d rows, %d sampled, %d contributions; the run: %d clients, %d sampled, %d contributions",
			st.ClientRows, st.ClientSampled, st.ClientRounds, s.Clients, sampled, contributed)
	}
	if !bytes.Contains([]byte(st.Committee), []byte("threshold t = 2, K = 3")) {
		t.Errorf("committee panel: %q", st.Committee)
	}
	// The download link serves the run's model file.
	if len(st.Checkpoints) != 1 || st.Checkpoints[0] != "checkpoints/model.confide" {
		t.Fatalf("checkpoint links %q, want the run's model.confide", st.Checkpoints)
	}
	resp, err := http.Get(srv.URL() + st.Checkpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, err := os.ReadFile(filepath.Join(cfg.ResultsDir, "model.confide"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("download: %d bytes (status %s), the model file %d bytes (%v)", len(got), resp.Status, len(want), err)
	}

	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, "dashboard-finished.png", png)
	png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#charts")))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, "dashboard-charts.png", png)
	checkConsole()
	t.Logf("%d rounds followed in %.1fs", s.Rounds, time.Since(start).Seconds())
}

func read(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	return st
}

func parse(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("page value %q: %v", s, err)
	}
	return v
}
