package model

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// hostileSpec is the spec of issue 13: before limits, building it panicked with
// "makeslice: len out of range".
const hostileSpec = `{"type":"mlp","input":2147483648,"hidden":[2147483648],"output":2}`

// modelFile encodes a model file of format version 1 (no metadata) holding specJSON and
// params, with a valid checksum, whatever the spec says.
func modelFile(specJSON string, params []float64) []byte {
	buf := []byte(fileMagic)
	buf = binary.LittleEndian.AppendUint32(buf, 1)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(specJSON)))
	buf = append(buf, specJSON...)
	return appendParams(buf, params)
}

// modelFileMeta encodes a model file of format version 2 holding specJSON, metaJSON and
// params, with a valid checksum, whatever the spec and the metadata say.
func modelFileMeta(specJSON, metaJSON string, params []float64) []byte {
	buf := []byte(fileMagic)
	buf = binary.LittleEndian.AppendUint32(buf, 2)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(specJSON)))
	buf = append(buf, specJSON...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(metaJSON)))
	buf = append(buf, metaJSON...)
	return appendParams(buf, params)
}

// appendParams appends the parameter count, the parameters and the checksum.
func appendParams(buf []byte, params []float64) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(params)))
	for _, p := range params {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p))
	}
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...)
}

// countSpecs covers every branch of the parameter count: each model type, cell, head,
// position encoding, norm placement and a feature stage.
var countSpecs = []Spec{
	{Type: TypeMLP, Input: 3, Output: 2},
	{Type: TypeMLP, Input: 6, Hidden: []int{5, 4}, Output: 3, Dropout: 0.1},
	{Type: TypeMLP, Input: 64, Hidden: []int{7}, Output: 3, Features: &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}},
	{Type: TypeRNN, Vocab: 11, Embed: 4, Hidden: []int{5}, Output: 3},
	{Type: TypeRNN, Vocab: 11, Embed: 4, Hidden: []int{5}, Layers: 3, Output: 3, Activation: ActReLU},
	{Type: TypeLSTM, Vocab: 11, Embed: 4, Hidden: []int{5, 6}, Output: 3},
	{Type: TypeLSTM, Vocab: 11, Embed: 4, Hidden: []int{5}, Layers: 2, Task: TaskNextToken},
	{Type: TypeGRU, Vocab: 11, Embed: 4, Hidden: []int{5}, Layers: 3, Output: 2},
	{Type: TypeGRU, Vocab: 11, Embed: 4, Hidden: []int{6, 5}, Task: TaskNextToken},
	{Type: TypeTransformer, Vocab: 13, Embed: 8, Layers: 2, Heads: 2, MaxLen: 6, Output: 3},
	{Type: TypeTransformer, Vocab: 13, Embed: 8, Layers: 1, Heads: 4, FF: 5, MaxLen: 6, Output: 3, Norm: NormPre, Positional: PosSinusoidal},
	{Type: TypeTransformer, Vocab: 13, Embed: 8, Layers: 3, Heads: 1, MaxLen: 6, Task: TaskNextToken, Norm: NormPre},
	cnnSpecs["groupnorm_maxpool_dilated_avgpool"],
	cnnSpecs["strided_no_hidden"],
	referenceCNN(),
	{Type: TypeMLP, Input: 5, Hidden: []int{6}, Output: 3, Embeddings: []EmbeddingSpec{{Column: 3, Categories: 4, Dim: 3}, {Column: 0, Categories: 7, Dim: 2}}},
	// The examples' models (examples/*.yaml, sizes the simulator fills from the datasets).
	{Type: TypeMLP, Input: 784, Hidden: []int{200, 200}, Output: 10},
	{Type: TypeMLP, Input: 784, Output: 10, Features: &FeatureSpec{Type: FeaturesScattering, J: 2, L: 8, Shape: []int{28, 28}, Norm: FeatureNormGroup, Groups: 27}},
	{Type: TypeLSTM, Vocab: 80, Embed: 16, Hidden: []int{128}, Task: TaskNextToken},
	{Type: TypeTransformer, Vocab: 4096, Embed: 32, Layers: 1, Heads: 4, FF: 64, MaxLen: 128, Output: 2, Norm: NormPre},
}

