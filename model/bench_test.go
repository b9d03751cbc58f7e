package model

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchMLP returns the reference MLP 784-256-128-10 and a synthetic batch.
func benchMLP(b *testing.B, batch int) (*Model, *Input, Targets) {
	spec := Spec{Type: TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}
	m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	in := &Input{X: make([]float64, batch*784), B: batch}
	for i := range in.X {
		in.X[i] = rng.Float64()
	}
	tg := Targets{Class: make([]int32, batch)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(10))
	}
	return m, in, tg
}

// BenchmarkTrainStepMLP measures one SGD step (forward, backward, update) of the reference
// MLP, the shape pytorch_reference.py uses; examples/s is the number to compare.
func BenchmarkTrainStepMLP(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			m, in, tg := benchMLP(b, batch)
			opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.01})
			b.ReportAllocs()
			for i := -1; i < b.N; i++ { // step −1 sizes the layers' buffers, untimed
				if i == 0 {
					b.ResetTimer()
				}
				m.ZeroGrads()
				if _, _, err := m.Backprop(in, tg, 1/float64(batch), nil); err != nil {
					b.Fatal(err)
				}
				opt.Step(m.Params, m.Grads)
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}

// BenchmarkGhostStepMLP measures the per-example part of a DP-SGD step: ghost norms plus the
// weighted gradient sum (noise and the update are the dp package's).
func BenchmarkGhostStepMLP(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			m, in, tg := benchMLP(b, batch)
			norms := make([]float64, batch)
			w := make([]float64, batch)
			opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.01})
			b.ReportAllocs()
			for i := -1; i < b.N; i++ { // step −1 sizes the layers' buffers, untimed
				if i == 0 {
					b.ResetTimer()
				}
				if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
					b.Fatal(err)
				}
				for k, n := range norms {
					w[k] = min(1, 1/n) / float64(batch)
				}
				m.ZeroGrads()
				if err := m.AccumulateWeighted(w); err != nil {
					b.Fatal(err)
				}
				opt.Step(m.Params, m.Grads)
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "examples/s")
		})
	}
}
