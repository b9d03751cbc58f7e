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
	"strings"
	"sync"
	"time"

	"github.com/confide-fl/confide/dp/accountant"
)

// Budget is the total (ε, δ) a data owner allows to be spent. ε is measured at δ. There is
// no "unlimited" budget: a data owner either has one or does not train with DP at all.
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

// BudgetChange is one entry of a ledger's budget history: the budget in force from Time
// on, and the ε already spent (at its δ) when it was set. The first entry is the ledger's
// creation; each later one is a raise asked for with WithRaiseBudget.
type BudgetChange struct {
	Time   time.Time `json:"time"`
	Budget Budget    `json:"budget"`
	Spent  float64   `json:"spent_epsilon"`
}

// StepRecord is what one charge records: Steps applications of the Poisson-subsampled
// Gaussian mechanism with the given noise multiplier and sample rate.
type StepRecord = accountant.Step

// ErrBudgetExceeded is returned (wrapped in a *BudgetExceededError) by Ledger.Charge and
// Ledger.Check when the steps would take the spent ε past the budget. Test with
// errors.Is.
var ErrBudgetExceeded = errors.New("dp: privacy budget exceeded")

// BudgetExceededError says by how much refused steps would have exceeded the budget.
type BudgetExceededError struct {
	Budget     Budget
	Spent      float64 // ε spent before the steps
	WouldSpend float64 // ε after the steps
	Steps      []StepRecord
}

func (e *BudgetExceededError) Error() string {
	return fmt.Sprintf("dp: privacy budget exceeded: %s would bring ε from %.6g to %.6g, over the budget ε = %v at δ = %v",
		describeSteps(e.Steps), e.Spent, e.WouldSpend, e.Budget.Epsilon, e.Budget.Delta)
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetExceededError) Is(target error) bool { return target == ErrBudgetExceeded }

func describeSteps(steps []StepRecord) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%d step(s) at noise multiplier %v, sample rate %v", s.Steps, s.NoiseMultiplier, s.SampleRate)
		if s.Shares > 1 {
			parts[i] += fmt.Sprintf(" (distributed over ≥ %d summed updates)", s.Shares)
		}
	}
	return strings.Join(parts, " then ")
}

// ErrLedgerInUse is returned (wrapped) by OpenLedger when another process, or another
// open Ledger of this process, holds the ledger file's lock.
var ErrLedgerInUse = errors.New("dp: ledger in use")

type inUseError struct{ path, lock string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("dp: ledger %s is in use: another process (or another open ledger of this one) holds its lock %s, and a ledger has one owner at a time", e.path, e.lock)
}

func (e *inUseError) Is(target error) bool { return target == ErrLedgerInUse }

// ErrBudgetMismatch is returned (wrapped in a *BudgetMismatchError) when a ledger is
// opened with a budget other than the one it holds and the change is not allowed.
var ErrBudgetMismatch = errors.New("dp: budget differs from the ledger's")

// BudgetMismatchError says which budget a ledger holds and which one it was opened with.
type BudgetMismatchError struct {
	Ledger string // the file, or the store's description
	Pinned Budget // the budget the ledger holds
	Opened Budget // the budget it was opened with
}

func (e *BudgetMismatchError) Error() string {
	p, o := e.Pinned, e.Opened
	switch {
	case p.Delta != o.Delta:
		return fmt.Sprintf("dp: ledger %s holds the budget ε = %v at δ = %v but was opened with δ = %v: a ledger's δ cannot change (its ε is measured at that δ)", e.Ledger, p.Epsilon, p.Delta, o.Delta)
	case o.Epsilon > p.Epsilon:
		return fmt.Sprintf("dp: ledger %s holds the budget ε = %v at δ = %v but was opened with the larger ε = %v: a raise must be asked for explicitly, and is then recorded in the ledger", e.Ledger, p.Epsilon, p.Delta, o.Epsilon)
	default:
		return fmt.Sprintf("dp: ledger %s holds the budget ε = %v at δ = %v but was opened with the smaller ε = %v: a ledger's budget is never lowered (open it with ε = %v and stop charging when you want to spend less)", e.Ledger, p.Epsilon, p.Delta, o.Epsilon, p.Epsilon)
	}
}

