package train

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
)

// TestDistributedNoiseStep: with NoiseShares m the one DP-SGD step adds noise of
// multiplier σ/√m, divided by ExpectedBatch instead of the local expected batch; the clipped
// sum is projected onto the ball of radius SumClip; the step is recorded at σ with shares m.
func TestDistributedNoiseStep(t *testing.T) {
	const sigma, shares, divisor, lr = 8.0, 16, 50.0, 1.0
	ds := blobs(40, 9)
	spec := model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{400}, Output: 3, Activation: "tanh"} // 2,403 parameters
	step := func(noise float64, sumClip float64, seed uint64) (delta []float64, steps []accountant.Step) {
		t.Helper()
		m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		global := append([]float64(nil), m.Params...)
		tr, err := New(m, Config{Epochs: 1, BatchSize: 40, Optimizer: model.OptimizerConfig{LR: lr}, Seed: 3,
			DP: &DPConfig{NoiseMultiplier: noise, MaxGradNorm: 1, SampleRate: 1, Steps: 1, NoiseShares: shares, ExpectedBatch: divisor, SumClip: sumClip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.EnableDP(seededNoise{rand.New(rand.NewPCG(seed, seed))}, rand.New(rand.NewPCG(6, 6))); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Epoch(context.Background(), ds, nil); err != nil {
			t.Fatal(err)
		}
		delta = make([]float64, len(global))
		for i := range delta {
			delta[i] = m.Params[i] - global[i]
		}
		return delta, tr.DPSteps()
	}
	// Same data and sampling, two noise draws: their difference is √2 times one draw.
	a, steps := step(sigma, 0, 1)
	b, _ := step(sigma, 0, 2)
	var ss float64
	for i := range a {
		d := a[i] - b[i]
		ss += d * d
	}
	want := lr * sigma / math.Sqrt(shares) / divisor * math.Sqrt2
	if got := math.Sqrt(ss / float64(len(a))); math.Abs(got-want)/want > 0.05 {
		t.Errorf("noise std of the difference %.5g, want √2·lr·σ/√m·C/divisor = %.5g (±5%%)", got, want)
	}
	if len(steps) != 1 || steps[0] != (accountant.Step{NoiseMultiplier: sigma, SampleRate: 1, Steps: 1, Shares: shares}) {
		t.Errorf("recorded %+v, want one step at σ %v with shares %d", steps, sigma, shares)
	}
	// Without noise to speak of, the projection bounds the step by lr·SumClip/divisor.
	free, _ := step(1e-12, 0, 1)
	clipped, _ := step(1e-12, 0.5, 1)
	norm := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x * x
		}
		return math.Sqrt(s)
	}
	if nf, nc := norm(free), norm(clipped); !(nf > lr*0.5/divisor*1.5) || math.Abs(nc-lr*0.5/divisor) > 1e-9 {
		t.Errorf("step norms %.5g without and %.5g with the sum clip 0.5: want the first above and the second at lr·0.5/divisor = %.5g", nf, nc, lr*0.5/divisor)
	}
}
