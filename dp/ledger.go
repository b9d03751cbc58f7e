package dp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/confide-fl/confide/dp/accountant"
)

// Budget is the total (ε, δ) a data owner allows to be spent. ε is measured at δ.
type Budget struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// Validate checks ε > 0 (finite) and δ in (0, 1).
func (b Budget) Validate() error {
	if math.IsNaN(b.Epsilon) || b.Epsilon <= 0 || math.IsInf(b.Epsilon, 0) {
		return fmt.Errorf("dp: budget epsilon %v: must be finite and > 0", b.Epsilon)
	}
	if math.IsNaN(b.Delta) || b.Delta <= 0 || b.Delta >= 1 {
		return fmt.Errorf("dp: budget delta %v: must be in (0, 1)", b.Delta)
	}
	return nil
}

// StepRecord is what one charge records: Steps applications of the Poisson-subsampled
// Gaussian mechanism with the given noise multiplier and sample rate.
type StepRecord = accountant.Step

// ErrBudgetExceeded is returned (wrapped in a *BudgetExceededError) by Ledger.Charge when
// the step would take the spent ε past the budget. Test with errors.Is.
var ErrBudgetExceeded = errors.New("dp: privacy budget exceeded")

// BudgetExceededError says by how much a refused step would have exceeded the budget.
type BudgetExceededError struct {
	Budget     Budget
	Spent      float64 // ε spent before the step
	WouldSpend float64 // ε after the step
	Step       StepRecord
}

func (e *BudgetExceededError) Error() string {
	return fmt.Sprintf("dp: privacy budget exceeded: %d step(s) at noise multiplier %v, sample rate %v would bring ε from %.6g to %.6g, over the budget ε = %v at δ = %v",
		e.Step.Steps, e.Step.NoiseMultiplier, e.Step.SampleRate, e.Spent, e.WouldSpend, e.Budget.Epsilon, e.Budget.Delta)
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetExceededError) Is(target error) bool { return target == ErrBudgetExceeded }

// Ledger is a data owner's durable record of the privacy it has spent, checked against its
// budget. Use it "charge before release": call Charge for a step BEFORE any result that
// depends on the step's noise leaves the owner's control, and release only if Charge
// returned nil. Charge returns only after the step is on stable storage, so a crash at any
// point can over-count a step that was never released but can never lose one that was.
//
// The file is rewritten whole on every charge: write a temporary file in the same
// directory, fsync it, rename it over the ledger, fsync the directory. It holds the budget
// and the merged (σ, q, steps) history, with a SHA-256 checksum; a ledger that fails the
// checksum is refused rather than reset. One process should own a ledger file at a time.
// A Ledger is safe for concurrent use; charges are serialised.
type Ledger struct {
	mu      sync.Mutex
	path    string
	budget  Budget
	acct    *accountant.RDP
	spent   accountant.Result
	charges int64
	fs      fileSystem
}

// LedgerOption configures OpenLedger.
type LedgerOption func(*ledgerOptions)

type ledgerOptions struct {
	cfg accountant.Config
	fs  fileSystem
}

// WithAccounting sets the grid, conversion and series used to turn the history into ε
// (default: accountant.Config{}, the default grid and the improved conversion).
func WithAccounting(cfg accountant.Config) LedgerOption {
	return func(o *ledgerOptions) { o.cfg = cfg }
}

const (
	ledgerFormat  = "confide-dp-ledger"
	ledgerVersion = 1
)

type ledgerContent struct {
	Format  string       `json:"format"`
	Version int          `json:"version"`
	Budget  Budget       `json:"budget"`
	Charges int64        `json:"charges"`
	History []StepRecord `json:"history"`
}

type ledgerEnvelope struct {
	SHA256 string          `json:"sha256"`
	Ledger json.RawMessage `json:"ledger"`
}

