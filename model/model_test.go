package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func testMLP(t *testing.T, act string, loss string) (*Model, *Input, Targets) {
	t.Helper()
	spec := Spec{Type: TypeMLP, Input: 6, Hidden: []int{5, 4}, Output: 3, Activation: act, Loss: loss}
	m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	B := 5
	in := &Input{X: make([]float64, B*6), B: B}
	for i := range in.X {
		in.X[i] = rng.NormFloat64()
	}
	var tg Targets
	if loss == LossMSE {
		tg.Value = make([]float64, B*3)
		for i := range tg.Value {
			tg.Value[i] = rng.NormFloat64()
		}
	} else {
		tg.Class = make([]int32, B)
		for i := range tg.Class {
			tg.Class[i] = int32(rng.IntN(3))
		}
	}
	return m, in, tg
}

// checkBackprop checks the gradient Backprop adds, ∂(scale·Σ_i loss_i)/∂θ, against central
// differences of Evaluate.
func checkBackprop(t *testing.T, m *Model, in *Input, tg Targets, scale, tol float64) {
	t.Helper()
	m.ZeroGrads()
	if _, _, err := m.Backprop(in, tg, scale, nil); err != nil {
		t.Fatal(err)
	}
	analytic := append([]float64(nil), m.Grads...)
	f := func() float64 {
		l, _, err := m.Evaluate(in, tg)
		if err != nil {
			t.Fatal(err)
		}
		return l * scale
	}
	if e := relErr(analytic, centralDiff(m.Params, f)); e > tol {
		t.Fatalf("relative error %.3g", e)
	}
}

func TestMLPBackpropMatchesFiniteDifferences(t *testing.T) {
	for _, tc := range []struct{ act, loss string }{{ActReLU, LossCrossEntropy}, {ActTanh, LossCrossEntropy}, {ActGELU, LossMSE}, {ActSigmoid, LossMSE}} {
		t.Run(tc.act+"_"+tc.loss, func(t *testing.T) {
			m, in, tg := testMLP(t, tc.act, tc.loss)
			checkBackprop(t, m, in, tg, 1/float64(in.B), 1e-6)
		})
	}
}

// checkDensePerExample checks the ghost per-example norms and the weighted sum with weights
// w of a dense model (classification targets) against one example at a time.
func checkDensePerExample(t *testing.T, m *Model, in *Input, tg Targets, w []float64) {
	t.Helper()
	norms := make([]float64, in.B)
	if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
		t.Fatal(err)
	}
	m.ZeroGrads()
	if err := m.AccumulateWeighted(w); err != nil {
		t.Fatal(err)
	}
	got := append([]float64(nil), m.Grads...)
	want := make([]float64, len(got))
	d := m.Spec.Input
	for i := 0; i < in.B; i++ {
		one := &Input{X: in.X[i*d : (i+1)*d], B: 1}
		m.ZeroGrads()
		if _, _, err := m.Backprop(one, Targets{Class: tg.Class[i : i+1]}, 1, nil); err != nil {
			t.Fatal(err)
		}
		n := 0.0
		for k, g := range m.Grads {
			n += g * g
			want[k] += w[i] * g
		}
		n = math.Sqrt(n)
		if math.Abs(norms[i]-n) > 1e-9*n {
			t.Errorf("example %d: ghost norm %.15g, naive %.15g", i, norms[i], n)
		}
	}
	if e := relErr(got, want); e > 1e-9 {
		t.Errorf("weighted sum: relative error %.3g", e)
	}
}

func TestMLPPerExampleMatchesNaive(t *testing.T) {
	for _, act := range []string{ActReLU, ActTanh} {
		t.Run(act, func(t *testing.T) {
			m, in, tg := testMLP(t, act, LossCrossEntropy)
			checkDensePerExample(t, m, in, tg, []float64{0.3, 1, 0, 2, 0.7})
		})
	}
}

func TestDeterministicInit(t *testing.T) {
	spec := Spec{Type: TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}
	a, _ := New(spec, rand.New(rand.NewPCG(42, 0)))
	b, _ := New(spec, rand.New(rand.NewPCG(42, 0)))
	c, _ := New(spec, rand.New(rand.NewPCG(43, 0)))
	if a.NumParams() != 784*256+256+256*128+128+128*10+10 {
		t.Fatalf("NumParams = %d", a.NumParams())
	}
	if relErr(a.Params, b.Params) != 0 {
		t.Fatal("same seed gave different parameters")
	}
	if relErr(a.Params, c.Params) == 0 {
		t.Fatal("different seeds gave the same parameters")
	}
}

