package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// max_clients is a key of the server's YAML, and the example sets it.
func TestServerFileMaxClients(t *testing.T) {
	sf, err := readServerFile(filepath.Join("..", "..", "examples", "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if sf.MaxClients != 1000 {
		t.Fatalf("examples/server.yaml max_clients = %d, want 1000", sf.MaxClients)
	}
	path := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(path, []byte("max_clients: -1\nfederation:\n  rounds: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runConfide(t, "server", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "max_clients = -1") {
		t.Fatalf("err = %v, want max_clients refused", err)
	}
}
