package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Dataset formats a Schema reads.
const (
	FormatCSV    = "csv"    // comma-separated values, a header row naming the columns
	FormatTSV    = "tsv"    // tab-separated values, likewise
	FormatJSONL  = "jsonl"  // one JSON object a line (text classification), gzipped or not
	FormatImages = "images" // a directory with one sub-directory of PNG/JPEG files per class
	FormatIDX    = "idx"    // a directory with the four IDX files of MNIST's layout
)

// Column types and encodings of a Schema's columns.
const (
	ColumnNumeric     = "numeric"
	ColumnCategorical = "categorical"
	ColumnIgnore      = "ignore"

	EncodeOneHot  = "one_hot" // one feature per category, 1 for the row's category
	EncodeOrdinal = "ordinal" // one feature: the category's index / (categories − 1)
	// EncodeEmbedding is one feature holding the category's index (−1: missing or
	// unknown), which the model looks up in a learned table (Dataset.Embedded).
	EncodeEmbedding = "embedding"

	NormalizeStandard = "standard" // (x − mean) / std
	NormalizeMinMax   = "minmax"   // (x − min) / (max − min)
	NormalizeNone     = "none"     // x as the file holds it

	MissingError = "error" // a missing value is a bad row (the default)
	MissingMean  = "mean"  // replaced by the column's mean (0 after standardisation)
	MissingZero  = "zero"  // numeric: the raw value 0; categorical: no category (all zeros)
)

// Schema describes a dataset held in files and how its records become examples: the
// format, which columns are features and how each is encoded, which is the label
// (classification) or the target (regression), optionally the group of each row (for a
// natural partition, e.g. a region), and the normalisation statistics.
//
// A Schema is what a federation ships to its clients so that every client encodes its own
// files the same way: the same classes in the same order, the same categories, the same
// vocabulary and the same normalisation. Statistics are never fitted on one client's
// private data: a federation's schema must carry them (ValidateFederated), and only
// central training (LoadSchema on data the caller owns) fits what is missing, on the
// training split.
//
// Parse it from YAML or JSON (ParseSchema, ReadSchemaFile); paths are relative to the spec
// file's directory.
type Schema struct {
	// Name labels the dataset (reports, model files); default: the spec file's base name.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Format is csv, tsv, jsonl, images or idx.
	Format string `json:"format" yaml:"format"`
	// Path is the training data: a file (csv, tsv, jsonl) or a directory (images, idx).
	// It is local: a shipped schema carries none, a client reads its own (--data).
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// TestPath, when set, holds the test set in the same form; otherwise TestFraction of
	// the rows of Path are held out (stratified by label), drawn from the run's seed.
	TestPath     string  `json:"test_path,omitempty" yaml:"test_path,omitempty"`
	TestFraction float64 `json:"test_fraction,omitempty" yaml:"test_fraction,omitempty"`
	// MissingValues are the cell values that mean "missing" (default "", NA, N/A, NaN,
	// null, ?), compared after trimming spaces.
	MissingValues []string `json:"missing_values,omitempty" yaml:"missing_values,omitempty"`

	// Columns are the features of a csv/tsv file, in the order they are encoded; columns
	// of the file not listed (and not the label, target or group) are ignored.
	Columns []Column `json:"columns,omitempty" yaml:"columns,omitempty"`
	// Label is the class column (classification); Target the real-valued one
	// (regression). Exactly one is set, except for idx and images, which always classify.
	Label  *Label  `json:"label,omitempty" yaml:"label,omitempty"`
	Target *Target `json:"target,omitempty" yaml:"target,omitempty"`
	// Group names the column (or JSON field) that gives each row's natural group, e.g. a
	// region: partition natural makes one client per group.
	Group string `json:"group,omitempty" yaml:"group,omitempty"`

	// Text configures a jsonl dataset's text field and its tokenizer.
	Text *TextField `json:"text,omitempty" yaml:"text,omitempty"`
	// Image configures an images dataset's decoded size and colour.
	Image *ImageSize `json:"image,omitempty" yaml:"image,omitempty"`

	dir string // the spec file's directory, for relative paths
	// rawEstimated lists the estimated columns whose missing cells a load under
	// RawForEstimates marks with rawMissing instead of filling them (estimate.go).
	rawEstimated []int
}

