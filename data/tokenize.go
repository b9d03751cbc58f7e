package data

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// UnknownID is the token id every tokenizer here gives to input outside its vocabulary.
// Ids 0 (PadID) and 1 (UnknownID) are reserved; real tokens start at 2.
const UnknownID int32 = 1

const firstTokenID = 2

// CharTokenizer maps characters (runes) to token ids: PadID, UnknownID, then the
// vocabulary in order. It is immutable after construction.
type CharTokenizer struct {
	chars []rune
	ids   map[rune]int32
}

// NewCharTokenizer builds a character vocabulary from the distinct runes of text (the
// training text only, so the test set cannot leak into it), sorted by code point.
func NewCharTokenizer(text string) *CharTokenizer {
	seen := map[rune]bool{}
	var chars []rune
	for _, r := range text {
		if !seen[r] {
			seen[r] = true
			chars = append(chars, r)
		}
	}
	slices.Sort(chars)
	t, _ := NewCharTokenizerFromVocab(chars)
	return t
}

// NewCharTokenizerFromVocab builds a tokenizer with a fixed vocabulary: chars[i] gets id
// i+2. A federation ships this list so every client encodes text the same way.
func NewCharTokenizerFromVocab(chars []rune) (*CharTokenizer, error) {
	t := &CharTokenizer{chars: slices.Clone(chars), ids: make(map[rune]int32, len(chars))}
	for i, r := range chars {
		if _, dup := t.ids[r]; dup {
			return nil, fmt.Errorf("data: character vocabulary lists %q twice", r)
		}
		t.ids[r] = int32(i + firstTokenID)
	}
	return t, nil
}

// VocabSize is the number of token ids, including PadID and UnknownID.
func (t *CharTokenizer) VocabSize() int { return len(t.chars) + firstTokenID }

// Vocab returns the vocabulary in id order (id 2 first).
func (t *CharTokenizer) Vocab() []rune { return slices.Clone(t.chars) }

// ID returns the token id of r, UnknownID when r is not in the vocabulary.
func (t *CharTokenizer) ID(r rune) int32 {
	if id, ok := t.ids[r]; ok {
		return id
	}
	return UnknownID
}

// Encode appends the ids of the runes of s to dst and returns it.
func (t *CharTokenizer) Encode(dst []int32, s string) []int32 {
	for _, r := range s {
		dst = append(dst, t.ID(r))
	}
	return dst
}

// Decode turns ids back into text: PadID is skipped and UnknownID (or any id outside the
// vocabulary) becomes U+FFFD.
func (t *CharTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id == PadID:
		case id >= firstTokenID && int(id) < t.VocabSize():
			b.WriteRune(t.chars[id-firstTokenID])
		default:
			b.WriteRune(utf8.RuneError)
		}
	}
	return b.String()
}

// Placeholder words SplitWords substitutes for tokens that are many-valued but carry
// one meaning for classification.
const (
	WordNumber = "<num>"
	WordURL    = "<url>"
	WordEmail  = "<email>"
)

// maxWordLen drops longer runs of letters (encoded attachments, hashes): they would only
// fill the vocabulary with hapaxes.
const maxWordLen = 40

// SplitWords normalises text and splits it into words: lower-cased; a
// whitespace-separated chunk that looks like a URL becomes WordURL and one that looks like
// an e-mail address WordEmail; otherwise the words are the maximal runs of letters and
// digits, a run without letters becoming WordNumber, a run longer than 40 runes dropped.
func SplitWords(text string) []string { return splitWords(text, -1) }

// splitWords is SplitWords stopping after limit words (limit < 0: no limit).
func splitWords(text string, limit int) []string {
	var words []string
	for _, chunk := range strings.Fields(text) {
		if limit >= 0 && len(words) >= limit {
			return words[:limit]
		}
		lc := strings.ToLower(chunk)
		switch {
		case strings.Contains(lc, "://") || strings.HasPrefix(lc, "www."):
			words = append(words, WordURL)
			continue
		case isEmailLike(lc):
			words = append(words, WordEmail)
			continue
		}
		start := -1
		letters := false
		flush := func(end int) {
			if start < 0 {
				return
			}
			w := lc[start:end]
			switch {
			case utf8.RuneCountInString(w) > maxWordLen:
			case !letters:
				words = append(words, WordNumber)
			default:
				words = append(words, w)
			}
			start, letters = -1, false
		}
		for i, r := range lc {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				if start < 0 {
					start = i
				}
				letters = letters || unicode.IsLetter(r)
				continue
			}
			flush(i)
		}
		flush(len(lc))
	}
	if limit >= 0 && len(words) > limit {
		words = words[:limit]
	}
	return words
}

