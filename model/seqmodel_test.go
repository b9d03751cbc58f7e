package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// seqSpecs are tiny models of every sequence type and head.
var seqSpecs = map[string]Spec{
	"rnn_classify_last":      {Type: TypeRNN, Vocab: 7, Embed: 3, Hidden: []int{4}, Layers: 2, Output: 3},
	"rnn_relu_mean":          {Type: TypeRNN, Vocab: 7, Embed: 3, Hidden: []int{4}, Output: 3, Activation: ActReLU, Pooling: PoolMean},
	"lstm_classify_last":     {Type: TypeLSTM, Vocab: 7, Embed: 3, Hidden: []int{4, 3}, Output: 3},
	"lstm_next_token":        {Type: TypeLSTM, Vocab: 7, Embed: 3, Hidden: []int{5}, Task: TaskNextToken},
	"gru_classify_first":     {Type: TypeGRU, Vocab: 7, Embed: 3, Hidden: []int{4}, Layers: 2, Output: 3, Pooling: PoolFirst},
	"gru_next_token":         {Type: TypeRNN, Cell: CellGRU, Vocab: 7, Embed: 3, Hidden: []int{4}, Task: TaskNextToken},
	"transformer_post_mean":  {Type: TypeTransformer, Vocab: 7, Embed: 4, Layers: 2, Heads: 2, FF: 6, MaxLen: 6, Output: 3},
	"transformer_pre_first":  {Type: TypeTransformer, Vocab: 7, Embed: 4, Layers: 1, Heads: 2, FF: 5, MaxLen: 6, Output: 3, Norm: NormPre, Pooling: PoolFirst, Positional: PosSinusoidal, Activation: ActGELU},
	"transformer_next_token": {Type: TypeTransformer, Vocab: 7, Embed: 4, Layers: 1, Heads: 2, MaxLen: 5, Task: TaskNextToken, Norm: NormPre},
}

// seqInput returns a batch of 4 sequences of length 5, padded at the end of three of them,
// with targets for the spec's task.
func seqInput(t *testing.T, spec Spec) (*Model, *Input, Targets) {
	t.Helper()
	m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	const B, T = 4, 5
	lengths := []int32{5, 3, 1, 4}
	b := seqBatch(rng, B, T, spec.Vocab, lengths)
	in := &Input{Tokens: b.Tokens, Lengths: lengths, B: B, T: T}
	var tg Targets
	if m.Spec.Task == TaskNextToken {
		tg.Class = make([]int32, B*T)
		for r := range tg.Class {
			tg.Class[r] = -1
			if r%T < int(lengths[r/T]) {
				tg.Class[r] = int32(rng.IntN(spec.Vocab))
			}
		}
	} else {
		tg.Class = make([]int32, B)
		for i := range tg.Class {
			tg.Class[i] = int32(rng.IntN(m.Spec.Output))
		}
	}
	return m, in, tg
}

func TestSeqModelsBackpropMatchesFiniteDifferences(t *testing.T) {
	for name, spec := range seqSpecs {
		t.Run(name, func(t *testing.T) {
			m, in, tg := seqInput(t, spec)
			m.ZeroGrads()
			scale := 1 / float64(in.B)
			if _, _, err := m.Backprop(in, tg, scale, nil); err != nil {
				t.Fatal(err)
			}
			analytic := append([]float64(nil), m.Grads...)
			num := make([]float64, len(m.Params))
			for i := range m.Params {
				orig := m.Params[i]
				m.Params[i] = orig + fdStep
				lp, _, err := m.Evaluate(in, tg)
				if err != nil {
					t.Fatal(err)
				}
				m.Params[i] = orig - fdStep
				lm, _, _ := m.Evaluate(in, tg)
				m.Params[i] = orig
				num[i] = (lp - lm) * scale / (2 * fdStep)
			}
			if e := relErr(analytic, num); e > 1e-6 {
				t.Fatalf("relative error %.3g", e)
			}
		})
	}
}

