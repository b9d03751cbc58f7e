package server_test

import (
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
)

// restart replaces the network's coordinator by one resumed from the store (a server that
// was killed and started again with the same state directory): the tasks of the dead
// server are gone; the clients, whose own state survived, join again.
func (n *network) restart(t *testing.T, cfg server.Config, dir string) *server.State {
	t.Helper()
	s, err := server.OpenSQLiteStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	c, err := server.New(cfg, server.Options{Resume: st})
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	n.persist, n.notices = nil, nil
	clear(n.queue)
	for _, id := range slices.Sorted(mapKeys(n.parties)) {
		n.mustStep(server.Join{ClientID: id, CommitteeEligible: true})
	}
	return st
}

// persistTo appends the records the network's coordinator emitted so far to a store in dir.
func (n *network) persistTo(t *testing.T, dir string) {
	t.Helper()
	s, err := server.OpenSQLiteStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(n.persist); err != nil {
		t.Fatal(err)
	}
}

// A server killed in the middle of round 3 of 5 and restarted with the same state resumes
// after round 2: the clients, the key committee (no new key setup), the global model,
// FedAdam's moments, the sampling generator and the server's record-level account come back;
// round 3 runs again and the federation finishes. The final model matches an
// uninterrupted run's (up to secure aggregation's decoding noise).
func TestServerResumesFromItsStore(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	cfg := secAggConfig(5, 3, 3, 2)
	cfg.Strategy = strategy.Config{Name: strategy.NameFedAdam, ServerLR: new(0.05)}
	cfg.DP.NoiseMultiplier, cfg.DP.SampleRate = 1, 0.1
	cfg.Sampling.MinAvailable = len(ids) // after the restart too: rounds start once all rejoined

	clean := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	clean.run()
	cleanRounds := recordsOf[server.RoundRecord](clean)
	if len(cleanRounds) != 5 {
		t.Fatalf("uninterrupted run: %d rounds", len(cleanRounds))
	}

	dir := t.TempDir()
	n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool {
		return len(recordsOf[server.RoundRecord](n)) == 2 && len(noticesOf[server.RoundStarted](n)) == 3
	})
	n.persistTo(t, dir) // everything the server persisted before it was killed
	st := n.restart(t, cfg, dir)
	if st.Round != 2 || st.Committee == nil || len(st.Clients) != 4 || st.Boots != 2 {
		t.Fatalf("state: round %d, committee %v, %d clients, boots %d; want round 2, the committee, 4 clients, boot 2", st.Round, st.Committee != nil, len(st.Clients), st.Boots)
	}
	for _, id := range ids {
		// Charged for rounds 1, 2 and the interrupted 3.
		if st.FitTasks[id] != 3 {
			t.Errorf("client %s: %d fit tasks accounted, want 3", id, st.FitTasks[id])
		}
	}
	if c := n.c.Round(); c != 2 {
		t.Fatalf("resumed at round %d, want 2", c)
	}
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 3 || rounds[0].Round != 3 || rounds[2].Round != 5 || !n.c.Finished() {
		t.Fatalf("after the restart: rounds %v, finished %v; want rounds 3, 4, 5", roundNumbers(rounds), n.c.Finished())
	}
	if k := noticesOf[server.CommitteeReady](n); len(k) != 0 {
		t.Fatalf("a new key committee was formed after the restart: %+v", k)
	}
	for _, e := range n.answered[len(n.answered)-1:] {
		if !strings.HasPrefix(e.result.TaskId, "b2.") {
			t.Fatalf("task id %q of the second boot lacks its prefix", e.result.TaskId)
		}
	}
	got, want := rounds[2].Params, cleanRounds[4].Params
	for i := range want {
		if math.Abs(got[i]-want[i]) > 5e-3 { // FedAdam amplifies the decoding noise a little; lost moments would move it by ~0.05
			t.Fatalf("parameter %d after resuming: %v, uninterrupted: %v", i, got[i], want[i])
		}
	}
	// The server's account continued: one charge per client and round, the repeated round
	// 3 included once (its clients re-send the update they made), as in the clean run.
	if eps, clean := rounds[2].Metrics["epsilon_max"], cleanRounds[4].Metrics["epsilon_max"]; eps != clean || !(eps > 0) {
		t.Fatalf("ε after resuming %v, uninterrupted %v", eps, clean)
	}
	// The clients did not train round 3 twice.
	for _, id := range ids {
		if f := n.trainers[id].fits; f != 5 {
			t.Errorf("client %s trained %d times in 5 rounds", id, f)
		}
	}
}

