package textgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/confide-fl/confide/model"
)

// Result is what Generate made.
type Result struct {
	// Tokens are the generated token ids, the prompt not included.
	Tokens []int32
	// Refills counts the times the full window was fed again from position 0.
	Refills int
	// PromptUsed is the number of prompt tokens the model read: the last max_len of a
	// longer prompt.
	PromptUsed int
}

// Generate feeds prompt to dec (which it resets first) and generates o.Tokens tokens,
// sampling each from the model's next-token distribution with rng (nil for greedy
// options). emit, when not nil, is called with each token as it is generated; an error
// from it stops generation and is returned. A prompt longer than the model's window is cut
// to its last max_len tokens.
func Generate(ctx context.Context, dec *model.Decoder, prompt []int32, o Options, rng *rand.Rand, emit func(int32) error) (Result, error) {
	var res Result
	if len(prompt) == 0 {
		return res, errors.New("textgen: empty prompt: give at least one token to continue")
	}
	window := dec.Cap()
	if window < 1 {
		return res, fmt.Errorf("textgen: the model's window (max_len) is %d", window)
	}
	if err := o.Validate(dec.Vocab()); err != nil {
		return res, fmt.Errorf("textgen: %w", err)
	}
	// recent ends with the tokens the next refill feeds; it is cut back to one window
	// whenever it reaches two.
	recent := append(make([]int32, 0, 2*window), prompt[max(0, len(prompt)-window):]...)
	res.PromptUsed = len(recent)
	dec.Reset()
	logits, err := dec.Append(recent)
	if err != nil {
		return res, err
	}
	sampler := NewSampler(o, dec.Vocab(), rng)
	last := logits.Row(logits.Rows - 1)
	keep := max(1, window-window/4)
	tok := make([]int32, 1)
	for len(res.Tokens) < o.Tokens {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		tok[0] = sampler.Sample(last)
		res.Tokens = append(res.Tokens, tok[0])
		recent = append(recent, tok[0])
		if emit != nil {
			if err := emit(tok[0]); err != nil {
				return res, err
			}
		}
		if len(res.Tokens) == o.Tokens {
			break
		}
		feed := tok
		if dec.Len() == window {
			// Slide: the last keep tokens (the new one included) from position 0.
			recent = append(recent[:0], recent[len(recent)-keep:]...)
			dec.Reset()
			feed = recent
			res.Refills++
		}
		if logits, err = dec.Append(feed); err != nil {
			return res, err
		}
		last = logits.Row(logits.Rows - 1)
		if len(recent) >= 2*window {
			recent = append(recent[:0], recent[len(recent)-window:]...)
		}
	}
	return res, nil
}
