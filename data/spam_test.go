package data

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadSpamAssassinSmall(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mails.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "mails.jsonl.gz")
	if err := os.WriteFile(gz, gzipBytes(raw), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join("testdata", "mails.jsonl"), gz} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := LoadSpamAssassin(path, SpamOptions{Vocab: WordVocabOptions{MinCount: 1}}, rand.New(rand.NewPCG(1, 2)))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*Dataset{c.Train, c.Test} {
				if err := d.Validate(); err != nil {
					t.Fatal(err)
				}
				if d.SeqLen != 256 || !slices.Equal(d.GroupNames, []string{"box-a", "box-b", "box-c"}) || !slices.Equal(d.ClassNames, []string{"ham", "spam"}) {
					t.Fatalf("%s: SeqLen %d groups %v classes %v", d.Name, d.SeqLen, d.GroupNames, d.ClassNames)
				}
			}
			if c.Train.Name != "mails-train" {
				t.Errorf("name %q, want mails-train", c.Train.Name)
			}
			// Stratified: round(0.2 × 4 ham) = 1 and round(0.2 × 3 spam) = 1 held out.
			if !slices.Equal(c.Train.ClassCounts(), []int{3, 2}) || !slices.Equal(c.Test.ClassCounts(), []int{1, 1}) {
				t.Fatalf("class counts train %v test %v, want [3 2] and [1 1]", c.Train.ClassCounts(), c.Test.ClassCounts())
			}
			ids := append(slices.Clone(c.TrainIDs), c.TestIDs...)
			slices.Sort(ids)
			if fmt.Sprint(ids) != "[ham/1 ham/2 ham/3 ham/4 spam/1 spam/2 spam/3]" {
				t.Fatalf("ids %v", ids)
			}
			for k, id := range c.TrainIDs {
				wantLabel := int32(0)
				if strings.HasPrefix(id, "spam") {
					wantLabel = 1
				}
				if c.Train.Y[k] != wantLabel {
					t.Errorf("%s has label %d", id, c.Train.Y[k])
				}
				if id == "ham/4" && (c.Train.Lengths[k] != 1 || c.Train.Tokens[k*256] != UnknownID) {
					t.Errorf("empty body encoded as %v (length %d), want one UnknownID", c.Train.Tokens[k*256:k*256+2], c.Train.Lengths[k])
				}
			}
			vocab := c.Tokenizer.Vocab()
			for _, w := range []string{"subject", "from", "html", "body", "script", "var", "p", "amp", "x", "header"} {
				if slices.Contains(vocab, w) {
					t.Errorf("vocabulary has %q: headers or HTML were not stripped", w)
				}
			}
			if c.Train.VocabSize != c.Tokenizer.VocabSize() || c.Test.VocabSize != c.Tokenizer.VocabSize() {
				t.Error("VocabSize differs from the tokenizer's")
			}
		})
	}
}

