package data

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/internal/linalg"
)

// Text encodings of a jsonl dataset (TextField.Encoding).
const (
	TextTokens = "tokens" // token ids in order (Dataset.Tokens), for sequence models
	TextBag    = "bag"    // a bag of words (Dataset.X), for an mlp
)

// Weightings of a bag of words (TextField.Bag), before the scaling to unit L2 norm.
const (
	BagBinary = "binary" // 1 for each vocabulary word the text holds
	BagCount  = "count"  // the number of times the text holds it
)

// IsBag reports whether the text field encodes a text as a bag of words.
func (t *TextField) IsBag() bool { return t != nil && t.Encoding == TextBag }

// tokenEncoding is the text encoding of the field's tokenizer: how a text becomes token
// ids, before a bag of words counts them.
func (t *TextField) tokenEncoding() TextEncoding {
	return TextEncoding{Tokenizer: t.Tokenizer, Vocab: t.Vocab, MaxLen: t.MaxLen,
		StripEmailHeaders: t.StripEmailHeaders, StripHTML: t.StripHTML}
}

// BagEncoder encodes a text as a bag of words: feature j is the weight of vocabulary word j
// (binary: present or not; count: occurrences) among the first MaxLen words of the text,
// after its e-mail cleaning, the features scaled to L2 norm 1. Words outside the
// vocabulary have no feature, so a text without a vocabulary word is the zero vector: every
// example's norm is 1 or 0, which bounds the per-example gradient of a linear model by the
// gradient of its loss with respect to the logits. It is immutable and safe for concurrent
// use.
type BagEncoder struct {
	tokens *TextEncoder
	count  bool
}

// NewBagEncoder returns the bag-of-words encoder of a jsonl dataset's text field (Encoding
// bag, its vocabulary listed; Tokenizer and Bag empty take their defaults).
func NewBagEncoder(t *TextField) (*BagEncoder, error) {
	if !t.IsBag() {
		return nil, fmt.Errorf("data: text.encoding is %q, not bag", t.Encoding)
	}
	e := t.tokenEncoding()
	if e.Tokenizer == "" {
		e.Tokenizer = TokenizerWords
	}
	if e.Tokenizer != TokenizerWords {
		return nil, fmt.Errorf("data: text.encoding: bag counts words: set text.tokenizer: word, not %q", e.Tokenizer)
	}
	if len(e.Vocab) == 0 {
		return nil, fmt.Errorf("data: text.encoding: bag has no vocabulary: give text.vocab (or let central training build it)")
	}
	var count bool
	switch t.Bag {
	case "", BagBinary:
	case BagCount:
		count = true
	default:
		return nil, fmt.Errorf("data: text.bag = %q: use binary or count", t.Bag)
	}
	tokens, err := NewTextEncoder(e)
	if err != nil {
		return nil, fmt.Errorf("data: text.vocab: %w", err)
	}
	return &BagEncoder{tokens: tokens, count: count}, nil
}

// Dim is the number of features: one per vocabulary word.
func (b *BagEncoder) Dim() int { return b.tokens.VocabSize() - firstTokenID }

// Encode writes the bag of words of text into dst (length Dim), overwriting it. ids is
// scratch space for the text's token ids, returned for reuse (nil allocates).
func (b *BagEncoder) Encode(dst []float64, text string, ids []int32) []int32 {
	if len(dst) != b.Dim() {
		panic(fmt.Sprintf("data: BagEncoder.Encode into %d features, want %d", len(dst), b.Dim()))
	}
	clear(dst)
	ids = b.tokens.Encode(ids[:0], text)
	for _, id := range ids {
		if id < firstTokenID {
			continue // PadID never occurs; UnknownID has no feature
		}
		if b.count {
			dst[id-firstTokenID]++
		} else {
			dst[id-firstTokenID] = 1
		}
	}
	if sq := linalg.Dot(dst, dst); sq > 0 {
		linalg.Scale(1/math.Sqrt(sq), dst)
	}
	return ids
}
