package data

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestBagEncoder: each feature is a vocabulary word in vocabulary order, weighted binary or
// by count and scaled to norm 1; words outside the vocabulary, and the words after max_len,
// have no feature; a text without a vocabulary word is all zeros.
func TestBagEncoder(t *testing.T) {
	vocab := []string{"cheap", "pills", "now", "lunch"}
	r2, r5 := 1/math.Sqrt(2), 1/math.Sqrt(5)
	cases := []struct {
		bag    string
		maxLen int
		strip  bool
		text   string
		want   []float64
	}{
		{"binary", 0, false, "Now cheap, cheap NOW!", []float64{r2, 0, r2, 0}},
		{"binary", 0, false, "cheap", []float64{1, 0, 0, 0}},
		{"", 0, false, "pills zzz qqq lunch", []float64{0, r2, 0, r2}},
		{"count", 0, false, "cheap cheap pills", []float64{2 * r5, r5, 0, 0}},
		{"binary", 0, false, "unknown words only", []float64{0, 0, 0, 0}},
		{"binary", 0, false, "", []float64{0, 0, 0, 0}},
		{"binary", 2, false, "zzz cheap pills now", []float64{1, 0, 0, 0}},
		{"binary", 0, true, "From: a@b.org\nSubject: cheap\n\nlunch", []float64{0, 0, 0, 1}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("bag=%s/max_len=%d/%q", c.bag, c.maxLen, c.text), func(t *testing.T) {
			b, err := NewBagEncoder(&TextField{Encoding: TextBag, Bag: c.bag, MaxLen: c.maxLen, Vocab: vocab, StripEmailHeaders: c.strip})
			if err != nil {
				t.Fatal(err)
			}
			if b.Dim() != len(vocab) {
				t.Fatalf("Dim %d, want %d (one feature a vocabulary word)", b.Dim(), len(vocab))
			}
			got := make([]float64, b.Dim())
			for j := range got {
				got[j] = 7 // Encode overwrites
			}
			b.Encode(got, c.text, nil)
			for j := range got {
				if math.Abs(got[j]-c.want[j]) > 1e-15 {
					t.Fatalf("features %v, want %v", got, c.want)
				}
			}
			norm := math.Sqrt(dot(got, got))
			if zero := slices.Equal(c.want, []float64{0, 0, 0, 0}); (zero && norm != 0) || (!zero && math.Abs(norm-1) > 1e-15) {
				t.Fatalf("norm %v, want 1 (0 for a text without a vocabulary word)", norm)
			}
		})
	}
}

func dot(x, y []float64) float64 {
	s := 0.0
	for i := range x {
		s += x[i] * y[i]
	}
	return s
}

func TestSchemaBagValidation(t *testing.T) {
	cases := []struct{ text, want string }{
		{`{encoding: bags}`, "text.encoding = \"bags\": use tokens"},
		{`{encoding: bag, tokenizer: char}`, "set text.tokenizer: word"},
		{`{encoding: bag, bag: tfidf}`, "text.bag = \"tfidf\": use binary or count"},
		{`{bag: count}`, "text.bag applies to encoding: bag"},
		{`{encoding: tokens, bag: binary}`, "text.bag applies to encoding: bag"},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			_, err := ParseSchema([]byte(`{format: jsonl, label: {column: label}, text: `+c.text+`}`), "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := NewBagEncoder(&TextField{Encoding: TextBag}); err == nil || !strings.Contains(err.Error(), "no vocabulary") {
		t.Errorf("a bag without a vocabulary: %v", err)
	}
}

// bagMails are e-mails whose bag of words is whole only with max_len 0: the spam words come
// after the first four.
const bagMails = `{"text": "From: Ann <ann@Example.ORG>\nSubject: hi\n\nlunch at noon today then cheap", "label": "ham"}
{"text": "From: promo@deals.biz\n\nhello hello hello dear friend cheap pills now", "label": "spam"}
{"text": "From: bob@example.org\n\nthe notes of the meeting", "label": "ham"}
{"text": "From: x@deals.biz\n\nhello dear friend win cheap pills", "label": "spam"}
{"text": "no headers, just words", "label": "ham"}
`

// TestLoadSchemaBagAndShippedRoundTrip: a jsonl dataset with encoding bag loads as dense
// features, one a vocabulary word (built from every word when max_len is 0), each example
// of norm 1 or 0; the schema as applied ships (vocabulary and encoding in it) and a
// federated load with it fits nothing and gives the same features; FeatureDim is the
// vocabulary's size.
func TestLoadSchemaBagAndShippedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, ld := loadMails(t, dir, bagMails, "{encoding: bag, min_count: 2, strip_email_headers: true}")
	d := ld.Train
	vocab := ld.Schema.Text.Vocab
	// Seen twice or more among all the words: hello (4), cheap (3), dear, friend, pills, the (2).
	if want := []string{"hello", "cheap", "dear", "friend", "pills", "the"}; !slices.Equal(vocab, want) {
		t.Fatalf("vocabulary %v, want %v (by count, then alphabetically)", vocab, want)
	}
	if d.IsText() || d.Dim != len(vocab) || d.N != 5 || len(d.X) != 5*len(vocab) {
		t.Fatalf("dataset: text %v, Dim %d, N %d; want dense, Dim %d, N 5", d.IsText(), d.Dim, d.N, len(vocab))
	}
	for i := range d.N {
		row := d.X[i*d.Dim : (i+1)*d.Dim]
		if n := math.Sqrt(dot(row, row)); math.Abs(n-1) > 1e-12 && n != 0 {
			t.Errorf("example %d has norm %v", i, n)
		}
	}
	// E-mail 0 holds "cheap" only of the vocabulary: past its fourth word.
	if got := d.X[:d.Dim]; !slices.Equal(got, []float64{0, 1, 0, 0, 0, 0}) {
		t.Errorf("e-mail 0: %v, want cheap alone", got)
	}
	if got := ld.Schema.FeatureDim(); got != len(vocab) {
		t.Errorf("FeatureDim %d, want %d", got, len(vocab))
	}

	b, err := ld.Schema.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	fed, err := ParseSchemaJSON(b)
	if err != nil {
		t.Fatalf("shipped schema %s: %v", b, err)
	}
	if !fed.Text.IsBag() || fed.Text.MaxLen != 0 {
		t.Fatalf("shipped schema %s: want encoding bag and max_len 0", b)
	}
	ld2, err := LoadSchema(context.Background(), fed, LoadOptions{Path: dir + "/mails.jsonl", NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ld2.Fitted) != 0 || !slices.Equal(ld2.Train.X, d.X) {
		t.Errorf("federated load: fitted %v, features equal %v; want nothing fitted and the same features", ld2.Fitted, slices.Equal(ld2.Train.X, d.X))
	}
	if d.SenderDomainNames == nil || !slices.Equal(d.SenderDomainNames, []string{UnknownSenderDomain, "deals.biz", "example.org"}) {
		t.Errorf("sender domains %v", d.SenderDomainNames)
	}
}

// loadMails writes content to dir/mails.jsonl and loads it, all for training, with a spec
// classifying ham and spam and the text section text; it returns the spec and the load.
func loadMails(t *testing.T, dir, content, text string) (*Schema, *Loaded) {
	t.Helper()
	writeFile(t, dir, "mails.jsonl", content)
	s, err := ParseSchema([]byte(`{format: jsonl, path: mails.jsonl, label: {column: label, classes: [ham, spam]}, text: `+text+`}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, ld
}