// OpenLedger opens the ledger at path, or creates it (durably, before returning) with
// the given budget if it does not exist. An existing ledger must have been created with the
// same budget; a corrupt one is an error, never a fresh start. Leftover temporary files
// of an interrupted write are removed.
func OpenLedger(path string, budget Budget, opts ...LedgerOption) (*Ledger, error) {
	if err := budget.Validate(); err != nil {
		return nil, err
	}
	o := ledgerOptions{fs: osFS{}}
	for _, opt := range opts {
		opt(&o)
	}
	acct, err := accountant.NewRDP(o.cfg)
	if err != nil {
		return nil, err
	}
	l := &Ledger{path: path, budget: budget, acct: acct, fs: o.fs}
	l.removeStaleTemps()
	data, err := l.fs.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := l.persist(nil, 0); err != nil {
			return nil, fmt.Errorf("dp: create ledger %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("dp: read ledger %s: %w", path, err)
	default:
		c, err := decodeLedger(data)
		if err != nil {
			return nil, fmt.Errorf("dp: ledger %s: %w (refusing to reset it: restore it from a backup)", path, err)
		}
		if c.Budget != budget {
			return nil, fmt.Errorf("dp: ledger %s was created with budget ε = %v, δ = %v but opened with ε = %v, δ = %v", path, c.Budget.Epsilon, c.Budget.Delta, budget.Epsilon, budget.Delta)
		}
		for _, s := range c.History {
			if err := acct.Compose(s); err != nil {
				return nil, fmt.Errorf("dp: ledger %s: %w", path, err)
			}
		}
		l.charges = c.Charges
	}
	if l.spent, err = acct.Epsilon(budget.Delta); err != nil {
		return nil, fmt.Errorf("dp: ledger %s: %w", path, err)
	}
	return l, nil
}

// LedgerSnapshot is the content of a ledger file, as read by ReadLedger.
type LedgerSnapshot struct {
	Budget  Budget
	Charges int64
	History []StepRecord
}

// ReadLedger reads and verifies a ledger file without opening it for charging (for
// audits).
func ReadLedger(path string) (LedgerSnapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return LedgerSnapshot{}, fmt.Errorf("dp: read ledger: %w", err)
	}
	c, err := decodeLedger(data)
	if err != nil {
		return LedgerSnapshot{}, fmt.Errorf("dp: ledger %s: %w", path, err)
	}
	return LedgerSnapshot{Budget: c.Budget, Charges: c.Charges, History: c.History}, nil
}

func decodeLedger(data []byte) (ledgerContent, error) {
	var env ledgerEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return ledgerContent{}, fmt.Errorf("not a ledger file: %w", err)
	}
	// The checksum covers the compact form of the content, so indentation (MarshalIndent
	// re-indents the embedded object) does not matter.
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Ledger); err != nil {
		return ledgerContent{}, fmt.Errorf("not a ledger file: %w", err)
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != env.SHA256 {
		return ledgerContent{}, errors.New("checksum mismatch: the file is corrupt")
	}
	var c ledgerContent
	if err := json.Unmarshal(env.Ledger, &c); err != nil {
		return ledgerContent{}, fmt.Errorf("bad ledger content: %w", err)
	}
	if c.Format != ledgerFormat || c.Version != ledgerVersion {
		return ledgerContent{}, fmt.Errorf("format %q version %d is not %s version %d", c.Format, c.Version, ledgerFormat, ledgerVersion)
	}
	if err := c.Budget.Validate(); err != nil {
		return ledgerContent{}, err
	}
	for _, s := range c.History {
		if err := s.Validate(); err != nil {
			return ledgerContent{}, err
		}
	}
	return c, nil
}

