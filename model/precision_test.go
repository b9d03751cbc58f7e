package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// precisionCases are models of every type the package builds, each with a batch: the tiny
// models of the other tests (padded sequences, every CNN block option, embedded columns, a
// feature stage) and the benchmarks' shapes at a small batch, where float32 rounding
// accumulates over realistic widths. cnnInput serves any dense spec.
func precisionCases() map[string]func(t *testing.T) (*Model, *Input, Targets) {
	cases := map[string]func(t *testing.T) (*Model, *Input, Targets){
		"mlp_embedded_columns": tableMLP,
		"mlp_scattering":       featureModel,
		"mlp_784_256_128_10": func(t *testing.T) (*Model, *Input, Targets) {
			return cnnInput(t, Spec{Type: TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}, 16)
		},
		"mlp_dropout_gelu": func(t *testing.T) (*Model, *Input, Targets) {
			return cnnInput(t, Spec{Type: TypeMLP, Input: 20, Hidden: []int{32, 16}, Output: 4, Activation: ActGELU, Dropout: 0.2}, 12)
		},
		"mlp_sigmoid_mse": func(t *testing.T) (*Model, *Input, Targets) {
			return cnnInput(t, Spec{Type: TypeMLP, Input: 9, Hidden: []int{12}, Output: 2, Activation: ActSigmoid, Loss: LossMSE}, 10)
		},
		"cnn_reference":           func(t *testing.T) (*Model, *Input, Targets) { return cnnInput(t, referenceCNN(), 6) },
		"lstm_bench_shape":        func(t *testing.T) (*Model, *Input, Targets) { return seqCase(t, benchLSTMSpec, 8, 20) },
		"transformer_bench_shape": func(t *testing.T) (*Model, *Input, Targets) { return seqCase(t, benchTfmSpec, 8, 16) },
	}
	for name, spec := range seqSpecs {
		cases[name] = func(t *testing.T) (*Model, *Input, Targets) { return seqInput(t, spec) }
	}
	for name, spec := range cnnSpecs {
		cases["cnn_"+name] = func(t *testing.T) (*Model, *Input, Targets) { return cnnInput(t, spec, 5) }
	}
	return cases
}

// seqCase is a model of a sequence spec with B sequences of T tokens, every other one
// padded after T/2 + i%3 positions, and a class per example.
func seqCase(t *testing.T, spec Spec, B, T int) (*Model, *Input, Targets) {
	t.Helper()
	m, err := New(spec, rand.New(rand.NewPCG(8, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 2))
	in := &Input{Tokens: make([]int32, B*T), Lengths: make([]int32, B), B: B, T: T}
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(spec.Vocab))
	}
	for i := range in.Lengths {
		in.Lengths[i] = int32(T)
		if i%2 == 1 {
			in.Lengths[i] = int32(T/2 + i%3)
		}
	}
	tg := Targets{Class: make([]int32, B)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(spec.Output))
	}
	return m, in, tg
}

