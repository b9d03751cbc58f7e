package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/server"
)

// budgetConfig is a plain federation of rounds rounds sampling 3 clients a round with
// DP-SGD (σ 1, q 0.1, 10 steps a task) and a budget between the ε of two tasks and of three,
// so each client has room for two tasks.
func budgetConfig(t *testing.T, rounds int) server.Config {
	t.Helper()
	cfg := baseConfig(rounds, 1)
	cfg.Sampling.NumFit = 3
	cfg.DP.NoiseMultiplier, cfg.DP.SampleRate, cfg.DP.Steps = 1, 0.1, 10
	eps := func(tasks int) float64 {
		r, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 10 * tasks}}, 1e-5, accountant.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Epsilon
	}
	cfg.DP.BudgetEpsilon = (eps(2) + eps(3)) / 2
	return cfg
}

// sampledPerRound lists the clients of every round's fit phase.
func sampledPerRound(n *network) [][]string {
	var out [][]string
	for _, s := range noticesOf[server.RoundStarted](n) {
		out = append(out, s.Clients)
	}
	return out
}

// TestSamplingSkipsClientsWithoutBudget: with dp.budget_epsilon the server samples only
// clients whose account leaves room for the round's task, filling the round with others
// while there are any; the sample is the seeded generator's (the same twice, another with
// another seed); once no client has room a round fails saying so, and no task went to a
// client past its budget.
func TestSamplingSkipsClientsWithoutBudget(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f"}
	cfg := budgetConfig(t, 8)
	run := func(cfg server.Config) (*network, [][]string) {
		n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
		n.run()
		return n, sampledPerRound(n)
	}
	n, rounds := run(cfg)
	tasks := map[string]int{}
	for i, r := range rounds {
		var room []string
		for _, id := range ids {
			if tasks[id] < 2 {
				room = append(room, id)
			}
		}
		if len(r) != min(3, len(room)) {
			t.Fatalf("round %d sampled %v, want 3 of the clients with room %v (or all of them)", i+1, r, room)
		}
		for _, id := range r {
			if !slices.Contains(room, id) {
				t.Fatalf("round %d sampled %v: %s has no room left (2 tasks)", i+1, r, id)
			}
			tasks[id]++
		}
	}
	for _, id := range ids {
		if tasks[id] != 2 {
			t.Errorf("client %s was sent %d fit tasks, want 2 (its budget's room)", id, tasks[id])
		}
	}
	recs := recordsOf[server.RoundRecord](n)
	last := recs[len(recs)-1]
	if len(recs) != 8 || len(rounds) >= 8 || !last.Failed || !containsAll(last.Reason, "every one of the 6 online clients has spent its privacy budget", "dp.budget_epsilon") {
		t.Fatalf("%d rounds, %d of them sampled, the last failed %v %q; want 8, the last failed naming the budget", len(recs), len(rounds), last.Failed, last.Reason)
	}
	for _, p := range recordsOf[server.PrivacyRecord](n) {
		if !p.Reported && p.Epsilon > cfg.DP.BudgetEpsilon {
			t.Errorf("client %s accounted ε %v past the budget %v", p.ClientID, p.Epsilon, cfg.DP.BudgetEpsilon)
		}
	}
	if _, again := run(cfg); !slices.EqualFunc(again, rounds, slices.Equal) {
		t.Errorf("the same seed sampled %v, then %v", rounds, again)
	}
	other := cfg
	other.Seed = 8
	if _, o := run(other); slices.EqualFunc(o, rounds, slices.Equal) {
		t.Errorf("seeds 7 and 8 sampled the same clients %v: the sample is not the seeded generator's", o)
	}
	// Without the budget, the same seed draws the first round as before, and keeps sampling
	// every client.
	free := cfg
	free.DP.BudgetEpsilon = 0
	_, unbounded := run(free)
	if len(unbounded) != 8 || !slices.Equal(unbounded[0], rounds[0]) {
		t.Errorf("without a budget: rounds %v, want 8 starting with %v", unbounded, rounds[0])
	}
}

// TestRefusedTaskIsNotCharged: a client that refuses a fit task on its privacy budget spent
// nothing, and the server's account (the round's epsilon_max, the privacy records, and
// after a restart from its store) says so; it is not sampled again (until the restart);
// the clients that trained are charged.
func TestRefusedTaskIsNotCharged(t *testing.T) {
	ids := []string{"a", "b", "c"}
	cfg := baseConfig(2, 2)
	cfg.Sampling.NumFit = 3
	cfg.DP.NoiseMultiplier, cfg.DP.SampleRate, cfg.DP.Steps = 1, 0.1, 10
	trs := trainersFor(ids...)
	trs["c"].Refuse = true
	n := newNetwork(t, cfg, server.Options{}, trs)
	n.run()
	one, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 20}}, 1e-5, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs := recordsOf[server.RoundRecord](n)
	if len(recs) != 2 || recs[1].Failed {
		t.Fatalf("%d round records (the last failed: %q), want 2 rounds of a and b", len(recs), recs[len(recs)-1].Reason)
	}
	if eps := recs[1].Metrics["epsilon_max"]; eps != one.Epsilon {
		t.Errorf("epsilon_max after 2 rounds %v, want the ε of two tasks %v", eps, one.Epsilon)
	}
	account := map[string]float64{}
	withdrawn := 0
	for _, p := range recordsOf[server.PrivacyRecord](n) {
		if !p.Reported {
			account[p.ClientID] = p.Epsilon
		}
		if p.Withdrawn {
			withdrawn++
			if p.ClientID != "c" {
				t.Errorf("the charge of %s's task of round %d was taken back: it trained", p.ClientID, p.Round)
			}
		}
	}
	if withdrawn != 1 || account["c"] != 0 || account["a"] != one.Epsilon {
		t.Fatalf("account %v with %d withdrawn charges; want c at 0 (its refused task), a and b at %v", account, withdrawn, one.Epsilon)
	}
	if s := sampledPerRound(n); len(s) != 2 || !slices.Equal(s[0], ids) || !slices.Equal(s[1], []string{"a", "b"}) {
		t.Fatalf("sampled %v, want all in round 1, then not c, which refused on its budget", s)
	}

	dir := t.TempDir()
	n.persistTo(t, dir)
	more := cfg
	more.Rounds = 3
	st := n.restart(t, more, dir)
	if st.FitTasks["c"] != 1 || st.FitWithdrawn["c"] != 1 || st.FitWithdrawn["a"] != 0 {
		t.Fatalf("stored account of c: %d tasks, %d withdrawn; of a: %d withdrawn; want 1, 1, 0", st.FitTasks["c"], st.FitWithdrawn["c"], st.FitWithdrawn["a"])
	}
	trs["c"].Refuse = false
	n.run()
	recs = recordsOf[server.RoundRecord](n)
	three, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 30}}, 1e-5, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Metrics["epsilon_max"] != three.Epsilon {
		t.Fatalf("round 3 after the restart: %d records, epsilon_max %v; want a and b at three tasks' %v", len(recs), recs[0].Metrics["epsilon_max"], three.Epsilon)
	}
	for _, p := range recordsOf[server.PrivacyRecord](n) {
		if p.ClientID == "c" && !p.Reported && p.Epsilon >= one.Epsilon {
			t.Errorf("c's first trained task is accounted as ε %v, at least two tasks' %v: its refused task came back with the restart", p.Epsilon, one.Epsilon)
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