// Column is one feature column of a table.
type Column struct {
	// Name is the column's header in the file.
	Name string `json:"name" yaml:"name"`
	// Type is numeric (the default), categorical or ignore.
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// Missing says what a missing value becomes: error (default), mean or zero.
	Missing string `json:"missing,omitempty" yaml:"missing,omitempty"`

	// Numeric columns: Normalize is standard (default; Mean, Std), minmax (Min, Max) or
	// none. A federation's schema gives the statistics; central training fits missing
	// ones on its training split.
	Normalize string   `json:"normalize,omitempty" yaml:"normalize,omitempty"`
	Mean      *float64 `json:"mean,omitempty" yaml:"mean,omitempty"`
	Std       *float64 `json:"std,omitempty" yaml:"std,omitempty"`
	Min       *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max       *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	// Range [lo, hi], with normalize standard and no mean or std, asks the federation to
	// estimate them (a noised sum over the clients' rows, see Estimates): every value is
	// clipped to the range for the estimate, which bounds what one row can change it by.
	Range []float64 `json:"range,omitempty" yaml:"range,omitempty"`

	// Categorical columns: Categories lists the values (their order fixes the encoding;
	// required in a federation), Encoding is one_hot (default), ordinal or embedding, and
	// Unknown says what a value outside Categories is: error (default) or zero (no
	// category: all zeros, or for an embedding the zero vector).
	Categories []string `json:"categories,omitempty" yaml:"categories,omitempty"`
	Encoding   string   `json:"encoding,omitempty" yaml:"encoding,omitempty"`
	Unknown    string   `json:"unknown,omitempty" yaml:"unknown,omitempty"`
	// Dim is the width of an embedded column's learned vectors (encoding embedding), at
	// most MaxEmbeddingDim; 0 takes DefaultEmbeddingDim of the number of categories.
	Dim int `json:"dim,omitempty" yaml:"dim,omitempty"`
}

// Label is the class column (or JSON field, or for images the sub-directories).
type Label struct {
	// Column is the label's column or JSON field (not used by images and idx).
	Column string `json:"column,omitempty" yaml:"column,omitempty"`
	// Classes lists the class names; a class's id is its position. A label outside them
	// is a bad row. Required in a federation; central training takes the sorted labels
	// of the training file (images: the sub-directory names) when empty.
	Classes []string `json:"classes,omitempty" yaml:"classes,omitempty"`
}

// Target is the regression target column: standardised with Mean and Std (given, or
// fitted in central training) unless Normalize is none, and reported in the file's units.
type Target struct {
	Column    string   `json:"column" yaml:"column"`
	Normalize string   `json:"normalize,omitempty" yaml:"normalize,omitempty"`
	Mean      *float64 `json:"mean,omitempty" yaml:"mean,omitempty"`
	Std       *float64 `json:"std,omitempty" yaml:"std,omitempty"`
	// Range [lo, hi] without mean and std: estimated federatedly, as Column.Range.
	Range []float64 `json:"range,omitempty" yaml:"range,omitempty"`
}

