package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Files written by the format-1 code (commit 22e271c, before metadata; parameters set to
// (i mod 7)/8 − 1/4) still load, with a zero Meta, and re-save as version 2.
func TestVersion1FilesStillLoad(t *testing.T) {
	for _, tc := range []struct {
		file string
		spec Spec
	}{
		{"v1-mlp.confide", Spec{Type: TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}},
		{"v1-lstm.confide", Spec{Type: TypeLSTM, Vocab: 6, Embed: 2, Hidden: []int{3}, Task: TaskNextToken}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if v := binary.LittleEndian.Uint32(raw[8:]); v != 1 {
				t.Fatalf("testdata file has version %d, want 1", v)
			}
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Spec.JSON(), tc.spec.withDefaults().JSON()) {
				t.Fatalf("spec %s, want %s", m.Spec.JSON(), tc.spec.withDefaults().JSON())
			}
			for i, p := range m.Params {
				if want := float64(i%7)/8 - 0.25; p != want {
					t.Fatalf("parameter %d = %v, want %v", i, p, want)
				}
			}
			if !m.Meta.IsZero() {
				t.Fatalf("a version-1 file has metadata %s", m.Meta.JSON())
			}
			again := filepath.Join(t.TempDir(), "v2.confide")
			if err := m.Save(again); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(again)
			if v := binary.LittleEndian.Uint32(b[8:]); v != 2 {
				t.Fatalf("re-saved as version %d, want 2 (a float64 model without a mask)", v)
			}
			back, err := Load(again)
			if err != nil || !slices.Equal(back.Params, m.Params) {
				t.Fatalf("re-saved file: %v", err)
			}
		})
	}
}

// The metadata survives a save and a load; the checksum covers it, so a flipped byte in it
// is ErrCorrupt.
func TestMetaRoundTripAndChecksum(t *testing.T) {
	for _, m := range fuzzModels() {
		t.Run(m.Spec.Type, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.confide")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			back, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Meta.JSON(), m.Meta.JSON()) {
				t.Fatalf("metadata %s, want %s", back.Meta.JSON(), m.Meta.JSON())
			}
			if c := back.Clone(); !bytes.Equal(c.Meta.JSON(), m.Meta.JSON()) {
				t.Fatalf("Clone dropped the metadata: %s", c.Meta.JSON())
			}
			file := m.Marshal()
			meta := m.Meta.JSON()
			at := bytes.Index(file, meta)
			if at < 0 {
				t.Fatal("metadata not found in the file")
			}
			file[at+len(meta)/2] ^= 0x20
			if _, err := Unmarshal(file); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("a flipped metadata byte: %v, want ErrCorrupt", err)
			}
		})
	}
}

