package data

import (
	"slices"
	"strings"
	"testing"
)

func TestCharTokenizer(t *testing.T) {
	tok := NewCharTokenizer("banana")
	if tok.VocabSize() != 5 || string(tok.Vocab()) != "abn" {
		t.Fatalf("vocab %q size %d, want \"abn\" and 5", string(tok.Vocab()), tok.VocabSize())
	}
	ids := tok.Encode(nil, "bad!")
	if !slices.Equal(ids, []int32{3, 2, UnknownID, UnknownID}) {
		t.Fatalf("Encode = %v", ids)
	}
	if got := tok.Decode([]int32{4, 2, PadID, UnknownID, 99}); got != "na\uFFFD\uFFFD" {
		t.Fatalf("Decode = %q", got)
	}
	if got := tok.Decode(tok.Encode(nil, "banana")); got != "banana" {
		t.Fatalf("round trip = %q", got)
	}
	fixed, err := NewCharTokenizerFromVocab([]rune("xé"))
	if err != nil || fixed.ID('é') != 3 || fixed.ID('a') != UnknownID {
		t.Fatalf("fixed vocab: %v, id(é) = %d", err, fixed.ID('é'))
	}
	if _, err := NewCharTokenizerFromVocab([]rune("xyx")); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate character: %v", err)
	}
}

func TestSplitWords(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Hello, World!", "hello world"},
		{"Call 555-1234 now", "call <num> <num> now"},
		{"Visit http://x.example/a?b=c or www.a.example.", "visit <url> or <url>"},
		{"mail Me@X.org, please", "mail <email> please"},
		{"R2D2 and C-3PO", "r2d2 and c 3po"},
		{"Don't  stop\n\tme", "don t stop me"},
		{"Ünïcode ÉTÉ", "ünïcode été"},
		{"x " + strings.Repeat("a", 41) + " y", "x y"},
		{"   ", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := strings.Join(SplitWords(c.in), " "); got != c.want {
				t.Fatalf("SplitWords(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
	if got := splitWords("a b c d", 2); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("limit 2: %v", got)
	}
}

func TestWordTokenizer(t *testing.T) {
	docs := []string{"the cat sat", "the dog sat", "The cat ran", "a bird"}
	cases := []struct {
		name string
		opts WordVocabOptions
		want []string
	}{
		// Counts: the 3, cat 2, sat 2, then a, bird, dog, ran 1 (ties alphabetical).
		{"all", WordVocabOptions{}, []string{"the", "cat", "sat", "a", "bird", "dog", "ran"}},
		{"max size", WordVocabOptions{MaxSize: 5}, []string{"the", "cat", "sat"}},
		{"min count", WordVocabOptions{MinCount: 2}, []string{"the", "cat", "sat"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := BuildWordTokenizer(docs, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tok.Vocab(), c.want) || tok.VocabSize() != len(c.want)+2 {
				t.Fatalf("vocab %v (size %d), want %v", tok.Vocab(), tok.VocabSize(), c.want)
			}
		})
	}
	tok, _ := BuildWordTokenizer(docs, WordVocabOptions{})
	ids := tok.Encode(nil, "The zebra sat on the cat", 5)
	if !slices.Equal(ids, []int32{2, UnknownID, 4, UnknownID, 2}) {
		t.Fatalf("Encode = %v", ids)
	}
	if got := tok.Decode(append(ids, PadID)); got != "the <unk> sat <unk> the" {
		t.Fatalf("Decode = %q", got)
	}
	if _, err := BuildWordTokenizer(docs, WordVocabOptions{MaxSize: 2}); err == nil {
		t.Fatal("MaxSize 2 (no room for words) accepted")
	}
	if _, err := NewWordTokenizer([]string{"a", "a"}); err == nil {
		t.Fatal("duplicate word accepted")
	}
}
