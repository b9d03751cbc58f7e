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

// TestGradientsSumClipProjects: Release projects the clipped sum onto the ball of radius
// SumClip before the noise, and leaves a sum inside it alone.
func TestGradientsSumClipProjects(t *testing.T) {
	for _, tc := range []struct {
		sumClip, want float64
	}{{0.5, 0.5}, {10, 3}, {0, 3}} {
		g, err := NewGradients(2, noNoise{}, Config{MaxGradNorm: 1, ExpectedBatch: 1, SumClip: tc.sumClip})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := g.Add([]float64{0, 5}); err != nil { // clipped to (0, 1)
				t.Fatal(err)
			}
		}
		dst := make([]float64, 2)
		if _, err := g.Release(dst); err != nil {
			t.Fatal(err)
		}
		if dst[0] != 0 || math.Abs(dst[1]-tc.want) > 1e-12 {
			t.Errorf("sum clip %v: released %v, want (0, %v)", tc.sumClip, dst, tc.want)
		}
	}
	if _, err := NewGradients(2, noNoise{}, Config{MaxGradNorm: 1, ExpectedBatch: 1, SumClip: -1}); err == nil {
		t.Error("a negative sum clip accepted")
	}
}

type noNoise struct{}

func (noNoise) AddGaussian([]float64, float64) {}
