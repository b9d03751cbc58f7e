package sim_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// playText writes a play in tiny Shakespeare's format: roles taking turns, each speaking
// lines of its own small repertoire, so that a language model can learn who says what.
func playText(roles, speeches int) string {
	lines := []string{
		"the cat sat on the mat", "a dog ran to the park", "we sing of kings and crowns",
		"my lord the night is cold", "good morrow to you sir", "the sea is calm tonight",
	}
	var b strings.Builder
	for s := range speeches {
		r := s % roles
		fmt.Fprintf(&b, "ROLE %c:\n%s\n%s\n\n", 'A'+r, lines[(r+s/roles)%len(lines)], lines[(2*r+s)%len(lines)])
	}
	return b.String()
}

// A causal Transformer language model trains in a federation with one client per
// speaking role, with DP-SGD on every client and secure aggregation (issue 14): the next
// token is predicted at every position, the model file carries the character tokenizer,
// and next-character accuracy rises well above its start.
func TestCausalLanguageModelFederationByRole(t *testing.T) {
	corpus, err := data.ReadShakespeare(strings.NewReader(playText(6, 240)), "play", data.ShakespeareOptions{SeqLen: 24})
	if err != nil {
		t.Fatal(err)
	}
	c := withDPAndSecAgg(small())
	c.Partition, c.Clients, c.ClientsPerRound, c.Rounds = "natural", 0, 4, 6
	c.Model = model.Spec{Type: model.TypeTransformer, Embed: 24, Layers: 1, Heads: 2, FF: 48,
		Norm: model.NormPre, Positional: model.PosSinusoidal}
	c.Training = sim.TrainingConfig{Epochs: 2, BatchSize: 8, Optimizer: "adam", LR: 0.01}
	c.DP.NoiseMultiplier = 0.6
	c.ResultsDir = t.TempDir()
	no := false
	c.Plots = &no
	rep, err := sim.Run(t.Context(), c, sim.Options{Train: corpus.Train, Test: corpus.Test})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Clients != 6 || !s.Privacy.DPSGD || s.Privacy.Epsilon <= 0 {
		t.Fatalf("%d clients, privacy %+v: want one client per role (6) and DP-SGD", s.Clients, s.Privacy)
	}
	if s.InitialAccuracy == nil || s.FinalAccuracy == nil || *s.FinalAccuracy < *s.InitialAccuracy+0.25 {
		t.Fatalf("next-character accuracy %v → %v, want a rise of at least 0.25", deref(s.InitialAccuracy), deref(s.FinalAccuracy))
	}
	m, err := model.Load(filepath.Join(c.ResultsDir, "model.confide"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec.Task != model.TaskNextToken || !m.Spec.Causal || m.Spec.Output != corpus.Train.VocabSize {
		t.Fatalf("spec %+v: want a causal next-token model over the %d-token vocabulary", m.Spec, corpus.Train.VocabSize)
	}
	if tk := m.Meta.Tokenizer; tk == nil || tk.Type != model.TokenizerChar || len(tk.Vocab) != corpus.Train.VocabSize-2 {
		t.Fatalf("tokenizer %+v: want the corpus' character tokenizer", tk)
	}
	t.Logf("next-character accuracy %.3f → %.3f, ε %.3g", *s.InitialAccuracy, *s.FinalAccuracy, s.Privacy.Epsilon)
}