// TextField is the text of a jsonl dataset and its tokenizer.
type TextField struct {
	// Column is the JSON field holding the text (default "text").
	Column string `json:"column,omitempty" yaml:"column,omitempty"`
	// Tokenizer is word (default) or char.
	Tokenizer string `json:"tokenizer,omitempty" yaml:"tokenizer,omitempty"`
	// Encoding is how a text becomes an example: tokens (the default), its token ids in
	// order (a sequence model's input), or bag, a bag of words: one dense feature per
	// vocabulary word, in vocabulary order (Dim = len(Vocab); padding and words outside
	// the vocabulary have no feature), weighted as Bag says and scaled to L2 norm 1 (a text
	// without a vocabulary word is all zeros), the input of an mlp (hidden: [] is logistic
	// regression). The unit norm bounds a linear model's per-example gradients.
	Encoding string `json:"encoding,omitempty" yaml:"encoding,omitempty"`
	// Bag weights a bag of words' features before the scaling: binary (the default), 1
	// for each vocabulary word the text holds, or count, the times it occurs.
	Bag string `json:"bag,omitempty" yaml:"bag,omitempty"`
	// MaxLen is the number of words (or characters) read of a text, the first: default
	// 256 for encoding tokens; for encoding bag, 0 (the default) reads every word.
	MaxLen int `json:"max_len,omitempty" yaml:"max_len,omitempty"`
	// Vocab is the tokenizer's vocabulary (words, or single characters), VocabPath a file
	// of it, one entry a line. Required in a federation (a shipped schema carries Vocab);
	// central training builds it from the training texts when both are empty, keeping
	// words seen MinCount times (default 2), at most MaxVocab (default 20,000).
	Vocab     []string `json:"vocab,omitempty" yaml:"vocab,omitempty"`
	VocabPath string   `json:"vocab_path,omitempty" yaml:"vocab_path,omitempty"`
	MinCount  int      `json:"min_count,omitempty" yaml:"min_count,omitempty"`
	MaxVocab  int      `json:"max_vocab,omitempty" yaml:"max_vocab,omitempty"`
	// StripEmailHeaders and StripHTML clean raw e-mails before tokenising.
	StripEmailHeaders bool `json:"strip_email_headers,omitempty" yaml:"strip_email_headers,omitempty"`
	StripHTML         bool `json:"strip_html,omitempty" yaml:"strip_html,omitempty"`
}

// ImageSize is the size every image is resized to, and its colour.
type ImageSize struct {
	Height int `json:"height" yaml:"height"`
	Width  int `json:"width" yaml:"width"`
	// Grey converts to one grey channel (ITU-R BT.601 luma); otherwise three (RGB).
	Grey bool `json:"grey,omitempty" yaml:"grey,omitempty"`
}

var defaultMissingValues = []string{"", "NA", "N/A", "NaN", "nan", "null", "?"}

// ParseSchema parses a dataset spec from YAML (or JSON, a subset), rejecting unknown keys.
// Relative paths are taken relative to dir.
func ParseSchema(b []byte, dir string) (*Schema, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Schema
	// plainSchema has Schema's fields without its UnmarshalYAML, which calls ParseSchema.
	type plainSchema Schema
	if err := dec.Decode((*plainSchema)(&s)); err != nil {
		return nil, fmt.Errorf("data: dataset spec: %w (keys: name, format, path, test_path, test_fraction, missing_values, columns, label, target, group, text, image)", err)
	}
	s.dir = dir
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// UnmarshalYAML lets a YAML config give a dataset schema inline (a mapping, checked as
// ParseSchema checks it, unknown keys included) or as the name of a spec file (a string,
// read with ReadSchemaFile, relative to the working directory).
func (s *Schema) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		f, err := ReadSchemaFile(n.Value)
		if err != nil {
			return err
		}
		*s = *f
		return nil
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	f, err := ParseSchema(b, "")
	if err != nil {
		return err
	}
	*s = *f
	return nil
}

// ReadSchemaFile reads a dataset spec file (see ParseSchema); its name defaults to the
// file's base name and its paths are relative to the file's directory.
func ReadSchemaFile(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: dataset spec: %w", err)
	}
	s, err := ParseSchema(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return s, nil
}