func TestReadSpamAssassinOptions(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "mails.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	read := func(opts SpamOptions, seed uint64) *SpamCorpus {
		t.Helper()
		c, err := ReadSpamAssassin(strings.NewReader(string(raw)), "m", opts, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := read(SpamOptions{MaxLen: 3, Vocab: WordVocabOptions{MinCount: 1}}, 1)
	for _, l := range c.Train.Lengths {
		if l < 1 || l > 3 {
			t.Fatalf("length %d with MaxLen 3", l)
		}
	}
	// Headers and HTML kept on request.
	k := read(SpamOptions{KeepHeaders: true, KeepHTML: true, Vocab: WordVocabOptions{MinCount: 1}, TestFraction: 0.01}, 1)
	for _, w := range []string{"subject", "html"} {
		if !slices.Contains(k.Tokenizer.Vocab(), w) {
			t.Errorf("KeepHeaders/KeepHTML: vocabulary lacks %q", w)
		}
	}
	// Default MinCount 2: words seen once in training are unknown.
	d := read(SpamOptions{}, 1)
	if d.Tokenizer.VocabSize() >= c.Tokenizer.VocabSize()+10 || slices.Contains(d.Tokenizer.Vocab(), "cruise") {
		t.Errorf("default vocabulary %v keeps words seen once", d.Tokenizer.Vocab())
	}
	a, b := read(SpamOptions{}, 7), read(SpamOptions{}, 7)
	if fmt.Sprint(a.TestIDs) != fmt.Sprint(b.TestIDs) || fmt.Sprint(a.Train.Tokens) != fmt.Sprint(b.Train.Tokens) {
		t.Fatal("same seed, different corpus")
	}
}

func TestReadSpamAssassinErrors(t *testing.T) {
	ok := `{"id": "a", "group": "g", "label": "ham", "text": "hi"}`
	cases := []struct{ name, in, want string }{
		{"not json", ok + "\n{oops\n", "line 2: not a JSON object"},
		{"bad label", `{"id": "a", "group": "g", "label": "junk", "text": ""}`, `line 1 (id a): field "label" = "junk"`},
		{"missing group", `{"id": "a", "label": "ham", "text": ""}`, `field "group" missing`},
		{"missing id", `{"group": "g", "label": "ham", "text": ""}`, `field "id" missing`},
		{"wrong type", `{"id": 3, "group": "g", "label": "ham", "text": ""}`, `field "id" must be a string`},
		{"missing text", `{"id": "a", "group": "g", "label": "ham", "body": ""}`, `line 1 (id a): field "text" missing`},
		{"duplicate id", ok + "\n" + ok, `id "a" already used on line 1`},
		{"empty", "\n\n", "no e-mails"},
		{"corrupt gzip", "\x1f\x8bxx", "gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadSpamAssassin(strings.NewReader(c.in), "t", SpamOptions{}, rand.New(rand.NewPCG(1, 0)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestEmailBody(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"headers dropped", "From: a\r\nSubject: b\r\n\r\nhello\r\n\r\nbye", "hello\n\nbye"},
		{"no blank line: all body", "just text", "just text"},
		{"html stripped", "H: 1\n\n<p>a &amp; b</p><STYLE>x{}</STYLE>c", " a & b  c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := emailBody(c.in, false, false); got != c.want {
				t.Fatalf("emailBody = %q, want %q", got, c.want)
			}
		})
	}
}

func TestLoadSpamAssassinShared(t *testing.T) {
	c, err := LoadSpamAssassin(sharedData(t, "spamassassin.jsonl.gz"), SpamOptions{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Dataset{c.Train, c.Test} {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("train %d (ham, spam %v), test %d (%v), vocabulary %d", c.Train.N, c.Train.ClassCounts(), c.Test.N, c.Test.ClassCounts(), c.Tokenizer.VocabSize())
	// 6,046 e-mails: 4,150 ham and 1,896 spam; 20% of each held out (830 and 379).
	if !slices.Equal(c.Train.ClassCounts(), []int{3320, 1517}) || !slices.Equal(c.Test.ClassCounts(), []int{830, 379}) {
		t.Errorf("class counts train %v test %v, want [3320 1517] and [830 379]", c.Train.ClassCounts(), c.Test.ClassCounts())
	}
	if want := []string{"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"}; !slices.Equal(c.Train.GroupNames, want) {
		t.Errorf("mailboxes %v, want %v", c.Train.GroupNames, want)
	}
	if v := c.Tokenizer.VocabSize(); v < 10000 || v > 20000 {
		t.Errorf("vocabulary %d, want between 10,000 and the cap of 20,000", v)
	}
	natural, _ := ParsePartitionSpec("natural")
	parts, err := natural.Partition(c.Train, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, parts, c.Train.N)
	sizes := make([]int, len(parts))
	for i, p := range parts {
		sizes[i] = len(p)
	}
	t.Logf("training e-mails per mailbox: %v", sizes)
}
