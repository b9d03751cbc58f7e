package server

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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

// CheckpointStore writes the released model of every completed round (the global model, or
// the strategy's average of them, RoundRecord.Released) as a model file
// (round-NNNN.confide, and latest.confide) into a directory. Each file records Meta (what
// the operator knows: class names, input, tokenizer, dataset, strategy) with its
// provenance completed: a federated-server model of that round, the time, and the
// differential privacy accounted so far (the largest record-level ε the server accounted
// for any client, and the user-level ε), read from the privacy records appended before it.
type CheckpointStore struct {
	Dir  string
	Spec model.Spec
	Meta model.Meta
	// Accountant names the accountant of the server's record-level accounts (dp.accountant;
	// empty: rdp), for the provenance.
	Accountant string

	record    model.PrivacyGuarantee // the largest record-level ε so far (Epsilon 0: none)
	clientEps map[string]float64     // every client's record-level ε as last accounted
	userLevel *UserLevelPrivacyRecord
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
		switch pr := r.(type) {
		case PrivacyRecord:
			if pr.Reported || math.IsInf(pr.Epsilon, 0) {
				break
			}
			if s.clientEps == nil {
				s.clientEps = map[string]float64{}
			}
			s.clientEps[pr.ClientID] = pr.Epsilon
			// A withdrawn charge may lower the largest.
			largest := 0.0
			if pr.Withdrawn {
				for _, e := range s.clientEps {
					largest = max(largest, e)
				}
			} else {
				largest = max(s.record.Epsilon, pr.Epsilon)
			}
			if largest != s.record.Epsilon {
				s.record = model.PrivacyGuarantee{Level: model.PrivacyRecord, Mechanism: "DP-SGD on the clients, the server's " + accountantName(s.Accountant) + " account",
					Epsilon: largest, Delta: pr.Delta, Meaning: "record-level DP of each client's examples; the largest ε any client spent, as the server accounted it (the fit tasks it issued, less those refused)"}
			}
		case UserLevelPrivacyRecord:
			s.userLevel = &pr
		case StatisticsRecord:
			// Later checkpoints record the schema with the estimated statistics.
			s.Meta.Dataset = slices.Clone(pr.Schema)
		}
		rr, ok := r.(RoundRecord)
		if !ok || rr.Failed {
			continue
		}
		m, err := model.New(s.Spec, rand.New(rand.NewPCG(0, 0)))
		if err != nil {
			return err
		}
		params := rr.Params
		if rr.Released != nil {
			params = rr.Released // the average the federation releases (strategy.ema_decay)
		}
		if err := m.SetParams(params); err != nil {
			return err
		}
		m.Meta = s.meta(rr.Round)
		for _, name := range []string{fmt.Sprintf("round-%04d.confide", rr.Round), "latest.confide"} {
			if err := m.Save(filepath.Join(s.Dir, name)); err != nil {
				return fmt.Errorf("server: checkpoint of round %d: %w", rr.Round, err)
			}
		}
	}
	return nil
}

// meta is the metadata of the checkpoint of round.
func (s *CheckpointStore) meta(round uint64) model.Meta {
	meta := s.Meta
	p := model.NewProvenance(model.TrainedServer)
	if s.Meta.Provenance != nil {
		p.Dataset, p.Strategy, p.Clients, p.Seed = s.Meta.Provenance.Dataset, s.Meta.Provenance.Strategy, s.Meta.Provenance.Clients, s.Meta.Provenance.Seed
	}
	p.Rounds = int(round)
	if s.record.Epsilon > 0 {
		p.Privacy = append(p.Privacy, s.record)
	}
	if u := s.userLevel; u != nil && u.Epsilon > 0 && !math.IsInf(u.Epsilon, 0) && u.Delta < 1 {
		p.Privacy = append(p.Privacy, model.PrivacyGuarantee{Level: model.PrivacyUser, Mechanism: "DP-FedAvg, " + accountantName(u.Accountant) + " accountant",
			Epsilon: u.Epsilon, Delta: u.Delta, NoiseMultiplier: u.NoiseMultiplier, Meaning: "user-level DP of everything a client holds"})
	}
	meta.Provenance = p
	return meta
}

// accountantName is the display name of a dp.accountant value: RDP or PRV.
func accountantName(a string) string {
	if a == "prv" {
		return "PRV"
	}
	return "RDP"
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