func isEmailLike(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && strings.Contains(s[at+1:], ".")
}

// WordVocabOptions bounds a word vocabulary built from training text.
type WordVocabOptions struct {
	// MaxSize caps the vocabulary, PadID and UnknownID included; 0 means 20,000.
	MaxSize int
	// MinCount drops words seen fewer times; 0 means 1 (keep all, up to MaxSize).
	MinCount int
}

// WordTokenizer maps words (as SplitWords produces them) to ids: PadID, UnknownID, then
// the vocabulary in order. It is immutable after construction.
type WordTokenizer struct {
	words []string
	ids   map[string]int32
}

// BuildWordTokenizer builds a vocabulary from training documents only: the most frequent
// words (ties broken alphabetically, so the result is deterministic), at most
// MaxSize−2 of them, each seen at least MinCount times.
func BuildWordTokenizer(docs []string, opts WordVocabOptions) (*WordTokenizer, error) {
	counts := map[string]int{}
	for _, d := range docs {
		for _, w := range SplitWords(d) {
			counts[w]++
		}
	}
	return wordTokenizerFromCounts(counts, opts)
}

func wordTokenizerFromCounts(counts map[string]int, opts WordVocabOptions) (*WordTokenizer, error) {
	maxSize, minCount := opts.MaxSize, opts.MinCount
	if maxSize == 0 {
		maxSize = 20000
	}
	if minCount == 0 {
		minCount = 1
	}
	if maxSize <= firstTokenID || minCount < 0 {
		return nil, fmt.Errorf("data: word vocabulary: MaxSize %d must exceed %d (pad and unknown) and MinCount %d must be ≥ 0", opts.MaxSize, firstTokenID, opts.MinCount)
	}
	type wc struct {
		w string
		c int
	}
	var all []wc
	for w, c := range counts {
		if c >= minCount {
			all = append(all, wc{w, c})
		}
	}
	slices.SortFunc(all, func(a, b wc) int {
		if c := cmp.Compare(b.c, a.c); c != 0 {
			return c
		}
		return strings.Compare(a.w, b.w)
	})
	if len(all) > maxSize-firstTokenID {
		all = all[:maxSize-firstTokenID]
	}
	words := make([]string, len(all))
	for i, x := range all {
		words[i] = x.w
	}
	return NewWordTokenizer(words)
}

// NewWordTokenizer builds a tokenizer with a fixed vocabulary: words[i] gets id i+2.
func NewWordTokenizer(words []string) (*WordTokenizer, error) {
	t := &WordTokenizer{words: slices.Clone(words), ids: make(map[string]int32, len(words))}
	for i, w := range words {
		if _, dup := t.ids[w]; dup {
			return nil, fmt.Errorf("data: word vocabulary lists %q twice", w)
		}
		t.ids[w] = int32(i + firstTokenID)
	}
	return t, nil
}

// VocabSize is the number of token ids, including PadID and UnknownID.
func (t *WordTokenizer) VocabSize() int { return len(t.words) + firstTokenID }

// Vocab returns the vocabulary in id order (id 2 first).
func (t *WordTokenizer) Vocab() []string { return slices.Clone(t.words) }

// ID returns the id of a word, UnknownID when it is not in the vocabulary.
func (t *WordTokenizer) ID(w string) int32 {
	if id, ok := t.ids[w]; ok {
		return id
	}
	return UnknownID
}

// Encode appends the ids of SplitWords(text) to dst, stopping after maxLen tokens
// (maxLen ≤ 0: no limit), and returns it.
func (t *WordTokenizer) Encode(dst []int32, text string, maxLen int) []int32 {
	if maxLen <= 0 {
		maxLen = -1
	}
	for _, w := range splitWords(text, maxLen) {
		dst = append(dst, t.ID(w))
	}
	return dst
}

// Decode turns ids back into space-separated words: PadID is skipped and UnknownID (or
// an id outside the vocabulary) becomes "<unk>".
func (t *WordTokenizer) Decode(ids []int32) string {
	var ws []string
	for _, id := range ids {
		switch {
		case id == PadID:
		case id >= firstTokenID && int(id) < t.VocabSize():
			ws = append(ws, t.words[id-firstTokenID])
		default:
			ws = append(ws, "<unk>")
		}
	}
	return strings.Join(ws, " ")
}
