package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

func sampledOf(t *testing.T, c *server.Coordinator, r server.Ready) []string {
	t.Helper()
	for _, n := range r.Notices {
		if s, ok := n.(server.RoundStarted); ok {
			return s.Clients
		}
	}
	t.Fatalf("no round started (phase %s, %d online)", c.Phase(), c.Online())
	return nil
}

// TestLargeFederationSamplesDistinctOnlineClientsDeterministically: with 50,000 clients the
// first round starts on the last join and samples distinct clients, the same for the same
// seed; after most clients leave, only online ones are sampled.
func TestLargeFederationSamplesDistinctOnlineClientsDeterministically(t *testing.T) {
	const n, perRound = 50_000, 100
	run := func(seed uint64) []string {
		cfg := baseConfig(3, perRound)
		cfg.Seed = seed
		cfg.Sampling.FractionFit = float64(perRound) / n
		cfg.Sampling.MinAvailable = n
		c, err := server.New(cfg, server.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var last server.Ready
		for i := range n {
			if last, err = c.Step(server.Join{ClientID: fmt.Sprintf("c%06d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if c.Online() != n {
			t.Fatalf("online = %d, want %d", c.Online(), n)
		}
		return sampledOf(t, c, last)
	}
	a, b, other := run(1), run(1), run(2)
	if len(a) != perRound {
		t.Fatalf("sampled %d clients, want %d", len(a), perRound)
	}
	if !slices.IsSorted(a) || len(slices.Compact(slices.Clone(a))) != perRound {
		t.Fatalf("sample is not %d distinct sorted ids: %v", perRound, a)
	}
	if !slices.Equal(a, b) {
		t.Fatal("two coordinators with the same seed sampled different clients")
	}
	if slices.Equal(a, other) {
		t.Fatal("seeds 1 and 2 sampled the same clients")
	}
}

// TestSamplingSkipsClientsThatLeft: when most clients are offline the sample is drawn from
// the online ones only.
func TestSamplingSkipsClientsThatLeft(t *testing.T) {
	const n, perRound = 2_000, 10
	cfg := baseConfig(2, perRound)
	cfg.Sampling.FractionFit = 0.01
	cfg.Sampling.MinAvailable = perRound
	cfg.Sampling.MinFit = perRound
	c, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Join everyone, with all but the 25 last leaving right away; the round starts only once
	// min_available clients stay online, so join the staying ones last.
	for i := range n - 25 {
		id := fmt.Sprintf("c%06d", i)
		mustStep(t, c, server.Join{ClientID: id})
		mustStep(t, c, server.Leave{ClientID: id})
	}
	var last server.Ready
	for i := n - 25; i < n; i++ {
		r, err := c.Step(server.Join{ClientID: fmt.Sprintf("c%06d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Notices) > 0 {
			last = r
		}
	}
	got := sampledOf(t, c, last)
	if len(got) != perRound {
		t.Fatalf("sampled %d, want %d", len(got), perRound)
	}
	for _, id := range got {
		if id < fmt.Sprintf("c%06d", n-25) {
			t.Fatalf("sampled %s, which left", id)
		}
	}
	if c.Online() != 25 {
		t.Fatalf("online = %d, want 25", c.Online())
	}
}

func mustStep(t *testing.T, c *server.Coordinator, ev server.Event) server.Ready {
	t.Helper()
	r, err := c.Step(ev)
	if err != nil {
		t.Fatalf("step %T: %v", ev, err)
	}
	return r
}

// TestLivenessAfterSkippedScans: the liveness scan is skipped while no client can have
// timed out, yet every silent client still goes offline on the first tick past its timeout
// (20s in baseConfig).
func TestLivenessAfterSkippedScans(t *testing.T) {
	c, err := server.New(baseConfig(1, 5), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustStep(t, c, server.Join{ClientID: "a"})
	mustStep(t, c, server.Join{ClientID: "b"})
	offline := func(r server.Ready) []string {
		var ids []string
		for _, n := range r.Notices {
			if o, ok := n.(server.ClientOffline); ok {
				ids = append(ids, o.ClientID)
			}
		}
		return ids
	}
	steps := []struct {
		ev   server.Event
		want []string
	}{
		{server.Tick{Elapsed: 10 * time.Second}, nil}, // t=10: scan, nobody late
		{server.Heartbeat{ClientID: "a"}, nil},        // a seen at 10
		{server.Join{ClientID: "c"}, nil},             // c seen at 10
		{server.Tick{Elapsed: 5 * time.Second}, nil},  // t=15
		{server.Tick{Elapsed: 6 * time.Second}, []string{"b"}},
		{server.Tick{Elapsed: 9 * time.Second}, nil}, // t=30: a, c last seen 20s ago
		{server.Heartbeat{ClientID: "c"}, nil},       // c seen at 30
		{server.Tick{Elapsed: 1 * time.Second}, []string{"a"}},
		{server.Tick{Elapsed: 20 * time.Second}, []string{"c"}}, // t=51: c seen 21s ago
		{server.Tick{Elapsed: 0}, nil},
	}
	for i, s := range steps {
		if got := offline(mustStep(t, c, s.ev)); !slices.Equal(got, s.want) {
			t.Fatalf("step %d (%T): offline %v, want %v", i, s.ev, got, s.want)
		}
	}
	if c.Online() != 0 {
		t.Fatalf("online = %d, want 0", c.Online())
	}
}

// TestNextDeadlineFollowsThePhase: no deadline while waiting for clients, the fit deadline
// (1m in baseConfig) once a round runs.
func TestNextDeadlineFollowsThePhase(t *testing.T) {
	c, err := server.New(baseConfig(1, 2), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustStep(t, c, server.Tick{Elapsed: 7 * time.Second})
	if _, ok := c.NextDeadline(); ok {
		t.Fatal("a deadline while waiting for clients")
	}
	mustStep(t, c, server.Join{ClientID: "a"})
	mustStep(t, c, server.Join{ClientID: "b"})
	at, ok := c.NextDeadline()
	if !ok || at != 7*time.Second+time.Minute || c.Now() != 7*time.Second {
		t.Fatalf("deadline %v (%v) at now %v, want 1m7s at 7s", at, ok, c.Now())
	}
}

// The server says why it waits when the reason changes and again every 30 s while it does
// not, so an operator watching the log sees it is alive.
func TestWaitingIsReportedSteadily(t *testing.T) {
	cfg := server.Config{Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 3, Output: 2},
		Sampling:  server.SamplingConfig{MinFit: 3, MinAvailable: 3},
		Training:  server.TrainingConfig{Epochs: 1, BatchSize: 4, LR: 0.1},
		Deadlines: server.DeadlineConfig{ClientTimeout: time.Hour}}
	c, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	waits := func(r server.Ready) (out []string) {
		for _, n := range r.Notices {
			if w, ok := n.(server.Waiting); ok {
				out = append(out, w.Reason)
			}
		}
		return out
	}
	var got []string
	got = append(got, waits(mustStep(t, c, server.Join{ClientID: "a"}))...)
	for range 65 {
		got = append(got, waits(mustStep(t, c, server.Tick{Elapsed: time.Second}))...)
	}
	got = append(got, waits(mustStep(t, c, server.Join{ClientID: "b"}))...)
	want := []string{"1 of the 3", "1 of the 3", "1 of the 3", "2 of the 3"}
	if len(got) != len(want) {
		t.Fatalf("waiting notices %q, want %d of them", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Fatalf("waiting notices %q, want %q…", got, want)
		}
	}
}
