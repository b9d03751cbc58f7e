package data

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// New text encoded with a dataset's TextEncoding gets the token ids the loader gave the
// same text: the encoding is all inference needs to read text as training did.
func TestTextEncodingReproducesTheLoaders(t *testing.T) {
	t.Run("shakespeare", func(t *testing.T) {
		c, err := LoadShakespeare(filepath.Join("testdata", "plays.txt"), ShakespeareOptions{SeqLen: 10})
		if err != nil {
			t.Fatal(err)
		}
		if c.Train.Text == nil || c.Test.Text == nil || c.Train.Text.Tokenizer != TokenizerChars {
			t.Fatalf("text encodings %+v / %+v", c.Train.Text, c.Test.Text)
		}
		enc, err := NewTextEncoder(*c.Train.Text)
		if err != nil {
			t.Fatal(err)
		}
		if enc.VocabSize() != c.Train.VocabSize {
			t.Fatalf("encoder vocab %d, dataset %d", enc.VocabSize(), c.Train.VocabSize)
		}
		text := "First Citizen: speak, speak! Ω"
		if got, want := enc.Encode(nil, text), c.Tokenizer.Encode(nil, text); !slices.Equal(got, want) {
			t.Fatalf("encoded %v, the corpus tokenizer %v", got, want)
		}
	})
	t.Run("spam", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("testdata", "mails.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ReadSpamAssassin(strings.NewReader(string(raw)), "m", SpamOptions{MaxLen: 6, Vocab: WordVocabOptions{MinCount: 1}}, rand.New(rand.NewPCG(1, 0)))
		if err != nil {
			t.Fatal(err)
		}
		e := c.Train.Text
		if e == nil || e.Tokenizer != TokenizerWords || e.MaxLen != 6 || !e.StripEmailHeaders || !e.StripHTML {
			t.Fatalf("text encoding %+v", e)
		}
		enc, err := NewTextEncoder(*e)
		if err != nil {
			t.Fatal(err)
		}
		mails, err := readMails(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		text := map[string]string{}
		for _, m := range mails {
			text[m.ID] = *m.Text
		}
		for _, set := range []struct {
			d   *Dataset
			ids []string
		}{{c.Train, c.TrainIDs}, {c.Test, c.TestIDs}} {
			for k, id := range set.ids {
				got := enc.Encode(nil, text[id])
				if len(got) == 0 {
					got = []int32{UnknownID} // the loader's encoding of an e-mail without words
				}
				n := set.d.Lengths[k]
				if want := set.d.Tokens[k*set.d.SeqLen : k*set.d.SeqLen+int(n)]; !slices.Equal(got, want) {
					t.Errorf("%s: encoded %v, the loader %v", id, got, want)
				}
			}
		}
	})
}

func TestNewTextEncoderRefusesBadVocabularies(t *testing.T) {
	for _, tc := range []struct {
		enc  TextEncoding
		want string
	}{
		{TextEncoding{Tokenizer: TokenizerChars, Vocab: []string{"ab"}}, "not one character"},
		{TextEncoding{Tokenizer: TokenizerChars, Vocab: []string{"a", "a"}}, "twice"},
		{TextEncoding{Tokenizer: TokenizerWords, Vocab: []string{"x", "x"}}, "twice"},
		{TextEncoding{Tokenizer: "bpe"}, `tokenizer "bpe" unknown`},
		{TextEncoding{Tokenizer: TokenizerWords, MaxLen: -1}, "negative"},
	} {
		if _, err := NewTextEncoder(tc.enc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.enc, err, tc.want)
		}
	}
	enc, err := NewTextEncoder(TextEncoding{Tokenizer: TokenizerChars, Vocab: []string{"a", "b"}, MaxLen: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := enc.Encode(nil, "abzab"); !slices.Equal(got, []int32{2, 3, UnknownID}) {
		t.Fatalf("MaxLen 3: %v", got)
	}
}

// The image loaders record their scaling of pixels; the scalers compose theirs with it, so
// that applying a dataset's Normalization to the raw values gives its features.
func TestNormalizationFollowsThePipeline(t *testing.T) {
	dir := t.TempDir()
	writeIDXSet(t, dir, func(b string) string { return b }, false, []byte{1, 2, 3, 4})
	train, _, err := LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := train.Normalization; n == nil || !slices.Equal(n.Mean, []float64{0}) || !slices.Equal(n.Std, []float64{255}) {
		t.Fatalf("MNIST normalisation %+v, want pixels / 255", n)
	}
	raw := make([]float64, len(train.X))
	for i := range raw {
		raw[i] = float64(byte(i * 37)) // writeIDXSet's pixels
	}
	check := func(name string, d *Dataset) {
		t.Helper()
		if err := d.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := d.Normalization
		for i, r := range raw {
			j := i % d.Dim
			want := (r - n.Mean[min(j, len(n.Mean)-1)]) / n.Std[min(j, len(n.Std)-1)]
			if math.Abs(d.X[i]-want) > 1e-12 {
				t.Fatalf("%s: X[%d] = %v, its normalisation of raw %v gives %v", name, i, d.X[i], r, want)
			}
		}
	}
	check("loaded", train)
	st, err := FitStandardizer(train)
	if err != nil {
		t.Fatal(err)
	}
	std, err := st.Apply(train)
	if err != nil {
		t.Fatal(err)
	}
	check("standardised", std)
	mm, err := FitMinMax(std)
	if err != nil {
		t.Fatal(err)
	}
	scaled, err := mm.Apply(std)
	if err != nil {
		t.Fatal(err)
	}
	check("standardised, then min-max scaled", scaled)
	if train.Normalization.Std[0] != 255 {
		t.Fatal("a scaler changed its input's normalisation")
	}
	sub := train.Subset([]int{1})
	sub.Normalization.Std[0] = 1
	if train.Normalization.Std[0] != 255 {
		t.Fatal("Subset shares the normalisation with its source")
	}
}
