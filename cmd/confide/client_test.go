package main

import (
	"strings"
	"testing"
)

// confide client refuses floors below t = 2 and m = 2, before touching data or network.
func TestClientRefusesWeakCommitteeFloors(t *testing.T) {
	for _, args := range [][]string{{"--min-threshold", "1"}, {"--min-contributions", "1"}, {"--min-contributions", "0"}} {
		_, err := runConfide(t, append([]string{"client", "--server", "127.0.0.1:1"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "both must be ≥ 2") {
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
