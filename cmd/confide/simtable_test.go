package main

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/model"
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
		{"dp-sgd", sim.Config{DP: sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1}}}, []string{"1.23"}},
		{"no-dp", sim.Config{}, []string{"∞"}},
		{"user-level", sim.Config{DP: sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1, UserLevel: server.UserLevelDPConfig{Mode: server.UserLevelCentral}}}}, []string{"1.23", "0.988"}},
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

// A regression run's round table shows the central R² and RMSE under their titles, in
// place of accuracy and loss.
func TestRoundTableRegression(t *testing.T) {
	r2, rmse := 0.8765, 12.34
	m := sim.RoundMetrics{Round: 2, Sampled: 4, Contributors: 4, R2: &r2, RMSE: &rmse}
	for _, userLevel := range []bool{false, true} {
		cfg := sim.Config{Model: model.Spec{Loss: model.LossMSE}}
		if userLevel {
			cfg.DP = sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1, UserLevel: server.UserLevelDPConfig{Mode: server.UserLevelCentral}}}
		}
		header, row := roundHeaderFor(cfg), formatRound(m, cfg)
		h, r := strings.Fields(header), strings.Fields(row)
		if h[1] != "r2" || h[2] != "rmse" || r[1] != "0.8765" || r[2] != "12.34" {
			t.Fatalf("user-level %v: row %q under %q: want r2 0.8765 and rmse 12.34", userLevel, row, header)
		}
		if strings.Index(header, "rmse")+len("rmse") != strings.Index(row, "12.34")+len("12.34") {
			t.Fatalf("rmse not right-aligned under its title:\n%s\n%s", header, row)
		}
	}
	cls := formatRound(m, sim.Config{})
	if strings.Contains(cls, "0.8765") {
		t.Fatalf("a classifier's row shows R²: %q", cls)
	}
}
