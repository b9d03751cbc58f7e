package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The fuzz targets and their seed corpora (testdata/fuzz/<target>/, written as go test
// -fuzz lays them out; the issue-13 spec is among them):
//
//	go test -run XXX -fuzz FuzzUnmarshal -fuzztime 2m ./model/     checksum rewritten: reaches the decoder
//	go test -run XXX -fuzz FuzzModelFileSpec -fuzztime 2m ./model/ well-framed files, any spec and length
//	go test -run XXX -fuzz FuzzCorruptFile -fuzztime 2m ./model/   raw files: the checksum guards them
//	go test -run XXX -fuzz FuzzParseSpec -fuzztime 2m ./model/     YAML/JSON specs: limits, counts, builds
//	go test -run XXX -fuzz FuzzModelFileMeta -fuzztime 2m ./model/ well-framed files, any metadata

// fuzzLimits keeps each fuzz input cheap: the default limits except a filter bank of at
// most 2^18 values (a default-sized one takes a second to build). The paths are those of
// the defaults.
var fuzzLimits = Limits{MaxFilterBank: 1 << 18}

// fuzzModels are the seed models: one of each type, and a feature stage; all but the first
// carry metadata of each kind.
func fuzzModels() []*Model {
	var ms []*Model
	prov := &Provenance{Mode: TrainedSim, Dataset: "mnist", Strategy: "fedavg", Rounds: 3, Clients: 10, Seed: 7,
		Privacy: []PrivacyGuarantee{{Level: PrivacyRecord, Mechanism: "DP-SGD", Epsilon: 2.5, Delta: 1e-5, NoiseMultiplier: 1.1, Meaning: "each example"}},
		Created: "2026-01-02T03:04:05Z", ConfideVersion: "(devel)"}
	for _, c := range []struct {
		spec Spec
		meta Meta
	}{
		{Spec{Type: TypeMLP, Input: 2, Hidden: []int{2}, Output: 2}, Meta{}},
		{Spec{Type: TypeMLP, Input: 64, Output: 3, Features: &FeatureSpec{Type: FeaturesScattering, J: 1, L: 4, Shape: []int{8, 8}, Norm: FeatureNormGroup, Groups: 5}},
			Meta{ClassNames: []string{"a", "b", "c"}, Input: &InputMeta{Kind: InputImage, Shape: []int{8, 8}, Mean: []float64{0}, Std: []float64{255}}, Provenance: prov}},
		{Spec{Type: TypeGRU, Vocab: 5, Embed: 3, Hidden: []int{2}, Layers: 2, Task: TaskNextToken},
			Meta{Tokenizer: &TokenizerMeta{Type: TokenizerChar, Vocab: []string{"a", " ", "é"}}, Provenance: &Provenance{Mode: TrainedCentral, Epochs: 2}}},
		{Spec{Type: TypeTransformer, Vocab: 7, Embed: 4, Layers: 1, Heads: 2, FF: 3, MaxLen: 4, Output: 2, Norm: NormPre},
			Meta{ClassNames: []string{"ham", "spam"}, Tokenizer: &TokenizerMeta{Type: TokenizerWord, Vocab: []string{"the", "<num>", "free"}, MaxLen: 4, StripEmailHeaders: true, StripHTML: true}}},
	} {
		m, err := New(c.spec, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			panic(err)
		}
		m.Meta = c.meta
		ms = append(ms, m)
	}
	return ms
}

// withChecksum appends the SHA-256 of body, making it a model file that passes the
// checksum whatever the mutations did to body.
func withChecksum(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(slices.Clip(body), sum[:]...)
}

// checkAccepted holds for every model a file decodes to: its spec is valid, counts its
// parameter vector, and survives a round trip bit for bit.
func checkAccepted(t *testing.T, m *Model) {
	t.Helper()
	n, err := fuzzLimits.NumParams(m.Spec)
	if err != nil {
		t.Fatalf("accepted a model whose spec is invalid: %v", err)
	}
	if n == 0 || n != len(m.Params) || n != len(m.Grads) {
		t.Fatalf("spec counts %d parameters, model holds %d (grads %d)", n, len(m.Params), len(m.Grads))
	}
	back, err := fuzzLimits.Unmarshal(m.Marshal())
	if err != nil {
		t.Fatalf("re-reading the marshalled model: %v", err)
	}
	if !bytes.Equal(back.Spec.JSON(), m.Spec.JSON()) {
		t.Fatalf("spec changed in a round trip: %s → %s", m.Spec.JSON(), back.Spec.JSON())
	}
	if !bytes.Equal(back.Meta.JSON(), m.Meta.JSON()) {
		t.Fatalf("metadata changed in a round trip: %s → %s", m.Meta.JSON(), back.Meta.JSON())
	}
	if err := fuzzLimits.ValidateMeta(m.Spec, m.Meta); err != nil {
		t.Fatalf("accepted metadata that ValidateMeta refuses: %v", err)
	}
	for i := range m.Params {
		if math.Float64bits(back.Params[i]) != math.Float64bits(m.Params[i]) {
			t.Fatalf("parameter %d changed in a round trip: %v → %v", i, m.Params[i], back.Params[i])
		}
	}
}

// FuzzCorruptFile feeds raw bytes: nearly every mutation fails the checksum, so this target
// checks that a damaged file is refused as ErrCorrupt and that only a file whose checksum
// matches is ever accepted.
func FuzzCorruptFile(f *testing.F) {
	for _, m := range fuzzModels() {
		good := m.Marshal()
		f.Add(good)
		f.Add(good[:20])
		flipped := bytes.Clone(good)
		flipped[len(flipped)-1] ^= 1 // a corrupted checksum
		f.Add(flipped)
	}
	f.Add([]byte("CONFIDEM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := fuzzLimits.Unmarshal(data)
		if err != nil {
			return
		}
		body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
		if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
			t.Fatal("accepted a file whose checksum does not match")
		}
		checkAccepted(t, m)
		damaged := bytes.Clone(data)
		damaged[len(damaged)-1] ^= 0x80
		if _, err := fuzzLimits.Unmarshal(damaged); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a corrupted checksum: error %v, want ErrCorrupt", err)
		}
	})
}

