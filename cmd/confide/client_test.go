package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
)

// confide client refuses floors below t = 2, m = 2 and K = 2, before touching data or network.
func TestClientRefusesWeakCommitteeFloors(t *testing.T) {
	for _, args := range [][]string{{"--min-threshold", "1"}, {"--min-contributions", "1"}, {"--min-contributions", "0"}, {"--min-committee-size", "1"}} {
		_, err := runConfide(t, append([]string{"client", "--server", "127.0.0.1:1"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "all must be ≥ 2") {
			t.Errorf("%v: err = %v, want a refusal of floors below 2", args, err)
		}
	}
}

// The safe settings are the defaults, and examples/client.yaml spells them with known keys.
func TestClientSafeDefaultsAndExampleKeys(t *testing.T) {
	cmd := newClientCmd(&globalOptions{})
	for flag, want := range map[string]string{"require-secure-aggregation": "true", "min-threshold": "2", "min-contributions": "2"} {
		if f := cmd.Flags().Lookup(flag); f == nil || f.DefValue != want {
			t.Errorf("--%s default %v, want %s", flag, f, want)
		}
	}
	// The example config parses (every key is a flag); the run then stops at the index.
	_, err := runConfide(t, "client", "--config", "../../examples/client.yaml", "--client-index", "99")
	if err == nil || !strings.Contains(err.Error(), "--client-index 99") {
		t.Fatalf("err = %v, want the example's keys accepted and --client-index refused", err)
	}
}

// confide client needs a privacy budget or an explicit --no-dp, and says so before it
// creates its state directory, loads data or dials the server.
func TestClientRequiresABudgetOrNoDP(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"neither", nil, []string{"--epsilon", "--delta", "--no-dp"}},
		{"epsilon-only", []string{"--epsilon", "8"}, []string{"--epsilon", "--delta", "--no-dp"}},
		{"delta-only", []string{"--delta", "1e-5"}, []string{"--epsilon", "--delta", "--no-dp"}},
		{"zero-epsilon", []string{"--epsilon", "0", "--delta", "1e-5"}, []string{"--epsilon", "--delta", "--no-dp"}},
		{"negative-epsilon", []string{"--epsilon", "-1", "--delta", "1e-5"}, []string{"--epsilon -1", "> 0"}},
		{"delta-one", []string{"--epsilon", "8", "--delta", "1"}, []string{"--delta 1", "(0, 1)"}},
		{"no-dp-and-budget", []string{"--no-dp", "--epsilon", "8", "--delta", "1e-5"}, []string{"--no-dp with --epsilon"}},
		{"no-dp-and-raise", []string{"--no-dp", "--raise-budget"}, []string{"--no-dp with", "--raise-budget"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			args := append([]string{"client", "--server", "127.0.0.1:1", "--dataset", "no-such-dataset", "--state-dir", state}, tc.args...)
			_, err := runConfide(t, args...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("err = %v, want a usage error (exit code 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("state directory created before the budget was checked (%v)", err)
			}
		})
	}
	// With a budget, or --no-dp, the run goes on to the data.
	for _, args := range [][]string{{"--epsilon", "8", "--delta", "1e-5"}, {"--no-dp"}} {
		_, err := runConfide(t, append([]string{"client", "--server", "127.0.0.1:1", "--insecure", "--dataset", "no-such-dataset", "--state-dir", t.TempDir()}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "no-such-dataset") {
			t.Errorf("%v: err = %v, want the run to reach the dataset", args, err)
		}
	}
}

// The default state directory is user data (XDG_DATA_HOME, else ~/.local/share), never the
// cache, which cleaners empty.
func TestClientDefaultStateDir(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	if got, err := defaultStateDir("client-3"); err != nil || got != filepath.Join(data, "confide", "client", "client-3") {
		t.Errorf("with XDG_DATA_HOME: %q, %v", got, err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, xdg := range []string{"", "relative/dir"} {
		t.Setenv("XDG_DATA_HOME", xdg)
		if got, err := defaultStateDir("client-3"); err != nil || got != filepath.Join(home, ".local", "share", "confide", "client", "client-3") {
			t.Errorf("XDG_DATA_HOME %q: %q, %v", xdg, got, err)
		}
	}
	for _, name := range []string{"../x", "a/b", ".."} {
		if _, err := defaultStateDir(name); err == nil || !strings.Contains(err.Error(), "--state-dir") {
			t.Errorf("name %q: err = %v, want a request for --state-dir", name, err)
		}
	}
}

// A ledger error tells the user which flag resolves it.
func TestClientLedgerErrorsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, client.LedgerName)
	l, err := dp.OpenLedger(p, dp.Budget{Epsilon: 2, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	_, inUse := dp.OpenLedger(p, dp.Budget{Epsilon: 2, Delta: 1e-5})
	if err := ledgerHint(inUse, dir); !errors.Is(err, dp.ErrLedgerInUse) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "another confide client") {
		t.Errorf("ledger in use: %v", err)
	}
	_ = l.Close()
	for _, tc := range []struct {
		budget dp.Budget
		want   string
	}{
		{dp.Budget{Epsilon: 3, Delta: 1e-5}, "add --raise-budget"},
		{dp.Budget{Epsilon: 1, Delta: 1e-5}, "pass --epsilon 2 --delta 1e-05"},
		{dp.Budget{Epsilon: 2, Delta: 1e-6}, "pass --epsilon 2 --delta 1e-05"},
	} {
		_, err := dp.OpenLedger(p, tc.budget)
		err = ledgerHint(err, dir)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !errors.Is(err, dp.ErrBudgetMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("budget %+v: err = %v, want a usage error saying %q", tc.budget, err, tc.want)
		}
	}
}
