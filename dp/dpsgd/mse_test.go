package dpsgd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
)

// TestClippedSumMSEMatchesNaive checks DP-SGD with the MSE loss (regression): the
// noiseless clipped sum equals clipping each example's own gradient, computed by
// backprop of that example alone, and summing (Opacus' per-sample reference test).
func TestClippedSumMSEMatchesNaive(t *testing.T) {
	const B, D, K = 7, 4, 2
	for _, c := range []float64{0.05, 1, 100} {
		m, err := model.New(model.Spec{Type: model.TypeMLP, Input: D, Hidden: []int{5}, Output: K, Activation: "tanh", Loss: model.LossMSE}, rand.New(rand.NewPCG(5, 6)))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 8))
		in := &model.Input{X: make([]float64, B*D), B: B}
		for i := range in.X {
			in.X[i] = 2 * rng.NormFloat64()
		}
		tg := model.Targets{Value: make([]float64, B*K)}
		for i := range tg.Value {
			tg.Value[i] = 3 * rng.NormFloat64()
		}
		want := make([]float64, m.NumParams())
		for i := range B {
			m.ZeroGrads()
			one := &model.Input{X: in.X[i*D : (i+1)*D], B: 1}
			if _, _, err := m.Backprop(one, model.Targets{Value: tg.Value[i*K : (i+1)*K]}, 1, nil); err != nil {
				t.Fatal(err)
			}
			n := 0.0
			for _, g := range m.Grads {
				n += g * g
			}
			f := dp.ClipFactor(math.Sqrt(n), c)
			for j, g := range m.Grads {
				want[j] += f * g / B
			}
		}
		rec := &recordingOpt{}
		o, err := New(m, rec, seededNoise{rand.New(rand.NewPCG(1, 1))}, Config{NoiseMultiplier: 0, MaxGradNorm: c, ExpectedBatch: B})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Step(m, in, tg, nil); err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if math.Abs(rec.got[j]-want[j]) > 1e-10*(1+math.Abs(want[j])) {
				t.Fatalf("C = %v: gradient[%d] = %v, naive per-example clipping gives %v", c, j, rec.got[j], want[j])
			}
		}
	}
}
