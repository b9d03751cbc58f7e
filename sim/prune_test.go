package sim_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/model"
)

// A federation fine-tuning a pruned model: the mask travels in the model spec the server
// ships with every task, so each client's trainer keeps the pruned parameters at zero. In
// a plaintext federation every client's update is then exactly zero there and so is the
// global model's parameter, round after round (the saved file's raw values are checked,
// before Load applies the mask). Under DP-SGD with secure aggregation the decoded sum
// carries decoding error there; the model still learns and reads back with exact zeros.
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
	for _, tc := range []struct {
		name      string
		secure    bool
		exactZero bool
	}{{"plaintext", false, true}, {"dp-secagg", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := small()
			c.Model = m.Spec
			if tc.secure {
				c = withDPAndSecAgg(c)
			}
			c.ResultsDir = t.TempDir()
			rep := run(t, c)
			if s := rep.Summary; s.FinalAccuracy == nil || *s.FinalAccuracy < 0.8 {
				t.Fatalf("final accuracy %v, want ≥ 0.8 with half the weights pruned", s.FinalAccuracy)
			}
			path := filepath.Join(c.ResultsDir, "model.confide")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The parameters are the last n float64 before the checksum.
			n := mask.Len()
			params := raw[len(raw)-32-8*n : len(raw)-32]
			worst := 0.0
			for i := range n {
				v := math.Float64frombits(binary.LittleEndian.Uint64(params[8*i:]))
				if mask.IsPruned(i) {
					worst = max(worst, math.Abs(v))
				}
			}
			t.Logf("largest pruned parameter of the global model: %g", worst)
			if tc.exactZero && worst != 0 {
				t.Fatalf("a pruned parameter of the global model is %v", worst)
			}
			if worst > 1e-2 {
				t.Fatalf("a pruned parameter of the global model drifted to %v", worst)
			}
			back, err := model.Load(path)
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
		})
	}
}
