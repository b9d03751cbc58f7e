package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/confide-fl/confide/secagg"
)

// TestCAIssueFleet: --count issues a fleet's client certificates named by a pattern,
// checks every name before writing any, and refuses server certificates and bad patterns.
func TestCAIssueFleet(t *testing.T) {
	dir := caDir(t)
	m := runJSON(t, "ca", "issue", "--dir", dir, "--name", "site3-%04d", "--count", "3", "--first", "5")
	if m["issued"] != 3.0 || m["first"] != "site3-0005" || m["last"] != "site3-0007" {
		t.Fatalf("ca issue --count: %v", m)
	}
	for _, n := range []string{"site3-0005", "site3-0006", "site3-0007"} {
		for _, ext := range []string{".crt", ".key"} {
			if _, err := os.Stat(filepath.Join(dir, n+ext)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The fleet's certificates load as --virtual's identities (CN = name).
	if _, _, err := virtualIdentity(clientOptions{ca: filepath.Join(dir, "ca.crt"), identityDir: dir}, "site3-0006", mustVerifier(t, dir)); err != nil {
		t.Fatal(err)
	}
	_, err := runConfide(t, "ca", "issue", "--dir", dir, "--name", "site3-%04d", "--count", "2", "--first", "7")
	wantUsageError(t, err, "site3-0007.crt exists")
	if _, err := os.Stat(filepath.Join(dir, "site3-0008.crt")); err == nil {
		t.Fatal("an overlapping fleet wrote site3-0008 before refusing")
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"server", []string{"--name", "s-%d", "--count", "2", "--server", "--host", "127.0.0.1"}, "issue the server's alone"},
		{"no index", []string{"--name", "alice", "--count", "2"}, "one %d"},
		{"two verbs", []string{"--name", "a-%d-%d", "--count", "2"}, "one %d"},
		{"hex", []string{"--name", "a-%x", "--count", "2"}, "one %d"},
		{"zero", []string{"--name", "a-%d", "--count", "0"}, "--count 0"},
		{"first alone", []string{"--name", "a-1", "--first", "2"}, "add --count N"},
		{"bad name", []string{"--name", "a b-%d", "--count", "1"}, "--name \"a b-%d\" gives"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runConfide(t, append([]string{"ca", "issue", "--dir", dir}, tc.args...)...)
			wantUsageError(t, err, tc.want)
		})
	}
}

// mustVerifier is the Verifier of the CA in dir.
func mustVerifier(t *testing.T, dir string) *secagg.Verifier {
	t.Helper()
	v, err := caVerifier(filepath.Join(dir, "ca.crt"), "--ca")
	if err != nil {
		t.Fatal(err)
	}
	return v
}
