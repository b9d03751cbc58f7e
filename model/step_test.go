package model

import (
	"fmt"
	"math"
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

// trainStep runs one training step of m on a batch, through Model.Step or, when !viaModel,
// through the optimizer alone.
func trainStep(t *testing.T, m *Model, opt Optimizer, in *Input, tg Targets, viaModel bool) {
	t.Helper()
	m.ZeroGrads()
	if _, _, err := m.Backprop(in, tg, 1/float64(in.B), nil); err != nil {
		t.Fatal(err)
	}
	if viaModel {
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
// into the float32 network in the optimizer's pass, trains a Float32 model exactly as the
// optimizer alone does (whose next pass rounds Params itself), for every optimizer.
func TestStepMatchesOptimizerStep(t *testing.T) {
	for _, c := range []OptimizerConfig{
		{Name: "sgd", LR: 0.1},
		{Name: "sgd", LR: 0.1, WeightDecay: 0.01},
		{Name: "sgd", LR: 0.1, Momentum: 0.9},
		{Name: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true},
		{Name: "adam", LR: 0.01},
		{Name: "adamw", LR: 0.01, WeightDecay: 0.1},
	} {
		t.Run(fmt.Sprintf("%s/momentum%g/nesterov%v/wd%g", c.Name, c.Momentum, c.Nesterov, c.WeightDecay), func(t *testing.T) {
			a, in, tg := stepCase(t)
			b := a.Clone()
			optA, _ := NewOptimizer(c)
			optB, _ := NewOptimizer(c)
			for range 3 {
				trainStep(t, a, optA, in, tg, true)
				trainStep(t, b, optB, in, tg, false)
			}
			for i := range a.Params {
				if a.Params[i] != b.Params[i] {
					t.Fatalf("param %d = %v, want %v", i, a.Params[i], b.Params[i])
				}
			}
			sameOutput(t, a, b, in)
		})
	}
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
		t.Run(name, func(t *testing.T) {
			m, in, tg := stepCase(t)
			opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1})
			trainStep(t, m, opt, in, tg, true)
			before, _, err := m.Evaluate(in, tg)
			if err != nil {
				t.Fatal(err)
			}
			trainStep(t, m, opt, in, tg, true)
			write(t, m)
			got, _, err := m.Evaluate(in, tg) // a float32 pass, even for an int8 model
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
		})
	}
	t.Run("direct_write_after_a_pass", func(t *testing.T) {
		m, in, tg := stepCase(t)
		opt, _ := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.1})
		trainStep(t, m, opt, in, tg, true)
		if _, err := m.Forward(in); err != nil {
			t.Fatal(err)
		}
		for i := range m.Params {
			m.Params[i] = -m.Params[i]
		}
		sameOutput(t, m, m.Clone(), in)
	})
}
