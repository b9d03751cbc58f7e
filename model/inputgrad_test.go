package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBackwardToMatchesFiniteDifferences checks ∂(r·out)/∂x of ForwardFrom/BackwardTo
// against central differences of ForwardFrom, for every sequence spec (with padding) and
// an mlp, and that ForwardFrom on Representation(in) is Forward(in).
func TestBackwardToMatchesFiniteDifferences(t *testing.T) {
	specs := map[string]Spec{"mlp_tanh": {Type: TypeMLP, Input: 5, Hidden: []int{6, 4}, Output: 3, Activation: ActTanh}}
	for name, s := range seqSpecs {
		specs[name] = s
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			var m *Model
			var in *Input
			if spec.IsSequence() {
				m, in, _ = seqInput(t, spec)
			} else {
				var err error
				if m, err = New(spec, rand.New(rand.NewPCG(1, 1))); err != nil {
					t.Fatal(err)
				}
				x := randTensor(rand.New(rand.NewPCG(2, 2)), 4, spec.Input)
				in = &Input{X: x.Data, B: 4}
			}
			want, err := m.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			want = &Tensor{Data: append([]float64(nil), want.Data...), Rows: want.Rows, Cols: want.Cols}
			x, err := m.Representation(in)
			if err != nil {
				t.Fatal(err)
			}
			shape := &Input{B: in.B, T: in.T, Lengths: in.Lengths}
			out, err := m.ForwardFrom(shape, x)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(out.Data, want.Data); e > 1e-12 {
				t.Fatalf("ForwardFrom(Representation(in)) differs from Forward(in): relative error %.3g", e)
			}
			r := randTensor(rand.New(rand.NewPCG(4, 4)), out.Rows, out.Cols)
			if spec.Task == TaskNextToken {
				// Outputs at padded positions are not predictions (their targets are −1).
				for row := range r.Rows {
					if row%in.T >= int(in.Lengths[row/in.T]) {
						clear(r.Row(row))
					}
				}
			}
			dx, err := m.BackwardTo(r)
			if err != nil {
				t.Fatal(err)
			}
			analytic := append([]float64(nil), dx.Data...)
			f := func() float64 {
				out, err := m.ForwardFrom(shape, x)
				if err != nil {
					t.Fatal(err)
				}
				s := 0.0
				for i, v := range out.Data {
					s += r.Data[i] * v
				}
				return s
			}
			if e := relErr(analytic, centralDiff(x.Data, f)); e > 1e-6 {
				t.Fatalf("relative error %.3g", e)
			}
		})
	}
}

// centralDiff returns the central differences (f(v + h·e_i) − f(v − h·e_i)) / 2h of f, a
// function of v's values, for every i; v is restored.
func centralDiff(v []float64, f func() float64) []float64 {
	num := make([]float64, len(v))
	for i := range v {
		orig := v[i]
		v[i] = orig + fdStep
		fp := f()
		v[i] = orig - fdStep
		fm := f()
		v[i] = orig
		num[i] = (fp - fm) / (2 * fdStep)
	}
	return num
}

func TestForwardFromRejectsBadShapes(t *testing.T) {
	m, in, _ := seqInput(t, seqSpecs["transformer_post_mean"])
	x, err := m.Representation(in)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		in *Input
		x  *Tensor
	}{
		"rows":         {&Input{B: in.B - 1, T: in.T}, x},
		"too_long":     {&Input{B: 1, T: 7}, &Tensor{Data: make([]float64, 28), Rows: 7, Cols: 4}},
		"bad_length":   {&Input{B: in.B, T: in.T, Lengths: []int32{9, 1, 1, 1}}, x},
		"empty_batch":  {&Input{}, x},
		"short_buffer": {&Input{B: in.B, T: in.T}, &Tensor{Data: x.Data[1:], Rows: x.Rows, Cols: x.Cols}},
	}
	for name, c := range cases {
		if _, err := m.ForwardFrom(c.in, c.x); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := m.Forward(in); err != nil {
		t.Fatal(err)
	}
	if _, err := m.BackwardTo(&Tensor{Rows: 4, Cols: 3, Data: make([]float64, 12)}); err == nil {
		t.Error("BackwardTo after Forward: no error")
	}
}

// TestAttentionWeights checks that every head's weights are distributions over the valid
// keys (rows sum to 1, zero after the query under a causal mask) and that they are the
// weights Attention applies: the first block's attention output equals weights × V.
func TestAttentionWeights(t *testing.T) {
	for _, name := range []string{"transformer_post_mean", "transformer_next_token"} {
		t.Run(name, func(t *testing.T) {
			m, in, _ := seqInput(t, seqSpecs[name])
			w, err := m.AttentionWeights(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(w) != m.Spec.Layers || m.AttentionLayers() != m.Spec.Layers {
				t.Fatalf("%d attention layers (AttentionLayers %d), spec has %d", len(w), m.AttentionLayers(), m.Spec.Layers)
			}
			for l := range w {
				for i, heads := range w[l] {
					L := int(in.Lengths[i])
					if len(heads) != m.Spec.Heads {
						t.Fatalf("layer %d example %d: %d heads", l, i, len(heads))
					}
					for h, p := range heads {
						if len(p) != L*L {
							t.Fatalf("layer %d example %d head %d: %d weights, want %d", l, i, h, len(p), L*L)
						}
						for q := range L {
							s := 0.0
							for k, v := range p[q*L : (q+1)*L] {
								if m.Spec.Causal && k > q && v != 0 {
									t.Fatalf("causal weight after the query: [%d,%d] = %g", q, k, v)
								}
								s += v
							}
							if math.Abs(s-1) > 1e-12 {
								t.Fatalf("layer %d example %d head %d query %d: weights sum to %g", l, i, h, q, s)
							}
						}
					}
				}
			}
			// The weights reproduce the first attention core's output: softmax rows × V.
			core := attentionCores(m.layers, nil)[0]
			if _, err := m.AttentionWeights(in); err != nil {
				t.Fatal(err)
			}
			T, dk := in.T, core.Dim/core.Heads
			for i := range in.B {
				L := int(in.Lengths[i])
				for h := range core.Heads {
					base := (i*core.Heads + h) * T * dk
					v := core.v[base : base+L*dk]
					p := w[0][i][h]
					for q := range L {
						for c := range dk {
							s := 0.0
							for k := range L {
								s += p[q*L+k] * v[k*dk+c]
							}
							if got := core.y.Data[(i*T+q)*core.Dim+h*dk+c]; math.Abs(got-s) > 1e-12 {
								t.Fatalf("example %d head %d query %d: output %g, weights × V %g", i, h, q, got, s)
							}
						}
					}
				}
			}
		})
	}
}