// IsSchemaFile reports whether a --dataset value names a dataset spec file rather than a
// built-in dataset: it ends in .yaml, .yml or .json.
func IsSchemaFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ParseSchemaJSON decodes a schema a federation shipped (Shipped's JSON) and checks it with
// ValidateFederated.
func ParseSchemaJSON(b []byte) (*Schema, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("data: dataset schema: %w", err)
	}
	if err := s.ValidateFederated(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Resolve returns p relative to the spec file's directory, or p when absolute or when the
// schema came from no file.
func (s *Schema) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || s.dir == "" {
		return p
	}
	return filepath.Join(s.dir, p)
}

// Shipped returns the schema as a federation sends it to its clients, in JSON: without
// the server's local paths, the vocabulary file read into Vocab. It fails unless the
// schema passes ValidateFederated.
func (s *Schema) Shipped() ([]byte, error) {
	c := s.clone()
	c.Path, c.TestPath = "", ""
	if t := c.Text; t != nil && t.VocabPath != "" {
		v, err := readVocabFile(s.Resolve(t.VocabPath))
		if err != nil {
			return nil, err
		}
		t.Vocab, t.VocabPath = v, ""
	}
	if err := c.ValidateFederated(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

func readVocabFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: text.vocab_path: %w", err)
	}
	var v []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			v = append(v, line)
		}
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("data: text.vocab_path %s: no entries: %w", path, ErrFormat)
	}
	return v, nil
}

func (s *Schema) clone() *Schema {
	b, _ := json.Marshal(s) // a Schema always marshals
	var c Schema
	_ = json.Unmarshal(b, &c)
	c.dir = s.dir
	c.rawEstimated = slices.Clone(s.rawEstimated)
	return &c
}

// Task returns the task the schema's examples have.
func (s *Schema) Task() Task {
	if s.Target != nil {
		return TaskRegress
	}
	return TaskClassify
}

