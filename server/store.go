package server

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	"github.com/confide-fl/confide/model"
)

// Store makes the coordinator's Persist records durable. Append must return only once the
// records are safe; the service delivers no task of a Ready before that.
type Store interface {
	Append(records []Record) error
}

// MemoryStore keeps the records in memory (tests, simulations).
type MemoryStore struct {
	mu      sync.Mutex
	records []Record
}

func (s *MemoryStore) Append(records []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, records...)
	return nil
}

// Records returns the records appended so far.
func (s *MemoryStore) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// CheckpointStore writes the global model of every completed round as a model file
// (round-NNNN.confide, and latest.confide) into a directory, and ignores other records.
type CheckpointStore struct {
	Dir  string
	Spec model.Spec
}

// NewCheckpointStore creates dir if needed.
func NewCheckpointStore(dir string, spec model.Spec) (*CheckpointStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("server: checkpoint directory: %w", err)
	}
	return &CheckpointStore{Dir: dir, Spec: spec}, nil
}

func (s *CheckpointStore) Append(records []Record) error {
	for _, r := range records {
		rr, ok := r.(RoundRecord)
		if !ok || rr.Failed {
			continue
		}
		m, err := model.New(s.Spec, rand.New(rand.NewPCG(0, 0)))
		if err != nil {
			return err
		}
		if err := m.SetParams(rr.Params); err != nil {
			return err
		}
		for _, name := range []string{fmt.Sprintf("round-%04d.confide", rr.Round), "latest.confide"} {
			if err := m.Save(filepath.Join(s.Dir, name)); err != nil {
				return fmt.Errorf("server: checkpoint of round %d: %w", rr.Round, err)
			}
		}
	}
	return nil
}

// MultiStore appends to every store in order.
type MultiStore []Store

func (m MultiStore) Append(records []Record) error {
	for _, s := range m {
		if err := s.Append(records); err != nil {
			return err
		}
	}
	return nil
}
