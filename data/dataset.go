package data

import (
	"errors"
	"fmt"
	"math"
)

// PadID is the token id used to pad token sequences. Every tokenizer in this package
// reserves it, so a padded position never collides with a real token.
const PadID int32 = 0

// IgnoreTarget marks a position of Dataset.Targets that carries no loss (padding).
const IgnoreTarget int32 = -1

// Task says what a Dataset's labels mean.
type Task int

const (
	// TaskClassify: one label per example, Y[i] in [0, NumClasses).
	TaskClassify Task = iota
	// TaskNextToken: a target token per position, Targets is N×SeqLen with
	// IgnoreTarget at padded positions.
	TaskNextToken
	// TaskRegress: real-valued targets, Values is N×NumValues.
	TaskRegress
)

// String returns the task's name as used in configs ("classify", "next-token").
func (t Task) String() string {
	switch t {
	case TaskClassify:
		return "classify"
	case TaskNextToken:
		return "next-token"
	case TaskRegress:
		return "regress"
	}
	return fmt.Sprintf("Task(%d)", int(t))
}

// Dataset is an in-memory labelled dataset. Exactly one of the feature forms is set.
type Dataset struct {
	Name string
	N    int // number of examples

	// Dense features (images, tabular): X is N×Dim row-major.
	X     []float64
	Dim   int
	Shape []int // optional, e.g. [28 28]
	// Normalization, when known, is how X was made from the source's raw values (e.g.
	// 8-bit pixels divided by 255), for inference on new raw inputs.
	Normalization *Normalization
	// Embedded lists the features of X that hold a categorical column's category index
	// (−1: missing or unknown) for a model to look up in a learned table, not a value to
	// read as a number (Schema encoding embedding).
	Embedded []EmbeddedColumn

	// Token sequences (text): Tokens is N×SeqLen row-major, padded with PadID;
	// Lengths[i] ≤ SeqLen.
	Tokens    []int32
	SeqLen    int
	Lengths   []int32
	VocabSize int
	// Text, when known, says how Tokens were made from text (tokenizer, vocabulary), for
	// encoding new text the same way.
	Text *TextEncoding

	// Labels: Y[i] in [0, NumClasses) for classification. For next-token prediction
	// (Task == TaskNextToken) Targets is N×SeqLen with -1 at padded positions.
	Y          []int32
	Targets    []int32
	NumClasses int
	ClassNames []string
	Task       Task

	// Regression (Task == TaskRegress): Values is N×NumValues, the targets as the model
	// is trained on them; ValueNames names them (optional) and ValueNormalization, when
	// set, is how they were made from the source's raw values (raw = Values·Std + Mean),
	// so that errors can be reported in the source's units.
	Values             []float64
	NumValues          int
	ValueNames         []string
	ValueNormalization *Normalization

	// Group, when set, is the example's natural group (a device, a speaking role, a
	// mailbox): Group[i] in [0, len(GroupNames)). PartitionNatural turns it into one
	// client per group.
	Group      []int32
	GroupNames []string

	// SenderDomain, when set, is the sender domain of each example, a raw e-mail
	// (SenderDomain[i] in [0, len(SenderDomainNames)); see SenderDomain, one of the names
	// may be UnknownSenderDomain): the clusters a sender-domain partition gives out whole.
	SenderDomain      []int32
	SenderDomainNames []string
}

// IsText reports whether the dataset holds token sequences rather than dense features.
func (d *Dataset) IsText() bool { return d.Tokens != nil || d.SeqLen > 0 }

