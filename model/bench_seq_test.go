package model

import (
	"math/rand/v2"
	"testing"
)

// Shapes of ../shared/bench/pytorch_reference.py (benches lstm128 and tfm): an LSTM
// character model (embedding 8, hidden 128, vocab 80, T = 80, class from the last state) and
// a Transformer encoder classifier (2 layers, d 64, 4 heads, ff 128, vocab 100, T = 64, learned
// positions, post-norm, mean pooling, 10 classes); batch 32, SGD.
var (
	benchLSTMSpec = Spec{Type: TypeLSTM, Vocab: 80, Embed: 8, Hidden: []int{128}, Output: 80, Pooling: PoolLast}
	benchTfmSpec  = Spec{Type: TypeTransformer, Vocab: 100, Embed: 64, Layers: 2, Heads: 4, FF: 128, MaxLen: 64,
		Output: 10, Positional: PosLearned, Norm: NormPost, Pooling: PoolMean}
)

func benchSeq(b *testing.B, spec Spec, batch, T int) (*Model, *Input, Targets) {
	m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	in := &Input{Tokens: make([]int32, batch*T), B: batch, T: T}
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(spec.Vocab))
	}
	tg := Targets{Class: make([]int32, batch)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(spec.Output))
	}
	return m, in, tg
}

func benchTrainStep(b *testing.B, spec Spec, T int, p Precision) {
	m, in, tg := benchSeq(b, spec, 32, T)
	setPrecision(b, m, p)
	runTrainSteps(b, m, in, tg, 0.05)
}

func benchGhostStep(b *testing.B, spec Spec, T int, p Precision) {
	m, in, tg := benchSeq(b, spec, 32, T)
	setPrecision(b, m, p)
	runGhostSteps(b, m, in, tg, 0.05)
}

// BenchmarkTrainStepLSTM is one SGD step of pytorch_reference.py's lstm128.
func BenchmarkTrainStepLSTM(b *testing.B) { benchTrainStep(b, benchLSTMSpec, 80, Float64) }

// BenchmarkTrainStepLSTMFloat32 is BenchmarkTrainStepLSTM with the layer math in float32.
func BenchmarkTrainStepLSTMFloat32(b *testing.B) { benchTrainStep(b, benchLSTMSpec, 80, Float32) }

// BenchmarkTrainStepTransformer is one SGD step of pytorch_reference.py's tfm.
func BenchmarkTrainStepTransformer(b *testing.B) { benchTrainStep(b, benchTfmSpec, 64, Float64) }

// BenchmarkTrainStepTransformerFloat32 is BenchmarkTrainStepTransformer in float32.
func BenchmarkTrainStepTransformerFloat32(b *testing.B) {
	benchTrainStep(b, benchTfmSpec, 64, Float32)
}

// BenchmarkGhostStepLSTM is the per-example part of a DP-SGD step (ghost norms, weighted sum).
func BenchmarkGhostStepLSTM(b *testing.B) { benchGhostStep(b, benchLSTMSpec, 80, Float64) }

// BenchmarkGhostStepLSTMFloat32 is BenchmarkGhostStepLSTM in float32.
func BenchmarkGhostStepLSTMFloat32(b *testing.B) { benchGhostStep(b, benchLSTMSpec, 80, Float32) }

// BenchmarkGhostStepTransformer is the per-example part of a DP-SGD step.
func BenchmarkGhostStepTransformer(b *testing.B) { benchGhostStep(b, benchTfmSpec, 64, Float64) }

// BenchmarkGhostStepTransformerFloat32 is BenchmarkGhostStepTransformer in float32.
func BenchmarkGhostStepTransformerFloat32(b *testing.B) {
	benchGhostStep(b, benchTfmSpec, 64, Float32)
}