// Is makes errors.Is(err, ErrBudgetMismatch) true.
func (e *BudgetMismatchError) Is(target error) bool { return target == ErrBudgetMismatch }

// Ledger is a data owner's durable record of the privacy it has spent, checked against its
// budget. Use it "check before training, charge before release": Check the planned steps
// before any work, and call Charge for the steps taken BEFORE any result that depends on
// their noise leaves the owner's control; release only if Charge returned nil. Charge
// returns only after the steps are on stable storage, so a crash at any point can
// over-count a step that was never released but can never lose one that was.
//
// The content — the budget and its history of changes, the merged (σ, q, steps) history
// and the number of charges — is JSON with a SHA-256 checksum; a ledger that fails the
// checksum is refused rather than reset. The budget is pinned: opening an existing ledger
// with a different budget fails with a *BudgetMismatchError, except a larger ε asked for
// with WithRaiseBudget, which is recorded with its time. A ledger is never lowered and
// its δ never changes.
//
// A ledger lives in a file of its own (OpenLedger: written durably, locked against a
// second process) or in a store the caller provides (OpenLedgerIn: a simulator's memory,
// an application's database). A Ledger is safe for concurrent use; charges are serialised.
// Close releases the file lock.
type Ledger struct {
	mu      sync.Mutex
	where   string // the file, or the store's description, for messages
	backend ledgerBackend
	budget  Budget
	budgets []BudgetChange
	acct    historyAccountant
	method  accountant.Method
	spent   accountant.Result
	charges int64
	closed  bool
}

// historyAccountant is what a Ledger needs of an accountant (accountant.RDP and
// accountant.PRV): a history, and the ε it spends, now or after more steps.
type historyAccountant interface {
	Compose(accountant.Step) error
	History() []accountant.Step
	Epsilon(delta float64, extra ...accountant.Step) (accountant.Result, error)
}

var (
	_ historyAccountant = (*accountant.RDP)(nil)
	_ historyAccountant = (*accountant.PRV)(nil)
)

// LedgerOption configures OpenLedger and OpenLedgerIn.
type LedgerOption func(*ledgerOptions)

type ledgerOptions struct {
	cfg   accountant.Config
	fs    fileSystem
	raise bool
	now   func() time.Time
	// method is the accountant asked for with WithAccountant; nil: the ledger's own (RDP
	// for a new one).
	method *accountant.Method
}

// WithAccounting sets the grid, conversion and series used to turn the history into ε
// (default: accountant.Config{}, the default grid and the improved conversion). Its
// Method is ignored: a ledger's accountant is its own (see WithAccountant).
func WithAccounting(cfg accountant.Config) LedgerOption {
	return func(o *ledgerOptions) { o.cfg = cfg }
}

// WithAccountant chooses the accountant of a new ledger (RDP without this option). A
// ledger keeps the accountant it was created with, so that the ε it reports never changes
// method under its owner: opening an existing ledger with another accountant fails with an
// error wrapping ErrAccountantMismatch. Ledgers written before accountants were recorded
// are RDP ledgers.
func WithAccountant(m accountant.Method) LedgerOption {
	return func(o *ledgerOptions) { o.method = &m }
}

// ErrAccountantMismatch is returned (wrapped) when a ledger is opened with an accountant
// other than the one it keeps.
var ErrAccountantMismatch = errors.New("dp: accountant differs from the ledger's")

// WithRaiseBudget allows the budget passed to OpenLedger or OpenLedgerIn to be larger
// (in ε, at the same δ) than the one the ledger holds. The raise is written to the ledger,
// with its time and the ε spent until then, before the open returns; the history of
// budgets is what an audit (ReadLedger) shows. Without it a larger budget is refused.
func WithRaiseBudget() LedgerOption {
	return func(o *ledgerOptions) { o.raise = true }
}

