package sim_test

import (
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// The results' model.confide says how it was trained: a simulated federation, its
// dataset, strategy, rounds, clients and seed, and the record-level ε the summary reports.
func TestResultsModelRecordsProvenance(t *testing.T) {
	c := small()
	c.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1}, DeterministicNoise: true}
	c.ResultsDir = t.TempDir()
	no := false
	c.Plots = &no
	rep := run(t, c)
	m, err := model.Load(filepath.Join(c.ResultsDir, "model.confide"))
	if err != nil {
		t.Fatal(err)
	}
	p := m.Meta.Provenance
	if p == nil || p.Mode != model.TrainedSim || p.Dataset != "blobs" || p.Strategy != rep.Summary.Strategy ||
		p.Rounds != 3 || p.Clients != 8 || p.Seed != 7 || p.Created == "" {
		t.Fatalf("provenance %+v", p)
	}
	if len(p.Privacy) != 1 || p.Privacy[0].Level != model.PrivacyRecord || p.Privacy[0].Epsilon != rep.Summary.Privacy.Epsilon ||
		p.Privacy[0].Delta != rep.Summary.Privacy.Delta || p.Privacy[0].Epsilon <= 0 {
		t.Fatalf("privacy %+v, summary %+v", p.Privacy, rep.Summary.Privacy)
	}
	if in := m.Meta.Input; in == nil || in.Kind != model.InputTabular {
		t.Fatalf("input %+v", in)
	}
}