// FuzzUnmarshal feeds the bytes before the checksum and appends a valid checksum, so
// mutations reach the header, the spec parser, the limits and the parameter decoder.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range fuzzModels() {
		good := m.Marshal()
		f.Add(good[:len(good)-sha256.Size])
	}
	for _, specJSON := range []string{
		hostileSpec,
		`{"type":"mlp","input":1048576,"hidden":[1048576],"output":2}`,
		`{"type":"lstm","vocab":5,"embed":3,"hidden":[2],"layers":1000000,"output":2}`,
		`{"type":"transformer","vocab":7,"embed":4,"layers":1,"heads":2,"max_len":100000,"output":2}`,
		`{"type":"mlp","input":1048576,"output":2,"features":{"type":"scattering","j":6,"l":8,"shape":[1024,1024]}}`,
	} {
		file := modelFile(specJSON, []float64{0.5, -1})
		f.Add(file[:len(file)-sha256.Size])
	}
	for _, metaJSON := range hostileMetas {
		file := modelFileMeta(`{"type":"mlp","input":2,"output":2}`, metaJSON, make([]float64, 6))
		f.Add(file[:len(file)-sha256.Size])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := fuzzLimits.Unmarshal(withChecksum(body))
		if err != nil {
			return
		}
		checkAccepted(t, m)
	})
}

