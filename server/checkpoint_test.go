package server_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// Checkpoints carry the operator's metadata and a provenance of their round: a
// federated-server model, and the largest record-level ε the server accounted before it
// (an infinite one, which no file can hold, is left out).
func TestCheckpointsRecordProvenance(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 2, Output: 2}
	cs, err := server.NewCheckpointStore(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	cs.Meta = model.Meta{ClassNames: []string{"no", "yes"}, Provenance: &model.Provenance{Mode: model.TrainedServer, Dataset: "mnist", Strategy: "fedavg"}}
	params := []float64{1, 2, 3, 4, 5, 6}
	err = cs.Append([]server.Record{
		server.PrivacyRecord{ClientID: "a", Round: 1, Epsilon: 0.5, Delta: 1e-5},
		server.PrivacyRecord{ClientID: "b", Round: 1, Epsilon: 9, Delta: 1e-5, Reported: true}, // the client's word, not the server's account
		server.PrivacyRecord{ClientID: "c", Round: 1, Epsilon: math.Inf(1), Delta: 1e-5},
		server.RoundRecord{Round: 1, Params: params},
		server.PrivacyRecord{ClientID: "b", Round: 2, Epsilon: 0.8, Delta: 1e-5},
		server.RoundRecord{Round: 2, Params: params},
		server.RoundRecord{Round: 3, Failed: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file    string
		round   int
		epsilon float64
	}{{"round-0001.confide", 1, 0.5}, {"round-0002.confide", 2, 0.8}, {"latest.confide", 2, 0.8}} {
		m, err := model.Load(filepath.Join(cs.Dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		p := m.Meta.Provenance
		if !slices.Equal(m.Meta.ClassNames, []string{"no", "yes"}) || p == nil || p.Mode != model.TrainedServer || p.Rounds != tc.round ||
			p.Dataset != "mnist" || p.Strategy != "fedavg" || p.Created == "" {
			t.Fatalf("%s: meta %s", tc.file, m.Meta.JSON())
		}
		if len(p.Privacy) != 1 || p.Privacy[0].Level != model.PrivacyRecord || p.Privacy[0].Epsilon != tc.epsilon {
			t.Fatalf("%s: privacy %+v, want record-level ε %v", tc.file, p.Privacy, tc.epsilon)
		}
	}
}
