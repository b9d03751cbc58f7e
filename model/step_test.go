package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// stepCase is a float32 MLP the size of a test, with a batch.
func stepCase(t *testing.T) (*Model, *Input, Targets) {
	t.Helper()
	m, in, tg := cnnInput(t, Spec{Type: TypeMLP, Input: 37, Hidden: []int{29, 13}, Output: 5}, 7)
	if err := m.SetPrecision(Float32); err != nil {
		t.Fatal(err)
	}
	return m, in, tg
}

// trainStep runs one training step of m on a batch: through the optimizer alone
// ("optimizer"), Model.Step ("Step") or Model.TrainStep ("TrainStep").
func trainStep(t *testing.T, m *Model, opt Optimizer, in *Input, tg Targets, via string) {
	t.Helper()
	if via == "TrainStep" {
		if _, _, err := m.TrainStep(in, tg, 1/float64(in.B), nil, opt); err != nil {
			t.Fatal(err)
		}
		return
	}
	m.ZeroGrads()
	if _, _, err := m.Backprop(in, tg, 1/float64(in.B), nil); err != nil {
		t.Fatal(err)
	}
	if via == "Step" {
		m.Step(opt)
	} else {
		opt.Step(m.Params, m.Grads)
	}
}

// sameOutput fails unless m's and want's outputs on in are equal bit for bit.
func sameOutput(t *testing.T, m, want *Model, in *Input) {
	t.Helper()
	got, err := m.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	g := append([]float64(nil), got.Data...)
	w, err := want.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Data {
		if math.Float64bits(g[i]) != math.Float64bits(w.Data[i]) {
			t.Fatalf("output %d = %v, want %v", i, g[i], w.Data[i])
		}
	}
}

// TestStepMatchesOptimizerStep checks that Model.Step, which rounds the updated parameters
// into the float32 network in the optimizer's pass, and Model.TrainStep, which with plain
// SGD also takes the float32 gradients into that pass, train a model exactly as the
// optimizer alone does (whose next pass rounds Params itself), for every optimizer, in
// both precisions; after Step, Grads, too, are as Backprop left them.
func TestStepMatchesOptimizerStep(t *testing.T) {
	for _, c := range []OptimizerConfig{
		{Name: "sgd", LR: 0.1},
		{Name: "sgd", LR: 0.1, WeightDecay: 0.01},
		{Name: "sgd", LR: 0.1, Momentum: 0.9},
		{Name: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true},
		{Name: "adam", LR: 0.01},
		{Name: "adamw", LR: 0.01, WeightDecay: 0.1},
	} {
		for _, p := range []Precision{Float32, Float64} {
			for _, via := range []string{"Step", "TrainStep"} {
				for name, build := range stepModels {
					t.Run(fmt.Sprintf("%s/%s/momentum%g/nesterov%v/wd%g/%v/%s", name, c.Name, c.Momentum, c.Nesterov, c.WeightDecay, p, via), func(t *testing.T) {
						testStepMatches(t, build, c, p, via)
					})
				}
			}
		}
	}
}

// stepModels are a network of Linear layers, whose gradients TrainStep leaves for the next
// backward pass to overwrite, and one with embedded columns, whose gradients it clears.
var stepModels = map[string]func(t *testing.T) (*Model, *Input, Targets){
	"mlp":                  stepCase,
	"mlp_embedded_columns": tableMLP,
}

func testStepMatches(t *testing.T, build func(t *testing.T) (*Model, *Input, Targets), c OptimizerConfig, p Precision, via string) {
	a, in, tg := build(t)
	if err := a.SetPrecision(p); err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	optA, _ := NewOptimizer(c)
	optB, _ := NewOptimizer(c)
	for range 3 {
		trainStep(t, a, optA, in, tg, via)
		trainStep(t, b, optB, in, tg, "optimizer")
		for i := range a.Params {
			if a.Params[i] != b.Params[i] || via == "Step" && a.Grads[i] != b.Grads[i] {
				t.Fatalf("param %d, grad %d = %v, %v, want %v, %v", i, i, a.Params[i], a.Grads[i], b.Params[i], b.Grads[i])
			}
		}
	}
	sameOutput(t, a, b, in)
}

// TestStepThenWrite checks that a change of Params through each of the Model's methods
// between Model.Step and the next pass is seen by that pass (the copy Step rounded is
// discarded), as it is by a clone that rounds Params afresh; and that a direct write after
// that pass is seen by the one after it.
func TestStepThenWrite(t *testing.T) {
	writes := map[string]func(t *testing.T, m *Model){
		"SetParams": func(t *testing.T, m *Model) {
			p := append([]float64(nil), m.Params...)
			for i := range p {
				p[i] *= 1.5
			}
			if err := m.SetParams(p); err != nil {
				t.Fatal(err)
			}
		},
		"Prune": func(t *testing.T, m *Model) {
			if err := m.Prune(0.5, PruneGlobal); err != nil {
				t.Fatal(err)
			}
		},
		"ApplyMask": func(t *testing.T, m *Model) {
			m.Spec.Mask = NewMask(len(m.Params), func(i int) bool { return i%3 == 0 })
			m.ApplyMask()
		},
		"Quantize": func(t *testing.T, m *Model) {
			if err := m.Quantize(QuantizeOptions{}); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, write := range writes {
		for _, via := range []string{"Step", "TrainStep"} {
			t.Run(name+"/"+via, func(t *testing.T) { testStepThenWrite(t, write, via) })
		}
	}
	t.Run("direct_write_after_a_pass", func(t *testing.T) {
		m, in, tg := stepCase(t)
		opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1})
		trainStep(t, m, opt, in, tg, "TrainStep")
		if _, err := m.Forward(in); err != nil {
			t.Fatal(err)
		}
		for i := range m.Params {
			m.Params[i] = -m.Params[i]
		}
		sameOutput(t, m, m.Clone(), in)
	})
}

