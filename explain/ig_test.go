package explain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

func newModel(t *testing.T, spec model.Spec, seed uint64) *model.Model {
	t.Helper()
	m, err := model.New(spec, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exampleInput is one example for spec: 20 dense values in [0, 1] or 12 tokens.
func exampleInput(spec model.Spec, rng *rand.Rand) *model.Input {
	if spec.IsSequence() {
		in := &model.Input{B: 1, T: 12, Tokens: make([]int32, 12)}
		for i := range in.Tokens {
			in.Tokens[i] = int32(rng.IntN(spec.Vocab))
		}
		return in
	}
	in := &model.Input{B: 1, X: make([]float64, spec.Input)}
	for i := range in.X {
		in.X[i] = rng.Float64()
	}
	for _, e := range spec.Embeddings {
		in.X[e.Column] = float64(rng.IntN(e.Categories)) // a category index
	}
	return in
}

// TestIntegratedGradientsCompleteness checks Sundararajan et al.'s completeness axiom
// (Prop. 1): the attributions sum to f(x) − f(baseline) within 1% at the default 64 steps,
// for an MLP (with embedded categorical columns too) and for text models (attributions
// with respect to the token embeddings), for the probability and the logit of the
// predicted class. ReLU models need more than the 64 steps they start with (their
// integrand jumps where a unit switches): the steps double until the error is within the
// tolerance.
func TestIntegratedGradientsCompleteness(t *testing.T) {
	specs := map[string]model.Spec{
		"mlp": {Type: model.TypeMLP, Input: 20, Hidden: []int{32, 16}, Output: 4},
		// Embedded columns: the attributions of a column's vector sum to the column's.
		"mlp_embedded": {Type: model.TypeMLP, Input: 20, Hidden: []int{16}, Output: 4, Activation: model.ActTanh,
			Embeddings: []model.EmbeddingSpec{{Column: 2, Categories: 5, Dim: 3}, {Column: 11, Categories: 9, Dim: 4}}},
		"transformer": {Type: model.TypeTransformer, Vocab: 30, Embed: 16, Layers: 2, Heads: 4, FF: 32, MaxLen: 16, Output: 2},
		"lstm":        {Type: model.TypeLSTM, Vocab: 30, Embed: 8, Hidden: []int{12}, Output: 2},
		"causal_lm":   {Type: model.TypeTransformer, Vocab: 30, Embed: 16, Layers: 1, Heads: 2, MaxLen: 16, Task: model.TaskNextToken},
	}
	for name, spec := range specs {
		for _, out := range []Output{OutputProbability, OutputLogit} {
			t.Run(fmt.Sprintf("%s/%s", name, out), func(t *testing.T) {
				m := newModel(t, spec, 7)
				rng := rand.New(rand.NewPCG(8, 8))
				for range 3 {
					in := exampleInput(spec, rng)
					z, err := m.Forward(in)
					if err != nil {
						t.Fatal(err)
					}
					target := metrics.ArgMax(z.Row(z.Rows - 1))
					a, err := IntegratedGradients(m, in, target, nil, IGOptions{Output: out})
					if err != nil {
						t.Fatal(err)
					}
					if d := a.F - a.Baseline; math.Abs(a.Sum-d) > 0.01*math.Abs(d) {
						t.Fatalf("attributions sum to %.6g, f(x) − f(baseline) = %.6g − %.6g = %.6g (error %.3g)", a.Sum, a.F, a.Baseline, d, a.CompletenessError)
					}
					sum := 0.0
					for _, v := range a.Features {
						sum += v
					}
					want := spec.Input // one attribution a feature, or a token
					if spec.IsSequence() {
						want = in.T
					}
					if math.Abs(sum-a.Sum) > 1e-9*(1+math.Abs(a.Sum)) || len(a.Features) != want {
						t.Fatalf("%d features summing to %g, Sum %g", len(a.Features), sum, a.Sum)
					}
				}
			})
		}
	}
}

// TestIntegratedGradientsOfLinearModel checks the closed form: for a model without hidden
// layers the logit is w_c·x + b_c, so IG attributes (x_j − x'_j)·w_cj exactly.
func TestIntegratedGradientsOfLinearModel(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 6, Hidden: []int{}, Output: 3}
	m := newModel(t, spec, 3)
	in := exampleInput(spec, rand.New(rand.NewPCG(1, 2)))
	base := &model.Tensor{Data: []float64{0.5, -1, 0, 2, 0.25, 0}, Rows: 1, Cols: 6}
	const c = 2
	a, err := IntegratedGradients(m, in, c, base, IGOptions{Output: OutputLogit, Steps: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Linear's weights are In×Out row-major, the first In·Out parameters.
	for j, v := range a.Values {
		want := (in.X[j] - base.Data[j]) * m.Params[j*spec.Output+c]
		if math.Abs(v-want) > 1e-12 {
			t.Fatalf("attribution %d = %g, want %g", j, v, want)
		}
	}
	if a.CompletenessError > 1e-12 {
		t.Fatalf("completeness error %g on a linear function", a.CompletenessError)
	}
}

func TestIntegratedGradientsRejects(t *testing.T) {
	mlp := newModel(t, model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}, 1)
	in := &model.Input{B: 1, X: make([]float64, 4)}
	cases := map[string]func() error{
		"target_out_of_range": func() error { _, err := IntegratedGradients(mlp, in, 2, nil, IGOptions{}); return err },
		"two_examples": func() error {
			_, err := IntegratedGradients(mlp, &model.Input{B: 2, X: make([]float64, 8)}, 0, nil, IGOptions{})
			return err
		},
		"bad_steps":  func() error { _, err := IntegratedGradients(mlp, in, 0, nil, IGOptions{Steps: -1}); return err },
		"bad_output": func() error { _, err := IntegratedGradients(mlp, in, 0, nil, IGOptions{Output: "softmax"}); return err },
		"baseline_shape": func() error {
			_, err := IntegratedGradients(mlp, in, 0, &model.Tensor{Data: make([]float64, 3), Rows: 1, Cols: 3}, IGOptions{})
			return err
		},
	}
	for name, f := range cases {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 64, Output: 2, Hidden: []int{}, Features: &model.FeatureSpec{Type: "scattering", J: 1, L: 2, Shape: []int{8, 8}}}
	sc := newModel(t, spec, 1)
	_, err := IntegratedGradients(sc, &model.Input{B: 1, X: make([]float64, 64)}, 0, nil, IGOptions{})
	if !errors.Is(err, ErrNoGradient) {
		t.Fatalf("scattering model: error %v, want ErrNoGradient", err)
	}
}