// relDiff is ‖a − b‖/‖b‖ (‖a − b‖ when b is zero).
func relDiff(a, b []float64) float64 {
	var d, n float64
	for i := range b {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// maxRelDiff is max_i |a_i − b_i|/|b_i| over the b_i ≠ 0 (|a_i| where b_i = 0).
func maxRelDiff(a, b []float64) float64 {
	m := 0.0
	for i := range b {
		d := math.Abs(a[i] - b[i])
		if b[i] != 0 {
			d /= math.Abs(b[i])
		}
		m = max(m, d)
	}
	return m
}

// TestFloat32AgreesWithFloat64: the float32 network of every model type, run from the same
// parameters, gives the float64 network's loss to 1e-5, its gradient (Backprop), per-example
// norms (whole and per layer) and weighted per-example sums to 1e-3, relative. Tolerances
// from the issue (issue 20 item 1); float32's unit roundoff is 6e-8.
func TestFloat32AgreesWithFloat64(t *testing.T) {
	for name, build := range precisionCases() {
		t.Run(name, func(t *testing.T) {
			m64, in, tg := build(t)
			for i := range m64.Params { // away from initial zeros and ones (biases, norm gains)
				m64.Params[i] += 0.01 * math.Sin(float64(i))
			}
			m32 := m64.Clone()
			if err := m32.SetPrecision(Float32); err != nil {
				t.Fatal(err)
			}
			check := func(what string, got, tol float64) {
				t.Helper()
				t.Logf("%s: %.2g", what, got)
				if !(got <= tol) {
					t.Errorf("%s differs by %.3g relative, want ≤ %g", what, got, tol)
				}
			}
			l64, st64, err := m64.Evaluate(in, tg)
			if err != nil {
				t.Fatal(err)
			}
			l32, st32, err := m32.Evaluate(in, tg)
			if err != nil {
				t.Fatal(err)
			}
			check("loss", math.Abs(l32-l64)/math.Abs(l64), 1e-5)
			if st32.Count != st64.Count {
				t.Errorf("stats count %d, float64 %d", st32.Count, st64.Count)
			}

			scale := 1 / float64(in.B)
			for _, m := range []*Model{m64, m32} {
				m.ZeroGrads()
				// Dropout draws the same masks from the same seed in both precisions.
				if _, _, err := m.Backprop(in, tg, scale, rand.New(rand.NewPCG(9, 9))); err != nil {
					t.Fatal(err)
				}
			}
			check("Backprop gradient", relDiff(m32.Grads, m64.Grads), 1e-3)

			// Accumulate semantics: a second Backprop adds to Grads in float32 too.
			g64 := append([]float64(nil), m64.Grads...)
			if _, _, err := m32.Backprop(in, tg, scale, rand.New(rand.NewPCG(9, 9))); err != nil {
				t.Fatal(err)
			}
			for i := range g64 {
				g64[i] *= 2
			}
			check("two Backprops", relDiff(m32.Grads, g64), 1e-3)

			n64, n32 := make([]float64, in.B), make([]float64, in.B)
			if _, _, err := m64.PerExampleNorms(in, tg, nil, n64); err != nil {
				t.Fatal(err)
			}
			if _, _, err := m32.PerExampleNorms(in, tg, nil, n32); err != nil {
				t.Fatal(err)
			}
			check("per-example norms", maxRelDiff(n32, n64), 1e-3)
			w := make([]float64, in.B)
			for i, n := range n64 {
				w[i] = min(1, 0.5/n) / float64(in.B) // clip to half the median-ish norm
			}
			for _, m := range []*Model{m64, m32} {
				m.ZeroGrads()
				if err := m.AccumulateWeighted(w); err != nil {
					t.Fatal(err)
				}
			}
			check("AccumulateWeighted", relDiff(m32.Grads, m64.Grads), 1e-3)

			groups := len(m64.ParamLayerSizes())
			rows := func() [][]float64 {
				r := make([][]float64, groups)
				for l := range r {
					r[l] = make([]float64, in.B)
				}
				return r
			}
			ln64, ln32 := rows(), rows()
			if _, _, err := m64.PerExampleLayerNorms(in, tg, nil, ln64); err != nil {
				t.Fatal(err)
			}
			if _, _, err := m32.PerExampleLayerNorms(in, tg, nil, ln32); err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			lw := rows()
			for l := range ln64 {
				worst = max(worst, maxRelDiff(ln32[l], ln64[l]))
				for i, n := range ln64[l] {
					lw[l][i] = min(1, 0.3/n) / float64(in.B)
				}
			}
			check("per-layer norms", worst, 1e-3)
			for _, m := range []*Model{m64, m32} {
				m.ZeroGrads()
				if err := m.AccumulateWeightedPerLayer(lw); err != nil {
					t.Fatal(err)
				}
			}
			check("AccumulateWeightedPerLayer", relDiff(m32.Grads, m64.Grads), 1e-3)
		})
	}
}

// TestFloat32SGDDescends: a few SGD steps in float32 reduce the loss as float64 steps do.
func TestFloat32SGDDescends(t *testing.T) {
	cases := precisionCases()
	for _, name := range []string{"mlp_784_256_128_10", "mlp_embedded_columns", "cnn_reference", "lstm_bench_shape", "transformer_bench_shape", "transformer_next_token", "gru_classify_first"} {
		t.Run(name, func(t *testing.T) {
			m64, in, tg := cases[name](t)
			m32 := m64.Clone()
			if err := m32.SetPrecision(Float32); err != nil {
				t.Fatal(err)
			}
			start, _, err := m64.Evaluate(in, tg)
			if err != nil {
				t.Fatal(err)
			}
			var final [2]float64
			for k, m := range []*Model{m64, m32} {
				opt, err := NewOptimizer(OptimizerConfig{Name: "sgd", LR: 0.05})
				if err != nil {
					t.Fatal(err)
				}
				for range 10 {
					m.ZeroGrads()
					if _, _, err := m.Backprop(in, tg, 1/float64(in.B), nil); err != nil {
						t.Fatal(err)
					}
					opt.Step(m.Params, m.Grads)
				}
				if final[k], _, err = m.Evaluate(in, tg); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("loss %.6g → float64 %.6g, float32 %.6g", start, final[0], final[1])
			if !(final[1] < start) || !(final[0] < start) || math.Abs(final[1]-final[0]) > 1e-3*final[0] {
				t.Errorf("10 SGD steps: loss %.6g → float64 %.6g, float32 %.6g: want float32 to descend as float64 does", start, final[0], final[1])
			}
		})
	}
}

func TestParsePrecision(t *testing.T) {
	for _, p := range []Precision{Float64, Float32} {
		got, err := ParsePrecision(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePrecision(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, s := range []string{"", "float16", "Float32", "fp32"} {
		_, err := ParsePrecision(s)
		if err == nil || !strings.Contains(err.Error(), "float32 or float64") {
			t.Errorf("ParsePrecision(%q): error %v, want one naming float32 and float64", s, err)
		}
	}
	m, _, _ := cnnInput(t, Spec{Type: TypeMLP, Input: 3, Output: 2}, 1)
	if err := m.SetPrecision(Precision(7)); err == nil || m.ComputePrecision() != Float64 {
		t.Errorf("SetPrecision(7): %v, precision %v", err, m.ComputePrecision())
	}
}

// TestPrecisionInModelFiles: Save records the precision, Load and Clone restore it, a float64
// model's file is unchanged (no compute_precision key: older readers read it) and files that
// lack the key, as those of version 1, load as float64.
func TestPrecisionInModelFiles(t *testing.T) {
	m, in, _ := cnnInput(t, Spec{Type: TypeMLP, Input: 6, Hidden: []int{5}, Output: 3}, 4)
	m.Meta = Meta{ClassNames: []string{"a", "b", "c"}}
	plain := m.Marshal()
	if bytes.Contains(plain, []byte("compute_precision")) {
		t.Error("a float64 model's file names its precision")
	}
	if err := m.SetPrecision(Float32); err != nil {
		t.Fatal(err)
	}
	if c := m.Clone(); c.ComputePrecision() != Float32 {
		t.Errorf("clone precision %v, want float32", c.ComputePrecision())
	}
	path := filepath.Join(t.TempDir(), "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.ComputePrecision() != Float32 || back.Meta.ComputePrecision != Float64 || len(back.Meta.ClassNames) != 3 {
		t.Errorf("loaded precision %v, meta %+v", back.ComputePrecision(), back.Meta)
	}
	out32, err := back.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]float64(nil), out32.Data...)
	if err := back.SetPrecision(Float64); err != nil {
		t.Fatal(err)
	}
	out64, err := back.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, out64.Data); d == 0 || d > 1e-5 {
		t.Errorf("Forward in float32 differs from float64 by %g: want rounding, no more", d)
	}
	if !bytes.Equal(back.Marshal(), plain) {
		t.Error("the float64 file of a loaded model differs from the original's")
	}
	for _, f := range []string{"v1-mlp.confide", "v1-lstm.confide"} {
		old, err := Load(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if old.ComputePrecision() != Float64 {
			t.Errorf("%s loads in %v, want float64", f, old.ComputePrecision())
		}
	}
	bad := bytes.Replace(m.Marshal()[:len(m.Marshal())-32], []byte(`"compute_precision":"float32"`), []byte(`"compute_precision":"float16"`), 1)
	if _, err := Unmarshal(withChecksum(bad)); err == nil || !strings.Contains(err.Error(), "float32 or float64") {
		t.Errorf("a file of precision float16: error %v, want one naming the accepted values", err)
	}
}
