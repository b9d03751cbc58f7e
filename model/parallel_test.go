package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/internal/linalg"
)

// TestParallelMatchesSerial trains the same models with linalg.Workers = 1 and 3 and
// requires bit-identical parameters and per-example norms: every parallel split in model
// and linalg partitions independent outputs (rows, columns, examples, heads, elements),
// never the terms of one sum, so the number of workers must not change any rounding. The
// shapes are large enough that the multiplies and loops do split.
func TestParallelMatchesSerial(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		T    int
	}{
		{"mlp", Spec{Type: TypeMLP, Input: 200, Hidden: []int{256, 64}, Output: 10}, 0},
		{"lstm", Spec{Type: TypeLSTM, Vocab: 20, Embed: 8, Hidden: []int{64}, Output: 5, Pooling: PoolLast}, 24},
		{"gru", Spec{Type: TypeGRU, Vocab: 20, Embed: 8, Hidden: []int{64}, Output: 5, Pooling: PoolLast}, 24},
		{"transformer", Spec{Type: TypeTransformer, Vocab: 20, Embed: 64, Layers: 1, Heads: 4, FF: 128, MaxLen: 32,
			Output: 5, Positional: PosLearned, Norm: NormPost, Pooling: PoolMean}, 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			serial := trainForParallelTest(t, c.spec, c.T, 1)
			parallel := trainForParallelTest(t, c.spec, c.T, 3)
			for i := range serial {
				if math.Float64bits(serial[i]) != math.Float64bits(parallel[i]) {
					t.Fatalf("value %d of %d: %v with 1 worker, %v with 3", i, len(serial), serial[i], parallel[i])
				}
			}
		})
	}
}

// trainForParallelTest runs two SGD steps and one ghost (DP) step with the given number of
// linalg workers and returns the parameters followed by the ghost step's norms.
func trainForParallelTest(t *testing.T, spec Spec, T, workers int) []float64 {
	t.Helper()
	old := linalg.Workers
	linalg.Workers = workers
	defer func() { linalg.Workers = old }()
	const batch = 16
	m, err := New(spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	in := &Input{B: batch, T: T}
	if T == 0 {
		in.X = make([]float64, batch*spec.Input)
		for i := range in.X {
			in.X[i] = rng.NormFloat64()
		}
	} else {
		in.Tokens = make([]int32, batch*T)
		for i := range in.Tokens {
			in.Tokens[i] = int32(rng.IntN(spec.Vocab))
		}
		in.Lengths = make([]int32, batch)
		for i := range in.Lengths {
			in.Lengths[i] = int32(T - i%5) // some padded, to cover the masked paths
		}
	}
	tg := Targets{Class: make([]int32, batch)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(spec.Output))
	}
	opt, err := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.05, Momentum: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 2; step++ {
		m.ZeroGrads()
		if _, _, err := m.Backprop(in, tg, 1/float64(batch), nil); err != nil {
			t.Fatal(fmt.Errorf("step %d: %w", step, err))
		}
		opt.Step(m.Params, m.Grads)
	}
	norms := make([]float64, batch)
	if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
		t.Fatal(err)
	}
	w := make([]float64, batch)
	for i, n := range norms {
		w[i] = min(1, 1/n)
	}
	m.ZeroGrads()
	if err := m.AccumulateWeighted(w); err != nil {
		t.Fatal(err)
	}
	opt.Step(m.Params, m.Grads)
	return append(append([]float64(nil), m.Params...), norms...)
}