func testStepThenWrite(t *testing.T, write func(*testing.T, *Model), via string) {
	m, in, tg := stepCase(t)
	opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1})
	trainStep(t, m, opt, in, tg, via)
	before, _, err := m.Evaluate(in, tg)
	if err != nil {
		t.Fatal(err)
	}
	trainStep(t, m, opt, in, tg, via)
	write(t, m)
	got, _, err := m.Evaluate(in, tg) // the float32 network, or the int8 kernels once quantised
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := m.Clone().Evaluate(in, tg)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got == before {
		t.Fatalf("loss after the write %v, a clone's %v (before the step and write %v)", got, want, before)
	}
}

// TestGradientsAfterTrainStep checks that the gradients TrainStep leaves in a float32
// network (a Linear network's, to be overwritten, or cleared) do not leak into the
// gradients of the passes after it: Backprop, and the ghost passes of DP-SGD, give a model
// that took a TrainStep the gradients its clone, which never did, gets.
func TestGradientsAfterTrainStep(t *testing.T) {
	for name, build := range stepModels {
		for _, pass := range []string{"Backprop", "AccumulateWeighted"} {
			t.Run(name+"/"+pass, func(t *testing.T) {
				m, in, tg := build(t)
				if err := m.SetPrecision(Float32); err != nil {
					t.Fatal(err)
				}
				opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1})
				trainStep(t, m, opt, in, tg, "TrainStep")
				c := m.Clone()
				for _, x := range []*Model{m, c} {
					x.ZeroGrads()
					if pass == "Backprop" {
						if _, _, err := x.Backprop(in, tg, 1, nil); err != nil {
							t.Fatal(err)
						}
						continue
					}
					norms := make([]float64, in.B)
					if _, _, err := x.PerExampleNorms(in, tg, nil, norms); err != nil {
						t.Fatal(err)
					}
					if err := x.AccumulateWeighted(norms); err != nil {
						t.Fatal(err)
					}
				}
				for i := range m.Grads {
					if math.Float64bits(m.Grads[i]) != math.Float64bits(c.Grads[i]) {
						t.Fatalf("grad %d = %v, the clone's %v", i, m.Grads[i], c.Grads[i])
					}
				}
			})
		}
	}
}

// AccumulateWeightedStep (DP-SGD's step, its noise added in the update's pass) leaves the
// Params, and the next pass's outputs, of clearing Grads, AccumulateWeighted, adding std·z
// and Step, for every optimizer in both precisions, and zeroes z.
func TestAccumulateWeightedStepMatches(t *testing.T) {
	for _, prec := range []Precision{Float32, Float64} {
		for _, c := range []OptimizerConfig{
			{Name: "sgd", LR: 0.1},
			{Name: "sgd", LR: 0.1, WeightDecay: 0.01},
			{Name: "sgd", LR: 0.1, Momentum: 0.9},
			{Name: "adam", LR: 0.01},
		} {
			t.Run(fmt.Sprintf("%v/%s/momentum%g/wd%g", prec, c.Name, c.Momentum, c.WeightDecay), func(t *testing.T) {
				a, in, tg := stepCase(t)
				if err := a.SetPrecision(prec); err != nil {
					t.Fatal(err)
				}
				b := a.Clone()
				optA, _ := NewOptimizer(c)
				optB, _ := NewOptimizer(c)
				rng := rand.New(rand.NewPCG(8, 9))
				norms := make([]float64, in.B)
				w := make([]float64, in.B)
				for step := range 3 {
					z := make([]float64, len(a.Params))
					for i := range z {
						z[i] = rng.NormFloat64()
					}
					for i := range w {
						w[i] = 0.1 + 0.05*float64(i%3)
					}
					const std = 0.03
					for _, m := range []*Model{a, b} {
						if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
							t.Fatal(err)
						}
					}
					zb := slices.Clone(z)
					if err := a.AccumulateWeightedStep(w, optA, std, z); err != nil {
						t.Fatal(err)
					}
					if slices.ContainsFunc(z, func(v float64) bool { return v != 0 }) {
						t.Fatalf("step %d: z not zeroed", step)
					}
					b.ZeroGrads()
					if err := b.AccumulateWeighted(w); err != nil {
						t.Fatal(err)
					}
					for i, v := range zb {
						b.Grads[i] += std * v
					}
					b.Step(optB)
					for i := range a.Params {
						if math.Float64bits(a.Params[i]) != math.Float64bits(b.Params[i]) {
							t.Fatalf("step %d: param %d = %v, want %v", step, i, a.Params[i], b.Params[i])
						}
					}
				}
				sameOutput(t, a, b, in)
			})
		}
	}
}
