package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// tableCols embeds input features 0 and 3 of a 5-feature row: 3 categories in 2
// dimensions, 4 categories in 3.
var tableCols = []EmbeddingSpec{{Name: "region", Column: 0, Categories: 3, Dim: 2}, {Name: "kind", Column: 3, Categories: 4, Dim: 3}}

// tableRows returns B rows of 5 features: category indices at the embedded features (−1,
// a missing category, in one row of each; repeats across rows), normal values elsewhere.
func tableRows(rng *rand.Rand, B int) *Tensor {
	x := randTensor(rng, B, 5)
	for i := range B {
		x.Data[i*5] = float64(i % 3)
		x.Data[i*5+3] = float64((i * 3) % 4)
	}
	x.Data[1*5] = -1
	x.Data[2*5+3] = -1
	return x
}

func TestColumnEmbeddingsGradients(t *testing.T) {
	for _, train := range []bool{false, true} {
		t.Run(map[bool]string{false: "eval", true: "train"}[train], func(t *testing.T) {
			l := NewColumnEmbeddings(5, tableCols)
			checkLayerGradients(t, l, tableRows(rand.New(rand.NewPCG(1, 3)), 6), Batch{B: 6, T: 1, Train: train, Grad: true}, 1e-7)
		})
	}
}

func TestColumnEmbeddingsLayout(t *testing.T) {
	l := NewColumnEmbeddings(5, tableCols)
	bindFresh(l, rand.New(rand.NewPCG(2, 3)))
	x := &Tensor{Data: []float64{2, 0.5, 0.25, 1, 7, -1, 1.5, 1.25, 3, 8}, Rows: 2, Cols: 5}
	y := l.Forward(x, &Batch{B: 2, T: 1})
	if y.Cols != 2+3+3 {
		t.Fatalf("output width %d, want 8 (dims 2 + 3, then 3 passed-through features)", y.Cols)
	}
	region, kind := l.tables[0].w, l.tables[1].w
	want := [][]float64{
		{region[4], region[5], kind[3], kind[4], kind[5], 0.5, 0.25, 7},
		{0, 0, kind[9], kind[10], kind[11], 1.5, 1.25, 8}, // region −1: the zero vector
	}
	for i, w := range want {
		if e := relErr(y.Row(i), w); e != 0 {
			t.Errorf("row %d = %v, want %v", i, y.Row(i), w)
		}
	}
}

// DP-SGD's per-example norms and clipped sums against one-example-at-a-time backprop.
func TestColumnEmbeddingsPerExampleMatchesNaive(t *testing.T) {
	l := NewColumnEmbeddings(5, tableCols)
	checkPerExample(t, l, tableRows(rand.New(rand.NewPCG(4, 3)), 7), Batch{B: 7, T: 1})
}

func tableMLP(t *testing.T) (*Model, *Input, Targets) {
	t.Helper()
	m, err := New(Spec{Type: TypeMLP, Input: 5, Hidden: []int{6}, Output: 3, Activation: ActTanh, Embeddings: tableCols}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	const B = 6
	in := &Input{X: tableRows(rand.New(rand.NewPCG(2, 2)), B).Data, B: B}
	tg := Targets{Class: []int32{0, 2, 1, 1, 0, 2}}
	return m, in, tg
}

func TestMLPWithEmbeddingsBackpropMatchesFiniteDifferences(t *testing.T) {
	m, in, tg := tableMLP(t)
	if want := 3*2 + 4*3 + (2+3+3)*6 + 6 + 6*3 + 3; m.NumParams() != want {
		t.Fatalf("NumParams = %d, want %d (tables, then the MLP on 8 features)", m.NumParams(), want)
	}
	checkBackprop(t, m, in, tg, 1, 1e-7)
}

func TestMLPWithEmbeddingsPerExampleMatchesNaive(t *testing.T) {
	m, in, tg := tableMLP(t)
	checkDensePerExample(t, m, in, tg, []float64{0.3, 1, 0, 2, 0.7, 1.1})
	// Per-layer clipping sees the tables as one group, first in the parameter vector.
	if sizes := m.ParamLayerSizes(); sizes[0] != 3*2+4*3 {
		t.Errorf("ParamLayerSizes %v, want the tables' 18 parameters first", sizes)
	}
}

// A category index comes from a file or a request: a bad one is an error, never a panic.
func TestMLPWithEmbeddingsRefusesBadIndices(t *testing.T) {
	m, in, _ := tableMLP(t)
	for _, tc := range []struct {
		name string
		v    float64
	}{{"past the categories", 3}, {"fractional", 0.5}, {"below -1", -2}, {"NaN", math.NaN()}, {"infinite", math.Inf(1)}} {
		t.Run(tc.name, func(t *testing.T) {
			x := append([]float64(nil), in.X...)
			x[2*5] = tc.v
			_, err := m.Forward(&Input{X: x, B: in.B})
			if err == nil || !strings.Contains(err.Error(), "example 2, feature 0 (embedded column region)") {
				t.Errorf("err = %v, want one naming example 2's feature 0", err)
			}
		})
	}
}

func TestMLPWithEmbeddingsFileRoundTripAndInputGradients(t *testing.T) {
	m, in, _ := tableMLP(t)
	path := filepath.Join(t.TempDir(), "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Spec.JSON()) != string(m.Spec.JSON()) || !strings.Contains(string(back.Spec.JSON()), `"embeddings":[{"name":"region","column":0,"categories":3,"dim":2}`) {
		t.Fatalf("spec after the round trip: %s", back.Spec.JSON())
	}
	want, _ := m.Forward(in)
	got, err := back.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got.Data, want.Data); e != 0 {
		t.Fatalf("loaded model's outputs differ: relative error %.3g", e)
	}
	// Explanations start at the stage's output: the vectors and the other features.
	x, err := back.Representation(in)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cols != back.RepresentationWidth() || x.Cols != 8 {
		t.Fatalf("representation is %d wide, RepresentationWidth %d, want 8", x.Cols, back.RepresentationWidth())
	}
	out, err := back.ForwardFrom(&Input{B: in.B}, x)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(out.Data, want.Data); e > 1e-12 {
		t.Fatalf("ForwardFrom(Representation(in)) differs from Forward(in): %.3g", e)
	}
	if ws := back.WeightTensors(); len(ws) != 4 || !ws[0].ChannelRows || ws[0].Rows != 3 || ws[1].Rows != 4 || ws[1].Offset != 6 {
		t.Errorf("weight tensors %+v, want the two tables (rows as channels), then the two Linear layers", ws)
	}
}