const (
	ledgerFormat = "confide-dp-ledger"
	// Version 2 added budget_history, version 3 the accountant; older files are read
	// (their budget history starts empty, their accountant is RDP) and rewritten as the
	// current version on the next write.
	ledgerVersion = 3
)

type ledgerContent struct {
	Format        string            `json:"format"`
	Version       int               `json:"version"`
	Accountant    accountant.Method `json:"accountant"`
	Budget        Budget            `json:"budget"`
	BudgetHistory []BudgetChange    `json:"budget_history,omitempty"`
	Charges       int64             `json:"charges"`
	History       []StepRecord      `json:"history"`
}

type ledgerEnvelope struct {
	SHA256 string          `json:"sha256"`
	Ledger json.RawMessage `json:"ledger"`
}

// ledgerBackend is where a Ledger's encoded content is kept.
type ledgerBackend interface {
	// load returns the stored content, or an error wrapping fs.ErrNotExist.
	load() ([]byte, error)
	// save replaces the content durably before returning.
	save(data []byte) error
	// release gives up whatever the backend holds (the file lock).
	release() error
}

// OpenLedger opens the ledger file at path, or creates it (durably, before returning) with
// the given budget if it does not exist. An existing ledger must hold the same budget (see
// WithRaiseBudget); a corrupt one is an error, never a fresh start.
//
// While the Ledger is open it holds an exclusive advisory lock on path+".lock" (flock on
// Linux, macOS and the BSDs, LockFileEx on Windows; no lock on other platforms), so two
// processes — say two clients started with the same state directory — cannot charge one
// ledger: the second open fails with an error wrapping ErrLedgerInUse. The lock is
// released by Close, or by the operating system when the process dies; the lock file is
// left in place (removing it could let two processes lock different files). Leftover
// temporary files of an interrupted write are removed once the lock is held.
func OpenLedger(path string, budget Budget, opts ...LedgerOption) (*Ledger, error) {
	if err := budget.Validate(); err != nil {
		return nil, err
	}
	o := options(opts)
	lockPath := path + ".lock"
	unlock, err := o.fs.Lock(lockPath)
	if errors.Is(err, ErrLedgerInUse) {
		return nil, &inUseError{path: path, lock: lockPath}
	}
	if err != nil {
		return nil, fmt.Errorf("dp: lock ledger %s: %w", path, err)
	}
	b := &fileBackend{path: path, fs: o.fs, unlock: unlock}
	b.removeStaleTemps()
	l, err := open(b, path, budget, o)
	if err != nil {
		_ = unlock()
		return nil, err
	}
	return l, nil
}

// LedgerStore keeps a ledger's encoded content outside a file of its own (OpenLedgerIn).
// Load returns what the last Save stored, or an error wrapping fs.ErrNotExist before the
// first Save. Save replaces the content and returns once it is as durable as the owner
// needs (a simulator's memory store: never; a database: committed). A store implementing
// fmt.Stringer is named by String in errors.
type LedgerStore interface {
	Load() ([]byte, error)
	Save(data []byte) error
}

// OpenLedgerIn opens the ledger kept in store, or creates it with the given budget, with
// the same content, checksum and budget rules as a ledger file. It takes no lock: the
// caller makes sure that one Ledger at a time is open on a store (a simulator opens a
// virtual client's ledger only while it runs that client's task).
func OpenLedgerIn(store LedgerStore, budget Budget, opts ...LedgerOption) (*Ledger, error) {
	if err := budget.Validate(); err != nil {
		return nil, err
	}
	return open(storeBackend{store}, storeName(store), budget, options(opts))
}

