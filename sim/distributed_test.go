package sim_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// TestDistributedRecordLevelNoise: with dp.distributed every client takes one DP-SGD step
// a round with a share σ/√m of the noise (m = min_contributions) under secure aggregation;
// its ledger records each step at the sum's σ with shares m, so its ε is central DP-SGD's
// at σ and q, and the federation learns.
func TestDistributedRecordLevelNoise(t *testing.T) {
	const sigma, rounds, shares = 3.0, 6, 4
	c := small()
	c.Rounds, c.ClientsPerRound = rounds, 8
	c.Training.LR = 1
	c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: sigma, MaxGradNorm: 1, UpdateClipNorm: 5, SampleRate: 1, Steps: 1, Distributed: true}}
	c.SecureAggregation = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12, MinContributions: shares}
	c.Ledgers = sim.LedgersDisk
	c.ResultsDir = t.TempDir()
	no := false
	c.Plots = &no
	rep := run(t, c)
	for _, r := range rep.Rounds {
		if r.Failed || r.Contributors != 8 {
			t.Fatalf("round %d: failed=%v %q, %d contributors", r.Round, r.Failed, r.Reason, r.Contributors)
		}
		if r.TrainLoss != nil || r.TrainAccuracy != nil {
			t.Fatalf("round %d: training statistics released beside distributed noise, whose guarantee does not cover them", r.Round)
		}
	}
	ledgers, err := filepath.Glob(filepath.Join(c.ResultsDir, "clients", "*", "privacy-ledger.json"))
	if err != nil || len(ledgers) != 8 {
		t.Fatalf("%d ledgers (%v), want 8", len(ledgers), err)
	}
	want := accountant.Step{NoiseMultiplier: sigma, SampleRate: 1, Steps: rounds, Shares: shares}
	for _, f := range ledgers {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Ledger struct {
				History []accountant.Step `json:"history"`
			} `json:"ledger"`
		}
		if err := json.Unmarshal(b, &file); err != nil {
			t.Fatal(err)
		}
		if h := file.Ledger.History; len(h) != 1 || h[0] != want {
			t.Fatalf("%s: history %+v, want %+v", f, h, want)
		}
	}
	rdp, err := accountant.NewRDP(accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rdp.Epsilon(1e-5, accountant.Step{NoiseMultiplier: sigma, SampleRate: 1, Steps: rounds})
	if err != nil {
		t.Fatal(err)
	}
	if eps, s := res.Epsilon, rep.Summary.Privacy; math.Abs(s.Epsilon-eps) > 1e-9*eps {
		t.Errorf("worst client ε %v, want central DP-SGD's %v at σ %v, q 1, %d steps", s.Epsilon, eps, sigma, rounds)
	}
	if a := rep.Summary.FinalAccuracy; a == nil || *a < 0.8 {
		t.Errorf("final accuracy %v, want ≥ 0.8", a)
	}
}