func TestEmbeddingsSpecValidation(t *testing.T) {
	mlp := func(edit func(*Spec)) Spec {
		s := Spec{Type: TypeMLP, Input: 5, Hidden: []int{4}, Output: 2, Embeddings: []EmbeddingSpec{{Column: 0, Categories: 3, Dim: 2}}}
		edit(&s)
		return s
	}
	raised := Limits{MaxWidth: math.MaxInt, MaxVocab: math.MaxInt, MaxParams: math.MaxInt}
	for _, tc := range []struct {
		name   string
		limits Limits
		spec   Spec
		want   string
	}{
		{"column past the input", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Column = 5 }), "embeddings[0].column = 5: must be an input feature, in [0, input = 5)"},
		{"negative column", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Column = -1 }), "embeddings[0].column = -1"},
		{"column twice", Limits{}, mlp(func(s *Spec) { s.Embeddings = append(s.Embeddings, s.Embeddings[0]) }), "embeddings[1].column = 0: embeddings[0] embeds it already"},
		{"more columns than inputs", Limits{}, mlp(func(s *Spec) {
			s.Input = 1
			s.Embeddings = append(s.Embeddings, EmbeddingSpec{Column: 0, Categories: 2, Dim: 1})
		}), "embeddings lists 2 columns, but the input has 1 features"},
		{"no categories", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Categories = 0 }), "embeddings[0].categories = 0"},
		{"categories beyond MaxVocab", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Categories = 1<<21 + 1 }), "embeddings[0].categories = 2097153 exceeds the limit 2097152 (model.Limits.MaxVocab)"},
		{"no dim", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Dim = 0 }), "embeddings[0].dim = 0"},
		{"dim beyond MaxWidth", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Dim = 1<<20 + 1 }), "embeddings[0].dim = 1048577 exceeds the limit 1048576 (model.Limits.MaxWidth)"},
		{"width beyond MaxWidth", Limits{}, mlp(func(s *Spec) {
			s.Embeddings = append(s.Embeddings, EmbeddingSpec{Column: 1, Categories: 2, Dim: 1 << 20})
		}), "the first layer would read 1048581 features"},
		{"width overflow", raised, mlp(func(s *Spec) {
			s.Embeddings = []EmbeddingSpec{{Column: 0, Categories: 1, Dim: math.MaxInt}, {Column: 1, Categories: 1, Dim: math.MaxInt}, {Column: 2, Categories: 1, Dim: math.MaxInt}}
		}), "more than 2^64 features"},
		{"table params", Limits{}, mlp(func(s *Spec) { s.Embeddings[0].Categories, s.Embeddings[0].Dim = 1<<21, 1<<10 }), "parameters, beyond the limit 268435456 (model.Limits.MaxParams)"},
		{"with features", Limits{}, mlp(func(s *Spec) {
			s.Input = 64
			s.Features = &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}
		}), "embeddings and features are both first stages"},
		{"transformer", Limits{}, Spec{Type: TypeTransformer, Vocab: 13, Embed: 8, Layers: 1, Heads: 2, MaxLen: 6, Output: 3, Embeddings: []EmbeddingSpec{{Column: 0, Categories: 3, Dim: 2}}},
			"embeddings: embedded categorical columns are a stage of an mlp; remove them for type transformer"},
		{"cnn", Limits{}, Spec{Type: TypeCNN, Image: []int{4, 4}, Conv: []ConvSpec{{Filters: 2, Kernel: 3}}, Output: 2, Embeddings: []EmbeddingSpec{{Column: 0, Categories: 3, Dim: 2}}},
			"remove them for type cnn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.limits.NumParams(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// A hostile spec in a model file is refused before anything is built.
	for _, spec := range []string{
		`{"type":"mlp","input":3,"output":2,"embeddings":[{"column":0,"categories":4000000000,"dim":4000000000}]}`,
		`{"type":"mlp","input":3,"output":2,"embeddings":[{"column":7,"categories":2,"dim":2}]}`,
	} {
		if _, err := Unmarshal(modelFile(spec, make([]float64, 8))); err == nil {
			t.Errorf("Unmarshal accepted %s", spec)
		}
	}
	if _, err := ParseSpec([]byte(`{type: mlp, input: 3, output: 2, embeddings: [{column: 0, categories: 2, dims: 2}]}`)); err == nil || !strings.Contains(err.Error(), "field dims not found") {
		t.Errorf("ParseSpec of a misspelt key: %v", err)
	}
}