// Validate checks the schema's structure, naming the key and the fix. Statistics may be
// missing (central training fits them); see ValidateFederated.
func (s *Schema) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch s.Format {
	case FormatCSV, FormatTSV:
		if len(s.Columns) == 0 {
			bad("columns is empty: list the feature columns (name, type numeric or categorical)")
		}
		if s.Text != nil || s.Image != nil {
			bad("text and image apply to formats jsonl and images, not %s", s.Format)
		}
	case FormatJSONL:
		if s.Text == nil {
			bad("format jsonl needs a text section (column, tokenizer, max_len)")
		}
		if len(s.Columns) > 0 || s.Image != nil {
			bad("columns and image do not apply to format jsonl")
		}
		if s.Target != nil {
			bad("format jsonl classifies texts: give label, not target")
		}
	case FormatImages:
		if s.Image == nil || s.Image.Height <= 0 || s.Image.Width <= 0 {
			bad("format images needs image: {height: H, width: W} with H, W ≥ 1 (and grey: true for one channel)")
		} else if s.Image.Height*s.Image.Width > 1<<20 {
			bad("image %d×%d: at most 2^20 pixels an image", s.Image.Height, s.Image.Width)
		}
		if len(s.Columns) > 0 || s.Text != nil || s.Target != nil || s.Group != "" {
			bad("format images takes image and label.classes only (one sub-directory per class)")
		}
	case FormatIDX:
		if len(s.Columns) > 0 || s.Text != nil || s.Image != nil || s.Target != nil || s.Group != "" {
			bad("format idx takes label.classes only (the directory holds the four IDX files)")
		}
		if s.Label == nil || len(s.Label.Classes) == 0 {
			bad("format idx needs label.classes: the class names of the label ids 0, 1, …")
		}
	case "":
		bad("format is empty: use csv, tsv, jsonl, images or idx")
	default:
		bad("format %q unknown: use csv, tsv, jsonl, images or idx", s.Format)
	}
	if !(s.TestFraction >= 0 && s.TestFraction < 1) {
		bad("test_fraction = %v: must be in [0, 1) (0: 0.2 unless test_path is set)", s.TestFraction)
	}
	tabular := s.Format == FormatCSV || s.Format == FormatTSV
	switch {
	case s.Label != nil && s.Target != nil:
		bad("both label and target are set: give label to classify, target to regress")
	case s.Label == nil && s.Target == nil && s.Format != FormatImages:
		bad("neither label nor target is set: give label: {column: …} to classify or target: {column: …} to regress")
	}
	if l := s.Label; l != nil {
		if (tabular || s.Format == FormatJSONL) && l.Column == "" {
			bad("label.column is empty: name the label's column")
		}
		if dup := firstDuplicate(l.Classes); dup != "" {
			bad("label.classes lists %q twice", dup)
		}
	}
	if t := s.Target; t != nil {
		if t.Column == "" {
			bad("target.column is empty: name the target's column")
		}
		checkNormalize(bad, "target", t.Normalize, t.Mean, t.Std, nil, nil, false)
		checkRange(bad, "target", t.Normalize, t.Range, t.Mean, t.Std)
	}
	names := map[string]bool{}
	for i, c := range s.Columns {
		key := fmt.Sprintf("columns[%d]", i)
		if c.Name == "" {
			bad("%s.name is empty", key)
			continue
		}
		key = fmt.Sprintf("columns[%d] (%s)", i, c.Name)
		if names[c.Name] {
			bad("%s is listed twice", key)
		}
		names[c.Name] = true
		if (s.Label != nil && c.Name == s.Label.Column) || (s.Target != nil && c.Name == s.Target.Column) {
			bad("%s is the label or target column; a feature cannot be its own label", key)
		}
		switch c.Missing {
		case "", MissingError, MissingZero:
		case MissingMean:
			if c.Type == ColumnCategorical {
				bad("%s.missing = mean: a categorical column has none; use error or zero", key)
			}
		default:
			bad("%s.missing = %q: use error, mean or zero", key, c.Missing)
		}
		switch c.Type {
		case "", ColumnNumeric:
			if len(c.Categories) > 0 || c.Encoding != "" || c.Unknown != "" || c.Dim != 0 {
				bad("%s: categories, encoding, unknown and dim apply to type categorical", key)
			}
			checkNormalize(bad, key, c.Normalize, c.Mean, c.Std, c.Min, c.Max, true)
			checkRange(bad, key, c.Normalize, c.Range, c.Mean, c.Std)
		case ColumnCategorical:
			if c.Normalize != "" || c.Mean != nil || c.Std != nil || c.Min != nil || c.Max != nil || c.Range != nil {
				bad("%s: normalize and its statistics apply to numeric columns", key)
			}
			switch c.Encoding {
			case "", EncodeOneHot, EncodeOrdinal:
				if c.Dim != 0 {
					bad("%s.dim applies to encoding: embedding (it is the width of the learned vectors)", key)
				}
			case EncodeEmbedding:
				if c.Dim < 0 || c.Dim > MaxEmbeddingDim {
					bad("%s.dim = %d: must be in [1, %d], or 0 for the default min(600, round(1.6·k^0.56)) of k categories", key, c.Dim, MaxEmbeddingDim)
				}
			default:
				bad("%s.encoding = %q: use one_hot, ordinal or embedding", key, c.Encoding)
			}
			switch c.Unknown {
			case "", MissingError, MissingZero:
			default:
				bad("%s.unknown = %q: use error or zero", key, c.Unknown)
			}
			if dup := firstDuplicate(c.Categories); dup != "" {
				bad("%s.categories lists %q twice", key, dup)
			}
		case ColumnIgnore:
		default:
			bad("%s.type = %q: use numeric, categorical or ignore", key, c.Type)
		}
	}
	if t := s.Text; t != nil {
		switch t.Tokenizer {
		case "", TokenizerWords, TokenizerChars:
		default:
			bad("text.tokenizer = %q: use word or char", t.Tokenizer)
		}
		switch t.Encoding {
		case "", TextTokens:
			if t.Bag != "" {
				bad("text.bag applies to encoding: bag; set text.encoding: bag for a bag of words, or remove text.bag")
			}
		case TextBag:
			if t.Tokenizer == TokenizerChars {
				bad("text.encoding: bag counts words: set text.tokenizer: word (or leave it out)")
			}
			switch t.Bag {
			case "", BagBinary, BagCount:
			default:
				bad("text.bag = %q: use binary or count", t.Bag)
			}
		default:
			bad("text.encoding = %q: use tokens (token sequences, for lstm, gru and transformer models) or bag (a bag of words, for an mlp)", t.Encoding)
		}
		if t.MaxLen < 0 || t.MinCount < 0 || t.MaxVocab < 0 {
			bad("text.max_len, text.min_count and text.max_vocab must be ≥ 0")
		}
		if len(t.Vocab) > 0 && t.VocabPath != "" {
			bad("text: give vocab or vocab_path, not both")
		}
		if dup := firstDuplicate(t.Vocab); dup != "" {
			bad("text.vocab lists %q twice", dup)
		}
	}
	return joinSchemaErrors(errs)
}

