package sim_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server/strategy"
	"github.com/confide-fl/confide/sim"
)

// With strategy.ema_decay the simulator reports and saves the average of the global models:
// OnModel (the model each central evaluation scores) and model.confide are the average,
// once per evaluated round; every row also carries the iterate's figures, which differ;
// over both transports (the gRPC one drives the real service).
func TestEMAIsTheReportedAndSavedModel(t *testing.T) {
	for _, transport := range []string{sim.TransportMemory, sim.TransportGRPC} {
		t.Run(transport, func(t *testing.T) {
			c := small()
			c.Rounds, c.Transport = 4, transport
			c.Strategy = strategy.Config{Name: strategy.NameFedAvgM, Momentum: new(0.5), EMADecay: 0.8}
			c.ResultsDir = t.TempDir()
			no := false
			c.Plots = &no
			var released [][]float64
			rep, err := sim.Run(t.Context(), c, sim.Options{Train: blobs(400, 1), Test: blobs(200, 2),
				OnModel: func(_ uint64, params []float64) { released = append(released, slices.Clone(params)) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(released) != 5 {
				t.Fatalf("OnModel saw %d models, want one per evaluation (rounds 0–4)", len(released))
			}
			differ := false
			for _, r := range rep.Rounds {
				if r.Accuracy == nil || r.IterateAccuracy == nil || r.IterateLoss == nil {
					t.Fatalf("round %d: accuracy %v, iterate accuracy %v, iterate loss %v", r.Round, r.Accuracy, r.IterateAccuracy, r.IterateLoss)
				}
				differ = differ || *r.IterateLoss != *r.Loss
			}
			if !differ {
				t.Fatal("the iterate's loss equals the released model's in every round")
			}
			if last := rep.Rounds[len(rep.Rounds)-1]; *rep.Summary.FinalAccuracy != *last.Accuracy {
				t.Fatalf("final accuracy %v, last row's %v", *rep.Summary.FinalAccuracy, *last.Accuracy)
			}
			m, err := model.Load(filepath.Join(c.ResultsDir, "model.confide"))
			if err != nil {
				t.Fatal(err)
			}
			want := released[len(released)-1]
			for i, v := range m.Params {
				if d := v - want[i]; d > 1e-6 || d < -1e-6 {
					t.Fatalf("model.confide parameter %d is %v, the average's %v", i, v, want[i])
				}
			}
		})
	}
}
