package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// featureModel is an MLP on the scattering features (J = 1, L = 4: 5 × 4 × 4 = 80) of 8×8
// images, with GroupNorm over 5 groups, and a batch of raw images.
func featureModel(t *testing.T) (*Model, *Input, Targets) {
	t.Helper()
	return featureModelOf(t, Spec{
		Type: TypeMLP, Input: 64, Hidden: []int{6}, Output: 3, Activation: ActTanh,
		Features: &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: FeatureNormGroup, Groups: 5},
	})
}

// featureModelOf is featureModel with another spec on 8×8 images.
func featureModelOf(t *testing.T, spec Spec) (*Model, *Input, Targets) {
	t.Helper()
	m, err := New(spec, rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(6, 6))
	const B = 7
	in := &Input{X: make([]float64, B*64), B: B}
	for i := range in.X {
		in.X[i] = rng.Float64()
	}
	tg := Targets{Class: make([]int32, B)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(3))
	}
	return m, in, tg
}

// TestFeaturesForwardRawEqualsPrecomputed: Forward on raw images equals Forward on features
// computed beforehand (Input.Transformed), and so do the per-example norms DP-SGD uses.
func TestFeaturesForwardRawEqualsPrecomputed(t *testing.T) {
	t.Run("mlp", func(t *testing.T) {
		m, raw, tg := featureModel(t)
		checkRawEqualsPrecomputed(t, m, raw, tg)
	})
	t.Run("cnn", func(t *testing.T) {
		m, raw, tg := featureModelOf(t, cnnSpecs["scattering_features"])
		checkRawEqualsPrecomputed(t, m, raw, tg)
	})
}

// checkRawEqualsPrecomputed is TestFeaturesForwardRawEqualsPrecomputed for one model with a
// feature stage of 80 features on 8×8 images.
func checkRawEqualsPrecomputed(t *testing.T, m *Model, raw *Input, tg Targets) {
	t.Helper()
	f := m.Features()
	if f == nil || f.InDim() != 64 || f.OutDim() != 80 {
		t.Fatalf("feature stage %v", f)
	}
	feats := make([]float64, raw.B*f.OutDim())
	f.Transform(feats, raw.X, raw.B)
	pre := &Input{X: feats, B: raw.B, Transformed: true}

	a, err := m.Forward(raw)
	if err != nil {
		t.Fatal(err)
	}
	outRaw := append([]float64(nil), a.Data...)
	b, err := m.Forward(pre)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b.Data {
		if v != outRaw[i] {
			t.Fatalf("output %d: %v from raw input, %v from precomputed features", i, outRaw[i], v)
		}
	}

	nRaw, nPre := make([]float64, raw.B), make([]float64, raw.B)
	if _, _, err := m.PerExampleNorms(raw, tg, nil, nRaw); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.PerExampleNorms(pre, tg, nil, nPre); err != nil {
		t.Fatal(err)
	}
	for i := range nRaw {
		if nRaw[i] != nPre[i] {
			t.Errorf("example %d: gradient norm %v from raw input, %v from features", i, nRaw[i], nPre[i])
		}
	}
	// The trainable part alone is an ordinary MLP with input OutDim, or a CNN on the map of
	// the features (channels-last): same parameters, same output.
	head := m.Spec
	head.Features, head.Input = nil, f.OutDim()
	if head.Type == TypeCNN {
		r, c := m.Spec.Features.OutShape()
		head.Image = []int{r, c, m.Spec.Features.Channels()}
	}
	h, err := New(head, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SetParams(m.Params); err != nil {
		t.Fatal(err)
	}
	c, err := h.Forward(&Input{X: feats, B: raw.B})
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(c.Data, outRaw); e != 0 {
		t.Errorf("head on features differs from the model on raw input: %v", e)
	}
}

// TestFeaturesChannelsLast: the channels_last layout (a cnn's) is the scattering
// transform's output (channel-major) transposed, example by example, and a cnn gets it.
// Features cached under a spec (train's disk cache, a client's) are keyed by its JSON, so
// the layout must be in it.
func TestFeaturesChannelsLast(t *testing.T) {
	fs := FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: FeatureNormGroup, Groups: 5}
	major := fs.build()
	fs.Layout = FeatureLayoutChannelsLast
	last := fs.build()
	const B, channels, positions = 3, 5, 16
	if last.InDim() != 64 || last.OutDim() != channels*positions {
		t.Fatalf("channels-last stage: %d → %d, want 64 → %d", last.InDim(), last.OutDim(), channels*positions)
	}
	m, _, _ := featureModelOf(t, cnnSpecs["scattering_features"])
	if l := m.Spec.Features.Layout; l != FeatureLayoutChannelsLast {
		t.Errorf("a cnn's feature layout is %q, want %s", l, FeatureLayoutChannelsLast)
	}
	if !strings.Contains(string(m.Spec.JSON()), `"layout":"channels_last"`) {
		t.Errorf("the layout is missing from the cnn's spec %s", m.Spec.JSON())
	}
	if cnnSpecs["scattering_features"].Features.Layout != "" {
		t.Error("filling in a cnn's defaults changed the caller's feature spec")
	}
	rng := rand.New(rand.NewPCG(2, 9))
	x := make([]float64, B*64)
	for i := range x {
		x[i] = rng.Float64()
	}
	a, b := make([]float64, B*channels*positions), make([]float64, B*channels*positions)
	major.Transform(a, x, B)
	last.Transform(b, x, B)
	for i := range B {
		for c := range channels {
			for p := range positions {
				want := a[(i*channels+c)*positions+p]
				if got := b[(i*positions+p)*channels+c]; got != want {
					t.Fatalf("example %d channel %d position %d: %v channels-last, %v channel-major", i, c, p, got, want)
				}
			}
		}
	}
}

