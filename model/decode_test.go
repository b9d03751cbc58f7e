package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// decodeSpecs are small causal language models of every layout the decoder walks.
var decodeSpecs = map[string]Spec{
	"pre_learned_relu":      {Type: TypeTransformer, Vocab: 11, Embed: 8, Layers: 2, Heads: 2, FF: 12, MaxLen: 20, Task: TaskNextToken, Norm: NormPre},
	"post_learned_relu":     {Type: TypeTransformer, Vocab: 11, Embed: 8, Layers: 2, Heads: 4, FF: 12, MaxLen: 20, Task: TaskNextToken, Norm: NormPost},
	"pre_sinusoidal_gelu":   {Type: TypeTransformer, Vocab: 9, Embed: 6, Layers: 1, Heads: 3, FF: 10, MaxLen: 20, Task: TaskNextToken, Norm: NormPre, Positional: PosSinusoidal, Activation: ActGELU},
	"post_one_head_dropout": {Type: TypeTransformer, Vocab: 9, Embed: 4, Layers: 3, Heads: 1, FF: 8, MaxLen: 20, Task: TaskNextToken, Dropout: 0.3},
}

// decodeChunks are ways of feeding a 20-token sequence to a decoder: the piece sizes.
var decodeChunks = map[string][]int{
	"one_at_a_time": nil, // 20 pieces of 1
	"whole":         {20},
	"prompt_then_1": {7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
	"uneven":        {3, 5, 1, 2, 9},
}

func randomTokens(rng *rand.Rand, n, vocab int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(rng.IntN(vocab))
	}
	return toks
}

