package main

import (
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/data"
)

// examples/spam-users.yaml is a valid sim config with record-level DP (budget ε = 8 at
// δ = 1e-5) by distributed noise under secure aggregation, and its dataset,
// examples/spam-bag.yaml, a valid jsonl spec of a bag of words (issue 19: the per-user spam
// federation).
func TestSpamUsersExample(t *testing.T) {
	c, err := loadSimConfig(filepath.Join("..", "..", "examples", "spam-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DP.NoiseMultiplier <= 0 || c.DP.BudgetEpsilon != 8 || c.DP.Delta != 1e-5 || !c.DP.Distributed || !c.SecureAggregation.Enabled || c.Clients != 100 {
		t.Fatalf("config %+v: want 100 clients, distributed DP-SGD with budget ε = 8 at δ = 1e-5 and secure aggregation", c)
	}
	if m := c.SecureAggregation.MinContributions; m < 2 || m > c.ClientsPerRound {
		t.Fatalf("secure_aggregation.min_contributions %d: want the noise shares' divisor, at most clients_per_round %d", m, c.ClientsPerRound)
	}
	s, err := data.ReadSchemaFile(filepath.Join("..", "..", "examples", "spam-bag.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != data.FormatJSONL || s.Text == nil || s.Text.Encoding != data.TextBag || s.Text.MaxVocab != 2000 {
		t.Fatalf("spec %+v: want a jsonl bag-of-words spec with a 2,000-word vocabulary", s)
	}
}
