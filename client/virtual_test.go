package client_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
)

// A fleet whose clients would share an identity or a Store is refused before any client
// starts; cmd/confide's TestVirtualFleetCompletesRounds runs a fleet against a server.
func TestRunVirtualRefusesSharedIdentitiesAndStores(t *testing.T) {
	trainer := func(store client.Store) client.Trainer {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(20, 1), Budget: &dp.Budget{Epsilon: 1, Delta: 1e-5}, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	dir := t.TempDir()
	shared := client.NewMemoryStore()
	vc := func(name string, store client.Store) client.VirtualClient {
		return client.VirtualClient{Config: client.Config{Server: "127.0.0.1:1", Name: name, Insecure: true, Store: store}, Trainer: trainer(client.NewMemoryStore())}
	}
	for _, tc := range []struct {
		name  string
		fleet []client.VirtualClient
		want  string
	}{
		{"empty", nil, "at least one client"},
		{"same name", []client.VirtualClient{vc("a", nil), vc("a", nil)}, `both named "a"`},
		{"same store", []client.VirtualClient{vc("a", shared), vc("b", shared)}, "share one Store"},
		{"same directory", []client.VirtualClient{vc("a", &client.DirStore{Dir: dir}), vc("b", &client.DirStore{Dir: dir + "/."})}, "share one Store"},
		{"no trainer", []client.VirtualClient{{Config: client.Config{Name: "a"}}}, "has no Trainer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, err := client.RunVirtual(t.Context(), tc.fleet)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errs != nil {
				t.Fatalf("RunVirtual: %v (%v), want a refusal saying %q", err, errs, tc.want)
			}
		})
	}
}
