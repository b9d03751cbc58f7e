// Package textgen generates text from a causal language model: it feeds a prompt to a
// model.Decoder, whose KV cache spares recomputing the prefix for every new token, and
// samples one token at a time from the next-token distribution, tempered and cut to the k
// most likely tokens (Fan et al. 2018, top-k sampling).
//
// Invariants:
//   - Randomness is injected (*rand.Rand): the same seed, model and options give the same
//     text. Temperature 0 is greedy and uses no randomness.
//   - The context is the model's window: the decoder holds at most max_len positions.
//     When it is full, the last three quarters of the window are fed again from position 0
//     (a refill: absolute positions, learned or sinusoidal, must start at 0), so a token is
//     predicted from between 3/4·max_len and max_len earlier tokens, and a refill costs one
//     batched pass every max_len/4 tokens instead of one pass over the window per token.
//   - Excluded ids (padding, the unknown token) are never generated.
//
// Main types: Options (with Validate), Generate, Sample.
package textgen