// ValidateFederated is Validate plus what a federation's schema must carry so that every
// client encodes its data the same way without fitting anything on its own private data:
// the classes, every category, the vocabulary, and the normalisation statistics of every
// numeric column and of the target (or normalize: none). The mean and std of a column
// with a range and neither of them are estimated federatedly before the first round (a
// noised sum, under secure aggregation when it is on, charged to the clients' ledgers; see
// Estimates): such a schema passes, and LoadSchema refuses it with Federated until
// WithStatistics has filled them in. Otherwise compute them on public or synthetic data of
// the same kind (`confide data schema` drafts them from a file) and put them in the schema.
func (s *Schema) ValidateFederated() error {
	if err := s.Validate(); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	const why = "a federation's schema must carry it, since it would otherwise be fitted on one client's private data"
	if l := s.Label; l != nil && len(l.Classes) == 0 {
		bad("label.classes is empty: list the classes (%s)", why)
	}
	if s.Format == FormatImages && (s.Label == nil || len(s.Label.Classes) == 0) {
		bad("label.classes is empty: list the class sub-directories (%s)", why)
	}
	if t := s.Target; t != nil && t.Normalize != NormalizeNone && (t.Mean == nil || t.Std == nil) && t.Range == nil {
		bad("target: mean and std are missing (give them, give range: [lo, hi] to estimate them federatedly, or set normalize: none): %s", why)
	}
	for i, c := range s.Columns {
		key := fmt.Sprintf("columns[%d] (%s)", i, c.Name)
		switch c.Type {
		case "", ColumnNumeric:
			switch c.Normalize {
			case "", NormalizeStandard:
				if (c.Mean == nil || c.Std == nil) && c.Range == nil {
					bad("%s: mean and std are missing (give them, give range: [lo, hi] to estimate them federatedly, or set normalize: none): %s", key, why)
				}
			case NormalizeMinMax:
				if c.Min == nil || c.Max == nil {
					bad("%s: min and max are missing: %s; they cannot be estimated federatedly (a noised sum gives means and variances, not extremes): give them, or use normalize: standard with range: [lo, hi]", key, why)
				}
			}
			if c.Missing == MissingMean && c.Mean == nil && c.Range == nil {
				bad("%s: missing: mean needs the column's mean: %s", key, why)
			}
		case ColumnCategorical:
			if len(c.Categories) == 0 {
				bad("%s.categories is empty: list the categories (%s)", key, why)
			}
		}
	}
	if t := s.Text; t != nil && len(t.Vocab) == 0 && t.VocabPath == "" {
		bad("text.vocab is empty: give the vocabulary (vocab or vocab_path): %s", why)
	}
	return joinSchemaErrors(errs)
}

func checkNormalize(bad func(string, ...any), key, mode string, mean, std, lo, hi *float64, minmax bool) {
	finite := func(name string, v *float64) {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			bad("%s.%s = %v: must be finite", key, name, *v)
		}
	}
	finite("mean", mean)
	finite("std", std)
	finite("min", lo)
	finite("max", hi)
	if std != nil && !(*std > 0) {
		bad("%s.std = %v: must be > 0", key, *std)
	}
	switch mode {
	case "", NormalizeStandard, NormalizeNone:
	case NormalizeMinMax:
		if !minmax {
			bad("%s.normalize = minmax: use standard or none", key)
		}
		if lo != nil && hi != nil && !(*hi > *lo) {
			bad("%s: max %v must exceed min %v", key, *hi, *lo)
		}
	default:
		if minmax {
			bad("%s.normalize = %q: use standard, minmax or none", key, mode)
		} else {
			bad("%s.normalize = %q: use standard or none", key, mode)
		}
	}
}