// Metadata that does not fit the spec, or is out of bounds, is refused by ValidateMeta with
// an error naming the field, by Unmarshal without a large allocation, and by Save before
// anything is written.
func TestMetaValidation(t *testing.T) {
	mlp := Spec{Type: TypeMLP, Input: 4, Output: 2}
	lstm := Spec{Type: TypeLSTM, Vocab: 5, Embed: 2, Hidden: []int{3}, Output: 2}
	next := Spec{Type: TypeLSTM, Vocab: 5, Embed: 2, Hidden: []int{3}, Task: TaskNextToken}
	long := strings.Repeat("x", maxNameBytes+1)
	for _, tc := range []struct {
		name string
		spec Spec
		meta Meta
		want string
	}{
		{"class-count", mlp, Meta{ClassNames: []string{"a"}}, "class_names lists 1 names for the model's 2 outputs"},
		{"class-name-length", mlp, Meta{ClassNames: []string{"a", long}}, "class_names[1] is 1025 bytes, more than 1024"},
		{"class-name-utf8", mlp, Meta{ClassNames: []string{"a", "\xff"}}, "class_names[1] is not valid UTF-8"},
		{"dataset-not-an-object", mlp, Meta{Dataset: []byte(`[1, 2]`)}, "dataset is not a JSON object"},
		{"class-names-next-token", next, Meta{ClassNames: []string{"a", "b", "c", "d", "e"}}, "a next_token model's outputs are its tokens"},
		{"input-on-sequence-model", lstm, Meta{Input: &InputMeta{Kind: InputTabular}}, "input: describes dense inputs"},
		{"input-kind", mlp, Meta{Input: &InputMeta{Kind: "audio"}}, `input.kind "audio" unknown`},
		{"input-shape", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Shape: []int{3, 2}}}, "input.shape [3 2] does not hold the model's 4 inputs"},
		{"input-shape-huge", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Shape: []int{1 << 20, 1 << 20, 1 << 20, 1 << 20}}}, "does not hold the model's 4 inputs"},
		{"input-shape-negative", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Shape: []int{-2, -2}}}, "every dimension must be in [1, "},
		{"image-shape", mlp, Meta{Input: &InputMeta{Kind: InputImage, Shape: []int{4}}}, "an image has [rows, cols]"},
		{"mean-count", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Mean: []float64{1, 2}}}, "input.mean has 2 values"},
		{"std-zero", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Std: []float64{0}}}, "input.std[0] = 0"},
		{"mean-nan", mlp, Meta{Input: &InputMeta{Kind: InputTabular, Mean: []float64{math.NaN()}}}, "input.mean[0] = NaN"},
		{"tokenizer-on-mlp", mlp, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerWord}}, "tokenizer: a mlp model reads dense inputs"},
		{"tokenizer-type", lstm, Meta{Tokenizer: &TokenizerMeta{Type: "bpe"}}, `tokenizer.type "bpe" unknown`},
		{"vocab-too-large", lstm, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerWord, Vocab: []string{"a", "b", "c", "d"}}}, "tokenizer.vocab has 4 tokens; the model's vocab of 5 ids holds at most 3"},
		{"vocab-duplicate", lstm, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerWord, Vocab: []string{"a", "a"}}}, `tokenizer.vocab[1] = "a" appears twice`},
		{"vocab-empty-token", lstm, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerWord, Vocab: []string{""}}}, "tokenizer.vocab[0] is empty"},
		{"char-token", lstm, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerChar, Vocab: []string{"ab"}}}, "a char tokenizer's tokens are single characters"},
		{"max-len", lstm, Meta{Tokenizer: &TokenizerMeta{Type: TokenizerWord, MaxLen: -1}}, "tokenizer.max_len = -1"},
		{"mode", mlp, Meta{Provenance: &Provenance{Mode: "magic"}}, `provenance.mode "magic" unknown`},
		{"created", mlp, Meta{Provenance: &Provenance{Mode: TrainedCentral, Created: "last week"}}, "provenance.created"},
		{"rounds", mlp, Meta{Provenance: &Provenance{Mode: TrainedSim, Rounds: -3}}, "rounds -3"},
		{"epsilon", mlp, Meta{Provenance: &Provenance{Mode: TrainedCentral, Privacy: []PrivacyGuarantee{{Level: PrivacyRecord, Epsilon: math.Inf(1)}}}}, "provenance.privacy[0].epsilon = +Inf"},
		{"delta", mlp, Meta{Provenance: &Provenance{Mode: TrainedCentral, Privacy: []PrivacyGuarantee{{Level: PrivacyUser, Epsilon: 1, Delta: 1}}}}, "provenance.privacy[0].delta = 1"},
		{"level", mlp, Meta{Provenance: &Provenance{Mode: TrainedCentral, Privacy: []PrivacyGuarantee{{Level: "group", Epsilon: 1}}}}, `provenance.privacy[0].level "group" unknown`},
		{"privacy-count", mlp, Meta{Provenance: &Provenance{Mode: TrainedCentral, Privacy: make([]PrivacyGuarantee, 17)}}, "17 guarantees, more than 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateMeta(tc.spec, tc.meta)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateMeta: %v\nwant an error containing %q", err, tc.want)
			}
			m, err := New(tc.spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			m.Meta = tc.meta
			path := filepath.Join(t.TempDir(), "m.confide")
			if err := m.Save(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Save: %v\nwant an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Save wrote a file it refused: %v", err)
			}
			if strings.Contains(tc.name, "nan") || tc.name == "epsilon" || tc.name == "class-name-utf8" {
				return // no file holds these: JSON has no NaN or ∞, and encodes "\xff" as U+FFFD
			}
			if _, err := Unmarshal(m.Marshal()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

// A metadata section beyond Limits.MaxMetaBytes is refused before it is decoded, and a
// hostile one within the limits costs at most a small multiple of its size.
func TestMetaSectionIsBounded(t *testing.T) {
	spec := `{"type":"mlp","input":2,"output":2}`
	huge := `{"class_names":[` + strings.Repeat(`"",`, 1<<20) + `""]}`
	for _, tc := range []struct {
		name   string
		limits Limits
		meta   string
		want   string
	}{
		{"beyond-the-limit", Limits{MaxMetaBytes: 1 << 20}, huge, "metadata of 3145748 bytes exceeds the limit 1048576 (model.Limits.MaxMetaBytes)"},
		{"million-class-names", Limits{}, huge, "the metadata holds 1048576 values, more than a model of this spec uses (518)"},
		{"many-class-names", Limits{}, `{"class_names":["a","b","c"]}`, "class_names lists 3 names for the model's 2 outputs"},
		{"unknown-key", Limits{}, `{"class_names":["a","b"],"colour":"red"}`, `unknown field "colour"`},
		{"trailing", Limits{}, `{}[]`, "data after the JSON object"},
		{"empty", Limits{}, ``, "metadata: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := modelFileMeta(spec, tc.meta, make([]float64, 6))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := tc.limits.Unmarshal(file)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v\nwant an error containing %q", err, tc.want)
			}
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(12*len(tc.meta)+1<<20); got > limit {
				t.Errorf("Unmarshal allocated %d bytes for %d bytes of metadata", got, len(tc.meta))
			}
		})
	}
}

func TestOutputNamesAndNormalize(t *testing.T) {
	next := Spec{Type: TypeGRU, Vocab: 6, Embed: 2, Hidden: []int{3}, Task: TaskNextToken}
	got := Meta{Tokenizer: &TokenizerMeta{Type: TokenizerChar, Vocab: []string{"a", "b", "c"}}}.OutputNames(next)
	if want := []string{"<pad>", "<unk>", "a", "b", "c", "<5>"}; !slices.Equal(got, want) {
		t.Fatalf("next-token output names %q, want %q", got, want)
	}
	cls := Spec{Type: TypeMLP, Input: 2, Output: 2}
	if got := (Meta{ClassNames: []string{"x", "y"}}).OutputNames(cls); !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("class names %q", got)
	}
	if got := (Meta{}).OutputNames(cls); got != nil {
		t.Fatalf("no names known: %q", got)
	}
	in := &InputMeta{Kind: InputImage, Shape: []int{1, 3}, Mean: []float64{0}, Std: []float64{255}}
	x := []float64{0, 51, 255}
	in.Normalize(x, x)
	if want := []float64{0, 0.2, 1}; !slices.Equal(x, want) {
		t.Fatalf("normalised %v, want %v", x, want)
	}
	per := &InputMeta{Kind: InputTabular, Mean: []float64{1, 2}, Std: []float64{2, 4}}
	y := make([]float64, 2)
	per.Normalize(y, []float64{3, 10})
	if want := []float64{1, 2}; !slices.Equal(y, want) {
		t.Fatalf("per-feature normalised %v, want %v", y, want)
	}
}