// Charge records step against the budget. It first computes the ε the ledger would have
// spent after the step; if that exceeds the budget it returns a *BudgetExceededError
// (errors.Is(err, ErrBudgetExceeded)) and records nothing. Otherwise it writes the new
// history durably and only then returns nil: the caller may release the step's result
// after, and only after, a nil return. On any other error the step is not charged in
// memory (the file may or may not contain it, which can only over-count) and must not
// be released.
func (l *Ledger) Charge(step StepRecord) error {
	if err := step.Validate(); err != nil {
		return err
	}
	if step.Steps < 1 {
		return fmt.Errorf("dp: charge: steps %d: must be ≥ 1", step.Steps)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	after, err := l.acct.Epsilon(l.budget.Delta, step)
	if err != nil {
		return err
	}
	if after.Epsilon > l.budget.Epsilon {
		return &BudgetExceededError{Budget: l.budget, Spent: l.spent.Epsilon, WouldSpend: after.Epsilon, Step: step}
	}
	next, err := accountant.AppendStep(l.acct.History(), step)
	if err != nil {
		return err
	}
	if err := l.persist(next, l.charges+1); err != nil {
		return fmt.Errorf("dp: charge ledger %s: %w (the step is not charged; do not release it)", l.path, err)
	}
	if err := l.acct.Compose(step); err != nil {
		return err // unreachable: step was validated
	}
	l.spent = after
	l.charges++
	return nil
}

// WouldSpend returns the ε the ledger would have spent after step, without charging it.
func (l *Ledger) WouldSpend(step StepRecord) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := l.acct.Epsilon(l.budget.Delta, step)
	return r.Epsilon, err
}

// Spent returns the ε spent so far and the δ at which it is measured (the budget's δ).
func (l *Ledger) Spent() (eps, delta float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent.Epsilon, l.budget.Delta
}

// Remaining returns the ε still available.
func (l *Ledger) Remaining() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return math.Max(0, l.budget.Epsilon-l.spent.Epsilon)
}

// Result returns the spent ε with its order, grid and conversion.
func (l *Ledger) Result() accountant.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent
}

// Budget returns the ledger's budget.
func (l *Ledger) Budget() Budget { return l.budget }

// History returns the recorded steps (consecutive charges with the same σ and q merged)
// and the number of successful charges.
func (l *Ledger) History() ([]StepRecord, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acct.History(), l.charges
}

// persist writes the ledger with the given history atomically and durably.
func (l *Ledger) persist(history []StepRecord, charges int64) error {
	if history == nil {
		history = []StepRecord{}
	}
	content, err := json.Marshal(ledgerContent{Format: ledgerFormat, Version: ledgerVersion, Budget: l.budget, Charges: charges, History: history})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	data, err := json.MarshalIndent(ledgerEnvelope{SHA256: hex.EncodeToString(sum[:]), Ledger: content}, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir, base := filepath.Split(l.path)
	if dir == "" {
		dir = "."
	}
	f, err := l.fs.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	fail := func(step string, err error) error {
		_ = f.Close()
		_ = l.fs.Remove(tmp)
		return fmt.Errorf("%s %s: %w", step, tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		_ = l.fs.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := l.fs.Rename(tmp, l.path); err != nil {
		_ = l.fs.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, l.path, err)
	}
	if err := l.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// removeStaleTemps deletes temporary files left by a write that was interrupted.
func (l *Ledger) removeStaleTemps() {
	dir, base := filepath.Split(l.path)
	if dir == "" {
		dir = "."
	}
	matches, err := l.fs.Glob(filepath.Join(dir, base+".tmp-*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		_ = l.fs.Remove(m)
	}
}

// fileSystem is the file-system surface the ledger writes through; tests inject failures
// and crashes at each of its operations.
type fileSystem interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
	CreateTemp(dir, pattern string) (tempFile, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

type tempFile interface {
	Name() string
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

type osFS struct{}

var _ fileSystem = osFS{}

func (osFS) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (osFS) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }
func (osFS) CreateTemp(dir, pattern string) (tempFile, error) {
	return os.CreateTemp(dir, pattern)
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

// SyncDir makes a rename in dir durable. Windows cannot fsync a directory (NTFS makes the
// rename durable itself), so it is a no-op there.
func (osFS) SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
