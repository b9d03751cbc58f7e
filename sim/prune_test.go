package sim_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
	"github.com/confide-fl/confide/train"
)

// A federation fine-tuning a pruned model: the mask travels in the model spec the server
// ships with every task, so each client's trainer keeps the pruned parameters at zero. In
// a plaintext federation every client's update is then exactly zero there and so is the
// global model's parameter, round after round: the server's own evaluation of its global
// model (which does not apply the mask) gives the loss of the saved model (whose pruned
// parameters read as zero) to rounding. Under DP-SGD with secure aggregation the decoded
// sum carries decoding error at the pruned positions too, which stays at its size (the
// clients zero those positions again before training) instead of growing.
func TestFederationKeepsPrunedParametersZero(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{8}, Output: 2}
	m, err := model.New(spec, rand.New(rand.NewPCG(3, 3)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prune(0.5, model.PruneGlobal); err != nil {
		t.Fatal(err)
	}
	mask := m.Spec.Mask
	test := blobs(200, 2)
	for _, tc := range []struct {
		name      string
		secure    bool
		tolerance float64
	}{{"plaintext", false, 1e-12}, {"dp-secagg", true, 1e-3}} {
		t.Run(tc.name, func(t *testing.T) {
			c := small()
			c.Model = m.Spec
			// float64, so that the saved model evaluated in batches of another size gives the
			// server's loss to the last digits (float32's depend on the batching).
			c.Precision = "float64"
			if tc.secure {
				c = withDPAndSecAgg(c)
				// Seeded noise: the check is on the pruned positions, and with noise
				// from crypto/rand about one run in six ended below the accuracy floor.
				c.DP.DeterministicNoise = true
			}
			c.ResultsDir = t.TempDir()
			rep, err := sim.Run(t.Context(), c, sim.Options{Train: blobs(400, 1), Test: test})
			if err != nil {
				t.Fatal(err)
			}
			last := rep.Rounds[len(rep.Rounds)-1]
			if last.Accuracy == nil || *last.Accuracy < 0.8 || last.Loss == nil {
				t.Fatalf("final accuracy %v, want ≥ 0.8 with half the weights pruned", orNone(last.Accuracy))
			}
			back, err := model.Load(filepath.Join(c.ResultsDir, "model.confide"))
			if err != nil {
				t.Fatal(err)
			}
			if back.Spec.Mask == nil || back.Spec.Mask.Pruned() != mask.Pruned() {
				t.Fatal("the saved model lost its mask")
			}
			for i, v := range back.Params {
				if mask.IsPruned(i) && v != 0 {
					t.Fatalf("pruned parameter %d reads as %v", i, v)
				}
			}
			met, err := train.Evaluate(back, test, 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("server's loss of its global model %.15g, of the saved (masked) one %.15g", *last.Loss, met.Loss)
			if d := math.Abs(met.Loss - *last.Loss); d > tc.tolerance {
				t.Fatalf("the server's global model and the masked saved one differ in loss by %g: the pruned parameters moved", d)
			}
		})
	}
}

// orNone prints an optional value.
func orNone(v *float64) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprint(*v)
}
