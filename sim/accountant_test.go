package sim_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// TestAccountantPRV: dp.accountant prv makes the clients' ledgers and the summary account
// with PRV: the same seeded run spends less than by RDP, and the summary says which.
func TestAccountantPRV(t *testing.T) {
	withDP := func(acct string) sim.Config {
		c := small()
		c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 0.8, MaxGradNorm: 1, Accountant: acct}, DeterministicNoise: true}
		return c
	}
	rdp, prv := run(t, withDP("")).Summary.Privacy, run(t, withDP("prv")).Summary.Privacy
	if rdp.Accountant != "rdp" || prv.Accountant != "prv" || !strings.Contains(prv.Meaning, "PRV accountant") {
		t.Fatalf("accountants %q / %q, meaning %q", rdp.Accountant, prv.Accountant, prv.Meaning)
	}
	if !(prv.Epsilon > 0 && prv.Epsilon < rdp.Epsilon) || prv.ClientsAccounted != rdp.ClientsAccounted {
		t.Errorf("worst client ε: PRV %v, RDP %v over %d/%d clients: want PRV smaller", prv.Epsilon, rdp.Epsilon, prv.ClientsAccounted, rdp.ClientsAccounted)
	}
	bad := withDP("moments")
	if _, err := sim.Run(t.Context(), bad, sim.Options{Train: blobs(400, 1), Test: blobs(200, 2)}); err == nil || !strings.Contains(err.Error(), `dp.accountant = "moments"`) {
		t.Errorf("dp.accountant moments: %v", err)
	}
}
