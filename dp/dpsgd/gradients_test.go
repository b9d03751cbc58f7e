package dpsgd

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGradientsMatchesOptimizer checks the materialised path against the ghost one: the
// same model's per-example gradients (one-example backprop) fed to Gradients give, with the
// same noise stream, Optimizer.Step's private gradient.
func TestGradientsMatchesOptimizer(t *testing.T) {
	for _, sigma := range []float64{0, 1.3} {
		m, in, tg := smallModel(t)
		cfg := Config{NoiseMultiplier: sigma, MaxGradNorm: 0.5, ExpectedBatch: 4}
		rec := &recordingOpt{}
		o, err := New(m, rec, seededNoise{rand.New(rand.NewPCG(9, 9))}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Step(m, in, tg, nil); err != nil {
			t.Fatal(err)
		}
		g, err := NewGradients(m.NumParams(), seededNoise{rand.New(rand.NewPCG(9, 9))}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range in.B {
			exampleGrad(t, m, in, tg, i)
			if err := g.Add(m.Grads); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]float64, m.NumParams())
		st, err := g.Release(got)
		if err != nil {
			t.Fatal(err)
		}
		if st.Batch != in.B || st.Clipped == 0 {
			t.Errorf("σ = %v: stats %+v, want batch %d with clipped examples (C = 0.5)", sigma, st, in.B)
		}
		for j := range got {
			if math.Abs(got[j]-rec.got[j]) > 1e-10 {
				t.Fatalf("σ = %v: gradient[%d] = %v, Optimizer.Step gives %v", sigma, j, got[j], rec.got[j])
			}
		}
		// The next batch starts empty: noise only.
		if st, _ := g.Release(got); st.Batch != 0 {
			t.Errorf("batch after Release: %d examples, want 0", st.Batch)
		}
	}
	if _, err := NewGradients(3, seededNoise{}, Config{MaxGradNorm: 1, ExpectedBatch: 1, Clipping: ClipPerLayer}); err == nil {
		t.Error("per-layer clipping of materialised gradients was accepted")
	}
}
