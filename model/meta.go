package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime/debug"
	"time"
	"unicode/utf8"
)

// Meta is what a model file carries besides the spec and the parameters: what inference
// needs to turn raw inputs into the model's input and its outputs into answers, and how the
// model was trained. Every field is optional; the zero Meta says nothing (files of format
// version 1 carry none). A Meta is treated as immutable once attached to a Model: Clone
// shares it.
type Meta struct {
	// ClassNames name a classifier's outputs in output order (len = Spec.Output). A
	// next-token model's outputs are its tokens (OutputNames).
	ClassNames []string `json:"class_names,omitempty"`
	// Input says how raw dense inputs (images, feature rows) become the input of an mlp.
	Input *InputMeta `json:"input,omitempty"`
	// Tokenizer says how raw text becomes the token ids a sequence model reads.
	Tokenizer *TokenizerMeta `json:"tokenizer,omitempty"`
	// Provenance says how, on what and when the model was trained.
	Provenance *Provenance `json:"provenance,omitempty"`
	// Dataset is the dataset spec the model was trained with, as a federation ships it
	// (data.Schema's JSON, without paths): how raw rows become its inputs, with the
	// normalisation statistics given or estimated by the federation's statistics round.
	Dataset json.RawMessage `json:"dataset,omitempty"`
	// ComputePrecision is the precision the model's layer math ran in (Model.SetPrecision):
	// float32, or float64, which files without it were trained in. Marshal writes the
	// model's and Unmarshal restores it to the model (Model.ComputePrecision); in a Model's
	// Meta the field is not read.
	ComputePrecision Precision `json:"compute_precision,omitempty"`
}

// Kinds of dense input (InputMeta.Kind).
const (
	InputImage   = "image"   // a greyscale image of Shape [rows, cols], one raw value a pixel
	InputTabular = "tabular" // a row of Spec.Input features
)

// InputMeta describes an mlp's raw input and the normalisation the data pipeline applied
// to it before training, which inference must apply to new raw inputs too.
type InputMeta struct {
	// Kind is InputImage or InputTabular.
	Kind string `json:"kind"`
	// Shape is an example's shape, [rows, cols] for an image; its product is Spec.Input.
	Shape []int `json:"shape,omitempty"`
	// Mean and Std normalise a raw value x of feature j to (x − Mean[j]) / Std[j]; a single
	// value applies to every feature, none leaves raw values as they are. The data
	// pipeline's scaling of 8-bit pixels to [0, 1] is Mean [0], Std [255].
	Mean []float64 `json:"mean,omitempty"`
	Std  []float64 `json:"std,omitempty"`
	// Description says in words what the raw values are.
	Description string `json:"description,omitempty"`
}

// Normalize writes the normalised values of the raw example raw (Spec.Input values) into
// dst, which may alias raw.
func (in *InputMeta) Normalize(dst, raw []float64) {
	for j, x := range raw {
		if len(in.Mean) > 0 {
			x -= in.Mean[min(j, len(in.Mean)-1)]
		}
		if len(in.Std) > 0 {
			x /= in.Std[min(j, len(in.Std)-1)]
		}
		dst[j] = x
	}
}

// Tokenizers (TokenizerMeta.Type), as the data package builds them.
const (
	TokenizerChar = "char" // one token per character (rune)
	TokenizerWord = "word" // words as data.SplitWords finds them (lower-cased; numbers, URLs and e-mail addresses as placeholders)
)

// TokenizerMeta is the tokeniser a sequence model was trained with.
type TokenizerMeta struct {
	// Type is TokenizerChar or TokenizerWord.
	Type string `json:"type"`
	// Vocab lists the token of every id from 2 up; id 0 is padding and id 1 an unknown
	// token, as in every tokenizer of the data package.
	Vocab []string `json:"vocab"`
	// MaxLen is the number of tokens kept of a text, the first ones (0: all).
	MaxLen int `json:"max_len,omitempty"`
	// StripEmailHeaders and StripHTML: texts are raw e-mails whose headers (up to the
	// first blank line) and HTML tags were removed before tokenising.
	StripEmailHeaders bool `json:"strip_email_headers,omitempty"`
	StripHTML         bool `json:"strip_html,omitempty"`
}

// Ways a model was trained (Provenance.Mode).
const (
	TrainedCentral = "central"          // confide train
	TrainedSim     = "federated-sim"    // confide sim
	TrainedServer  = "federated-server" // confide server (a checkpoint)
)