// TestFeaturesInputErrors: wrong widths and a transformed input to a model without a
// feature stage are errors, not panics.
func TestFeaturesInputErrors(t *testing.T) {
	m, raw, _ := featureModel(t)
	for _, in := range []*Input{
		{X: raw.X[:63], B: 1},
		{X: make([]float64, 79), B: 1, Transformed: true},
	} {
		if _, err := m.Forward(in); err == nil {
			t.Errorf("input of %d values (transformed %v) accepted", len(in.X), in.Transformed)
		}
	}
	plain, _, _ := testMLP(t, ActTanh, LossCrossEntropy)
	if _, err := plain.Forward(&Input{X: make([]float64, 6), B: 1, Transformed: true}); err == nil {
		t.Error("a transformed input to a model without features was accepted")
	}
}

func TestFeatureSpecValidation(t *testing.T) {
	base := func() Spec {
		return Spec{Type: TypeMLP, Input: 64, Output: 3, Features: &FeatureSpec{Type: FeaturesScattering, J: 1, Shape: []int{8, 8}}}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid spec rejected: %v", err)
	}
	for _, c := range []struct {
		name, want string
		edit       func(*Spec)
	}{
		{"unknown_type", "type", func(s *Spec) { s.Features.Type = "pca" }},
		{"j_zero", "j = 0", func(s *Spec) { s.Features.J = 0 }},
		{"j_too_large", "exceeds the image", func(s *Spec) { s.Features.J = 4 }},
		{"shape_mismatch", "input is 64", func(s *Spec) { s.Features.Shape = []int{8, 9} }},
		{"shape_rank", "rows, cols", func(s *Spec) { s.Features.Shape = []int{64} }},
		{"groups_not_dividing", "divide", func(s *Spec) { s.Features.Norm, s.Features.Groups = FeatureNormGroup, 7 }},
		{"groups_without_norm", "without norm", func(s *Spec) { s.Features.Groups = 3 }},
		{"unknown_norm", "norm", func(s *Spec) { s.Features.Norm = "batch" }},
		{"sequence_model", "dense inputs", func(s *Spec) {
			*s = Spec{Type: TypeLSTM, Vocab: 5, Embed: 4, Hidden: []int{4}, Output: 2, Features: s.Features}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := base()
			c.edit(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// TestFeaturesModelFile: the spec (with its feature stage) and parameters survive a save
// and load, the loaded model applies the same transform, and Clone shares the stage.
func TestFeaturesModelFile(t *testing.T) {
	m, raw, _ := featureModel(t)
	path := filepath.Join(t.TempDir(), "m.confide")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.Features == nil || l.Spec.Features.Groups != 5 {
		t.Fatalf("loaded spec %+v lost its feature stage", l.Spec)
	}
	a, _ := m.Forward(raw)
	want := append([]float64(nil), a.Data...)
	b, err := l.Forward(raw)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(b.Data, want); e != 0 {
		t.Errorf("loaded model's output differs by %v", e)
	}
	if c := m.Clone(); c.Features() != m.Features() {
		t.Error("Clone rebuilt the feature stage instead of sharing it")
	}
	// Specs without features marshal exactly as before the field existed.
	plain, _, _ := testMLP(t, ActReLU, LossCrossEntropy)
	if strings.Contains(string(plain.Spec.JSON()), "features") {
		t.Errorf("spec without features marshals a features key: %s", plain.Spec.JSON())
	}
}

// TestPerExampleLayerNorms: the per-layer norms of every example combine to its whole
// gradient norm, and per-layer weights equal to flat ones accumulate the same gradient.
func TestPerExampleLayerNorms(t *testing.T) {
	m, in, tg := testMLP(t, ActTanh, LossCrossEntropy)
	sizes := m.ParamLayerSizes()
	if len(sizes) != 3 {
		t.Fatalf("%d parametrised layers, want 3", len(sizes))
	}
	flat := make([]float64, in.B)
	if _, _, err := m.PerExampleNorms(in, tg, nil, flat); err != nil {
		t.Fatal(err)
	}
	per := make([][]float64, len(sizes))
	for l := range per {
		per[l] = make([]float64, in.B)
	}
	if _, _, err := m.PerExampleLayerNorms(in, tg, nil, per); err != nil {
		t.Fatal(err)
	}
	w := make([][]float64, len(sizes))
	for i := 0; i < in.B; i++ {
		ss := 0.0
		for l := range per {
			ss += per[l][i] * per[l][i]
		}
		if math.Abs(math.Sqrt(ss)-flat[i]) > 1e-12*flat[i] {
			t.Errorf("example %d: layer norms combine to %v, whole norm %v", i, math.Sqrt(ss), flat[i])
		}
	}
	ws := []float64{0.5, 1, 0.25, 2, 0.1}
	for l := range w {
		w[l] = ws
	}
	m.ZeroGrads()
	if err := m.AccumulateWeightedPerLayer(w); err != nil {
		t.Fatal(err)
	}
	got := append([]float64(nil), m.Grads...)
	m.ZeroGrads()
	if err := m.AccumulateWeighted(ws); err != nil {
		t.Fatal(err)
	}
	if e := relErr(got, m.Grads); e > 1e-15 {
		t.Errorf("per-layer accumulation with equal weights differs by %v", e)
	}
	if err := m.AccumulateWeightedPerLayer(w[:2]); err == nil {
		t.Error("2 weight rows for 3 layers accepted")
	}
}