func options(opts []LedgerOption) ledgerOptions {
	o := ledgerOptions{fs: osFS{}, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func storeName(s LedgerStore) string {
	if n, ok := s.(fmt.Stringer); ok {
		return n.String()
	}
	return "in store"
}

// newHistoryAccountant returns an empty accountant of method m with the settings of cfg.
func newHistoryAccountant(m accountant.Method, cfg accountant.Config) (historyAccountant, error) {
	switch m {
	case accountant.MethodRDP:
		return accountant.NewRDP(cfg)
	case accountant.MethodPRV:
		return accountant.NewPRV(cfg)
	}
	return nil, fmt.Errorf("dp: unknown accountant %v", m)
}

// open reads (or creates) the ledger in b and checks the budget against it.
func open(b ledgerBackend, where string, budget Budget, o ledgerOptions) (*Ledger, error) {
	l := &Ledger{where: where, backend: b, budget: budget}
	data, err := b.load()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dp: read ledger %s: %w", where, err)
	}
	exists := err == nil
	var c ledgerContent
	if exists {
		if c, err = decodeLedger(data); err != nil {
			return nil, fmt.Errorf("dp: ledger %s: %w (refusing to reset it: restore it from a backup)", where, err)
		}
		l.method = c.Accountant
		if o.method != nil && *o.method != c.Accountant {
			return nil, fmt.Errorf("%w: ledger %s keeps the %s accountant but was opened with %s: a ledger keeps the accountant it was created with (open it with %s, or start a new ledger)",
				ErrAccountantMismatch, where, c.Accountant, *o.method, c.Accountant)
		}
	} else if o.method != nil {
		l.method = *o.method
	}
	acct, err := newHistoryAccountant(l.method, o.cfg)
	if err != nil {
		return nil, err
	}
	l.acct = acct
	switch {
	case !exists:
		l.budgets = []BudgetChange{{Time: o.now().UTC(), Budget: budget}}
		if err := l.persist(nil, 0); err != nil {
			return nil, fmt.Errorf("dp: create ledger %s: %w", where, err)
		}
	default:
		for _, s := range c.History {
			if err := acct.Compose(s); err != nil {
				return nil, fmt.Errorf("dp: ledger %s: %w", where, err)
			}
		}
		l.charges, l.budgets = c.Charges, c.BudgetHistory
		if c.Budget != budget {
			if !o.raise || c.Budget.Delta != budget.Delta || budget.Epsilon < c.Budget.Epsilon {
				return nil, &BudgetMismatchError{Ledger: where, Pinned: c.Budget, Opened: budget}
			}
			spent, err := acct.Epsilon(budget.Delta)
			if err != nil {
				return nil, fmt.Errorf("dp: ledger %s: %w", where, err)
			}
			l.budgets = append(l.budgets, BudgetChange{Time: o.now().UTC(), Budget: budget, Spent: spent.Epsilon})
			if err := l.persist(acct.History(), l.charges); err != nil {
				return nil, fmt.Errorf("dp: record the budget raise in ledger %s: %w", where, err)
			}
		}
	}
	if l.spent, err = acct.Epsilon(budget.Delta); err != nil {
		return nil, fmt.Errorf("dp: ledger %s: %w", where, err)
	}
	return l, nil
}

// LedgerSnapshot is the content of a ledger, as read by ReadLedger and ReadLedgerIn.
type LedgerSnapshot struct {
	// Accountant is the accountant the ledger keeps (RDP for ledgers older than version 3).
	Accountant accountant.Method
	Budget     Budget
	// BudgetHistory lists the budgets in force since creation, the last one being Budget
	// (empty for a ledger written before budget histories were kept).
	BudgetHistory []BudgetChange
	Charges       int64
	History       []StepRecord
}

// ReadLedger reads and verifies a ledger file without opening it for charging (for
// audits). It takes no lock, so it can read the ledger of a running client: every write
// replaces the file whole.
func ReadLedger(path string) (LedgerSnapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return LedgerSnapshot{}, fmt.Errorf("dp: read ledger: %w", err)
	}
	return snapshot(data, path)
}

// ReadLedgerIn reads and verifies the ledger kept in store without opening it.
func ReadLedgerIn(store LedgerStore) (LedgerSnapshot, error) {
	data, err := store.Load()
	if err != nil {
		return LedgerSnapshot{}, fmt.Errorf("dp: read ledger %s: %w", storeName(store), err)
	}
	return snapshot(data, storeName(store))
}

