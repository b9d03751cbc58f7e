package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/server"
)

// TestUserLevelPRVAccountant: with dp.accountant prv the user-level records carry the PRV
// ε (below the RDP one of the same rounds) and name the accountant.
func TestUserLevelPRVAccountant(t *testing.T) {
	const z, m, clients = 1.0, 2, 8
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
	}
	cfg := userLevelConfig(3, m, server.UserLevelCentral, z, 1)
	cfg.Sampling.MinFit = 1
	cfg.Model = tinyModel()
	cfg.DP.UserLevel.Delta = 1e-3
	cfg.DP.Accountant = "prv"
	n := newNetwork(t, cfg, userLevelOptions(4), zeroTrainers(ids...))
	n.run()
	recs := recordsOf[server.UserLevelPrivacyRecord](n)
	if len(recs) != 3 {
		t.Fatalf("%d user-level privacy records, want 3", len(recs))
	}
	for i, rec := range recs {
		u := dp.UserLevel{NoiseMultiplier: z, ClientsPerRound: m, Population: clients, Rounds: i + 1, Delta: 1e-3}
		prv, err := dp.UserLevelEpsilon(u, accountant.Config{Method: accountant.MethodPRV})
		if err != nil {
			t.Fatal(err)
		}
		rdp, err := dp.UserLevelEpsilon(u, accountant.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Epsilon != prv.Epsilon || rec.Accountant != "prv" || !strings.Contains(rec.Accounting, "PRV") || !(rec.Epsilon <= rdp.Epsilon) {
			t.Errorf("record %d: ε %v by %q (%s), want PRV %v ≤ RDP %v", i, rec.Epsilon, rec.Accountant, rec.Accounting, prv.Epsilon, rdp.Epsilon)
		}
	}
	bad := baseConfig(1, 2)
	bad.DP.Accountant = "moments"
	if _, err := server.New(bad, server.Options{}); err == nil || !strings.Contains(err.Error(), `dp.accountant = "moments"`) {
		t.Errorf("dp.accountant moments: %v", err)
	}
}
