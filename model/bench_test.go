package model

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchMLPSpec is the reference MLP 784-256-128-10.
var benchMLPSpec = Spec{Type: TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}

// benchDense returns the model of a dense spec and a batch of uniform random inputs and
// classes.
func benchDense(b *testing.B, spec Spec, batch int) (*Model, *Input, Targets) {
	m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	in := &Input{X: make([]float64, batch*m.Spec.Input), B: batch}
	for i := range in.X {
		in.X[i] = rng.Float64()
	}
	tg := Targets{Class: make([]int32, batch)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(m.Spec.Output))
	}
	return m, in, tg
}

// BenchmarkTrainStepMLP measures one SGD step (forward, backward, update) of the reference
// MLP, the shape pytorch_reference.py uses; examples/s is the number to compare.
func BenchmarkTrainStepMLP(b *testing.B) { benchDenseSteps(b, benchMLPSpec, Float64, runTrainSteps) }

// BenchmarkTrainStepMLPFloat32 is BenchmarkTrainStepMLP with the layer math in float32.
func BenchmarkTrainStepMLPFloat32(b *testing.B) {
	benchDenseSteps(b, benchMLPSpec, Float32, runTrainSteps)
}

// BenchmarkGhostStepMLP measures the per-example part of a DP-SGD step: ghost norms plus the
// weighted gradient sum (noise and the update are the dp package's).
func BenchmarkGhostStepMLP(b *testing.B) { benchDenseSteps(b, benchMLPSpec, Float64, runGhostSteps) }

// BenchmarkGhostStepMLPFloat32 is BenchmarkGhostStepMLP with the layer math in float32.
func BenchmarkGhostStepMLPFloat32(b *testing.B) {
	benchDenseSteps(b, benchMLPSpec, Float32, runGhostSteps)
}

// benchDenseSteps times steps of the model of a dense spec in precision p at batches 64
// and 256.
func benchDenseSteps(b *testing.B, spec Spec, p Precision, steps func(*testing.B, *Model, *Input, Targets, float64)) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			m, in, tg := benchDense(b, spec, batch)
			setPrecision(b, m, p)
			steps(b, m, in, tg, 0.01)
		})
	}
}

// setPrecision sets m's precision or fails the benchmark.
func setPrecision(b *testing.B, m *Model, p Precision) {
	if err := m.SetPrecision(p); err != nil {
		b.Fatal(err)
	}
}

// runTrainSteps times SGD steps (forward, backward, update) of m on one batch and reports
// examples/s.
func runTrainSteps(b *testing.B, m *Model, in *Input, tg Targets, lr float64) {
	opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: lr})
	b.ReportAllocs()
	for i := -1; i < b.N; i++ { // step −1 sizes the layers' buffers, untimed
		if i == 0 {
			b.ResetTimer()
		}
		if _, _, err := m.TrainStep(in, tg, 1/float64(in.B), nil, opt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(in.B*b.N)/b.Elapsed().Seconds(), "examples/s")
}

// runGhostSteps times the per-example part of DP-SGD steps of m on one batch (per-example
// norms, clip weights, the weighted sum, the update; not the noise) and reports examples/s.
func runGhostSteps(b *testing.B, m *Model, in *Input, tg Targets, lr float64) {
	norms := make([]float64, in.B)
	w := make([]float64, in.B)
	opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: lr})
	b.ReportAllocs()
	for i := -1; i < b.N; i++ { // step −1 sizes the layers' buffers, untimed
		if i == 0 {
			b.ResetTimer()
		}
		if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
			b.Fatal(err)
		}
		for k, n := range norms {
			w[k] = min(1, 1/n) / float64(in.B)
		}
		m.ZeroGrads()
		if err := m.AccumulateWeighted(w); err != nil {
			b.Fatal(err)
		}
		m.Step(opt)
	}
	b.ReportMetric(float64(in.B*b.N)/b.Elapsed().Seconds(), "examples/s")
}
