package data

import (
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// Tokenizers of a TextEncoding.
const (
	TokenizerChars = "char" // CharTokenizer: one token per rune
	TokenizerWords = "word" // WordTokenizer: the words of SplitWords
)

// TextEncoding says how a text dataset's token ids were made from text, so that new text
// (at inference) is encoded the same way by a TextEncoder: the tokenizer and its
// vocabulary, how many tokens of a text were kept, and how raw e-mails were cleaned first.
type TextEncoding struct {
	// Tokenizer is TokenizerChars or TokenizerWords.
	Tokenizer string
	// Vocab lists the token of every id from 2 up (PadID and UnknownID come first).
	Vocab []string
	// MaxLen is the number of tokens kept of a text, the first ones; 0 keeps all.
	MaxLen int
	// StripEmailHeaders and StripHTML: texts are raw e-mails whose headers (up to the first
	// blank line) and HTML were removed before tokenising (SpamOptions).
	StripEmailHeaders, StripHTML bool
}

func (e *TextEncoding) clone() *TextEncoding {
	if e == nil {
		return nil
	}
	c := *e
	c.Vocab = slices.Clone(e.Vocab)
	return &c
}

// TextEncoder encodes new text as a TextEncoding says. It is immutable and safe for
// concurrent use.
type TextEncoder struct {
	enc   TextEncoding
	chars *CharTokenizer
	words *WordTokenizer
}

// NewTextEncoder builds the encoder of e, checking its vocabulary.
func NewTextEncoder(e TextEncoding) (*TextEncoder, error) {
	t := &TextEncoder{enc: *e.clone()}
	var err error
	switch e.Tokenizer {
	case TokenizerChars:
		runes := make([]rune, len(e.Vocab))
		for i, s := range e.Vocab {
			r, n := utf8.DecodeRuneInString(s)
			if n == 0 || n != len(s) {
				return nil, fmt.Errorf("data: character vocabulary entry %d is %q, not one character", i, s)
			}
			runes[i] = r
		}
		t.chars, err = NewCharTokenizerFromVocab(runes)
	case TokenizerWords:
		t.words, err = NewWordTokenizer(e.Vocab)
	default:
		return nil, fmt.Errorf("data: tokenizer %q unknown (use %s or %s)", e.Tokenizer, TokenizerChars, TokenizerWords)
	}
	if err != nil {
		return nil, err
	}
	if e.MaxLen < 0 {
		return nil, fmt.Errorf("data: text encoding MaxLen %d is negative", e.MaxLen)
	}
	return t, nil
}

// VocabSize is the number of token ids, PadID and UnknownID included.
func (t *TextEncoder) VocabSize() int { return len(t.enc.Vocab) + firstTokenID }

// Encode appends the token ids of text to dst and returns it: the e-mail cleaning of the
// encoding, then its tokenizer, keeping the first MaxLen tokens. Tokens outside the
// vocabulary become UnknownID; text without tokens appends nothing.
func (t *TextEncoder) Encode(dst []int32, text string) []int32 {
	if t.enc.StripEmailHeaders || t.enc.StripHTML {
		text = emailBody(text, !t.enc.StripEmailHeaders, !t.enc.StripHTML)
	}
	if t.words != nil {
		return t.words.Encode(dst, text, t.enc.MaxLen)
	}
	start := len(dst)
	for _, r := range text {
		if t.enc.MaxLen > 0 && len(dst)-start == t.enc.MaxLen {
			break
		}
		dst = append(dst, t.chars.ID(r))
	}
	return dst
}

// Encoding returns the text encoding of the tokenizer: its vocabulary, all of a text kept.
func (t *CharTokenizer) Encoding() *TextEncoding {
	vocab := make([]string, len(t.chars))
	for i, r := range t.chars {
		vocab[i] = string(r)
	}
	return &TextEncoding{Tokenizer: TokenizerChars, Vocab: vocab}
}

// Encoding returns the text encoding of the tokenizer, keeping the first maxLen words of a
// text (0: all).
func (t *WordTokenizer) Encoding(maxLen int) *TextEncoding {
	return &TextEncoding{Tokenizer: TokenizerWords, Vocab: slices.Clone(t.words), MaxLen: maxLen}
}

// Normalization is the affine map from raw values (as a source file holds them) to a
// dense dataset's features: X = (raw − Mean[j]) / Std[j] for feature j, a single value
// standing for every feature. Inference applies it to new raw inputs. A dataset of
// features computed from normalised inputs (train.Featurize) keeps the inputs'
// normalisation.
type Normalization struct {
	Mean, Std []float64
}

// PixelNormalization is what the IDX image loaders apply: 8-bit pixels divided by 255.
func PixelNormalization() *Normalization {
	return &Normalization{Mean: []float64{0}, Std: []float64{255}}
}

func (n *Normalization) clone() *Normalization {
	if n == nil {
		return nil
	}
	return &Normalization{Mean: slices.Clone(n.Mean), Std: slices.Clone(n.Std)}
}

// then returns the normalisation of raw values to ((raw − Mean)/Std − mean)/std over dim
// features: n followed by the per-feature map (x − mean[j]) / std[j]. A nil n is the
// identity.
func (n *Normalization) then(mean, std []float64, dim int) *Normalization {
	out := &Normalization{Mean: make([]float64, dim), Std: make([]float64, dim)}
	at := func(v []float64, j int, def float64) float64 {
		if len(v) == 0 {
			return def
		}
		return v[min(j, len(v)-1)]
	}
	for j := range dim {
		m0, s0 := 0.0, 1.0
		if n != nil {
			m0, s0 = at(n.Mean, j, 0), at(n.Std, j, 1)
		}
		// ((raw − m0)/s0 − m1)/s1 = (raw − (m0 + m1·s0)) / (s0·s1)
		out.Mean[j] = m0 + mean[j]*s0
		out.Std[j] = s0 * std[j]
	}
	return out
}

// validate checks the normalisation's values. Their number is one, or one per raw feature:
// Dim, or the input size of a feature stage whose output X holds (train.Featurize).
func (n *Normalization) validate() error {
	for _, v := range []struct {
		name string
		xs   []float64
	}{{"Mean", n.Mean}, {"Std", n.Std}} {
		for j, x := range v.xs {
			if math.IsNaN(x) || math.IsInf(x, 0) || (v.name == "Std" && x <= 0) {
				return fmt.Errorf("normalization %s[%d] = %v, want finite (and Std > 0)", v.name, j, x)
			}
		}
	}
	return nil
}
