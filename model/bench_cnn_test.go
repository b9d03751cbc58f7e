package model

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkTrainStepCNN measures one SGD step of the reference CNN; examples/s compares
// with `pytorch_reference.py cnn 2 float64`.
func BenchmarkTrainStepCNN(b *testing.B) { benchDenseSteps(b, referenceCNN(), Float64, runTrainSteps) }

// BenchmarkTrainStepCNNFloat32 is BenchmarkTrainStepCNN with the layer math in float32.
func BenchmarkTrainStepCNNFloat32(b *testing.B) {
	benchDenseSteps(b, referenceCNN(), Float32, runTrainSteps)
}

// BenchmarkGhostStepCNN measures the per-example part of a DP-SGD step of the reference
// CNN: per-example norms (formed for the first convolution, Gram form for the second) and
// the weighted gradient sum.
func BenchmarkGhostStepCNN(b *testing.B) { benchDenseSteps(b, referenceCNN(), Float64, runGhostSteps) }

// BenchmarkGhostStepCNNFloat32 is BenchmarkGhostStepCNN with the layer math in float32.
func BenchmarkGhostStepCNNFloat32(b *testing.B) {
	benchDenseSteps(b, referenceCNN(), Float32, runGhostSteps)
}

// BenchmarkConv2D times the reference CNN's convolutions alone, batch 64: forward (unfold
// and multiply), backward (weight gradient, and for the second the input gradient and
// col2im), and the per-example norms with the weighted sum.
func BenchmarkConv2D(b *testing.B) {
	const B = 64
	for _, tc := range []struct {
		name      string
		conv      *Conv2D
		needInput bool
	}{
		{"conv1_28x28x1_k8s2p3_f16", NewConv2D(28, 28, 1, 16, 8, 2, 3, 1, InitHe), false},
		{"conv2_13x13x16_k4s2_f32", NewConv2D(13, 13, 16, 32, 4, 2, 0, 1, InitHe), true},
	} {
		c := tc.conv
		rng := rand.New(rand.NewPCG(3, 3))
		bindFresh(c, rng)
		x := randTensor(rng, B*c.InH*c.InW, c.InC)
		dy := randTensor(rng, B*c.OutH*c.OutW, c.Filters)
		batch := &Batch{B: B, T: 1}
		b.Run(tc.name+"/forward", func(b *testing.B) {
			for range b.N {
				c.Forward(x, batch)
			}
		})
		b.Run(tc.name+"/backward", func(b *testing.B) {
			c.Forward(x, batch)
			for range b.N {
				c.Backward(dy, batch, tc.needInput)
			}
		})
		b.Run(tc.name+"/per_example", func(b *testing.B) {
			ghost := &Batch{B: B, T: 1, Ghost: true}
			c.Forward(x, ghost)
			c.Backward(dy, ghost, false)
			sq, w := make([]float64, B), make([]float64, B)
			for i := range w {
				w[i] = 1
			}
			for range b.N {
				clear(sq)
				c.AddPerExampleSqNorms(sq, ghost)
				c.AccumulateWeighted(w, ghost)
			}
		})
	}
}