func roundNumbers(rs []server.RoundRecord) []uint64 {
	var out []uint64
	for _, r := range rs {
		out = append(out, r.Round)
	}
	return out
}

// The store keeps parameters once per distinct vector and only for the latest rounds and
// the best one; its schema is readable with the sqlite3 shell.
func TestSQLiteStoreKeepsLatestAndBestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s, err := server.OpenSQLiteStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.KeepCheckpoints = 2
	for r := uint64(1); r <= 6; r++ {
		acc := 0.5 + 0.01*float64(r)
		if r == 3 {
			acc = 0.99 // the best
		}
		rec := server.RoundRecord{Round: r, Params: []float64{float64(r), 1}, Metrics: map[string]float64{"central_accuracy": acc}, Contributors: []string{"a"}}
		if err := s.Append([]server.Record{rec, server.PrivacyRecord{ClientID: "a", Round: r, Epsilon: float64(r), Delta: 1e-5}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if st.Round != 6 || !slices.Equal(st.Params, []float64{6, 1}) || st.FitTasks["a"] != 6 || len(st.Rounds) != 6 {
		t.Fatalf("state: round %d params %v tasks %v rounds %d", st.Round, st.Params, st.FitTasks, len(st.Rounds))
	}
	s.Close()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("no sqlite3 shell to read the schema with")
	}
	out, err := exec.Command("sqlite3", filepath.Join(dir, "state.db"), "SELECT round FROM rounds WHERE params IS NOT NULL ORDER BY round").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, []string{"3", "5", "6"}) {
		t.Fatalf("rounds keeping parameters %v, want the best (3) and the latest two (5, 6)", got)
	}
}

// Without secure aggregation and DP noise, with fixed seeds, a run killed mid-round and
// resumed ends with the same model as an uninterrupted one, bit for bit: the sampling
// generator resumes from its stored state, the interrupted round's clients re-send their
// updates, and updates are summed in client order.
func TestResumedRunIsBitIdentical(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	cfg := baseConfig(6, 2)
	cfg.Sampling.NumFit = 3 // the sample matters: it must come from the restored generator
	cfg.Sampling.MinAvailable = len(ids)
	cfg.Strategy = strategy.Config{Name: strategy.NameFedAdam, ServerLR: new(0.05)}

	clean := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	clean.run()
	want := recordsOf[server.RoundRecord](clean)[5].Params

	dir := t.TempDir()
	n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool { return len(noticesOf[server.RoundStarted](n)) == 4 })
	n.persistTo(t, dir)
	n.restart(t, cfg, dir)
	n.run()
	rounds := recordsOf[server.RoundRecord](n)
	got := rounds[len(rounds)-1].Params
	if rounds[len(rounds)-1].Round != 6 || !slices.Equal(got, want) {
		t.Fatalf("round %d after resuming: model differs from the uninterrupted run's", rounds[len(rounds)-1].Round)
	}
}

// A server restarted with other secure-aggregation parameters (here the encoding: value_bits
// 0 before, left to the default after, as when an upgrade changes the default) forms a new
// key committee instead of resuming the old one, whose key no client can encrypt under, and
// the remaining rounds succeed.
func TestResumeWithOtherSecAggParametersFormsANewCommittee(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	cfg := secAggConfig(4, 3, 3, 2)
	cfg.SecAgg.LogN, cfg.SecAgg.ValueBits = 13, new(0)
	cfg.Sampling.MinAvailable = len(ids)
	dir := t.TempDir()
	n := newNetwork(t, cfg, server.Options{}, trainersFor(ids...))
	n.runUntil(func() bool { return len(recordsOf[server.RoundRecord](n)) == 2 })
	n.persistTo(t, dir)
	cfg.SecAgg.ValueBits = nil
	if st := n.restart(t, cfg, dir); st.Committee == nil {
		t.Fatal("the state holds no committee to resume")
	}
	n.run()
	if k := noticesOf[server.CommitteeReady](n); len(k) != 1 {
		t.Fatalf("%d key committees formed after the restart, want a new one", len(k))
	}
	rounds := recordsOf[server.RoundRecord](n)
	if len(rounds) != 2 || !n.c.Finished() {
		t.Fatalf("after the restart: rounds %v, finished %v; want rounds 3 and 4", roundNumbers(rounds), n.c.Finished())
	}
	for _, r := range rounds {
		if r.Failed {
			t.Fatalf("round %d failed: %s", r.Round, r.Reason)
		}
	}
}