// FuzzModelFileSpec writes a well-framed model file (lengths and checksum right) around a
// fuzzed spec and a parameter vector of n values, so that mutations of the spec reach the
// limits, the count check and the builder: the file is accepted exactly when its spec is
// valid and counts n parameters.
func FuzzModelFileSpec(f *testing.F) {
	for _, m := range fuzzModels() {
		f.Add(m.Spec.JSON(), uint16(len(m.Params)))
	}
	f.Add([]byte(hostileSpec), uint16(2))
	f.Add([]byte(`{"type":"mlp","input":2,"output":2}`), uint16(5))
	f.Fuzz(func(t *testing.T, specJSON []byte, n uint16) {
		if len(specJSON) > maxSpecLen {
			return // refused for its length alone
		}
		params := make([]float64, n)
		for i := range params {
			params[i] = float64(i%5) - 2
		}
		m, err := fuzzLimits.Unmarshal(modelFile(string(specJSON), params))
		var spec Spec
		dec := json.NewDecoder(bytes.NewReader(specJSON))
		dec.DisallowUnknownFields()
		want := -1
		if dec.Decode(&spec) == nil {
			if _, trailing := dec.Token(); trailing == io.EOF {
				if c, err := fuzzLimits.NumParams(spec); err == nil {
					want = c
				}
			}
		}
		switch {
		case err == nil && want != int(n):
			t.Fatalf("accepted a file of %d parameters whose spec counts %d (-1: invalid)", n, want)
		case err != nil && want == int(n):
			t.Fatalf("refused a valid file of %d parameters: %v", n, err)
		case err == nil:
			checkAccepted(t, m)
		}
	})
}

// hostileMetas are metadata sections a decoder must refuse (for the model of
// {"type":"mlp","input":2,"output":2}) without a panic or a large allocation.
var hostileMetas = []string{
	`{"class_names":["a","b","c"]}`,
	`{"class_names":["a","\ud800"]}`,
	`{"input":{"kind":"image","shape":[1,2]}}`,
	`{"input":{"kind":"tabular","shape":[1048576,1048576,1048576,1048576]}}`,
	`{"input":{"kind":"tabular","mean":[1,2,3],"std":[0]}}`,
	`{"input":{"kind":"tabular","std":[-1]}}`,
	`{"tokenizer":{"type":"char","vocab":["a"]}}`,
	`{"provenance":{"mode":"central","privacy":[{"level":"record","epsilon":-1,"delta":2}]}}`,
	`{"provenance":{"mode":"central","created":"yesterday"}}`,
	`{"provenance":{"mode":"teleported"}}`,
	`{"unknown":1}`,
	`{}{}`,
	`null`,
	``,
}

// FuzzModelFileMeta writes a well-framed model file (lengths and checksum right) around the
// spec and parameters of a seed model and fuzzed metadata, so that mutations reach the
// metadata decoder and ValidateMeta: the file is accepted exactly when the metadata decodes
// strictly and validates against the spec, and then survives a round trip.
func FuzzModelFileMeta(f *testing.F) {
	models := fuzzModels()
	for i, m := range models {
		f.Add(uint8(i), m.Meta.JSON())
	}
	for _, meta := range hostileMetas {
		f.Add(uint8(0), []byte(meta))
	}
	f.Add(uint8(2), []byte(`{"tokenizer":{"type":"char","vocab":["a","a"]}}`))
	f.Add(uint8(2), []byte(`{"tokenizer":{"type":"char","vocab":["ab"]}}`))
	f.Add(uint8(3), []byte(`{"tokenizer":{"type":"word","vocab":["a","b","c","d","e","f"]}}`))
	f.Add(uint8(3), []byte(`{"input":{"kind":"tabular"}}`))
	f.Fuzz(func(t *testing.T, which uint8, metaJSON []byte) {
		src := models[int(which)%len(models)]
		file := modelFileMeta(string(src.Spec.JSON()), string(metaJSON), src.Params)
		m, err := fuzzLimits.Unmarshal(file)
		var meta Meta
		valid := len(metaJSON) <= DefaultLimits().MaxMetaBytes && jsonCommas(metaJSON) <= metaValueBound(src.Spec) &&
			decodeStrict(metaJSON, &meta) == nil && fuzzLimits.ValidateMeta(src.Spec, meta) == nil
		switch {
		case err == nil && !valid:
			t.Fatalf("accepted metadata %q that does not decode or validate", metaJSON)
		case err != nil && valid:
			t.Fatalf("refused valid metadata %q: %v", metaJSON, err)
		case err == nil:
			checkAccepted(t, m)
		}
	})
}

