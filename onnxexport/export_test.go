package onnxexport

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx"
	"gorgonia.org/tensor"

	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// tol bounds |ONNX − Confide| of every logit and probability: the graph computes in
// float32, Confide in float64 (the acceptance bound).
const tol = 1e-5

// roundTripCases are small random models of every exported type and layer option.
var roundTripCases = []model.Spec{
	{Type: model.TypeMLP, Input: 12, Hidden: []int{16, 8}, Output: 5},
	{Type: model.TypeMLP, Input: 7, Hidden: []int{9}, Output: 3, Activation: model.ActGELU},
	{Type: model.TypeMLP, Input: 6, Hidden: []int{8, 8}, Output: 4, Activation: model.ActTanh},
	{Type: model.TypeMLP, Input: 5, Hidden: []int{6}, Output: 2, Activation: model.ActSigmoid, Loss: model.LossMSE},
	{Type: model.TypeMLP, Input: 6, Hidden: []int{8}, Output: 3, Activation: model.ActTanh,
		Embeddings: []model.EmbeddingSpec{{Column: 4, Categories: 5, Dim: 3}, {Column: 1, Categories: 2, Dim: 2}}},
	{Type: model.TypeRNN, Vocab: 11, Embed: 6, Hidden: []int{8}, Output: 3},
	{Type: model.TypeRNN, Vocab: 11, Embed: 6, Hidden: []int{8}, Output: 3, Activation: model.ActReLU, Pooling: model.PoolMean},
	{Type: model.TypeLSTM, Vocab: 13, Embed: 5, Hidden: []int{7, 6}, Output: 4},
	{Type: model.TypeLSTM, Vocab: 13, Embed: 5, Hidden: []int{8}, Layers: 2, Task: model.TaskNextToken},
	{Type: model.TypeGRU, Vocab: 12, Embed: 6, Hidden: []int{9}, Output: 3, Pooling: model.PoolFirst},
	{Type: model.TypeGRU, Vocab: 12, Embed: 6, Hidden: []int{7}, Task: model.TaskNextToken},
	{Type: model.TypeTransformer, Vocab: 14, Embed: 8, Layers: 2, Heads: 2, FF: 16, MaxLen: 10, Output: 3},
	{Type: model.TypeTransformer, Vocab: 14, Embed: 8, Layers: 1, Heads: 4, FF: 12, MaxLen: 9, Output: 2,
		Norm: model.NormPre, Positional: model.PosSinusoidal, Activation: model.ActGELU, Pooling: model.PoolFirst},
	{Type: model.TypeTransformer, Vocab: 14, Embed: 8, Layers: 1, Heads: 2, FF: 16, MaxLen: 8, Output: 3, Causal: true, Pooling: model.PoolLast},
	{Type: model.TypeTransformer, Vocab: 15, Embed: 8, Layers: 2, Heads: 2, FF: 16, MaxLen: 8, Norm: model.NormPre, Task: model.TaskNextToken},
}

func caseName(s model.Spec) string {
	var b strings.Builder
	b.WriteString(s.Type)
	for _, part := range []string{s.Cell, s.Activation, s.Pooling, s.Task, s.Norm, s.Positional, s.Loss} {
		if part != "" {
			b.WriteString("-" + part)
		}
	}
	if s.Causal {
		b.WriteString("-causal")
	}
	if len(s.Embeddings) > 0 {
		b.WriteString("-embeddings")
	}
	return b.String()
}

func TestRoundTripGonnx(t *testing.T) {
	for i, spec := range roundTripCases {
		t.Run(caseName(spec), func(t *testing.T) {
			m, err := model.New(spec, rand.New(rand.NewPCG(uint64(i), 7)))
			if err != nil {
				t.Fatal(err)
			}
			randomizeBiases(m, uint64(i))
			checkRoundTrip(t, m, m, Options{}, uint64(i))
		})
	}
}

// TestRoundTripCompressed: a quantised model exports its dequantised weights and a pruned
// one its zeros, so the graph computes what a float model holding those weights computes.
func TestRoundTripCompressed(t *testing.T) {
	spec := model.Spec{Type: model.TypeTransformer, Vocab: 14, Embed: 8, Layers: 1, Heads: 2, FF: 16, MaxLen: 8, Output: 3}
	for _, kind := range []string{"int8", "pruned"} {
		t.Run(kind, func(t *testing.T) {
			m, err := model.New(spec, rand.New(rand.NewPCG(3, 3)))
			if err != nil {
				t.Fatal(err)
			}
			if kind == "int8" {
				err = m.Quantize(model.QuantizeOptions{})
			} else {
				err = m.Prune(0.6, model.PruneGlobal)
			}
			if err != nil {
				t.Fatal(err)
			}
			float, err := model.New(spec, rand.New(rand.NewPCG(0, 0)))
			if err != nil {
				t.Fatal(err)
			}
			if err := float.SetParams(m.Params); err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, m, float, Options{}, 5)
		})
	}
}

