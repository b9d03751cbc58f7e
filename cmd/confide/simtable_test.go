package main

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// The sim's round table has a refused column under its header, and rounds ε to 3
// significant digits (rounds.json keeps the full value).
func TestRoundTableRefusedAndEpsilon(t *testing.T) {
	m := sim.RoundMetrics{Round: 3, Sampled: 8, Contributors: 5, Dropped: 1, Refused: 2, Epsilon: 1.23456, UserEpsilon: 0.98765, UpdateClip: 2}
	for _, tc := range []struct {
		name string
		cfg  sim.Config
		eps  []string // the ε columns' values
	}{
		{"dp-sgd", sim.Config{DP: sim.DPConfig{NoiseMultiplier: 1}}, []string{"1.23"}},
		{"no-dp", sim.Config{}, []string{"∞"}},
		{"user-level", sim.Config{DP: sim.DPConfig{NoiseMultiplier: 1, UserLevel: server.UserLevelDPConfig{Mode: server.UserLevelCentral}}}, []string{"1.23", "0.988"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header, row := roundHeaderFor(tc.cfg), formatRound(m, tc.cfg)
			h, r := strings.Fields(header), strings.Fields(row)
			col := func(name string) int {
				for i, f := range h {
					if f == name {
						return i
					}
				}
				t.Fatalf("header %q has no column %s", header, name)
				return -1
			}
			if r[col("refused")] != "2" || r[col("dropped")] != "1" {
				t.Fatalf("row %q under %q: refused %q, dropped %q; want 2 and 1", row, header, r[col("refused")], r[col("dropped")])
			}
			if got := r[col("ε") : col("ε")+len(tc.eps)]; strings.Join(got, " ") != strings.Join(tc.eps, " ") {
				t.Fatalf("row %q: ε columns %q, want %q", row, got, tc.eps)
			}
			// Right-aligned under the header: the refused value ends where its title does.
			end := func(s, field string) int {
				i := strings.Index(s, field)
				return len([]rune(s[:i])) + len([]rune(field))
			}
			if he, re := end(header, "refused"), end(row, "  2  ")-2; he != re {
				t.Fatalf("refused column ends at %d in the header, %d in the row:\n%s\n%s", he, re, header, row)
			}
		})
	}
}
