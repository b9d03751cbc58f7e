package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/confide-fl/confide/internal/atomicfile"
)

// Store keeps the client's state that must survive restarts: its key-committee member
// states and its privacy ledger. Load returns an error wrapping fs.ErrNotExist for a name
// never saved. The simulator uses MemoryStore; a deployed client uses DirStore.
type Store interface {
	Load(name string) ([]byte, error)
	Save(name string, data []byte) error
}

var storeName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// MemoryStore is a Store in memory, safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string][]byte{}} }

func (s *MemoryStore) Load(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[name]
	if !ok {
		return nil, fmt.Errorf("client state %q: %w", name, fs.ErrNotExist)
	}
	return append([]byte(nil), b...), nil
}

func (s *MemoryStore) Save(name string, data []byte) error {
	if !storeName.MatchString(name) {
		return fmt.Errorf("client state name %q: use letters, digits, '.', '_' or '-'", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), data...)
	return nil
}

// DirStore keeps each named state in a file of a directory, written atomically with
// owner-only permissions (member states hold secret key shares).
type DirStore struct{ Dir string }

// NewDirStore creates dir (mode 0700) if needed.
func NewDirStore(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("client: state directory is empty (set --state-dir)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("client: state directory: %w", err)
	}
	return &DirStore{Dir: dir}, nil
}

func (s *DirStore) Load(name string) ([]byte, error) {
	if !storeName.MatchString(name) {
		return nil, fmt.Errorf("client state name %q: use letters, digits, '.', '_' or '-'", name)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, name))
	if err != nil {
		return nil, fmt.Errorf("client state %q: %w", name, err)
	}
	return b, nil
}

func (s *DirStore) Save(name string, data []byte) error {
	if !storeName.MatchString(name) {
		return fmt.Errorf("client state name %q: use letters, digits, '.', '_' or '-'", name)
	}
	return atomicfile.Write(filepath.Join(s.Dir, name), data, 0o600)
}