// Validate checks the invariants documented on Dataset: sizes agree with N, Dim and
// SeqLen, exactly one feature form is set, features are finite, token ids lie in
// [0, VocabSize) with PadID after Lengths[i], labels and groups lie in range.
func (d *Dataset) Validate() error {
	if d == nil {
		return errors.New("data: nil dataset")
	}
	name := d.Name
	if name == "" {
		name = "(unnamed)"
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("data: dataset %s: "+format, append([]any{name}, args...)...)
	}
	if d.N < 0 {
		return fail("N = %d is negative", d.N)
	}
	dense := d.X != nil || d.Dim > 0
	text := d.IsText()
	switch {
	case dense && text:
		return fail("both dense features (X, Dim) and tokens (Tokens, SeqLen) are set; set exactly one")
	case !dense && !text:
		return fail("no features: set X and Dim, or Tokens and SeqLen")
	}
	if dense {
		if d.Dim <= 0 {
			return fail("Dim = %d, want > 0", d.Dim)
		}
		if len(d.X) != d.N*d.Dim {
			return fail("len(X) = %d, want N×Dim = %d×%d = %d", len(d.X), d.N, d.Dim, d.N*d.Dim)
		}
		if len(d.Shape) > 0 {
			p := 1
			for _, s := range d.Shape {
				if s <= 0 {
					return fail("Shape %v has a non-positive dimension", d.Shape)
				}
				p *= s
			}
			if p != d.Dim {
				return fail("Shape %v has %d elements, want Dim = %d", d.Shape, p, d.Dim)
			}
		}
		for i, v := range d.X {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fail("X[%d] (example %d, feature %d) = %v is not finite", i, i/d.Dim, i%d.Dim, v)
			}
		}
		if d.Normalization != nil {
			if err := d.Normalization.validate(); err != nil {
				return fail("%v", err)
			}
		}
		if err := d.validateEmbedded(); err != nil {
			return fail("%v", err)
		}
	} else if d.Normalization != nil || d.Embedded != nil {
		return fail("Normalization or Embedded set on token sequences; they describe dense features")
	}
	if d.Text != nil && (!text || len(d.Text.Vocab)+firstTokenID > d.VocabSize) {
		return fail("Text lists %d tokens, want a text dataset with VocabSize ≥ %d", len(d.Text.Vocab), len(d.Text.Vocab)+firstTokenID)
	}
	if text {
		if d.SeqLen <= 0 {
			return fail("SeqLen = %d, want > 0", d.SeqLen)
		}
		if d.VocabSize <= 0 {
			return fail("VocabSize = %d, want > 0", d.VocabSize)
		}
		if len(d.Tokens) != d.N*d.SeqLen {
			return fail("len(Tokens) = %d, want N×SeqLen = %d×%d = %d", len(d.Tokens), d.N, d.SeqLen, d.N*d.SeqLen)
		}
		if len(d.Lengths) != d.N {
			return fail("len(Lengths) = %d, want N = %d", len(d.Lengths), d.N)
		}
		for i := 0; i < d.N; i++ {
			l := int(d.Lengths[i])
			if l < 0 || l > d.SeqLen {
				return fail("Lengths[%d] = %d, want in [0, SeqLen = %d]", i, l, d.SeqLen)
			}
			row := d.Tokens[i*d.SeqLen : (i+1)*d.SeqLen]
			for j, t := range row {
				if t < 0 || int(t) >= d.VocabSize {
					return fail("Tokens[%d][%d] = %d, want in [0, VocabSize = %d)", i, j, t, d.VocabSize)
				}
				if j >= l && t != PadID {
					return fail("Tokens[%d][%d] = %d past Lengths[%d] = %d, want PadID %d", i, j, t, i, l, PadID)
				}
			}
		}
	}
	switch d.Task {
	case TaskClassify:
		if d.NumClasses <= 0 {
			return fail("NumClasses = %d, want > 0 for a classification task", d.NumClasses)
		}
		if len(d.Y) != d.N {
			return fail("len(Y) = %d, want N = %d", len(d.Y), d.N)
		}
		for i, y := range d.Y {
			if y < 0 || int(y) >= d.NumClasses {
				return fail("Y[%d] = %d, want in [0, NumClasses = %d)", i, y, d.NumClasses)
			}
		}
		if len(d.ClassNames) != 0 && len(d.ClassNames) != d.NumClasses {
			return fail("len(ClassNames) = %d, want 0 or NumClasses = %d", len(d.ClassNames), d.NumClasses)
		}
		if d.Targets != nil {
			return fail("Targets set on a classification task; use Y, or Task = TaskNextToken")
		}
		if d.Values != nil {
			return fail("Values set on a classification task; use Y, or Task = TaskRegress")
		}
	case TaskRegress:
		if d.NumValues <= 0 {
			return fail("NumValues = %d, want > 0 for a regression task", d.NumValues)
		}
		if len(d.Values) != d.N*d.NumValues {
			return fail("len(Values) = %d, want N×NumValues = %d×%d", len(d.Values), d.N, d.NumValues)
		}
		for i, v := range d.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fail("Values[%d] (example %d) = %v is not finite", i, i/d.NumValues, v)
			}
		}
		if len(d.ValueNames) != 0 && len(d.ValueNames) != d.NumValues {
			return fail("len(ValueNames) = %d, want 0 or NumValues = %d", len(d.ValueNames), d.NumValues)
		}
		if d.ValueNormalization != nil {
			if err := d.ValueNormalization.validate(); err != nil {
				return fail("value %v", err)
			}
		}
		if d.Y != nil || d.Targets != nil {
			return fail("Y or Targets set on a regression task; use Values")
		}
	case TaskNextToken:
		if !text {
			return fail("next-token task needs token features (Tokens, SeqLen)")
		}
		if len(d.Targets) != d.N*d.SeqLen {
			return fail("len(Targets) = %d, want N×SeqLen = %d", len(d.Targets), d.N*d.SeqLen)
		}
		for i := 0; i < d.N; i++ {
			l := int(d.Lengths[i])
			for j, t := range d.Targets[i*d.SeqLen : (i+1)*d.SeqLen] {
				if j >= l && t != IgnoreTarget {
					return fail("Targets[%d][%d] = %d past Lengths[%d] = %d, want %d", i, j, t, i, l, IgnoreTarget)
				}
				if t < IgnoreTarget || int(t) >= d.VocabSize {
					return fail("Targets[%d][%d] = %d, want -1 or in [0, VocabSize = %d)", i, j, t, d.VocabSize)
				}
			}
		}
		if d.Y != nil {
			return fail("Y set on a next-token task; use Targets, or Task = TaskClassify")
		}
		if d.Values != nil {
			return fail("Values set on a next-token task; use Targets, or Task = TaskRegress")
		}
	default:
		return fail("unknown Task %d", int(d.Task))
	}
	if d.Group != nil {
		if len(d.Group) != d.N {
			return fail("len(Group) = %d, want N = %d", len(d.Group), d.N)
		}
		for i, g := range d.Group {
			if g < 0 || (len(d.GroupNames) > 0 && int(g) >= len(d.GroupNames)) {
				return fail("Group[%d] = %d, want in [0, len(GroupNames) = %d)", i, g, len(d.GroupNames))
			}
		}
	}
	if d.SenderDomain != nil {
		if len(d.SenderDomain) != d.N {
			return fail("len(SenderDomain) = %d, want N = %d", len(d.SenderDomain), d.N)
		}
		for i, g := range d.SenderDomain {
			if g < 0 || int(g) >= len(d.SenderDomainNames) {
				return fail("SenderDomain[%d] = %d, want in [0, len(SenderDomainNames) = %d)", i, g, len(d.SenderDomainNames))
			}
		}
	}
	return nil
}