// newDecodeModel builds spec with random weights; quantised, it is int8 with dynamic
// activation scales. Post-norm LayerNorms get random gains and biases, so that every
// parameter matters.
func newDecodeModel(t testing.TB, spec Spec, quantised bool) *Model {
	t.Helper()
	m, err := New(spec, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range m.Params {
		m.Params[i] += 0.1 * rng.NormFloat64()
	}
	if quantised {
		if err := m.Quantize(QuantizeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestDecoderMatchesForward feeds a sequence to the decoder in pieces and checks every
// position's logits against a full forward pass over the prefix that ends there, float64
// and int8 (whose activations are quantised per row, so per position too).
func TestDecoderMatchesForward(t *testing.T) {
	const tol = 1e-9
	for name, spec := range decodeSpecs {
		for chunking, sizes := range decodeChunks {
			for _, quantised := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/int8=%v", name, chunking, quantised), func(t *testing.T) {
					m := newDecodeModel(t, spec, quantised)
					L := spec.MaxLen
					toks := randomTokens(rand.New(rand.NewPCG(7, 8)), L, spec.Vocab)
					if sizes == nil {
						sizes = make([]int, L)
						for i := range sizes {
							sizes[i] = 1
						}
					}
					// The reference: the logits of every prefix, each from its own forward pass
					// (causal attention makes position t's logits those of the full sequence,
					// checked here as well).
					want := make([][]float64, L)
					full, err := m.Clone().Forward(&Input{Tokens: toks, B: 1, T: L})
					if err != nil {
						t.Fatal(err)
					}
					for p := 1; p <= L; p++ {
						out, err := m.Forward(&Input{Tokens: toks[:p], B: 1, T: p})
						if err != nil {
							t.Fatal(err)
						}
						want[p-1] = append([]float64(nil), out.Row(p-1)...)
						if d := maxAbsDiff(want[p-1], full.Row(p-1)); d > tol {
							t.Fatalf("forward over the prefix of %d differs from the full sequence's by %g", p, d)
						}
					}
					dec, err := m.NewDecoder()
					if err != nil {
						t.Fatal(err)
					}
					pos := 0
					for _, n := range sizes {
						out, err := dec.Append(toks[pos : pos+n])
						if err != nil {
							t.Fatal(err)
						}
						if out.Rows != n || out.Cols != spec.Vocab {
							t.Fatalf("Append of %d tokens returned %d×%d logits, want %d×%d", n, out.Rows, out.Cols, n, spec.Vocab)
						}
						for r := range n {
							if d := maxAbsDiff(out.Row(r), want[pos+r]); d > tol {
								t.Fatalf("position %d: cached logits differ from the forward pass by %g (> %g)", pos+r, d, tol)
							}
						}
						pos += n
					}
					if pos != L || dec.Len() != L {
						t.Fatalf("fed %d tokens, decoder holds %d, want %d", pos, dec.Len(), L)
					}
				})
			}
		}
	}
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func TestDecoderResetStartsAgain(t *testing.T) {
	spec := decodeSpecs["pre_learned_relu"]
	m := newDecodeModel(t, spec, false)
	toks := randomTokens(rand.New(rand.NewPCG(9, 9)), 6, spec.Vocab)
	dec, err := m.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	first, err := dec.Append(toks)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float64(nil), first.Row(5)...)
	if _, err := dec.Append(randomTokens(rand.New(rand.NewPCG(1, 1)), 10, spec.Vocab)); err != nil {
		t.Fatal(err)
	}
	dec.Reset()
	if dec.Len() != 0 {
		t.Fatalf("Len after Reset = %d, want 0", dec.Len())
	}
	again, err := dec.Append(toks)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(again.Row(5), want); d != 0 {
		t.Fatalf("after Reset the same tokens give logits differing by %g", d)
	}
}

func TestDecoderAppendRejects(t *testing.T) {
	spec := decodeSpecs["pre_learned_relu"] // vocab 11, max_len 20
	for _, tc := range []struct {
		name    string
		cached  int
		tokens  []int32
		wantErr error
	}{
		{"empty", 0, nil, nil},
		{"token_above_vocab", 0, []int32{1, 11}, nil},
		{"negative_token", 0, []int32{-1}, nil},
		{"beyond_max_len_at_once", 0, make([]int32, 21), ErrContextFull},
		{"beyond_max_len_after_19", 19, []int32{1, 2}, ErrContextFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newDecodeModel(t, spec, false)
			dec, err := m.NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			if tc.cached > 0 {
				if _, err := dec.Append(make([]int32, tc.cached)); err != nil {
					t.Fatal(err)
				}
			}
			_, err = dec.Append(tc.tokens)
			if err == nil {
				t.Fatal("Append succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if dec.Len() != tc.cached {
				t.Fatalf("a failed Append changed Len from %d to %d", tc.cached, dec.Len())
			}
		})
	}
}

func TestNewDecoderRejectsOtherModels(t *testing.T) {
	for name, spec := range map[string]Spec{
		"mlp":                    {Type: TypeMLP, Input: 4, Hidden: []int{3}, Output: 2},
		"lstm_next_token":        seqSpecs["lstm_next_token"],
		"transformer_classifier": seqSpecs["transformer_post_mean"],
		"transformer_causal_classifier": {Type: TypeTransformer, Vocab: 7, Embed: 4, Layers: 1, Heads: 2, MaxLen: 6,
			Output: 3, Causal: true},
	} {
		t.Run(name, func(t *testing.T) {
			m, err := New(spec, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.NewDecoder(); !errors.Is(err, ErrNotLanguageModel) {
				t.Fatalf("NewDecoder error %v, want ErrNotLanguageModel", err)
			}
		})
	}
}

// benchDecodeSpec is a causal character model of the size the README's Shakespeare model
// has: 4 blocks, d 128, 4 heads, ff 512, 256 positions.
var benchDecodeSpec = Spec{Type: TypeTransformer, Vocab: 67, Embed: 128, Layers: 4, Heads: 4, FF: 512, MaxLen: 256,
	Task: TaskNextToken, Norm: NormPre}

// BenchmarkDecode generates 256 tokens after a 1-token prompt, greedily: "kv_cache" appends
// each token to a Decoder, "recompute" runs a forward pass over the whole prefix for each.
// tokens/s is the rate of new tokens.
func BenchmarkDecode(b *testing.B) {
	m := newDecodeModel(b, benchDecodeSpec, false)
	L := benchDecodeSpec.MaxLen
	argmax := func(row []float64) int32 {
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		return int32(best)
	}
	b.Run("kv_cache", func(b *testing.B) {
		dec, err := m.NewDecoder()
		if err != nil {
			b.Fatal(err)
		}
		tok := []int32{2}
		for b.Loop() {
			dec.Reset()
			tok[0] = 2
			for range L {
				out, err := dec.Append(tok)
				if err != nil {
					b.Fatal(err)
				}
				tok[0] = argmax(out.Row(0))
			}
		}
		b.ReportMetric(float64(L*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("recompute", func(b *testing.B) {
		toks := make([]int32, L)
		for b.Loop() {
			toks[0] = 2
			for p := 1; p <= L; p++ {
				out, err := m.Forward(&Input{Tokens: toks[:p], B: 1, T: p})
				if err != nil {
					b.Fatal(err)
				}
				if p < L {
					toks[p] = argmax(out.Row(p - 1))
				}
			}
		}
		b.ReportMetric(float64(L*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
