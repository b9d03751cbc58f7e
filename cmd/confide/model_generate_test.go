package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/textgen"
	"github.com/confide-fl/confide/train"
)

// tinyShakespeareLM saves a small causal Transformer with the tokenizer of the test plays,
// as 'confide train --dataset shakespeare --model transformer --out' does (untrained).
func tinyShakespeareLM(t *testing.T, dir string) (string, *model.Model, *data.ShakespeareCorpus) {
	t.Helper()
	c, err := data.LoadShakespeare(filepath.Join("..", "..", "data", "testdata", "plays.txt"), data.ShakespeareOptions{SeqLen: 12})
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeTransformer, Vocab: c.Train.VocabSize, Embed: 8, Layers: 1, Heads: 2, FF: 16, MaxLen: 12,
		Task: model.TaskNextToken, Norm: model.NormPre}
	path, m := saveModel(t, dir, "lm.confide", spec, train.DatasetMeta(c.Train, spec))
	return path, m, c
}

func TestModelGenerate(t *testing.T) {
	path, m, c := tinyShakespeareLM(t, t.TempDir())
	const prompt = "Before we proceed any further, hear me speak."
	args := []string{"model", "generate", path, "--prompt", prompt, "--tokens", "30", "--temperature", "1.2", "--top-k", "5", "--seed", "7"}
	res := runJSON(t, args...)
	text := res["text"].(string)
	if n := len([]rune(text)); n != 30 || res["tokens"] != 30.0 || res["seed"] != 7.0 || res["window"] != 12.0 || res["prompt_tokens_used"] != 12.0 {
		t.Fatalf("generate -o json: %d characters; %v", n, res)
	}
	for _, r := range text {
		if c.Tokenizer.ID(r) == data.UnknownID {
			t.Fatalf("generated %q, outside the vocabulary", r)
		}
	}
	if again := runJSON(t, args...); again["text"] != text {
		t.Fatalf("seed 7 gave %q, then %q", text, again["text"])
	}
	// Text output: the prompt, then the same continuation.
	if out := mustRun(t, args...); out != prompt+text+"\n" {
		t.Fatalf("text output %q, want %q", out, prompt+text+"\n")
	}
	// Greedy: what textgen makes from the model itself.
	greedy := runJSON(t, "model", "generate", path, "--prompt", prompt, "--tokens", "20", "--temperature", "0")
	dec, err := m.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	want, err := textgen.Generate(context.Background(), dec, c.Tokenizer.Encode(nil, prompt),
		textgen.Options{Tokens: 20, Exclude: []int32{data.PadID, data.UnknownID}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if greedy["text"] != c.Tokenizer.Decode(want.Tokens) {
		t.Fatalf("greedy text %q, textgen gives %q", greedy["text"], c.Tokenizer.Decode(want.Tokens))
	}
}

// Missing or corrupt files, models that are not causal language models, bad flag values and
// prompts the tokenizer cannot encode are usage errors (exit code 2) naming the problem.
func TestModelGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	lm, _, c := tinyShakespeareLM(t, dir)
	corrupt := corruptCopy(t, lm, dir)
	mlp, _ := saveModel(t, dir, "mlp.confide", model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{3}, Output: 2}, model.Meta{})
	lstmSpec := model.Spec{Type: model.TypeLSTM, Vocab: c.Train.VocabSize, Embed: 4, Hidden: []int{6}, Task: model.TaskNextToken}
	lstm, _ := saveModel(t, dir, "lstm.confide", lstmSpec, train.DatasetMeta(c.Train, lstmSpec))
	lmSpec := model.Spec{Type: model.TypeTransformer, Vocab: c.Train.VocabSize, Embed: 8, Layers: 1, Heads: 2, MaxLen: 12, Task: model.TaskNextToken}
	bare, _ := saveModel(t, dir, "bare.confide", lmSpec, model.Meta{})
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing", []string{filepath.Join(dir, "none.confide"), "--prompt", "Speak"}, []string{"does not exist"}},
		{"corrupt", []string{corrupt, "--prompt", "Speak"}, []string{"checksum mismatch", "damaged"}},
		{"mlp", []string{mlp, "--prompt", "Speak"}, []string{"not a causal language model", "mlp"}},
		{"lstm", []string{lstm, "--prompt", "Speak"}, []string{"not a causal language model", "lstm"}},
		{"no-tokenizer", []string{bare, "--prompt", "Speak"}, []string{"records no tokenizer"}},
		{"no-prompt", []string{lm}, []string{"--prompt is required"}},
		{"prompt-outside-vocab", []string{lm, "--prompt", "Spéak\nS"}, []string{"outside the model's vocabulary", `'é' (U+00E9)`, `'\n' (U+000A)`}},
		{"tokens", []string{lm, "--prompt", "Speak", "--tokens", "0"}, []string{"--tokens 0"}},
		{"temperature", []string{lm, "--prompt", "Speak", "--temperature", "-1"}, []string{"--temperature -1"}},
		{"temperature-nan", []string{lm, "--prompt", "Speak", "--temperature", "NaN"}, []string{"--temperature NaN"}},
		{"top-k", []string{lm, "--prompt", "Speak", "--top-k", "1000"}, []string{"--top-k 1000"}},
		{"tokens-syntax", []string{lm, "--prompt", "Speak", "--tokens", "many"}, []string{`invalid argument "many"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"model", "generate"}, tc.args...)...)
			wantUsageError(t, err, tc.want...)
		})
	}
}

// 'confide train --dataset shakespeare --model transformer' trains a causal language model
// (next token at every position, sinusoidal positions, a window of 128 characters) whose
// file 'model generate' reads.
func TestTrainShakespeareTransformerThenGenerate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "lm.confide")
	res := runJSON(t, "train", "--dataset", "shakespeare", "--data-path", filepath.Join("..", "..", "data", "testdata", "plays.txt"),
		"--model", "transformer", "--epochs", "1", "--out", out)
	spec := res["model"].(map[string]any)
	if spec["task"] != model.TaskNextToken || spec["causal"] != true || spec["positional"] != model.PosSinusoidal || spec["max_len"] != 128.0 {
		t.Fatalf("trained spec %v, want a causal next_token transformer with sinusoidal positions and max_len 128", spec)
	}
	gen := runJSON(t, "model", "generate", out, "--prompt", "Speak", "--tokens", "10", "--seed", "1")
	if n := len([]rune(gen["text"].(string))); n != 10 || gen["window"] != 128.0 {
		t.Fatalf("generate: %d characters, %v", n, gen)
	}
}