// NumGroups returns the number of natural groups: len(GroupNames) when names are set,
// otherwise one more than the largest Group id (0 without groups).
func (d *Dataset) NumGroups() int {
	if len(d.GroupNames) > 0 {
		return len(d.GroupNames)
	}
	m := -1
	for _, g := range d.Group {
		m = max(m, int(g))
	}
	return m + 1
}

// Subset returns a new dataset holding copies of the rows idx, in that order (an index
// may repeat). Metadata (names, shapes, normalisation, vocabulary, class and group names)
// is copied too, so the result shares no memory with d. An index outside [0, N) is a
// programming error and panics.
func (d *Dataset) Subset(idx []int) *Dataset {
	for _, i := range idx {
		if i < 0 || i >= d.N {
			panic(fmt.Sprintf("data: Subset index %d out of range [0, %d)", i, d.N))
		}
	}
	s := &Dataset{
		Name:          d.Name,
		N:             len(idx),
		Dim:           d.Dim,
		Shape:         cloneSlice(d.Shape),
		Normalization: d.Normalization.clone(),
		Embedded:      cloneSlice(d.Embedded),
		SeqLen:        d.SeqLen,
		VocabSize:     d.VocabSize,
		Text:          d.Text.clone(),
		NumClasses:    d.NumClasses,
		ClassNames:    cloneSlice(d.ClassNames),
		Task:          d.Task,
		GroupNames:    cloneSlice(d.GroupNames),

		SenderDomainNames: cloneSlice(d.SenderDomainNames),

		NumValues:          d.NumValues,
		ValueNames:         cloneSlice(d.ValueNames),
		ValueNormalization: d.ValueNormalization.clone(),
	}
	if d.Values != nil {
		s.Values = make([]float64, len(idx)*d.NumValues)
		gatherRows(s.Values, d.Values, idx, d.NumValues)
	}
	if d.X != nil {
		s.X = make([]float64, len(idx)*d.Dim)
		gatherRows(s.X, d.X, idx, d.Dim)
	}
	if d.Tokens != nil {
		s.Tokens = make([]int32, len(idx)*d.SeqLen)
		gatherRows(s.Tokens, d.Tokens, idx, d.SeqLen)
	}
	if d.Targets != nil {
		s.Targets = make([]int32, len(idx)*d.SeqLen)
		gatherRows(s.Targets, d.Targets, idx, d.SeqLen)
	}
	if d.Lengths != nil {
		s.Lengths = make([]int32, len(idx))
		gatherRows(s.Lengths, d.Lengths, idx, 1)
	}
	if d.Y != nil {
		s.Y = make([]int32, len(idx))
		gatherRows(s.Y, d.Y, idx, 1)
	}
	if d.Group != nil {
		s.Group = make([]int32, len(idx))
		gatherRows(s.Group, d.Group, idx, 1)
	}
	if d.SenderDomain != nil {
		s.SenderDomain = make([]int32, len(idx))
		gatherRows(s.SenderDomain, d.SenderDomain, idx, 1)
	}
	return s
}

// ClassCounts returns the number of examples of each class (nil for a next-token task).
func (d *Dataset) ClassCounts() []int {
	if d.Task != TaskClassify || d.NumClasses <= 0 {
		return nil
	}
	c := make([]int, d.NumClasses)
	for _, y := range d.Y {
		if y >= 0 && int(y) < d.NumClasses {
			c[y]++
		}
	}
	return c
}

// gatherRows copies rows idx of src (row length w) into dst, back to back.
func gatherRows[T any](dst, src []T, idx []int, w int) {
	if w == 1 {
		for k, i := range idx {
			dst[k] = src[i]
		}
		return
	}
	for k, i := range idx {
		copy(dst[k*w:(k+1)*w], src[i*w:(i+1)*w])
	}
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T(nil), s...)
}
