package main

import (
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/data"
)

// examples/spam-users.yaml is a valid sim config with DP-SGD (budget ε = 8 at δ = 1e-5) and
// secure aggregation on, and its dataset, examples/spam-mails.yaml, a valid jsonl spec
// (issue 19: the per-user spam federation).
func TestSpamUsersExample(t *testing.T) {
	c, err := loadSimConfig(filepath.Join("..", "..", "examples", "spam-users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DP.NoiseMultiplier <= 0 || c.DP.BudgetEpsilon != 8 || c.DP.Delta != 1e-5 || !c.SecureAggregation.Enabled || c.Clients != 100 {
		t.Fatalf("config %+v: want 100 clients, DP-SGD with budget ε = 8 at δ = 1e-5 and secure aggregation", c)
	}
	s, err := data.ReadSchemaFile(filepath.Join("..", "..", "examples", "spam-mails.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != data.FormatJSONL || s.Text == nil || s.Text.MaxVocab != 1000 || s.Group != "group" {
		t.Fatalf("spec %+v: want a jsonl spec with a 1,000-word vocabulary and the mailbox as group", s)
	}
}
