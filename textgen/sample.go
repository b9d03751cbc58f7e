package textgen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Options configure generation.
type Options struct {
	// Tokens is the number of tokens to generate (≥ 1).
	Tokens int
	// Temperature divides the logits before the softmax: below 1 sharpens the
	// distribution, above 1 flattens it; 0 always picks the most likely token (greedy).
	Temperature float64
	// TopK, when > 0, samples among the TopK most likely tokens only; 0 samples among all.
	TopK int
	// Exclude lists token ids never generated (padding, the unknown token).
	Exclude []int32
}

// Validate checks the options for a model of vocab token ids, naming the field and the fix.
func (o Options) Validate(vocab int) error {
	var errs []error
	if o.Tokens < 1 {
		errs = append(errs, fmt.Errorf("tokens = %d: generate at least 1", o.Tokens))
	}
	if math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0) || o.Temperature < 0 {
		errs = append(errs, fmt.Errorf("temperature = %v: must be ≥ 0 and finite (0: greedy)", o.Temperature))
	}
	if o.TopK < 0 || o.TopK > vocab {
		errs = append(errs, fmt.Errorf("top_k = %d: must be in [0, %d], the vocabulary size (0: all tokens)", o.TopK, vocab))
	}
	allowed := vocab
	seen := make(map[int32]bool, len(o.Exclude))
	for _, id := range o.Exclude {
		if id >= 0 && int(id) < vocab && !seen[id] {
			seen[id] = true
			allowed--
		}
	}
	if allowed < 1 {
		errs = append(errs, errors.New("exclude: every token id is excluded, none is left to generate"))
	}
	return errors.Join(errs...)
}

// Sampler draws tokens from logits as Options say. It keeps scratch buffers, so it is not
// safe for concurrent use.
type Sampler struct {
	o       Options
	rng     *rand.Rand
	exclude []bool
	z       []float64
	order   []int32
}

// NewSampler returns a sampler for logits of vocab entries; o must be valid for vocab
// (Options.Validate). rng may be nil for greedy sampling (temperature 0 or top-k 1).
func NewSampler(o Options, vocab int, rng *rand.Rand) *Sampler {
	s := &Sampler{o: o, rng: rng, exclude: make([]bool, vocab), z: make([]float64, vocab), order: make([]int32, vocab)}
	for _, id := range o.Exclude {
		if id >= 0 && int(id) < vocab {
			s.exclude[id] = true
		}
	}
	return s
}

// Sample returns a token id drawn from softmax(logits / Temperature) restricted to the TopK
// largest logits and to ids not excluded; ties in rank go to the lower id. logits is not
// modified.
func (s *Sampler) Sample(logits []float64) int32 {
	if len(logits) != len(s.z) {
		panic(fmt.Sprintf("textgen: %d logits for a sampler of %d tokens", len(logits), len(s.z)))
	}
	order := s.order[:0]
	for id := range logits {
		if !s.exclude[id] {
			order = append(order, int32(id))
		}
	}
	// Rank by logit, then id: the first is the greedy choice.
	slices.SortStableFunc(order, func(a, b int32) int {
		switch la, lb := logits[a], logits[b]; {
		case la > lb:
			return -1
		case la < lb:
			return 1
		}
		return 0
	})
	if s.o.TopK > 0 && len(order) > s.o.TopK {
		order = order[:s.o.TopK]
	}
	if s.o.Temperature == 0 || len(order) == 1 {
		return order[0]
	}
	top := logits[order[0]]
	sum := 0.0
	for k, id := range order {
		s.z[k] = math.Exp((logits[id] - top) / s.o.Temperature)
		sum += s.z[k]
	}
	u := s.rng.Float64() * sum
	for k, id := range order {
		u -= s.z[k]
		if u < 0 {
			return id
		}
	}
	return order[len(order)-1] // u within rounding of sum
}
