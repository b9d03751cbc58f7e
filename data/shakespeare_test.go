package data

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sharedData returns the path of a file in the shared data directory beside the
// repository, skipping the test when it is absent.
func sharedData(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data file %s not present: %v", name, err)
	}
	return p
}

// roleTargets returns, per group, the concatenated targets of its examples decoded.
func roleTargets(d *Dataset, tok *CharTokenizer) map[int32]string {
	out := map[int32]string{}
	for i := 0; i < d.N; i++ {
		row := d.Targets[i*d.SeqLen : i*d.SeqLen+int(d.Lengths[i])]
		out[d.Group[i]] += tok.Decode(row)
	}
	return out
}

func TestReadShakespeareSmall(t *testing.T) {
	c, err := LoadShakespeare(filepath.Join("testdata", "plays.txt"), ShakespeareOptions{SeqLen: 10, TestFraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Dataset{c.Train, c.Test} {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	// GHOST speaks no line and is dropped; casings of FIRST CITIZEN merge.
	if want := []string{"FIRST CITIZEN", "ALL", "SECOND CITIZEN"}; !slices.Equal(c.Train.GroupNames, want) || !slices.Equal(c.Test.GroupNames, want) {
		t.Fatalf("roles %v / %v, want %v", c.Train.GroupNames, c.Test.GroupNames, want)
	}
	// ALL speaks 2 lines: round(0.25 × 2) = 1 held out. Its training text, 13 chars,
	// gives a full window of 10 and a padded one of 2 (every char but the first is a
	// target once).
	i := slices.Index(c.Train.Group, 1)
	if i < 0 || c.Tokenizer.Decode(c.Train.Tokens[i*10:i*10+10]) != "Speak, spe" ||
		c.Tokenizer.Decode(c.Train.Targets[i*10:i*10+10]) != "peak, spea" ||
		c.Train.Lengths[i+1] != 2 || c.Tokenizer.Decode(c.Train.Targets[(i+1)*10:(i+1)*10+2]) != "k." ||
		c.Train.Targets[(i+1)*10+2] != IgnoreTarget {
		t.Fatalf("ALL's examples start at %d: %q", i, c.Tokenizer.Decode(c.Train.Tokens))
	}
	want := map[int32]string{
		0: "efore we proceed any further, hear me speak. You are all resolved rather to die than to famish? First, you know Caius Marcius is chief enemy to the people.",
		1: "peak, speak.",
		2: "ne word, good citizens.",
	}
	if got := roleTargets(c.Train, c.Tokenizer); !mapsEqual(got, want) {
		t.Fatalf("training targets per role:\n%q\nwant\n%q", got, want)
	}
	// Runs of spaces collapse ("Resolved.  resolved."); "'" occurs only in test text,
	// so it is unknown to the vocabulary built from training text.
	wantTest := map[int32]string{
		0: "et us kill him, and we\uFFFDll have corn at our own price.",
		1: "esolved. resolved.",
	}
	if got := roleTargets(c.Test, c.Tokenizer); !mapsEqual(got, wantTest) {
		t.Fatalf("test targets per role:\n%q\nwant\n%q", got, wantTest)
	}
}

func mapsEqual(a, b map[int32]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestReadShakespeareOptions(t *testing.T) {
	text := "A:\n" + strings.Repeat("abcdefghij", 3) + "\n" // 30 chars, one line
	cases := []struct {
		name string
		opts ShakespeareOptions
		n    int
	}{
		{"defaults: one padded window", ShakespeareOptions{}, 1},
		{"seq 10 stride 10", ShakespeareOptions{SeqLen: 10}, 3}, // 10 + 10 + 9
		{"seq 10 stride 1 (LEAF)", ShakespeareOptions{SeqLen: 10, Stride: 1}, 20},
		{"seq 10 stride 4", ShakespeareOptions{SeqLen: 10, Stride: 4}, 6}, // starts 0, 4, …, 20
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, err := ReadShakespeare(strings.NewReader(text), "t", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Train.Validate(); err != nil {
				t.Fatal(err)
			}
			if sc.Train.N != c.n || sc.Test.N != 0 {
				t.Fatalf("%d train / %d test examples, want %d / 0", sc.Train.N, sc.Test.N, c.n)
			}
			last := sc.Train.N - 1
			l := int(sc.Train.Lengths[last])
			if got := sc.Tokenizer.Decode(sc.Train.Targets[last*sc.Train.SeqLen+l-1 : last*sc.Train.SeqLen+l]); got != "j" {
				t.Fatalf("last target %q, want the text's last character", got)
			}
		})
	}
	leaf := []rune("\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}")
	sc, err := ReadShakespeare(strings.NewReader(text), "t", ShakespeareOptions{Vocab: leaf})
	if err != nil || sc.Train.VocabSize != len(leaf)+2 || sc.Tokenizer.ID('a') != int32(slices.Index(leaf, 'a')+2) {
		t.Fatalf("fixed vocabulary: %v", err)
	}
}

func TestReadShakespeareErrors(t *testing.T) {
	cases := []struct {
		name, in string
		opts     ShakespeareOptions
		want     string
	}{
		{"block without speaker", "A:\nhello there\n\nno speaker here\n", ShakespeareOptions{}, `line 4: "no speaker here" starts a speech`},
		{"empty name", ":\nhello\n", ShakespeareOptions{}, "line 1"},
		{"empty file", "", ShakespeareOptions{}, "no role"},
		{"only silent roles", "A:\n\nB:\n", ShakespeareOptions{}, "no role"},
		{"bad test fraction", "A:\nhello\n", ShakespeareOptions{TestFraction: 1}, "TestFraction"},
		{"bad seq len", "A:\nhello\n", ShakespeareOptions{SeqLen: -1}, "SeqLen"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadShakespeare(strings.NewReader(c.in), "t", c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := LoadShakespeare(filepath.Join(t.TempDir(), "none.txt"), ShakespeareOptions{}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestLoadTinyShakespeare(t *testing.T) {
	c, err := LoadShakespeare(sharedData(t, "tinyshakespeare.txt"), ShakespeareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Dataset{c.Train, c.Test} {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	// Measured on the 1,115,394-byte file: 303 roles (names upper-cased), 11 of them
	// with no spoken line; 64 distinct characters besides newline.
	roles := len(c.Train.GroupNames)
	t.Logf("roles %d, train %d, test %d examples, vocabulary %d", roles, c.Train.N, c.Test.N, c.Tokenizer.VocabSize())
	if roles != 292 || c.Tokenizer.VocabSize() != 66 {
		t.Errorf("%d roles and vocabulary %d, want 292 and 66", roles, c.Tokenizer.VocabSize())
	}
	if c.Train.GroupNames[0] != "FIRST CITIZEN" || !strings.HasPrefix(c.Tokenizer.Decode(c.Train.Tokens[:80]), "Before we proceed any further, hear me speak. You are") {
		t.Errorf("first example %q of %s", c.Tokenizer.Decode(c.Train.Tokens[:80]), c.Train.GroupNames[0])
	}
	// About 1 M characters of speech at 80 per example, a tenth held out.
	if c.Train.N < 10000 || c.Train.N > 13000 || c.Test.N < 1000 || c.Test.N > 2000 {
		t.Errorf("%d train / %d test examples, want about 11,700 / 1,400", c.Train.N, c.Test.N)
	}
	natural, _ := ParsePartitionSpec("natural")
	parts, err := natural.Partition(c.Train, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, parts, c.Train.N)
	for g, p := range parts {
		if len(p) == 0 {
			t.Errorf("role %s has no training example", c.Train.GroupNames[g])
		}
	}
	iid, err := PartitionIID(c.Train.N, 50, rand.New(rand.NewPCG(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	checkExactCover(t, iid, c.Train.N)
}
