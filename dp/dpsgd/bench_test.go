package dpsgd

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
)

// BenchmarkStepMLP times a whole DP-SGD step (ghost norms, clipped sum, production noise,
// update) of the reference MLP 784-256-128-10 next to a plain SGD step on the same batch, in
// float64 and in float32: the DP/non-DP ratio of examples/s is the number the DP issue's
// acceptance names (≥ 0.8× at batch 256).
func BenchmarkStepMLP(b *testing.B) {
	for _, prec := range []model.Precision{model.Float64, model.Float32} {
		for _, batch := range []int{64, 256, 1024} {
			for _, useDP := range []bool{false, true} {
				name := fmt.Sprintf("%s/batch%d/sgd", prec, batch)
				if useDP {
					name = fmt.Sprintf("%s/batch%d/dp", prec, batch)
				}
				b.Run(name, func(b *testing.B) {
					m, err := model.New(model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}, rand.New(rand.NewPCG(1, 1)))
					if err != nil {
						b.Fatal(err)
					}
					if err := m.SetPrecision(prec); err != nil {
						b.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(2, 2))
					in := &model.Input{X: make([]float64, batch*784), B: batch}
					for i := range in.X {
						in.X[i] = rng.Float64()
					}
					tg := model.Targets{Class: make([]int32, batch)}
					for i := range tg.Class {
						tg.Class[i] = int32(rng.IntN(10))
					}
					base, err := model.NewOptimizer(model.OptimizerConfig{Name: "sgd", LR: 0.01})
					if err != nil {
						b.Fatal(err)
					}
					noise, err := dp.NewSecureNoise()
					if err != nil {
						b.Fatal(err)
					}
					o, err := New(m, base, noise, Config{NoiseMultiplier: 1, MaxGradNorm: 1, ExpectedBatch: float64(batch)})
					if err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for i := -1; i < b.N; i++ { // step −1 sizes the buffers, untimed
						if i == 0 {
							b.ResetTimer()
						}
						if useDP {
							if _, err := o.Step(m, in, tg, nil); err != nil {
								b.Fatal(err)
							}
							continue
						}
						if _, _, err := m.TrainStep(in, tg, 1/float64(batch), nil, base); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "examples/s")
				})
			}
		}
	}
}
