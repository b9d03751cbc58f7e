package textgen

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"greedy", Options{Tokens: 1}, true},
		{"sampled_top_k", Options{Tokens: 5, Temperature: 0.8, TopK: 10}, true},
		{"top_k_is_vocab", Options{Tokens: 5, Temperature: 1, TopK: 10}, true},
		{"no_tokens", Options{Tokens: 0}, false},
		{"negative_temperature", Options{Tokens: 1, Temperature: -0.1}, false},
		{"nan_temperature", Options{Tokens: 1, Temperature: math.NaN()}, false},
		{"inf_temperature", Options{Tokens: 1, Temperature: math.Inf(1)}, false},
		{"negative_top_k", Options{Tokens: 1, TopK: -1}, false},
		{"top_k_above_vocab", Options{Tokens: 1, TopK: 11}, false},
		{"all_excluded", Options{Tokens: 1, Exclude: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9}}, false},
		{"all_but_one_excluded", Options{Tokens: 1, Exclude: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(10); (err == nil) != tc.ok {
				t.Fatalf("Validate(10) = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestSampleGreedy(t *testing.T) {
	logits := []float64{0.5, 3, -1, 3, 2.9}
	for _, tc := range []struct {
		o    Options
		want int32
	}{
		{Options{Temperature: 0}, 1},                               // the first of the tied maxima
		{Options{Temperature: 5, TopK: 1}, 1},                      // top-1 at any temperature
		{Options{Temperature: 0, Exclude: []int32{1}}, 3},          // the best is excluded
		{Options{Temperature: 0, Exclude: []int32{1, 3}}, 4},       // and the second
		{Options{Temperature: 2, TopK: 1, Exclude: []int32{1}}, 3}, // top-1 of what is left
	} {
		t.Run(fmt.Sprintf("T=%v/k=%d/exclude=%v", tc.o.Temperature, tc.o.TopK, tc.o.Exclude), func(t *testing.T) {
			s := NewSampler(tc.o, len(logits), rand.New(rand.NewPCG(1, 1)))
			for range 20 {
				if got := s.Sample(logits); got != tc.want {
					t.Fatalf("Sample = %d, want %d", got, tc.want)
				}
			}
		})
	}
}

// TestSampleDistribution draws many tokens and checks each token's frequency against
// softmax(z/T) over the top k (zero outside), within 5 binomial standard deviations.
func TestSampleDistribution(t *testing.T) {
	logits := []float64{1, 0.2, 2, -0.5, 1.5, 0}
	const draws = 40000
	for _, tc := range []struct {
		temperature float64
		topK        int
		exclude     []int32
	}{
		{1, 0, nil},
		{0.5, 0, nil},
		{2, 3, nil},
		{1, 2, []int32{2}},
	} {
		t.Run(fmt.Sprintf("T=%v/k=%d/exclude=%v", tc.temperature, tc.topK, tc.exclude), func(t *testing.T) {
			// The reference: rank the allowed ids by logit, keep k, softmax at T.
			var ids []int
			for id := range logits {
				if !slices.Contains(tc.exclude, int32(id)) {
					ids = append(ids, id)
				}
			}
			slices.SortFunc(ids, func(a, b int) int { return -cmpFloat(logits[a], logits[b]) })
			if tc.topK > 0 {
				ids = ids[:tc.topK]
			}
			want := make([]float64, len(logits))
			sum := 0.0
			for _, id := range ids {
				want[id] = math.Exp(logits[id] / tc.temperature)
				sum += want[id]
			}
			for id := range want {
				want[id] /= sum
			}
			s := NewSampler(Options{Temperature: tc.temperature, TopK: tc.topK, Exclude: tc.exclude}, len(logits), rand.New(rand.NewPCG(3, 4)))
			counts := make([]int, len(logits))
			for range draws {
				counts[s.Sample(logits)]++
			}
			for id, c := range counts {
				p := want[id]
				if p == 0 {
					if c != 0 {
						t.Fatalf("token %d (outside the top k or excluded) drawn %d times", id, c)
					}
					continue
				}
				sd := math.Sqrt(draws * p * (1 - p))
				if d := math.Abs(float64(c) - draws*p); d > 5*sd {
					t.Fatalf("token %d drawn %d times, want %.0f ± %.0f", id, c, draws*p, 5*sd)
				}
			}
		})
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func tinyLM(t *testing.T, maxLen int) *model.Model {
	t.Helper()
	m, err := model.New(model.Spec{Type: model.TypeTransformer, Vocab: 9, Embed: 8, Layers: 2, Heads: 2, FF: 16,
		MaxLen: maxLen, Task: model.TaskNextToken, Norm: model.NormPre}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range m.Params {
		m.Params[i] += 0.3 * rng.NormFloat64() // a less uniform next-token distribution
	}
	return m
}

// TestGenerateGreedyMatchesForward checks greedy generation, across window refills, against
// a reference that runs a full forward pass over the same context for every token: the
// window's last three quarters after each refill, as the package documents.
func TestGenerateGreedyMatchesForward(t *testing.T) {
	for _, tc := range []struct {
		maxLen, prompt, tokens int
	}{
		{8, 3, 30},  // several refills
		{8, 8, 5},   // a prompt that fills the window
		{8, 13, 5},  // a prompt longer than the window
		{16, 1, 10}, // no refill
		{1, 2, 4},   // a window of one token
	} {
		t.Run(fmt.Sprintf("max_len=%d/prompt=%d/tokens=%d", tc.maxLen, tc.prompt, tc.tokens), func(t *testing.T) {
			m := tinyLM(t, tc.maxLen)
			rng := rand.New(rand.NewPCG(5, 5))
			prompt := make([]int32, tc.prompt)
			for i := range prompt {
				prompt[i] = int32(2 + rng.IntN(7))
			}
			o := Options{Tokens: tc.tokens, Exclude: []int32{0, 1}}
			dec, err := m.Clone().NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			var emitted []int32
			res, err := Generate(context.Background(), dec, prompt, o, nil, func(tok int32) error {
				emitted = append(emitted, tok)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(emitted, res.Tokens) || len(res.Tokens) != tc.tokens {
				t.Fatalf("generated %v, emitted %v, want %d tokens", res.Tokens, emitted, tc.tokens)
			}
			// The reference.
			window, keep := tc.maxLen, max(1, tc.maxLen-tc.maxLen/4)
			ctx := slices.Clone(prompt[max(0, len(prompt)-window):])
			s := NewSampler(o, 9, nil)
			refills := 0
			for i := range tc.tokens {
				out, err := m.Forward(&model.Input{Tokens: ctx, B: 1, T: len(ctx)})
				if err != nil {
					t.Fatal(err)
				}
				want := s.Sample(out.Row(len(ctx) - 1))
				if res.Tokens[i] != want {
					t.Fatalf("token %d = %d, the forward pass over its context gives %d", i, res.Tokens[i], want)
				}
				if len(ctx) == window {
					ctx = slices.Clone(ctx[len(ctx)-keep+1:])
					if i < tc.tokens-1 {
						refills++
					}
				}
				ctx = append(ctx, want)
			}
			if res.Refills != refills {
				t.Fatalf("Refills = %d, want %d", res.Refills, refills)
			}
			if want := min(tc.prompt, tc.maxLen); res.PromptUsed != want {
				t.Fatalf("PromptUsed = %d, want %d", res.PromptUsed, want)
			}
		})
	}
}

func TestGenerateSeeded(t *testing.T) {
	m := tinyLM(t, 16)
	run := func(seed uint64) []int32 {
		dec, err := m.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		res, err := Generate(context.Background(), dec, []int32{2, 3}, Options{Tokens: 40, Temperature: 1.5, TopK: 5, Exclude: []int32{0, 1}},
			rand.New(rand.NewPCG(seed, 0)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range res.Tokens {
			if tok < 2 {
				t.Fatalf("generated the excluded id %d", tok)
			}
		}
		return res.Tokens
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Fatalf("the same seed gave %v and %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 1 and 2 gave the same 40 tokens %v", a)
	}
}

func TestGenerateRejects(t *testing.T) {
	m := tinyLM(t, 8)
	for _, tc := range []struct {
		name   string
		prompt []int32
		o      Options
	}{
		{"empty_prompt", nil, Options{Tokens: 3}},
		{"prompt_outside_vocab", []int32{2, 9}, Options{Tokens: 3}},
		{"no_tokens", []int32{2}, Options{Tokens: 0}},
		{"top_k_above_vocab", []int32{2}, Options{Tokens: 1, TopK: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec, err := m.NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Generate(context.Background(), dec, tc.prompt, tc.o, nil, nil); err == nil {
				t.Fatal("Generate succeeded")
			}
		})
	}
}