// Privacy levels (PrivacyGuarantee.Level).
const (
	PrivacyRecord = "record" // each training example (DP-SGD)
	PrivacyUser   = "user"   // everything one client holds (DP-FedAvg)
)

// Provenance says how a model was trained.
type Provenance struct {
	// Mode is TrainedCentral, TrainedSim or TrainedServer.
	Mode    string `json:"mode"`
	Dataset string `json:"dataset,omitempty"`
	// Strategy and Rounds describe a federation (Rounds: the rounds completed), Epochs a
	// central run, Clients the federation's population.
	Strategy string `json:"strategy,omitempty"`
	Rounds   int    `json:"rounds,omitempty"`
	Epochs   int    `json:"epochs,omitempty"`
	Clients  int    `json:"clients,omitempty"`
	// Seed is the run's seed (the data split of spam, for one, follows from it).
	Seed uint64 `json:"seed,omitempty"`
	// Privacy lists the differential-privacy guarantees of the training; none means it had
	// none (ε = ∞).
	Privacy []PrivacyGuarantee `json:"privacy,omitempty"`
	// Created is when the file was written (RFC 3339, UTC), ConfideVersion by what.
	Created        string `json:"created,omitempty"`
	ConfideVersion string `json:"confide_version,omitempty"`
	// Compression lists, in order, the steps that made this model from a trained one
	// (pruning, quantisation, distillation), each in words with its settings; the fields
	// above describe the training of the model they started from.
	Compression []string `json:"compression,omitempty"`
}

// PrivacyGuarantee is one (ε, δ) differential-privacy guarantee of a training run.
type PrivacyGuarantee struct {
	// Level is PrivacyRecord or PrivacyUser: what one unit of protected data is.
	Level string `json:"level"`
	// Mechanism names the mechanism and accountant, e.g. "DP-SGD, RDP accountant".
	Mechanism       string  `json:"mechanism,omitempty"`
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	// Meaning says in words whose data ε protects and how it was accounted.
	Meaning string `json:"meaning,omitempty"`
}

// NewProvenance returns a provenance of mode stamped with the current time and the version
// of the running binary (its main module's version and VCS revision).
func NewProvenance(mode string) *Provenance {
	return &Provenance{Mode: mode, Created: time.Now().UTC().Format(time.RFC3339), ConfideVersion: BuildVersion()}
}

// BuildVersion is the version of the running binary: its main module's version from the
// build information, with the VCS revision when known ("(devel)" for a plain go build).
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// OutputNames returns a name for every output of spec's model: ClassNames, or for a
// next-token model with a tokenizer its tokens ("<pad>", "<unk>", then the vocabulary;
// outputs beyond it by id); nil when neither is known.
func (m Meta) OutputNames(spec Spec) []string {
	if len(m.ClassNames) > 0 {
		return m.ClassNames
	}
	if spec.withDefaults().Task != TaskNextToken || m.Tokenizer == nil {
		return nil
	}
	names := make([]string, spec.Vocab)
	for i := range names {
		switch {
		case i == 0:
			names[i] = "<pad>"
		case i == 1:
			names[i] = "<unk>"
		case i-2 < len(m.Tokenizer.Vocab):
			names[i] = m.Tokenizer.Vocab[i-2]
		default:
			names[i] = fmt.Sprintf("<%d>", i)
		}
	}
	return names
}

// IsZero reports whether m says nothing.
func (m Meta) IsZero() bool {
	return len(m.ClassNames) == 0 && m.Input == nil && m.Tokenizer == nil && m.Provenance == nil && len(m.Dataset) == 0 &&
		m.ComputePrecision == Float64
}

// JSON returns the metadata's canonical JSON encoding, as a model file stores it. It panics
// on a non-finite number, which JSON cannot hold (ValidateMeta refuses them).
func (m Meta) JSON() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("model: metadata does not marshal: %v", err))
	}
	return b
}

// Bounds on the strings of a Meta; the lists are bounded by the spec and Limits.
const (
	maxNameBytes    = 1024    // a class name, a token, a dataset or strategy name
	maxTextBytes    = 4096    // a description or a privacy meaning
	maxInputDims    = 8       // InputMeta.Shape
	maxPrivacyItems = 16      // Provenance.Privacy
	maxDatasetBytes = 8 << 20 // Dataset (a text dataset's vocabulary dominates)
)