func TestEmbedColumns(t *testing.T) {
	cols := []EmbeddingSpec{{Name: "region", Column: 2, Categories: 4, Dim: 3}}
	mlp := Spec{Type: TypeMLP, Input: 5, Hidden: []int{8}, Output: 2}
	got, err := mlp.EmbedColumns(cols)
	if err != nil || len(got.Embeddings) != 1 || got.Embeddings[0] != cols[0] || len(mlp.Embeddings) != 0 {
		t.Fatalf("EmbedColumns on an mlp: %+v, %v; want the dataset's columns on a copy", got.Embeddings, err)
	}
	if &got.Embeddings[0] == &cols[0] {
		t.Error("EmbedColumns shares the caller's slice")
	}
	explicit := mlp
	explicit.Embeddings = []EmbeddingSpec{{Column: 2, Categories: 4, Dim: 3}}
	if _, err := explicit.EmbedColumns(cols); err != nil {
		t.Errorf("an explicit spec matching the dataset (names aside): %v", err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
		cols []EmbeddingSpec
		want string
	}{
		{"other dim", func() Spec {
			s := explicit
			s.Embeddings = []EmbeddingSpec{{Column: 2, Categories: 4, Dim: 5}}
			return s
		}(), cols,
			"embeddings [{column 2, categories 4, dim 5}] differ from the dataset's embedded columns [{column 2, categories 4, dim 3}]"},
		{"dataset embeds none", explicit, nil, "the dataset embeds none"},
		{"not an mlp", Spec{Type: TypeCNN, Image: []int{4, 4}, Output: 2}, cols, "which only an mlp looks up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.spec.EmbedColumns(tc.cols); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkMLPWithEmbeddings times a DP-SGD step's gradient work (ghost norms, then the
// clipped sum) against plain backprop, on a batch of 256 rows with two embedded columns of
// 50 and 1,000 categories.
func BenchmarkMLPWithEmbeddings(b *testing.B) {
	const B, in = 256, 12
	cols := []EmbeddingSpec{{Column: 0, Categories: 50, Dim: 8}, {Column: 1, Categories: 1000, Dim: 16}}
	m, err := New(Spec{Type: TypeMLP, Input: in, Hidden: []int{64, 64}, Output: 2, Embeddings: cols}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	x := randTensor(rng, B, in).Data
	tg := Targets{Class: make([]int32, B)}
	for i := range B {
		x[i*in], x[i*in+1] = float64(rng.IntN(50)), float64(rng.IntN(1000))
		tg.Class[i] = int32(i % 2)
	}
	batch := &Input{X: x, B: B}
	b.Run("backprop", func(b *testing.B) {
		for range b.N {
			if _, _, err := m.Backprop(batch, tg, 1.0/B, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("per-example", func(b *testing.B) {
		norms := make([]float64, B)
		for range b.N {
			if _, _, err := m.PerExampleNorms(batch, tg, nil, norms); err != nil {
				b.Fatal(err)
			}
			if err := m.AccumulateWeighted(norms); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// InputFeatures sums each column's vector dimensions into its input feature.
func TestInputFeaturesFoldsTheVectors(t *testing.T) {
	m, _, _ := tableMLP(t)
	// Representation: region (2), kind (3), then features 1, 2, 4.
	got, err := m.InputFeatures([]float64{1, 2, 10, 20, 30, 0.1, 0.2, 0.4})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{3, 0.1, 0.2, 60, 0.4}; relErr(got, want) > 1e-15 {
		t.Errorf("InputFeatures = %v, want %v", got, want)
	}
	if _, err := m.InputFeatures(make([]float64, 5)); err == nil {
		t.Error("a row of the input's width was taken for a representation row")
	}
}

// The tables start as fastai's: 0.01·(N(0, 1) fmod 2), inside (−0.02, 0.02).
func TestColumnEmbeddingsInitIsFastais(t *testing.T) {
	m, _, _ := tableMLP(t)
	tables := m.Params[:3*2+4*3]
	var sq float64
	for _, w := range tables {
		if !(math.Abs(w) < 0.02) {
			t.Fatalf("table value %v outside (−0.02, 0.02)", w)
		}
		sq += w * w
	}
	if rms := math.Sqrt(sq / float64(len(tables))); rms < 0.003 || rms > 0.02 {
		t.Errorf("tables' RMS %v, want about 0.01", rms)
	}
}
