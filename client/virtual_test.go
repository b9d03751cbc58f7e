package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

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

// An interrupted fleet stops: every client returns ctx's error, here while all of them back
// off from a server that is not there.
func TestRunVirtualStopsWithTheContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: every join is refused and retried
	var fleet []client.VirtualClient
	for i := range 5 {
		tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: blobs(20, uint64(i)), Budget: &dp.Budget{Epsilon: 1, Delta: 1e-5}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		fleet = append(fleet, client.VirtualClient{Config: client.Config{Server: addr, Name: fmt.Sprint("client-", i), Insecure: true, Logger: quietLogger()}, Trainer: tr})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs, err := client.RunVirtual(ctx, fleet)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("client %d: %v, want the context's deadline", i, err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the fleet took %v to stop", d)
	}
}