func TestSeqModelsPerExampleMatchesNaive(t *testing.T) {
	for name, spec := range seqSpecs {
		t.Run(name, func(t *testing.T) {
			m, in, tg := seqInput(t, spec)
			norms := make([]float64, in.B)
			if _, _, err := m.PerExampleNorms(in, tg, nil, norms); err != nil {
				t.Fatal(err)
			}
			m.ZeroGrads()
			w := []float64{0.3, 1, 2, 0.7}
			if err := m.AccumulateWeighted(w); err != nil {
				t.Fatal(err)
			}
			got := append([]float64(nil), m.Grads...)
			want := make([]float64, len(got))
			R := len(tg.Class) / in.B
			for i := 0; i < in.B; i++ {
				one := &Input{Tokens: in.Tokens[i*in.T : (i+1)*in.T], Lengths: in.Lengths[i : i+1], B: 1, T: in.T}
				m.ZeroGrads()
				if _, _, err := m.Backprop(one, Targets{Class: tg.Class[i*R : (i+1)*R]}, 1, nil); err != nil {
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
		})
	}
}

// TestPaddedTokensChangeNothing rewrites the tokens at padded positions and expects the
// same outputs (at valid positions), loss and gradients, bit for bit.
func TestPaddedTokensChangeNothing(t *testing.T) {
	for name, spec := range seqSpecs {
		t.Run(name, func(t *testing.T) {
			m, in, tg := seqInput(t, spec)
			run := func() (out, grads []float64, loss float64) {
				y, err := m.Forward(in)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, y.Data...)
				m.ZeroGrads()
				loss, _, err = m.Backprop(in, tg, 1, nil)
				if err != nil {
					t.Fatal(err)
				}
				return out, append([]float64(nil), m.Grads...), loss
			}
			out1, g1, l1 := run()
			rng := rand.New(rand.NewPCG(9, 9))
			for r := range in.Tokens {
				if r%in.T >= int(in.Lengths[r/in.T]) {
					in.Tokens[r] = int32(1 + rng.IntN(spec.Vocab-1))
				}
			}
			out2, g2, l2 := run()
			rows := len(out1) / m.Spec.Output
			for r := 0; r < rows; r++ {
				if rows == in.B*in.T && r%in.T >= int(in.Lengths[r/in.T]) {
					continue // a padded position's prediction is ignored by the loss
				}
				for c := 0; c < m.Spec.Output; c++ {
					if k := r*m.Spec.Output + c; out1[k] != out2[k] {
						t.Fatalf("output row %d changed: %v → %v", r, out1[k], out2[k])
					}
				}
			}
			if l1 != l2 || relErr(g1, g2) != 0 {
				t.Fatalf("loss %v → %v, gradient relative change %.3g", l1, l2, relErr(g1, g2))
			}
		})
	}
}

func TestSeqSpecValidation(t *testing.T) {
	for _, tc := range []struct {
		yaml, wantErr string
	}{
		{"type: lstm\nvocab: 80\nembed: 8\nhidden: [128]\ntask: next_token\n", ""},
		{"type: rnn\ncell: gru\nvocab: 80\nembed: 8\nhidden: [64]\nlayers: 2\noutput: 2\n", ""},
		{"type: transformer\nvocab: 100\nembed: 64\nlayers: 2\nheads: 4\nff: 128\nmax_len: 64\noutput: 10\n", ""},
		{"type: transformer\nvocab: 100\nembed: 64\nlayers: 2\nheads: 5\nmax_len: 64\noutput: 10\n", "heads = 5"},
		{"type: transformer\nvocab: 100\nembed: 64\nlayers: 2\nheads: 4\noutput: 10\n", "max_len = 0"},
		{"type: transformer\nvocab: 100\nembed: 64\nlayers: 1\nheads: 4\nmax_len: 8\noutput: 2\nnorm: middle\n", `norm "middle"`},
		{"type: transformer\nvocab: 100\nembed: 64\nlayers: 1\nheads: 4\nmax_len: 8\noutput: 2\npositional: rotary\n", `positional "rotary"`},
		{"type: lstm\nvocab: 80\nembed: 8\noutput: 2\n", "hidden is empty"},
		{"type: lstm\ncell: gru\nvocab: 80\nembed: 8\nhidden: [4]\noutput: 2\n", "contradicts type lstm"},
		{"type: gru\nvocab: 80\nembed: 8\nhidden: [4, 4]\nlayers: 3\noutput: 2\n", "layers = 3 but hidden lists 2"},
		{"type: lstm\nvocab: 80\nembed: 8\nhidden: [4]\ntask: next_token\noutput: 5\n", "output = 5"},
		{"type: lstm\nvocab: 80\nembed: 8\nhidden: [4]\noutput: 2\npooling: max\n", `pooling "max"`},
		{"type: lstm\nvocab: 80\nembed: 8\nhidden: [4]\noutput: 2\nheads: 2\n", "transformer fields"},
		{"type: rnn\nvocab: 1\nembed: 8\nhidden: [4]\noutput: 2\n", "vocab = 1"},
		{"type: rnn\nvocab: 9\nembed: 8\nhidden: [4]\noutput: 2\ntask: translate\n", `task "translate"`},
	} {
		_, err := ParseSpec([]byte(tc.yaml))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tc.yaml, err)
		case tc.wantErr != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr))):
			t.Errorf("%q: error %v, want it to mention %q", tc.yaml, err, tc.wantErr)
		}
	}
}

func TestSeqModelInputValidation(t *testing.T) {
	m, in, _ := seqInput(t, seqSpecs["transformer_post_mean"])
	for _, tc := range []struct {
		name string
		in   Input
	}{
		{"no_T", Input{Tokens: in.Tokens, B: in.B}},
		{"too_long", Input{Tokens: make([]int32, 4*7), B: 4, T: 7}},
		{"short_tokens", Input{Tokens: in.Tokens[:10], B: in.B, T: in.T}},
		{"token_range", Input{Tokens: append(append([]int32(nil), in.Tokens[:19]...), 7), B: in.B, T: in.T}},
		{"lengths", Input{Tokens: in.Tokens, B: in.B, T: in.T, Lengths: []int32{1, 2, 6, 1}}},
	} {
		if _, err := m.Forward(&tc.in); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestSeqModelFileRoundTrip(t *testing.T) {
	for name, spec := range seqSpecs {
		m, in, _ := seqInput(t, spec)
		checkFileRoundTrip(t, name, m, in)
	}
	// An MLP spec's JSON has none of the sequence fields: old files and readers are unaffected.
	mlp := Spec{Type: TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}.withDefaults()
	if got := string(mlp.JSON()); got != `{"type":"mlp","input":4,"hidden":[3],"output":2,"activation":"relu","init":"he","loss":"cross_entropy"}` {
		t.Errorf("mlp spec JSON %s", got)
	}
}

// checkFileRoundTrip saves m and loads it back: the same spec and the same outputs on in.
func checkFileRoundTrip(t *testing.T, name string, m *Model, in *Input) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	y1, _ := m.Forward(in)
	want := append([]float64(nil), y1.Data...)
	y2, _ := back.Forward(in)
	if relErr(want, y2.Data) != 0 || !bytes.Equal(m.Spec.JSON(), back.Spec.JSON()) {
		t.Errorf("%s: round trip changed the model", name)
	}
}