func snapshot(data []byte, where string) (LedgerSnapshot, error) {
	c, err := decodeLedger(data)
	if err != nil {
		return LedgerSnapshot{}, fmt.Errorf("dp: ledger %s: %w", where, err)
	}
	return LedgerSnapshot{Accountant: c.Accountant, Budget: c.Budget, BudgetHistory: c.BudgetHistory, Charges: c.Charges, History: c.History}, nil
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
	if c.Format != ledgerFormat || c.Version < 1 || c.Version > ledgerVersion {
		return ledgerContent{}, fmt.Errorf("format %q version %d is not %s version 1 to %d", c.Format, c.Version, ledgerFormat, ledgerVersion)
	}
	if err := c.Budget.Validate(); err != nil {
		return ledgerContent{}, err
	}
	for i, b := range c.BudgetHistory {
		if err := b.Budget.Validate(); err != nil {
			return ledgerContent{}, fmt.Errorf("budget history entry %d: %w", i, err)
		}
	}
	if n := len(c.BudgetHistory); n > 0 && c.BudgetHistory[n-1].Budget != c.Budget {
		return ledgerContent{}, fmt.Errorf("the budget ε = %v, δ = %v is not the last one of its history", c.Budget.Epsilon, c.Budget.Delta)
	}
	for _, s := range c.History {
		if err := s.Validate(); err != nil {
			return ledgerContent{}, err
		}
	}
	return c, nil
}

// Charge records steps (taken in order) against the budget. It first computes the ε the
// ledger would have spent after them; if that exceeds the budget it returns a
// *BudgetExceededError (errors.Is(err, ErrBudgetExceeded)) and records nothing. Otherwise
// it writes the new history durably and only then returns nil: the caller may release the
// steps' result after, and only after, a nil return. On any other error the steps are not
// charged in memory (the stored ledger may or may not contain them, which can only
// over-count) and must not be released.
func (l *Ledger) Charge(steps ...StepRecord) error {
	if err := validateCharge(steps); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("dp: charge ledger %s: it is closed", l.where)
	}
	after, err := l.check(steps)
	if err != nil {
		return err
	}
	next := l.acct.History()
	for _, s := range steps {
		if next, err = accountant.AppendStep(next, s); err != nil {
			return err
		}
	}
	if err := l.persist(next, l.charges+1); err != nil {
		return fmt.Errorf("dp: charge ledger %s: %w (the steps are not charged; do not release their result)", l.where, err)
	}
	for _, s := range steps {
		if err := l.acct.Compose(s); err != nil {
			return err // unreachable: the steps were validated
		}
	}
	l.spent = after
	l.charges++
	return nil
}

// Check returns nil when steps would fit the budget, and the *BudgetExceededError that
// Charge would return otherwise; it records nothing. Call it before doing the work the
// steps stand for, so an over-budget task is refused before it costs anything.
func (l *Ledger) Check(steps ...StepRecord) error {
	if err := validateCharge(steps); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.check(steps)
	return err
}

func validateCharge(steps []StepRecord) error {
	if len(steps) == 0 {
		return errors.New("dp: charge: no steps")
	}
	for _, s := range steps {
		if err := s.Validate(); err != nil {
			return err
		}
		if s.Steps < 1 {
			return fmt.Errorf("dp: charge: steps %d: must be ≥ 1", s.Steps)
		}
	}
	return nil
}

// check returns the ε after steps, or a *BudgetExceededError. l.mu is held.
func (l *Ledger) check(steps []StepRecord) (accountant.Result, error) {
	after, err := l.acct.Epsilon(l.budget.Delta, steps...)
	if err != nil {
		return accountant.Result{}, err
	}
	if after.Epsilon > l.budget.Epsilon {
		return accountant.Result{}, &BudgetExceededError{Budget: l.budget, Spent: l.spent.Epsilon, WouldSpend: after.Epsilon, Steps: append([]StepRecord(nil), steps...)}
	}
	return after, nil
}

