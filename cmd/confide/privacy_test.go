package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
)

// runConfide runs the CLI in-process and returns its stdout.
func runConfide(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func runJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, err := runConfide(t, append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("confide %s: %v", strings.Join(args, " "), err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("confide %s: output is not one JSON object: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

func TestPrivacyEpsilonPublicCases(t *testing.T) {
	// The three public reference values of shared/notes/dp-accounting.md.
	cases := []struct {
		name      string
		args      []string
		want      float64
		places    int
		wantOrder float64
	}{
		{
			// opacus tests/accountants_test.py test_rdp_accountant
			name: "opacus", want: 7.32911117143, places: 7, wantOrder: 3.9,
			args: []string{"--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5", "--orders", "opacus"},
		},
		{
			// tensorflow_privacy compute_dp_sgd_privacy_test.py Test0 (n=60000, batch 150, 15 epochs)
			name: "tf-privacy improved", want: 0.7242234026109595, places: 7, wantOrder: 19,
			args: []string{"--noise-multiplier", "1.3", "--sample-rate", "0.0025", "--steps", "6000", "--delta", "1e-5", "--orders", "tf-privacy"},
		},
		{
			// the same under the classic conversion (tensorflow_privacy compute_noise_from_budget_test.py Test0)
			name: "tf-privacy classic", want: 0.941870567, places: 9, wantOrder: 19,
			args: []string{"--noise-multiplier", "1.3", "--sample-rate", "0.0025", "--steps", "6000", "--delta", "1e-5", "--orders", "tf-privacy", "--conversion", "classic"},
		},
		{
			// original TF Privacy rdp_accountant, orders 2..32, classic: Abadi et al.'s 1.26
			name: "abadi integer orders classic", want: 1.258575, places: 6, wantOrder: 20,
			args: []string{"--noise-multiplier", "4", "--sample-rate", "0.01", "--steps", "10000", "--delta", "1e-5", "--orders", "2:32", "--conversion", "classic"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := runJSON(t, append([]string{"privacy", "epsilon"}, tc.args...)...)
			eps, _ := m["epsilon"].(float64)
			order, _ := m["order"].(float64)
			if math.Abs(eps-tc.want) >= 0.5*math.Pow(10, -float64(tc.places)) || order != tc.wantOrder {
				t.Errorf("epsilon %v at order %v, want %v (%d places) at %v", eps, order, tc.want, tc.places, tc.wantOrder)
			}
			if m["grid"] == nil || m["conversion"] == nil {
				t.Errorf("JSON output must name the grid and conversion: %v", m)
			}
		})
	}
}

func TestPrivacyEpsilonTextNamesGridAndConversion(t *testing.T) {
	out, err := runConfide(t, "privacy", "epsilon", "--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ε = 7.33 at δ = 1e-05", "α = 3.9", "grid: default (159 orders", "conversion: improved (Balle et al. 2020", "series: signed"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	out, _ = runConfide(t, "privacy", "epsilon", "--noise-multiplier", "4", "--sample-rate", "0.01", "--steps", "10000", "--delta", "1e-5", "--orders", "2:32", "--conversion", "classic")
	if !strings.Contains(out, "conversion: classic (Mironov 2017") || !strings.Contains(out, "31 orders, 2 to 32") {
		t.Errorf("classic text output:\n%s", out)
	}
}

func TestPrivacyNoise(t *testing.T) {
	base := []string{"privacy", "noise", "--target-epsilon", "8", "--delta", "1e-5", "--sample-rate", "0.04", "--steps", "2250"}
	// Bisected to 1e-10: σ ≈ 1.416 (shared/notes/dp-accounting.md), never overshooting.
	m := runJSON(t, base...)
	sigma, _ := m["noise_multiplier"].(float64)
	eps, _ := m["epsilon"].(float64)
	if math.Abs(sigma-1.416) > 5e-4 || eps > 8 {
		t.Errorf("noise multiplier %v with ε %v, want ≈ 1.416 with ε ≤ 8", sigma, eps)
	}
	// Opacus' search (tolerance 0.01 on its grid): exactly its 1.416015625
	// (opacus tests/accountants_test.py test_get_noise_multiplier_rdp_epochs: 1.416, places=4).
	m = runJSON(t, append(base, "--orders", "opacus", "--epsilon-tolerance", "0.01")...)
	if sigma, _ := m["noise_multiplier"].(float64); sigma != 1.416015625 {
		t.Errorf("Opacus-compatible search: %v, want 1.416015625", sigma)
	}
}

func TestPrivacyBadFlagsNameFlagAndRange(t *testing.T) {
	eps := []string{"privacy", "epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5"}
	with := func(flag, value string) []string {
		args := append([]string(nil), eps...)
		for i := range args {
			if args[i] == flag {
				args[i+1] = value
				return args
			}
		}
		return append(args, flag, value)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{with("--sample-rate", "1.5"), []string{"--sample-rate 1.5", "[0, 1]"}},
		{with("--noise-multiplier", "-1"), []string{"--noise-multiplier -1", "≥ 0"}},
		{with("--steps", "-3"), []string{"--steps -3", "≥ 0"}},
		{with("--delta", "1"), []string{"--delta 1", "(0, 1)"}},
		{with("--orders", "0.5,2"), []string{"--orders", "≥ 1"}},
		{with("--conversion", "fancy"), []string{"--conversion", "improved or classic"}},
		{with("--series", "x"), []string{"--series", "signed or absolute"}},
		{[]string{"privacy", "epsilon", "--sample-rate", "0.1"}, []string{"--noise-multiplier", "--steps", "--delta"}},
		{[]string{"privacy", "noise", "--target-epsilon", "0", "--delta", "1e-5", "--sample-rate", "0.1", "--steps", "1"}, []string{"--target-epsilon 0", "> 0"}},
		{with("--noise-multiplier", "0"), []string{"ε is infinite", "--noise-multiplier"}},
	}
	for _, tc := range cases {
		_, err := runConfide(t, tc.args...)
		if err == nil {
			t.Errorf("%v: want an error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tc.args, err, w)
			}
		}
	}
}

func TestPrivacyLedgerAudit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "client.ledger")
	l, err := dp.OpenLedger(p, dp.Budget{Epsilon: 5, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(dp.StepRecord{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 1000}); err != nil {
		t.Fatal(err)
	}
	spent, _ := l.Spent()
	m := runJSON(t, "privacy", "ledger", p)
	if m["epsilon"] != spent || m["budget_epsilon"] != 5.0 || m["charges"] != 1.0 {
		t.Errorf("audit %v, want ε %v of 5 after 1 charge", m, spent)
	}
	out, err := runConfide(t, "privacy", "ledger", p)
	if err != nil || !strings.Contains(out, "1000 steps at noise multiplier 1.1") || !strings.Contains(out, "grid: default") {
		t.Errorf("audit text (%v):\n%s", err, out)
	}
	if _, err := runConfide(t, "privacy", "ledger", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing ledger file: want an error")
	}
}

func TestPrivacySeriesFollowsTheNamedLibrary(t *testing.T) {
	// tensorflow_privacy compute_dp_sgd_privacy_test.py Test2 (n=1e8, batch 1024, σ=0.1,
	// 10 epochs, δ=1e-7): best order 1.25 is fractional, and TF Privacy sums the series as
	// dp-accounting does, so --orders tf-privacy reproduces it; --series signed gives the
	// exact (slightly smaller) value.
	args := []string{"privacy", "epsilon", "--noise-multiplier", "0.1", "--sample-rate", "1.024e-5", "--steps", "976563", "--delta", "1e-7", "--orders", "tf-privacy"}
	m := runJSON(t, args...)
	if eps := m["epsilon"].(float64); math.Abs(eps-5907982.3113978775) >= 5e-8 || m["series"] != "absolute" || m["order"] != 1.25 {
		t.Errorf("tf-privacy Test2: %v", m)
	}
	m = runJSON(t, append(args, "--series", "signed")...)
	if eps := m["epsilon"].(float64); !(eps < 5907982.3113978775) || math.Abs(eps-5907982.31138) > 1e-4 || m["series"] != "signed" {
		t.Errorf("signed series: %v", m)
	}
}

func TestPrivacyDelta(t *testing.T) {
	// Round trip: δ at the ε that the epsilon command reports is the δ asked for.
	common := []string{"--noise-multiplier", "1.1", "--sample-rate", "0.01", "--steps", "1000"}
	m := runJSON(t, append([]string{"privacy", "epsilon", "--delta", "1e-6"}, common...)...)
	eps := m["epsilon"].(float64)
	d := runJSON(t, append([]string{"privacy", "delta", "--epsilon", strconv.FormatFloat(eps, 'g', -1, 64)}, common...)...)
	if delta := d["delta"].(float64); math.Abs(delta-1e-6) > 1e-12 || d["order"] != m["order"] {
		t.Errorf("δ(ε(1e-6)) = %v at order %v, want 1e-6 at %v", delta, d["order"], m["order"])
	}
}

// TestPrivacyLedgerAuditsAClientLedger: the ledger a client's built-in trainer writes into
// its state directory is the file `confide privacy ledger` audits, raises included.
func TestPrivacyLedgerAuditsAClientLedger(t *testing.T) {
	dir := t.TempDir()
	spec := model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{4}, Output: 2}
	m, err := model.New(spec, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	local := &data.Dataset{Name: "tiny", N: 40, Dim: 2, X: make([]float64, 80), Y: make([]int32, 40), NumClasses: 2}
	for i := range local.N {
		local.Y[i] = int32(i % 2)
		local.X[2*i], local.X[2*i+1] = float64(2*(i%2)-1), float64(i%5)/5
	}
	fit := client.FitConfig{Round: 1, Model: spec, Epochs: 2, BatchSize: 10, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1},
		DP: client.DPConfig{NoiseMultiplier: 2, MaxGradNorm: 1, Delta: 1e-5}}
	train := func(budget dp.Budget, raise bool) float64 {
		t.Helper()
		store, err := client.NewDirStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: local, Budget: &budget, RaiseBudget: raise, Store: store, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		res, err := tr.Fit(t.Context(), m.Params, fit)
		if err != nil {
			t.Fatal(err)
		}
		return res.Metrics["epsilon"]
	}
	// The second fit (ε ≈ 2.81 in all) needs the raise from 2.5 to 4.
	train(dp.Budget{Epsilon: 2.5, Delta: 1e-5}, false)
	spent := train(dp.Budget{Epsilon: 4, Delta: 1e-5}, true)

	p := filepath.Join(dir, client.LedgerName)
	var out struct {
		Epsilon       float64           `json:"epsilon"`
		BudgetEpsilon float64           `json:"budget_epsilon"`
		Delta         float64           `json:"delta"`
		Charges       int64             `json:"charges"`
		History       []dp.StepRecord   `json:"history"`
		BudgetHistory []dp.BudgetChange `json:"budget_history"`
	}
	raw, err := runConfide(t, "privacy", "ledger", p, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, raw)
	}
	// Two fits of 2 epochs × 40/10 steps at σ = 2, q = 10/40, merged into one entry.
	if !(out.Epsilon > 0) || out.Epsilon != spent || out.BudgetEpsilon != 4 || out.Delta != 1e-5 || out.Charges != 2 ||
		len(out.History) != 1 || out.History[0] != (dp.StepRecord{NoiseMultiplier: 2, SampleRate: 0.25, Steps: 16}) {
		t.Errorf("audit %+v, want ε = %v of 4 at δ = 1e-5 after 2 charges of 8 steps at σ = 2, q = 0.25", out, spent)
	}
	if len(out.BudgetHistory) != 2 || out.BudgetHistory[0].Budget.Epsilon != 2.5 || out.BudgetHistory[1].Budget.Epsilon != 4 ||
		!(out.BudgetHistory[1].Spent > 0) || out.BudgetHistory[1].Time.Before(out.BudgetHistory[0].Time) {
		t.Errorf("budget history %+v, want the creation at ε = 2.5 then the raise to 4 after some ε was spent", out.BudgetHistory)
	}
	text, err := runConfide(t, "privacy", "ledger", p)
	if err != nil || !strings.Contains(text, "budget ε = 2.5 at δ = 1e-05 set") || !strings.Contains(text, "budget raised to ε = 4") {
		t.Errorf("audit text (%v):\n%s", err, text)
	}
}

// TestPrivacyAccountantPRV: issue 18's acceptance run (σ = 1.1, q = 256/60000, 60 epochs =
// int(60/q) = 14062 steps, δ = 1e-5) spends less by the PRV accountant than by RDP, the
// JSON says which accountant and carries PRV's interval, and noise for a target ε by PRV is
// smaller than by RDP.
func TestPrivacyAccountantPRV(t *testing.T) {
	run := []string{"--noise-multiplier", "1.1", "--sample-rate", strconv.FormatFloat(256.0/60000, 'g', -1, 64), "--steps", "14062", "--delta", "1e-5"}
	rdp := runJSON(t, append([]string{"privacy", "epsilon"}, run...)...)
	prv := runJSON(t, append([]string{"privacy", "epsilon", "--accountant", "prv"}, run...)...)
	b, _ := prv["prv"].(map[string]any)
	if rdp["accountant"] != "rdp" || prv["accountant"] != "prv" || b == nil {
		t.Fatalf("accountants: %v / %v", rdp["accountant"], prv)
	}
	if pe, re := prv["epsilon"].(float64), rdp["epsilon"].(float64); !(pe < re) || b["rdp_epsilon"] != re || !(b["epsilon_lower"].(float64) <= pe) {
		t.Errorf("PRV ε %v (interval %v–%v), RDP ε %v: want PRV below", pe, b["epsilon_lower"], b["epsilon_upper"], re)
	}
	out, err := runConfide(t, append([]string{"privacy", "epsilon", "--accountant", "prv"}, run...)...)
	if err != nil || !strings.Contains(out, "PRV accountant") || !strings.Contains(out, "RDP bound") {
		t.Errorf("PRV text (%v):\n%s", err, out)
	}
	target := []string{"--target-epsilon", "2", "--delta", "1e-5", "--sample-rate", "0.01", "--steps", "1000", "--epsilon-tolerance", "0.01"}
	sr := runJSON(t, append([]string{"privacy", "noise"}, target...)...)
	sp := runJSON(t, append([]string{"privacy", "noise", "--accountant", "prv"}, target...)...)
	if !(sp["noise_multiplier"].(float64) < sr["noise_multiplier"].(float64)) || sp["epsilon"].(float64) > 2 {
		t.Errorf("noise for ε = 2: PRV σ %v (ε %v), RDP σ %v", sp["noise_multiplier"], sp["epsilon"], sr["noise_multiplier"])
	}
	if _, err := runConfide(t, append([]string{"privacy", "epsilon", "--accountant", "pld"}, run...)...); err == nil || !strings.Contains(err.Error(), "--accountant") {
		t.Errorf("--accountant pld: %v, want an error naming the flag", err)
	}
}

// TestPrivacyLedgerUsesItsAccountant: a PRV ledger is audited by PRV unless --accountant
// asks for another.
func TestPrivacyLedgerUsesItsAccountant(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prv.ledger")
	l, err := dp.OpenLedger(p, dp.Budget{Epsilon: 5, Delta: 1e-5}, dp.WithAccountant(accountant.MethodPRV))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(dp.StepRecord{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 1000}); err != nil {
		t.Fatal(err)
	}
	spent, _ := l.Spent()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m := runJSON(t, "privacy", "ledger", p)
	if m["epsilon"] != spent || m["ledger_accountant"] != "prv" || m["accountant"] != "prv" {
		t.Errorf("audit %v, want ε %v by the ledger's prv", m, spent)
	}
	r := runJSON(t, "privacy", "ledger", p, "--accountant", "rdp")
	if r["accountant"] != "rdp" || r["ledger_accountant"] != "prv" || !(r["epsilon"].(float64) > spent) {
		t.Errorf("audit by rdp %v, want rdp above %v", r, spent)
	}
}
