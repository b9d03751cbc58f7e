package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/textgen"
)

// generateResult is what 'confide model generate -o json' reports.
type generateResult struct {
	Model  string `json:"model"`
	Prompt string `json:"prompt"`
	// Text is the generated continuation, the prompt not included.
	Text        string  `json:"text"`
	Tokens      int     `json:"tokens"`
	Temperature float64 `json:"temperature"`
	TopK        int     `json:"top_k"`
	Seed        uint64  `json:"seed"`
	// Window is the model's context (max_len); PromptTokensUsed the prompt's tokens it read
	// (the last Window of a longer prompt); Refills the times generation, having filled the
	// window, fed its last three quarters again from position 0.
	Window           int     `json:"window"`
	PromptTokensUsed int     `json:"prompt_tokens_used"`
	Refills          int     `json:"refills"`
	Seconds          float64 `json:"seconds"`
	TokensPerSecond  float64 `json:"tokens_per_second"`
}

type generateFlags struct {
	prompt      string
	tokens      int
	temperature float64
	topK        int
	seed        uint64
}

func newModelGenerateCmd(g *globalOptions) *cobra.Command {
	f := &generateFlags{}
	cmd := &cobra.Command{
		Use:   "generate FILE --prompt TEXT",
		Short: "Generate text from a causal language model (a next-token Transformer) with a KV cache",
		Long: `Continue --prompt with --tokens characters sampled from a causal language model: a
Transformer trained to predict the next token at every position, such as

  confide train --dataset shakespeare --data-path tinyshakespeare.txt --model transformer --out lm.confide

or a federation's model of the same kind. The prompt is encoded with the tokenizer the model
file records; a character outside its vocabulary is a usage error that names it (the
Shakespeare models read speeches joined into one line each, so a newline is not a
character they know).

Every attention layer keeps the keys and values of the positions read so far (a KV cache),
so a new token costs one position's pass, not a pass over the whole prefix. The model reads
at most max_len tokens; when the window is full, its last three quarters are read again
from position 0 and generation goes on.

Each token is drawn from the softmax of the logits divided by --temperature, among the
--top-k most likely tokens (0: all); --temperature 0 takes the most likely one. The padding
and unknown tokens are never generated. --seed makes a run repeatable; without it a seed is
drawn at random and reported (-o json).

Text output writes the prompt and its continuation as they are generated; -o json prints one
object: the continuation, the settings, the seed, the tokens per second.`,
		Example: `  confide model generate lm.confide --prompt "ROMEO:" --tokens 200 --temperature 0.8 --top-k 10
  confide model generate lm.confide --prompt "ROMEO:" --temperature 0 -o json`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelGenerate(ctx, g, cmd, cmd.OutOrStdout(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.prompt, "prompt", "", "text to continue (required)")
	cmd.Flags().IntVar(&f.tokens, "tokens", 200, "tokens (characters) to generate")
	cmd.Flags().Float64Var(&f.temperature, "temperature", 0.8, "softmax temperature: below 1 sharper, above 1 more random; 0 takes the most likely token")
	cmd.Flags().IntVar(&f.topK, "top-k", 0, "sample among the k most likely tokens only (0: all)")
	cmd.Flags().Uint64Var(&f.seed, "seed", 0, "random seed of the sampling (default: drawn at random and reported)")
	return cmd
}

func runModelGenerate(ctx context.Context, g *globalOptions, cmd *cobra.Command, w io.Writer, path string, f *generateFlags) error {
	if f.prompt == "" {
		return usageErr("--prompt is required: the text to continue, e.g. --prompt \"ROMEO:\"")
	}
	if !utf8.ValidString(f.prompt) {
		return usageErr("--prompt is not valid UTF-8 text")
	}
	// The flags first, against any vocabulary; top-k against the model's below.
	o := textgen.Options{Tokens: f.tokens, Temperature: f.temperature, TopK: f.topK}
	if err := o.Validate(math.MaxInt32); err != nil {
		return usageErr("%s", generateFlagError(err))
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	dec, err := m.NewDecoder()
	if err != nil {
		if errors.Is(err, model.ErrNotLanguageModel) {
			return usageErr("model %s (%s) is not a causal language model: %v; generate reads Transformers trained to predict the next token, e.g. 'confide train --dataset shakespeare --model transformer --out lm.confide'", path, modelName(m.Spec), err)
		}
		return err
	}
	t := m.Meta.Tokenizer
	switch {
	case t == nil:
		return usageErr("model %s records no tokenizer (it was written before model files carried one): the prompt cannot be encoded; retrain it with this confide", path)
	case t.Type != model.TokenizerChar:
		return usageErr("model %s reads %s tokens: generate writes text with character models only", path, t.Type)
	}
	enc, err := data.NewTextEncoder(data.TextEncoding{Tokenizer: data.TokenizerChars, Vocab: t.Vocab})
	if err != nil {
		return usageErr("model %s: tokenizer: %v", path, err)
	}
	prompt := enc.Encode(nil, f.prompt)
	if bad := unknownChars(f.prompt, prompt); bad != "" {
		return usageErr("--prompt holds characters outside the model's vocabulary: %s; the model knows %d characters: %q", bad, len(t.Vocab), strings.Join(t.Vocab, ""))
	}
	// Never generate padding, the unknown token, or ids the tokenizer cannot write.
	o.Exclude = []int32{data.PadID, data.UnknownID}
	for id := 2 + len(t.Vocab); id < m.Spec.Vocab; id++ {
		o.Exclude = append(o.Exclude, int32(id))
	}
	if err := o.Validate(m.Spec.Vocab); err != nil {
		return usageErr("%s", generateFlagError(err))
	}
	seed := f.seed
	if !cmd.Flags().Changed("seed") {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return err
		}
		seed = binary.LittleEndian.Uint64(b[:])
	}
	rng := rand.New(rand.NewPCG(seed, 0x67656e))

	var text strings.Builder
	var out *bufio.Writer
	if g.output != "json" {
		out = bufio.NewWriter(w)
		out.WriteString(f.prompt)
		out.Flush()
	}
	var buf [utf8.UTFMax]byte
	emit := func(tok int32) error {
		r := []rune(t.Vocab[tok-2])[0]
		text.WriteRune(r)
		if out != nil {
			out.Write(buf[:utf8.EncodeRune(buf[:], r)])
			return out.Flush()
		}
		return nil
	}
	start := time.Now()
	res, err := textgen.Generate(ctx, dec, prompt, o, rng, emit)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if out != nil {
		out.WriteString("\n")
		return out.Flush()
	}
	return g.emit(w, generateResult{
		Model: path, Prompt: f.prompt, Text: text.String(), Tokens: len(res.Tokens), Temperature: f.temperature, TopK: f.topK, Seed: seed,
		Window: dec.Cap(), PromptTokensUsed: res.PromptUsed, Refills: res.Refills, Seconds: secs, TokensPerSecond: float64(len(res.Tokens)) / secs,
	}, nil)
}

// unknownChars lists, once each, the characters of prompt that its encoding ids mapped to
// the unknown token, as 'c' (U+XXXX); "" when there are none.
func unknownChars(prompt string, ids []int32) string {
	var list []string
	seen := map[rune]bool{}
	i := 0
	for _, r := range prompt {
		if ids[i] == data.UnknownID && !seen[r] {
			seen[r] = true
			list = append(list, fmt.Sprintf("%q (U+%04X)", r, r))
		}
		i++
	}
	return strings.Join(list, ", ")
}

// generateFlagError renames textgen's option fields to the flags that set them.
func generateFlagError(err error) string {
	return strings.NewReplacer("tokens =", "--tokens", "temperature =", "--temperature", "top_k =", "--top-k").Replace(err.Error())
}