// checkRange checks a range [lo, hi] of a numeric column or the target: two finite values,
// lo < hi, for normalize standard without mean and std (what it is estimated for).
func checkRange(bad func(string, ...any), key, mode string, rng []float64, mean, std *float64) {
	if rng == nil {
		return
	}
	switch {
	case len(rng) != 2:
		bad("%s.range has %d values: give [lo, hi]", key, len(rng))
		return
	case math.IsNaN(rng[0]) || math.IsInf(rng[0], 0) || math.IsNaN(rng[1]) || math.IsInf(rng[1], 0) || !(rng[1] > rng[0]):
		bad("%s.range = %v: give finite lo < hi", key, rng)
		return
	}
	switch mode {
	case "", NormalizeStandard:
	case NormalizeMinMax:
		bad("%s.range: min and max cannot be estimated federatedly (a noised sum gives means and variances, not extremes): give min and max, or use normalize: standard with range", key)
		return
	default:
		bad("%s.range applies to normalize: standard (it bounds the values the mean and std are estimated from)", key)
		return
	}
	if (mean == nil) != (std == nil) {
		bad("%s: give both mean and std, or neither (with range, both are estimated federatedly)", key)
	}
}

func firstDuplicate(xs []string) string {
	seen := make(map[string]bool, len(xs))
	for _, x := range xs {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return ""
}

func joinSchemaErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("data: dataset spec: %s", strings.Join(msgs, "; "))
}

// missingSet returns the schema's missing-value markers.
func (s *Schema) missingSet() map[string]bool {
	vals := s.MissingValues
	if vals == nil {
		vals = defaultMissingValues
	}
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[strings.TrimSpace(v)] = true
	}
	return m
}

// FeatureDim returns the number of features an example of the schema has, once the
// categories are known (as in a federation's schema): numeric, ordinal and embedded
// columns count one, one-hot columns their number of categories; images
// height×width×channels; a bag of words the vocabulary's size. It is 0 for token
// sequences, for a vocabulary not yet listed (or in vocab_path) and when a one-hot
// column's categories are not listed.
func (s *Schema) FeatureDim() int {
	switch s.Format {
	case FormatImages:
		c := 3
		if s.Image.Grey {
			c = 1
		}
		return s.Image.Height * s.Image.Width * c
	case FormatJSONL:
		if s.Text.IsBag() {
			return len(s.Text.Vocab)
		}
		return 0
	case FormatIDX:
		return 0
	}
	d := 0
	for _, c := range s.Columns {
		if c.Type == ColumnCategorical && c.Encoding != EncodeOrdinal && c.Encoding != EncodeEmbedding && len(c.Categories) == 0 {
			return 0
		}
		d += c.width()
	}
	return d
}

// width is the number of features the column encodes to (its categories known).
func (c Column) width() int {
	switch c.Type {
	case "", ColumnNumeric:
		return 1
	case ColumnCategorical:
		if c.Encoding == EncodeOrdinal || c.Encoding == EncodeEmbedding {
			return 1
		}
		return len(c.Categories)
	}
	return 0
}

// featureOffset is the first feature of column j in an encoded example.
func (s *Schema) featureOffset(j int) int {
	off := 0
	for _, c := range s.Columns[:j] {
		off += c.width()
	}
	return off
}

// BadRowError is a record that does not fit the schema: a wrong number of columns, a value
// that is not a number, an unknown label or category, a missing value where none is
// allowed, an image that does not decode. It names the file, the line (or image) and the
// column.
type BadRowError struct {
	File   string
	Line   int    // 1-based; 0 for a whole file (an image)
	Column string // the column or field, when one is at fault
	Reason string
}

func (e *BadRowError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ": column %s", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap makes a bad row an ErrFormat.
func (e *BadRowError) Unwrap() error { return ErrFormat }

// errBadRows joins a file's first bad rows into one error.
func errBadRows(rows []*BadRowError, total int) error {
	errs := make([]error, 0, len(rows)+1)
	for _, r := range rows {
		errs = append(errs, r)
	}
	if total > len(rows) {
		errs = append(errs, fmt.Errorf("… and %d more bad rows (--skip-bad-rows drops them and reports the count)", total-len(rows)))
	}
	return errors.Join(errs...)
}
