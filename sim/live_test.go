package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// refuser is a client that refuses every fit task on its privacy budget (a client whose
// ledger holds more than the server knows, e.g. from another federation).
type refuser struct{}

func (refuser) Fit(_ context.Context, _ []float64, cfg client.FitConfig) (client.FitResult, error) {
	return client.FitResult{}, fmt.Errorf("round %d: %w", cfg.Round, client.ErrBudgetExceeded)
}

func (refuser) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{}, nil
}

// TestLiveFollowsTheRun checks the dashboard's source against the run's own report, on
// both transports: every round's record (sample, contributors, dropouts, refusals,
// accuracy, ε, traffic), the clients' tallies, the committee, and the overview.
func TestLiveFollowsTheRun(t *testing.T) {
	memory := withDPAndSecAgg(small())
	memory.Transport = sim.TransportMemory
	memory.Clients, memory.ClientsPerRound, memory.Rounds = 16, 6, 5
	memory.Heterogeneity = sim.HeterogeneityConfig{Dropout: 0.2}
	// A client's second task would take it past its budget: the server samples others.
	// Three clients refuse the tasks they get (their ledgers hold more than the server
	// knows).
	memory.DP.BudgetEpsilon = 10.5
	refusers := []client.Trainer{refuser{}, refuser{}, refuser{}}
	grpc := withDPAndSecAgg(small())
	grpc.Transport, grpc.Rounds = sim.TransportGRPC, 2
	for _, c := range []sim.Config{memory, grpc} {
		t.Run(c.Transport, func(t *testing.T) {
			live := server.NewLive(server.LiveConfig{Kind: "simulation", Name: c.Name, VirtualTime: c.Transport == sim.TransportMemory})
			opts := sim.Options{Train: blobs(400, 1), Test: blobs(200, 2), Live: live}
			if c.Transport == sim.TransportMemory {
				opts.Canaries = refusers
			}
			rep, err := sim.Run(t.Context(), c, opts)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := live.Snapshot(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s := rep.Summary
			if snap.State != "finished" || snap.Round != uint64(s.Rounds) || snap.Rounds != c.Rounds || snap.ClientsRegistered != s.Clients || len(snap.Clients) != s.Clients {
				t.Fatalf("overview %+v; the run: %d rounds of %d clients", snap, s.Rounds, s.Clients)
			}
			if len(snap.History) != len(rep.Rounds) {
				t.Fatalf("%d round records, the run has %d", len(snap.History), len(rep.Rounds))
			}
			var sampled, contributed, dropped, refused, up, down int64
			for i, row := range rep.Rounds {
				h := snap.History[i]
				sameAccuracy := (h.Accuracy == nil) == (row.Accuracy == nil) && (h.Accuracy == nil || *h.Accuracy == *row.Accuracy)
				if h.Round != uint64(row.Round) || h.Contributors != row.Contributors || h.Failed != row.Failed || !sameAccuracy || h.Epsilon != row.Epsilon {
					t.Errorf("round %d: live %+v, the run %+v", row.Round, h, row)
				}
				if c.Transport == sim.TransportMemory {
					// The gRPC transports see the coordinator's records only (no sample, no
					// failure kinds) and count traffic as the service's total.
					if h.Sampled != row.Sampled || h.Dropouts != row.Dropped || h.Refusals != row.Refused || h.BytesUp != row.BytesUp || h.BytesDown != row.BytesDown {
						t.Errorf("round %d: live %+v, the run %+v", row.Round, h, row)
					}
				} else if h.BytesUp <= 0 || h.BytesDown <= 0 {
					t.Errorf("round %d: no traffic counted (%d up, %d down)", row.Round, h.BytesUp, h.BytesDown)
				}
				sampled += int64(h.Sampled)
				contributed += int64(row.Contributors)
				dropped += int64(row.Dropped)
				refused += int64(row.Refused)
				up += h.BytesUp
				down += h.BytesDown
			}
			if up > s.BytesUp || down > s.BytesDown {
				t.Errorf("rounds' traffic %d up, %d down exceeds the run's %d, %d", up, down, s.BytesUp, s.BytesDown)
			}
			var tally [4]int64
			for _, cl := range snap.Clients {
				tally[0] += int64(cl.Sampled)
				tally[1] += int64(cl.Rounds)
				tally[2] += int64(cl.Dropouts)
				tally[3] += int64(cl.Refusals)
			}
			if want := [4]int64{sampled, contributed, dropped, refused}; tally != want {
				t.Errorf("clients' sampled, rounds, dropouts, refusals %v; the rounds' %v", tally, want)
			}
			if c.Transport == sim.TransportMemory && (refused == 0 || dropped == 0) {
				t.Errorf("%d refusals, %d dropouts: the test needs both", refused, dropped)
			}
			// The server charges a task when it issues it and takes the charge back when the
			// client refuses it; the tasks of clients that dropped out stay charged (the
			// server cannot tell whether they trained), so its ε is at least the ledgers'.
			// The refusers spent nothing.
			p := snap.Privacy
			if !p.DPSGD || !p.SecureAggregation || p.EpsilonMax < s.Privacy.Epsilon-1e-9 || p.ClientsAccounted < s.Privacy.ClientsAccounted {
				t.Errorf("privacy %+v; the ledgers: worst ε %v over %d clients", p, s.Privacy.Epsilon, s.Privacy.ClientsAccounted)
			}
			for _, cl := range snap.Clients {
				if cl.Refusals > 0 && cl.Refusals == cl.Sampled && cl.Epsilon != 0 {
					t.Errorf("client %s refused all its %d tasks, but shows ε %v", cl.ID, cl.Refusals, cl.Epsilon)
				}
				if cl.Epsilon > c.DP.BudgetEpsilon && c.DP.BudgetEpsilon > 0 {
					t.Errorf("client %s shows ε %v past the budget %v", cl.ID, cl.Epsilon, c.DP.BudgetEpsilon)
				}
			}
			if com := snap.Committee; com == nil || !com.Ready || com.Size != 3 || com.Threshold != 2 || com.Holders < 2 {
				t.Errorf("committee %+v", snap.Committee)
			}
		})
	}
}
