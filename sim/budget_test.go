package sim_test

import (
	"math"
	"strings"
	"testing"
)

// TestBudgetAwareSamplingSpendsTheLedgersEpsilon: with dp.budget_epsilon the server
// samples only clients with room for a round's task, so no client refuses one, rounds
// sample clients_per_round while enough have room, and once none has, a round fails naming
// the budget; the per-round ε column (the server's account) ends at the summary's worst ε
// from the clients' ledgers, within the budget.
func TestBudgetAwareSamplingSpendsTheLedgersEpsilon(t *testing.T) {
	c := withDPAndSecAgg(small())
	// Room for two tasks a client (ε 7.86 after one, 10.35 after two): 24 tasks in all,
	// fewer than the 48 the rounds ask for.
	c.Clients, c.ClientsPerRound, c.Rounds = 12, 6, 8
	c.DP.BudgetEpsilon = 10.5
	rep := run(t, c)
	s := rep.Summary
	tasks := 0
	for _, r := range rep.Rounds {
		if r.Refused != 0 || (r.Round <= 3 && r.Sampled != 6) {
			t.Fatalf("round %d: %d sampled, %d refused; want none refused, 6 sampled in the first 3 rounds", r.Round, r.Sampled, r.Refused)
		}
		tasks += r.Sampled
	}
	last := rep.Rounds[len(rep.Rounds)-1]
	if tasks > 24 || tasks < 22 || !last.Failed || !strings.Contains(last.Reason, "dp.budget_epsilon") {
		t.Fatalf("%d tasks sent, the last round failed %v %q; want 22 to 24 (two a client, rounds need 2), then rounds failing on the budget", tasks, last.Failed, last.Reason)
	}
	eps := last.Epsilon
	if !(s.Privacy.Epsilon > 0) || math.Abs(eps-s.Privacy.Epsilon) > 1e-9 || s.Privacy.Epsilon > c.DP.BudgetEpsilon {
		t.Fatalf("last round's ε %v, the ledgers' worst %v, budget %v: want the same figure within the budget", eps, s.Privacy.Epsilon, c.DP.BudgetEpsilon)
	}
}