// ValidateMeta checks that meta fits spec (a valid spec) and stays within DefaultLimits.
func ValidateMeta(spec Spec, meta Meta) error { return Limits{}.ValidateMeta(spec, meta) }

// ValidateMeta checks that meta fits spec, a valid spec, naming the field on error: class
// names, one for each output; an input description only for an mlp, its shape holding
// Spec.Input values and its normalisation finite with Std > 0; a tokenizer only for a
// sequence model, its vocabulary within Spec.Vocab and free of duplicates; provenance with
// known modes and levels, finite ε ≥ 0 and δ in [0, 1); every string valid UTF-8 and
// bounded; a dataset spec a JSON object of at most 8 MB. Unmarshal refuses a file whose
// metadata fails it, and Save does not write one.
func (l Limits) ValidateMeta(spec Spec, meta Meta) error {
	l = l.withDefaults()
	spec = spec.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("model metadata: "+format, a...)) }
	str := func(key, s string, limit int) {
		if len(s) > limit {
			bad("%s is %d bytes, more than %d", key, len(s), limit)
		} else if !utf8.ValidString(s) {
			bad("%s is not valid UTF-8", key)
		}
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if !meta.ComputePrecision.valid() {
		bad("compute_precision %v unknown (use float32 or float64)", meta.ComputePrecision)
	}
	if d := meta.Dataset; len(d) > 0 {
		var obj map[string]json.RawMessage
		switch {
		case len(d) > maxDatasetBytes:
			bad("dataset is %d bytes, more than %d", len(d), maxDatasetBytes)
		case json.Unmarshal(d, &obj) != nil:
			bad("dataset is not a JSON object (a dataset spec)")
		}
	}

	if n := len(meta.ClassNames); n > 0 {
		if spec.Task == TaskNextToken {
			bad("class_names: a next_token model's outputs are its tokens; give a tokenizer instead")
		} else if n != spec.Output {
			bad("class_names lists %d names for the model's %d outputs", n, spec.Output)
		}
		for i, c := range meta.ClassNames {
			if len(errs) > 8 {
				break // one bad list is enough to report
			}
			str(fmt.Sprintf("class_names[%d]", i), c, maxNameBytes)
		}
	}
	if in := meta.Input; in != nil {
		switch {
		case spec.IsSequence():
			bad("input: describes dense inputs, but a %s model reads tokens (use tokenizer)", spec.Type)
		case in.Kind != InputImage && in.Kind != InputTabular:
			bad("input.kind %q unknown (use %s or %s)", truncate(in.Kind), InputImage, InputTabular)
		}
		if len(in.Shape) > maxInputDims {
			bad("input.shape has %d dimensions, more than %d", len(in.Shape), maxInputDims)
		} else if len(in.Shape) > 0 {
			ok, p := true, uint64(1)
			for _, d := range in.Shape {
				if d <= 0 || d > l.MaxWidth {
					bad("input.shape %v: every dimension must be in [1, %d]", in.Shape, l.MaxWidth)
					ok = false
					break
				}
				if hi, lo := bits.Mul64(p, uint64(d)); hi != 0 {
					p = math.MaxUint64
				} else {
					p = lo
				}
			}
			if ok && p != uint64(spec.Input) {
				bad("input.shape %v does not hold the model's %d inputs", in.Shape, spec.Input)
			}
		}
		if in.Kind == InputImage && len(in.Shape) != 2 {
			bad("input.shape %v: an image has [rows, cols]", in.Shape)
		}
		for _, v := range []struct {
			key string
			xs  []float64
		}{{"mean", in.Mean}, {"std", in.Std}} {
			if n := len(v.xs); n > 1 && n != spec.Input {
				bad("input.%s has %d values: give one, or one for each of the model's %d inputs", v.key, n, spec.Input)
				continue
			}
			for j, x := range v.xs {
				if !finite(x) || (v.key == "std" && x <= 0) {
					bad("input.%s[%d] = %v: must be finite (and std > 0)", v.key, j, x)
					break
				}
			}
		}
		str("input.description", in.Description, maxTextBytes)
	}
	if t := meta.Tokenizer; t != nil {
		if !spec.IsSequence() {
			bad("tokenizer: a %s model reads dense inputs (use input)", spec.Type)
		}
		if t.Type != TokenizerChar && t.Type != TokenizerWord {
			bad("tokenizer.type %q unknown (use %s or %s)", truncate(t.Type), TokenizerChar, TokenizerWord)
		}
		if n := len(t.Vocab); n > l.MaxVocab || (spec.IsSequence() && n+2 > spec.Vocab) {
			bad("tokenizer.vocab has %d tokens; the model's vocab of %d ids holds at most %d (ids 0 and 1 are padding and unknown)", n, spec.Vocab, max(spec.Vocab-2, 0))
		} else {
			seen := make(map[string]struct{}, len(t.Vocab))
			for i, tok := range t.Vocab {
				key := fmt.Sprintf("tokenizer.vocab[%d]", i)
				if tok == "" {
					bad("%s is empty", key)
				} else if t.Type == TokenizerChar && utf8.RuneCountInString(tok) != 1 {
					bad("%s = %q: a char tokenizer's tokens are single characters", key, truncate(tok))
				}
				str(key, tok, maxNameBytes)
				if _, dup := seen[tok]; dup {
					bad("%s = %q appears twice", key, truncate(tok))
				}
				seen[tok] = struct{}{}
				if len(errs) > 8 {
					break
				}
			}
		}
		if t.MaxLen < 0 || t.MaxLen > l.MaxSeqLen {
			bad("tokenizer.max_len = %d: must be in [0, %d] (model.Limits.MaxSeqLen)", t.MaxLen, l.MaxSeqLen)
		}
		if t.Type == TokenizerChar && (t.StripEmailHeaders || t.StripHTML) {
			bad("tokenizer: strip_email_headers and strip_html apply to word tokenizers")
		}
	}
	if p := meta.Provenance; p != nil {
		switch p.Mode {
		case TrainedCentral, TrainedSim, TrainedServer:
		default:
			bad("provenance.mode %q unknown (use %s, %s or %s)", truncate(p.Mode), TrainedCentral, TrainedSim, TrainedServer)
		}
		str("provenance.dataset", p.Dataset, maxNameBytes)
		str("provenance.strategy", p.Strategy, maxNameBytes)
		str("provenance.confide_version", p.ConfideVersion, maxNameBytes)
		if p.Rounds < 0 || p.Epochs < 0 || p.Clients < 0 {
			bad("provenance: rounds %d, epochs %d and clients %d must be ≥ 0", p.Rounds, p.Epochs, p.Clients)
		}
		if p.Created != "" {
			if _, err := time.Parse(time.RFC3339, p.Created); err != nil || len(p.Created) > 64 {
				bad("provenance.created %q is not an RFC 3339 time", truncate(p.Created))
			}
		}
		if len(p.Compression) > maxPrivacyItems {
			bad("provenance.compression lists %d steps, more than %d", len(p.Compression), maxPrivacyItems)
		} else {
			for i, c := range p.Compression {
				str(fmt.Sprintf("provenance.compression[%d]", i), c, maxTextBytes)
			}
		}
		if len(p.Privacy) > maxPrivacyItems {
			bad("provenance.privacy lists %d guarantees, more than %d", len(p.Privacy), maxPrivacyItems)
		} else {
			for i, g := range p.Privacy {
				key := fmt.Sprintf("provenance.privacy[%d]", i)
				if g.Level != PrivacyRecord && g.Level != PrivacyUser {
					bad("%s.level %q unknown (use %s or %s)", key, truncate(g.Level), PrivacyRecord, PrivacyUser)
				}
				if !finite(g.Epsilon) || g.Epsilon < 0 {
					bad("%s.epsilon = %v: must be finite and ≥ 0", key, g.Epsilon)
				}
				if !(g.Delta >= 0 && g.Delta < 1) {
					bad("%s.delta = %v: must be in [0, 1)", key, g.Delta)
				}
				if !finite(g.NoiseMultiplier) || g.NoiseMultiplier < 0 {
					bad("%s.noise_multiplier = %v: must be finite and ≥ 0", key, g.NoiseMultiplier)
				}
				str(key+".mechanism", g.Mechanism, maxNameBytes)
				str(key+".meaning", g.Meaning, maxTextBytes)
			}
		}
	}
	return errors.Join(errs...)
}

// truncate shortens a string from a file for an error message.
func truncate(s string) string {
	if len(s) <= 40 {
		return s
	}
	return string([]rune(s[:40])) + "…"
}