// WouldSpend returns the ε the ledger would have spent after steps, without charging them.
func (l *Ledger) WouldSpend(steps ...StepRecord) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := l.acct.Epsilon(l.budget.Delta, steps...)
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

// Accountant returns the accountant the ledger keeps.
func (l *Ledger) Accountant() accountant.Method { return l.method }

// BudgetHistory returns the budgets in force since the ledger was created, oldest first.
func (l *Ledger) BudgetHistory() []BudgetChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]BudgetChange(nil), l.budgets...)
}

// History returns the recorded steps (consecutive charges with the same σ and q merged)
// and the number of successful charges.
func (l *Ledger) History() ([]StepRecord, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acct.History(), l.charges
}

// Where returns the ledger's file, or its store's description.
func (l *Ledger) Where() string { return l.where }

// Close releases the ledger's file lock; later charges fail, reads keep working. Closing
// twice is harmless.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.backend.release(); err != nil {
		return fmt.Errorf("dp: close ledger %s: %w", l.where, err)
	}
	return nil
}

// persist writes the ledger with the given history through the backend.
func (l *Ledger) persist(history []StepRecord, charges int64) error {
	if history == nil {
		history = []StepRecord{}
	}
	content, err := json.Marshal(ledgerContent{Format: ledgerFormat, Version: ledgerVersion, Accountant: l.method, Budget: l.budget, BudgetHistory: l.budgets, Charges: charges, History: history})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	data, err := json.MarshalIndent(ledgerEnvelope{SHA256: hex.EncodeToString(sum[:]), Ledger: content}, "", "  ")
	if err != nil {
		return err
	}
	return l.backend.save(append(data, '\n'))
}

// storeBackend keeps the ledger in a caller's LedgerStore.
type storeBackend struct{ s LedgerStore }

func (b storeBackend) load() ([]byte, error)  { return b.s.Load() }
func (b storeBackend) save(data []byte) error { return b.s.Save(data) }
func (storeBackend) release() error           { return nil }

// fileBackend keeps the ledger in a file of its own, rewritten whole on every save: write a
// temporary file in the same directory, fsync it, rename it over the ledger, fsync the
// directory.
type fileBackend struct {
	path   string
	fs     fileSystem
	unlock func() error
}

func (b *fileBackend) load() ([]byte, error) { return b.fs.ReadFile(b.path) }
func (b *fileBackend) release() error        { return b.unlock() }

func (b *fileBackend) save(data []byte) error {
	dir, base := filepath.Split(b.path)
	if dir == "" {
		dir = "."
	}
	f, err := b.fs.CreateTemp(dir, base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	fail := func(step string, err error) error {
		_ = f.Close()
		_ = b.fs.Remove(tmp)
		return fmt.Errorf("%s %s: %w", step, tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		_ = b.fs.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := b.fs.Rename(tmp, b.path); err != nil {
		_ = b.fs.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, b.path, err)
	}
	if err := b.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// removeStaleTemps deletes temporary files left by a write that was interrupted. It runs
// with the lock held, so no other process is writing one.
func (b *fileBackend) removeStaleTemps() {
	dir, base := filepath.Split(b.path)
	if dir == "" {
		dir = "."
	}
	matches, err := b.fs.Glob(filepath.Join(dir, base+".tmp-*"))
	if err != nil {
		return
	}
	for _, m := range matches {
		_ = b.fs.Remove(m)
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
	// Lock takes an exclusive lock on the file name (created if missing) without waiting:
	// an error wrapping ErrLedgerInUse if it is held. unlock releases it.
	Lock(name string) (unlock func() error, err error)
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

// Lock locks a file of its own rather than the ledger, which every write replaces by a
// rename: a lock on the ledger's old inode would not stop a process opening the new one.
// Closing the descriptor releases the lock (lockFile is per platform).
func (osFS) Lock(name string) (func() error, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f.Close, nil
}

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