// specCase is a spec, YAML or JSON, and what ParseSpec's error must mention ("": no error).
type specCase struct{ yaml, wantErr string }

func checkParseSpec(t *testing.T, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		_, err := ParseSpec([]byte(tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.yaml, err)
		case tc.wantErr != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr))):
			t.Errorf("%q: error %v, want it to mention %q", tc.yaml, err, tc.wantErr)
		}
	}
}

func TestSpecValidation(t *testing.T) {
	checkParseSpec(t, []specCase{
		{"type: mlp\ninput: 784\nhidden: [256, 128]\noutput: 10\n", ""},
		{`{"type": "mlp", "input": 4, "output": 2, "activation": "tanh"}`, ""},
		{"type: mlp\ninput: 0\noutput: 10\n", "input = 0"},
		{"type: resnet\ninput: 3\noutput: 10\n", `type "resnet" unknown`},
		{"type: mlp\ninput: 3\noutput: 10\nactivation: swish\n", "unknown activation"},
		{"type: mlp\ninput: 3\noutput: 10\nhiden: [3]\n", "field hiden not found"},
		{"type: mlp\ninput: 3\noutput: 10\ndropout: 1\n", "dropout = 1"},
		{"type: mlp\ninput: 3\noutput: 1\n", "at least 2 classes"},
	})
}

func TestModelFileRoundTripAndCorruption(t *testing.T) {
	m, _, _ := testMLP(t, ActReLU, LossCrossEntropy)
	path := filepath.Join(t.TempDir(), "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(back.Params, m.Params) != 0 || string(back.Spec.JSON()) != string(m.Spec.JSON()) {
		t.Fatal("round trip changed the model")
	}
	data, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", data[:len(data)-9]},
		{"half", data[:len(data)/2]},
		{"bitflip", func() []byte { d := bytes.Clone(data); d[40] ^= 1; return d }()},
		{"magic", append([]byte("XONFIDEM"), data[8:]...)},
	} {
		if _, err := Unmarshal(tc.data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", tc.name, err)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("loading a missing file succeeded")
	}
}

func TestOptimizersOnQuadratic(t *testing.T) {
	// Minimise f(θ) = ½Σ c_i θ_i² from θ = 1: every optimizer must approach 0.
	c := []float64{1, 3, 0.5}
	for _, cfg := range []OptimizerConfig{
		{Name: "sgd", LR: 0.1},
		{Name: "sgd", LR: 0.05, Momentum: 0.9},
		{Name: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true},
		{Name: "adam", LR: 0.05},
		{Name: "adamw", LR: 0.05, WeightDecay: 0.01},
	} {
		opt, err := NewOptimizer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := []float64{1, 1, 1}
		g := make([]float64, 3)
		for step := 0; step < 500; step++ {
			for i := range p {
				g[i] = c[i] * p[i]
			}
			opt.Step(p, g)
		}
		for i, v := range p {
			if math.Abs(v) > 1e-2 {
				t.Errorf("%+v: θ[%d] = %v after 500 steps", cfg, i, v)
			}
		}
	}
	if _, err := NewOptimizer(OptimizerConfig{Name: "rmsprop", LR: 1}); err == nil {
		t.Error("unknown optimizer accepted")
	}
	if _, err := NewOptimizer(OptimizerConfig{Name: "sgd", LR: -1}); err == nil {
		t.Error("negative learning rate accepted")
	}
}

func TestAdamFirstStepMatchesFormula(t *testing.T) {
	// With bias correction the first Adam step is −lr·g/(|g|+ε′) ≈ −lr·sign(g).
	a, _ := NewOptimizer(OptimizerConfig{Name: "adam", LR: 0.01})
	p := []float64{0.5, -2}
	a.Step(p, []float64{3, -0.1})
	if math.Abs(p[0]-0.49) > 1e-9 || math.Abs(p[1]+1.99) > 1e-9 {
		t.Fatalf("after one step %v", p)
	}
}