// TestRoundTripNormalized: with Normalize, the graph reads raw features and applies the
// model file's mean and std (a shorter list repeats its last value).
func TestRoundTripNormalized(t *testing.T) {
	spec := model.Spec{Type: model.TypeMLP, Input: 6, Hidden: []int{8}, Output: 3}
	m, err := model.New(spec, rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	m.Meta.Input = &model.InputMeta{Kind: model.InputTabular, Mean: []float64{1, -2, 0.5}, Std: []float64{2, 4}}
	res, err := Export(m, Options{Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Normalized {
		t.Fatal("Normalized = false with Normalize and a mean and std")
	}
	rng := rand.New(rand.NewPCG(9, 9))
	raw := make([]float64, 4*spec.Input)
	for i := range raw {
		raw[i] = 3 * rng.NormFloat64()
	}
	norm := append([]float64(nil), raw...)
	for i := 0; i < 4; i++ {
		row := norm[i*spec.Input : (i+1)*spec.Input]
		m.Meta.Input.Normalize(row, row)
	}
	want, err := m.Forward(&model.Input{X: norm, B: 4})
	if err != nil {
		t.Fatal(err)
	}
	got := runGonnx(t, res, map[string]tensor.Tensor{InputFeatures: floatTensor(raw, 4, spec.Input)})
	compare(t, OutputLogits, got[OutputLogits], want.Data, nil)
}

// checkRoundTrip exports m, runs the graph in gonnx and compares its outputs with ref's
// Forward (ref is m, or a float model with m's weights) on random inputs.
func checkRoundTrip(t *testing.T, m, ref *model.Model, o Options, seed uint64) {
	t.Helper()
	res, err := Export(m, o)
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Spec
	rng := rand.New(rand.NewPCG(seed, 99))
	in := &model.Input{B: 4}
	feeds := map[string]tensor.Tensor{}
	if spec.IsSequence() {
		in.T = 6
		in.Tokens = make([]int32, in.B*in.T)
		toks := make([]int64, len(in.Tokens))
		for k := range in.Tokens {
			in.Tokens[k] = int32(rng.IntN(spec.Vocab))
			toks[k] = int64(in.Tokens[k])
		}
		feeds[InputTokens] = tensor.New(tensor.WithShape(in.B, in.T), tensor.WithBacking(toks))
		if spec.Task == model.TaskClassify {
			in.Lengths = []int32{6, 3, 1, 0} // full, padded, one token, empty
			feeds[InputLengths] = tensor.New(tensor.WithShape(in.B), tensor.WithBacking([]int64{6, 3, 1, 0}))
		}
	} else {
		in.X = make([]float64, in.B*spec.Input)
		for k := range in.X {
			in.X[k] = rng.NormFloat64()
		}
		for _, e := range spec.Embeddings { // category indices, −1 (missing) in the first row
			for i := range in.B {
				in.X[i*spec.Input+e.Column] = float64(rng.IntN(e.Categories))
			}
			in.X[e.Column] = -1
		}
		feeds[InputFeatures] = floatTensor(in.X, in.B, spec.Input)
	}
	out, err := ref.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float64(nil), out.Data...)
	got := runGonnx(t, res, feeds)
	if spec.Loss == model.LossMSE {
		compare(t, OutputValues, got[OutputValues], want, nil)
		return
	}
	compare(t, OutputLogits, got[OutputLogits], want, nil)
	probs := make([]float64, len(want))
	for r := 0; r < out.Rows; r++ {
		metrics.Softmax(probs[r*out.Cols:(r+1)*out.Cols], want[r*out.Cols:(r+1)*out.Cols])
	}
	compare(t, OutputProbs, got[OutputProbs], probs, nil)

	if spec.Task == model.TaskNextToken {
		// Padded rows: at every valid position the graph's output (run on the padded batch,
		// without lengths) equals Confide's with lengths.
		in.Lengths = []int32{6, 4, 1, 2}
		out, err := ref.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		valid := func(k int) bool {
			row := k / out.Cols
			return row%in.T < int(in.Lengths[row/in.T])
		}
		compare(t, OutputLogits+" (padded batch)", got[OutputLogits], out.Data, valid)
	}
}

// randomizeBiases gives biases and LayerNorm parameters, which models initialise to 0 and
// 1, random values, so that the test sees where each lands in the graph.
func randomizeBiases(m *model.Model, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	weights := make([]bool, len(m.Params))
	for _, w := range m.WeightTensors() {
		for k := w.Offset; k < w.Offset+w.Size(); k++ {
			weights[k] = true
		}
	}
	for k, isWeight := range weights {
		if !isWeight {
			m.Params[k] += 0.3 * rng.NormFloat64()
		}
	}
}

func runGonnx(t *testing.T, res *Result, feeds map[string]tensor.Tensor) map[string]tensor.Tensor {
	t.Helper()
	raw, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := adaptForGonnx(t, raw).Run(feeds)
	if err != nil {
		t.Fatalf("gonnx: %v", err)
	}
	return out
}

// adaptForGonnx works around two departures of gonnx v1.1 from the ONNX spec, in the
// test's copy of the graph only:
//   - it looks up the activations attribute of RNN, GRU and LSTM in lower case ("relu"),
//     where the spec (and the export) spells them "Relu", "Tanh", "Sigmoid";
//   - its LSTM finds its outputs by the node's output names, which must be "Y", "Y_h" and
//     "Y_c" (any other name gets no tensor). The adapted graph names every LSTM's outputs so
//     and renames their readers; a later LSTM reuses the names, which gonnx, running the
//     nodes in order, accepts because every reader of an LSTM's outputs runs before the next
//     LSTM.
func adaptForGonnx(t *testing.T, raw []byte) *gonnx.Model {
	t.Helper()
	mp, err := gonnx.ModelProtoFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	renamed := map[string]string{}
	for _, n := range mp.Graph.Node {
		for i, in := range n.Input {
			if r, ok := renamed[in]; ok {
				n.Input[i] = r
			}
		}
		for _, a := range n.Attribute {
			if a.Name == "activations" {
				for i, s := range a.Strings {
					a.Strings[i] = []byte(strings.ToLower(string(s)))
				}
			}
		}
		if n.OpType == "LSTM" {
			for i, o := range n.Output {
				renamed[o] = []string{"Y", "Y_h", "Y_c"}[i]
				n.Output[i] = renamed[o]
			}
		}
	}
	gm, err := gonnx.NewModel(mp)
	if err != nil {
		t.Fatal(err)
	}
	return gm
}

func floatTensor(v []float64, dims ...int) tensor.Tensor {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return tensor.New(tensor.WithShape(dims...), tensor.WithBacking(f))
}

// compare checks |got − want| ≤ tol at every index where valid (nil: all) holds.
func compare(t *testing.T, name string, got tensor.Tensor, want []float64, valid func(int) bool) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no such output", name)
	}
	data, ok := got.Data().([]float32)
	if !ok {
		t.Fatalf("%s: output of type %T, want []float32", name, got.Data())
	}
	if len(data) != len(want) {
		t.Fatalf("%s: %d values (shape %v), want %d", name, len(data), got.Shape(), len(want))
	}
	worst, at := 0.0, -1
	for k, w := range want {
		if valid != nil && !valid(k) {
			continue
		}
		if d := math.Abs(float64(data[k]) - w); d > worst || math.IsNaN(d) {
			worst, at = d, k
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Errorf("%s: |onnx − confide| = %.3g at %d (onnx %v, confide %v), want ≤ %g", name, worst, at, data[at], want[at], tol)
	}
}

// TestMaxLen: the graph's longest sequence is the spec's max_len, else (a recurrent
// classifier's) Options.MaxLen, else the tokenizer's, else DefaultMaxLen; a next-token RNN
// needs no positions and accepts any length.
func TestMaxLen(t *testing.T) {
	lstm := model.Spec{Type: model.TypeLSTM, Vocab: 5, Embed: 3, Hidden: []int{4}, Output: 2}
	bounded := lstm
	bounded.MaxLen = 20
	lm := model.Spec{Type: model.TypeLSTM, Vocab: 5, Embed: 3, Hidden: []int{4}, Task: model.TaskNextToken}
	for _, tc := range []struct {
		name     string
		spec     model.Spec
		opt, tok int
		want     int
	}{
		{"spec", bounded, 7, 9, 20},
		{"option", lstm, 7, 9, 7},
		{"tokenizer", lstm, 0, 9, 9},
		{"default", lstm, 0, 0, DefaultMaxLen},
		{"next-token", lm, 0, 9, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.New(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.tok > 0 {
				m.Meta.Tokenizer = &model.TokenizerMeta{Type: model.TokenizerChar, Vocab: []string{"a", "b", "c"}, MaxLen: tc.tok}
			}
			res, err := Export(m, Options{MaxLen: tc.opt})
			if err != nil {
				t.Fatal(err)
			}
			if res.MaxLen != tc.want {
				t.Errorf("MaxLen = %d, want %d", res.MaxLen, tc.want)
			}
		})
	}
}
