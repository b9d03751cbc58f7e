package client

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"time"
)

// VirtualClient is one client of a fleet that a single process hosts (RunVirtual): a
// complete client of its own — its Config (name, TLS identity and secure-aggregation
// Signer, Store for its key shares and ledger) and its Trainer (its data shard and privacy
// ledger) — run by exactly the code a lone client runs (Run). Clients of a fleet may share
// read-only things (a Verifier, datasets they only read); never a Store, a ledger or a
// Trainer.
type VirtualClient struct {
	Config  Config
	Trainer Trainer
}

// RunVirtual runs every client of fleet with Run, each in its own goroutine over its own
// connection (started VirtualStartInterval apart), until all have returned (the federation finished, ctx ended, or a client
// failed on its own), and returns one error per client, nil for those that finished
// normally. A client that fails does not stop the others: as separate processes would,
// each serves the federation until it is done.
//
// It refuses a fleet in which two clients share a name or a Store before starting any:
// the server would admit only one session per name, and two clients writing one Store
// would overwrite each other's key shares and charge one ledger twice.
func RunVirtual(ctx context.Context, fleet []VirtualClient) ([]error, error) {
	if len(fleet) == 0 {
		return nil, errors.New("client: a virtual fleet needs at least one client")
	}
	names := make(map[string]int, len(fleet))
	stores := make(map[any]int, len(fleet))
	for i, v := range fleet {
		if v.Trainer == nil {
			return nil, fmt.Errorf("client: virtual client %d (%q) has no Trainer", i, v.Config.Name)
		}
		if j, dup := names[v.Config.Name]; dup {
			return nil, fmt.Errorf("client: virtual clients %d and %d are both named %q: each needs its own name (its identity in the federation)", j, i, v.Config.Name)
		}
		names[v.Config.Name] = i
		key, ok := storeKey(v.Config.Store)
		if !ok {
			continue // no Store (Run gives each its own MemoryStore), or one we cannot compare
		}
		if j, dup := stores[key]; dup {
			return nil, fmt.Errorf("client: virtual clients %d (%q) and %d (%q) share one Store: each keeps its own key shares and ledger", j, fleet[j].Config.Name, i, v.Config.Name)
		}
		stores[key] = i
	}
	errs := make([]error, len(fleet))
	var wg sync.WaitGroup
	tick := time.NewTicker(VirtualStartInterval)
	defer tick.Stop()
	for i, v := range fleet {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		wg.Go(func() {
			if err := Run(ctx, v.Config, v.Trainer); err != nil {
				errs[i] = fmt.Errorf("%s: %w", v.Config.Name, err)
			}
		})
	}
	wg.Wait()
	return errs, nil
}

// VirtualStartInterval is how far apart RunVirtual starts its clients: 40 a second, below
// a confide server's default admission of 50 Joins a second from one address (bursts of
// 200, server.ServiceConfig.PeerJoinRate), so that a fleet of hundreds joins without
// refusals and backoff (250 clients in about 6 s).
const VirtualStartInterval = 25 * time.Millisecond

// storeKey identifies a Store for RunVirtual's check: a DirStore by its directory (two
// values for one directory are one store), any other comparable Store by itself.
func storeKey(s Store) (any, bool) {
	switch s := s.(type) {
	case nil:
		return nil, false
	case *DirStore:
		if abs, err := filepath.Abs(s.Dir); err == nil {
			return abs, true
		}
		return filepath.Clean(s.Dir), true
	}
	if !reflect.TypeOf(s).Comparable() {
		return nil, false
	}
	return s, true
}