// Spec.NumParams counts what New allocates, without building the model.
func TestNumParamsMatchesTheBuiltModel(t *testing.T) {
	for _, s := range countSpecs {
		t.Run(string(s.JSON()), func(t *testing.T) {
			n, err := s.NumParams()
			if err != nil {
				t.Fatal(err)
			}
			m, err := New(s, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			if n != m.NumParams() {
				t.Fatalf("NumParams = %d, the built model has %d", n, m.NumParams())
			}
		})
	}
}

// The filter bank's size, which Validate bounds, is what newScattering allocates.
func TestFilterBankValuesMatchesTheBuiltFilters(t *testing.T) {
	for _, f := range []FeatureSpec{
		{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}},
		{Type: FeaturesScattering, J: 2, L: 8, Shape: []int{28, 28}},
		{Type: FeaturesScattering, J: 3, L: 6, Shape: []int{32, 20}},
	} {
		t.Run(f.String(), func(t *testing.T) {
			s := newScattering(f.withDefaults())
			var n uint64
			for _, w := range s.psi {
				for _, lv := range w.levels {
					n += uint64(len(lv))
				}
			}
			for _, p := range s.phi {
				n += uint64(len(p))
			}
			if got := f.filterBankValues(); got != n {
				t.Fatalf("filterBankValues = %d, newScattering built %d", got, n)
			}
		})
	}
}