// FuzzParseSpec feeds YAML/JSON specs: ParseSpec never panics; an accepted spec validates
// again with its defaults filled in (as a model file stores it), survives a JSON round trip,
// and when small builds a model of exactly NumParams parameters that runs a forward pass.
func FuzzParseSpec(f *testing.F) {
	for _, m := range fuzzModels() {
		f.Add(m.Spec.JSON())
	}
	for _, s := range countSpecs {
		f.Add(s.JSON())
	}
	f.Add([]byte(hostileSpec))
	f.Add([]byte("type: lstm\nvocab: 80\nembed: 16\nhidden: [128]\ntask: next_token\n"))
	f.Add([]byte("type: transformer\nvocab: 4096\nembed: 32\nlayers: 1\nheads: 4\nff: 64\nmax_len: 128\noutput: 2\nnorm: pre\n"))
	f.Add([]byte("type: mlp\ninput: 784\noutput: 10\nfeatures: {type: scattering, j: 2, l: 8, shape: [28, 28], norm: group, groups: 27}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, errDefault := ParseSpec(data)
		s, err := fuzzLimits.ParseSpec(data)
		if err != nil {
			return
		}
		if errDefault != nil {
			t.Fatalf("accepted under the fuzz limits, refused under the defaults: %v", errDefault)
		}
		n, err := fuzzLimits.NumParams(s)
		if err != nil || n <= 0 {
			t.Fatalf("ParseSpec accepted a spec NumParams refuses: %d, %v", n, err)
		}
		filled := s.withDefaults()
		if m, err := fuzzLimits.NumParams(filled); err != nil || m != n {
			t.Fatalf("with defaults filled in (as a model file stores it): %d parameters, %v; want %d", m, err, n)
		}
		back, err := fuzzLimits.ParseSpec(s.JSON())
		if err != nil {
			t.Fatalf("re-parsing %s: %v", s.JSON(), err)
		}
		if !bytes.Equal(back.JSON(), s.JSON()) {
			t.Fatalf("JSON round trip changed the spec: %s → %s", s.JSON(), back.JSON())
		}
		if n > 1<<16 || (s.Input > 1<<16 && !s.IsSequence()) {
			return // building and running large models would only slow the fuzzer down
		}
		m, err := fuzzLimits.New(s, rand.New(rand.NewPCG(1, 2)))
		if err != nil {
			t.Fatalf("New refused a valid spec: %v", err)
		}
		if m.NumParams() != n {
			t.Fatalf("NumParams = %d, the built model has %d", n, m.NumParams())
		}
		in := &Input{B: 1}
		if s.IsSequence() {
			in.T = 3
			if s.MaxLen > 0 {
				in.T = min(in.T, s.MaxLen)
			}
			in.Tokens = make([]int32, in.T)
			for i := range in.Tokens {
				in.Tokens[i] = int32(i % s.Vocab)
			}
		} else {
			in.X = make([]float64, s.withDefaults().Input) // a cnn's defaults to its image size
			for i := range in.X {
				in.X[i] = float64(i%7) - 3
			}
			for _, e := range s.Embeddings {
				in.X[e.Column] = float64(e.Column % e.Categories) // a category index
			}
		}
		if _, err := m.Forward(in); err != nil {
			t.Fatalf("forward pass of a valid spec: %v", err)
		}
	})
}