// Every size a hostile spec could inflate is refused with an error naming the field and
// the limit; none is allocated.
func TestValidateRefusesSpecsBeyondTheLimits(t *testing.T) {
	seq := func(edit func(*Spec)) Spec {
		s := Spec{Type: TypeTransformer, Vocab: 13, Embed: 8, Layers: 1, Heads: 2, MaxLen: 6, Output: 3}
		edit(&s)
		return s
	}
	lstm := func(edit func(*Spec)) Spec {
		s := Spec{Type: TypeLSTM, Vocab: 13, Embed: 8, Hidden: []int{4}, Output: 3}
		edit(&s)
		return s
	}
	raised := Limits{MaxWidth: math.MaxInt, MaxLayers: math.MaxInt, MaxParams: math.MaxInt}
	for _, tc := range []struct {
		name   string
		limits Limits
		spec   Spec
		want   []string
	}{
		{"issue-13", Limits{}, Spec{Type: TypeMLP, Input: 1 << 31, Hidden: []int{1 << 31}, Output: 2},
			[]string{"input = 2147483648 exceeds the limit 1048576 (model.Limits.MaxWidth)", "hidden[0] = 2147483648 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"output", Limits{}, Spec{Type: TypeMLP, Input: 3, Output: 1<<20 + 1}, []string{"output = 1048577 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"hidden-count", Limits{}, Spec{Type: TypeMLP, Input: 3, Hidden: make([]int, 1025), Output: 2}, []string{"len(hidden) = 1025 exceeds the limit 1024 (model.Limits.MaxLayers)"}},
		{"mlp-params", Limits{}, Spec{Type: TypeMLP, Input: 1 << 20, Hidden: []int{1 << 20}, Output: 2},
			[]string{"1099514773506 parameters, beyond the limit 268435456 (model.Limits.MaxParams)"}},
		{"params-overflow", raised, Spec{Type: TypeMLP, Input: 1 << 40, Hidden: []int{1 << 40, 1 << 40}, Output: 2},
			[]string{"more than 2^64 parameters, beyond the limit 9223372036854775807 (model.Limits.MaxParams)"}},
		{"layers-overflow", raised, lstm(func(s *Spec) { s.Hidden, s.Layers = []int{1 << 30}, math.MaxInt }),
			[]string{"more than 2^64 parameters"}},
		{"lowered-params", Limits{MaxParams: 5}, Spec{Type: TypeMLP, Input: 3, Output: 2}, []string{"8 parameters, beyond the limit 5 (model.Limits.MaxParams)"}},
		{"vocab", Limits{}, seq(func(s *Spec) { s.Vocab = 1<<21 + 1 }), []string{"vocab = 2097153 exceeds the limit 2097152 (model.Limits.MaxVocab)"}},
		{"embed", Limits{}, seq(func(s *Spec) { s.Embed = 1 << 21 }), []string{"embed = 2097152 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"ff", Limits{}, seq(func(s *Spec) { s.FF = 1<<20 + 2 }), []string{"ff = 1048578 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"ff-default", Limits{}, seq(func(s *Spec) { s.Embed, s.Heads = 1<<19, 1 }), []string{"ff = 2097152 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"max-len", Limits{}, seq(func(s *Spec) { s.MaxLen = 1<<16 + 1 }), []string{"max_len = 65537 exceeds the limit 65536 (model.Limits.MaxSeqLen)"}},
		{"blocks", Limits{}, seq(func(s *Spec) { s.Layers = 1 << 40 }), []string{"layers = 1099511627776 exceeds the limit 1024 (model.Limits.MaxLayers)"}},
		{"heads", Limits{}, seq(func(s *Spec) { s.Embed, s.Heads = 2048, 2048 }), []string{"heads = 2048 exceeds the limit 1024 (model.Limits.MaxHeads)"}},
		{"transformer-params", Limits{}, seq(func(s *Spec) { s.Vocab, s.Embed = 1<<21, 1<<10 }),
			[]string{"parameters, beyond the limit 268435456 (model.Limits.MaxParams)"}},
		{"recurrent-layers", Limits{}, lstm(func(s *Spec) { s.Layers = 1 << 20 }), []string{"layers = 1048576 exceeds the limit 1024 (model.Limits.MaxLayers)"}},
		{"recurrent-width", Limits{}, lstm(func(s *Spec) { s.Hidden = []int{4, 1 << 30} }), []string{"hidden[1] = 1073741824 exceeds the limit 1048576 (model.Limits.MaxWidth)"}},
		{"next-token-output", Limits{}, lstm(func(s *Spec) { s.Task, s.Vocab, s.Output = TaskNextToken, 1<<21+1, 0 }),
			[]string{"vocab = 2097153 exceeds the limit 2097152 (model.Limits.MaxVocab)"}},
		{"feature-dim", Limits{MaxFeatureDim: 50}, Spec{Type: TypeMLP, Input: 64, Output: 2, Features: &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}}},
			[]string{"features.l = 4, j = 1: 80 features per example (5 channels of [8 8]) exceed the limit 50 (model.Limits.MaxFeatureDim; lower l or j)"}},
		{"filter-bank", Limits{}, Spec{Type: TypeMLP, Input: 1 << 20, Output: 2, Features: &FeatureSpec{Type: FeaturesScattering, J: 6, L: 8, Shape: []int{1024, 1024}}},
			[]string{"features.shape = [1024 1024], j = 6, l = 8: the filter bank holds", "beyond the limit 33554432 (model.Limits.MaxFilterBank"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			n, err := tc.limits.NumParams(tc.spec)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("accepted with %d parameters", n)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("validation allocated %d bytes", got)
			}
			if err := tc.limits.Validate(tc.spec); err == nil {
				t.Error("Validate accepted what NumParams refused")
			}
		})
	}
}

// Limits are configurable: raised, a spec beyond the defaults validates (and loads);
// lowered, a small one is refused. Zero fields keep their defaults.
func TestLimitsAreConfigurable(t *testing.T) {
	big := Spec{Type: TypeMLP, Input: 1 << 21, Output: 2}
	if err := big.Validate(); err == nil || !strings.Contains(err.Error(), "model.Limits.MaxWidth") {
		t.Fatalf("default limits: %v, want a MaxWidth refusal", err)
	}
	if n, err := (Limits{MaxWidth: 1 << 22}).NumParams(big); err != nil || n != (1<<21)*2+2 {
		t.Fatalf("raised MaxWidth: %d, %v", n, err)
	}
	if got, want := DefaultLimits(), (Limits{MaxParams: 1 << 28, MaxWidth: 1 << 20, MaxVocab: 1 << 21, MaxSeqLen: 1 << 16,
		MaxLayers: 1024, MaxHeads: 1024, MaxFeatureDim: 1 << 18, MaxFilterBank: 1 << 25, MaxActivation: 1 << 24, MaxMetaBytes: 1 << 24}); got != want {
		t.Fatalf("DefaultLimits() = %+v, want %+v", got, want)
	}

	small := Spec{Type: TypeMLP, Input: 3, Hidden: []int{4}, Output: 2}
	m, err := New(small, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	file := m.Marshal()
	if _, err := (Limits{MaxParams: 10}).Unmarshal(file); err == nil || !strings.Contains(err.Error(), "26 parameters, beyond the limit 10 (model.Limits.MaxParams)") {
		t.Fatalf("lowered MaxParams: %v", err)
	}
	if _, err := (Limits{MaxParams: 10}).ParseSpec(small.JSON()); err == nil {
		t.Fatal("lowered MaxParams: ParseSpec accepted 26 parameters")
	}
	if _, err := (Limits{MaxParams: 10}).New(small, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("lowered MaxParams: New accepted 26 parameters")
	}
	// A model built under raised limits clones (Clone does not re-apply the defaults).
	wide := Spec{Type: TypeMLP, Input: 1<<20 + 1, Output: 2}
	w, err := (Limits{MaxWidth: 1 << 21}).New(wide, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c := w.Clone(); c.NumParams() != w.NumParams() {
		t.Fatalf("clone has %d parameters, want %d", c.NumParams(), w.NumParams())
	}
	if _, err := Unmarshal(w.Marshal()); err == nil || !strings.Contains(err.Error(), "model.Limits.MaxWidth") {
		t.Fatalf("default Unmarshal of a model beyond the defaults: %v", err)
	}
	if back, err := (Limits{MaxWidth: 1 << 21}).Unmarshal(w.Marshal()); err != nil || back.NumParams() != w.NumParams() {
		t.Fatalf("Unmarshal under the raised limit: %v", err)
	}
}

// A model file's spec is checked against the limits, and its parameter count against the
// stored vector, before the model is built: a file declaring a huge model is an error that
// names what is wrong, never a panic or an allocation of its size.
func TestUnmarshalChecksTheSpecBeforeBuilding(t *testing.T) {
	atLimit := fmt.Sprintf(`{"type":"mlp","input":%d,"hidden":[255],"output":2}`, 1<<20) // 255·2^20 + 767 parameters
	for _, tc := range []struct {
		name    string
		file    []byte
		want    string
		corrupt bool
	}{
		{"issue-13", modelFile(hostileSpec, []float64{1, 2, 3}), "input = 2147483648 exceeds the limit 1048576 (model.Limits.MaxWidth)", false},
		{"issue-13-hidden", modelFile(hostileSpec, nil), "hidden[0] = 2147483648 exceeds the limit 1048576 (model.Limits.MaxWidth)", false},
		{"params", modelFile(`{"type":"mlp","input":1048576,"hidden":[1048576],"output":2}`, nil), "(model.Limits.MaxParams)", false},
		{"within-limits-short-vector", modelFile(atLimit, []float64{1}), "spec needs 267387647 parameters, file holds 1", true},
		{"negative-width", modelFile(`{"type":"mlp","input":-1,"output":2}`, nil), "input = -1", false},
		{"trailing-spec-data", modelFile(`{"type":"mlp","input":1,"output":2}{}`, make([]float64, 4)), "data after the JSON object", true},
		{"overflowing-int", modelFile(`{"type":"mlp","input":1e30,"output":2}`, nil), "spec:", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			m, err := Unmarshal(tc.file)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("accepted a model of %d parameters", m.NumParams())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if errors.Is(err, ErrCorrupt) != tc.corrupt {
				t.Errorf("errors.Is(err, ErrCorrupt) = %v, want %v", !tc.corrupt, tc.corrupt)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("Unmarshal allocated %d bytes", got)
			}
		})
	}
}

// The same spec reaching a client inside a task goes through ParseSpec and NumParams (see
// client.modelSpec and client/spec_limits_test.go).
func TestParseSpecRefusesTheIssue13Spec(t *testing.T) {
	_, err := ParseSpec([]byte(hostileSpec))
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit 1048576 (model.Limits.MaxWidth)") {
		t.Fatalf("ParseSpec: %v, want an error naming model.Limits.MaxWidth", err)
	}
}
