package dp

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/dp/accountant"
)

var testBudget = Budget{Epsilon: 3, Delta: 1e-5}

func epsilonOf(t *testing.T, steps []StepRecord) float64 {
	t.Helper()
	r, err := accountant.Epsilon(steps, testBudget.Delta, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Epsilon
}

func TestLedgerChargesPersistsAndReopens(t *testing.T) {
	p := filepath.Join(t.TempDir(), "client.ledger")
	l, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	if eps, delta := l.Spent(); eps != 0 || delta != testBudget.Delta {
		t.Fatalf("new ledger spent (%v, %v), want (0, %v)", eps, delta, testBudget.Delta)
	}
	steps := []StepRecord{
		{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 100},
		{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 50},
		{NoiseMultiplier: 2, SampleRate: 0.05, Steps: 10},
	}
	for i, s := range steps {
		want, err := l.WouldSpend(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Charge(s); err != nil {
			t.Fatal(err)
		}
		if eps, _ := l.Spent(); eps != want || eps != epsilonOf(t, steps[:i+1]) {
			t.Errorf("after charge %d: spent %v, WouldSpend said %v, accountant says %v", i, eps, want, epsilonOf(t, steps[:i+1]))
		}
	}
	spent, _ := l.Spent()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := again.Spent(); eps != spent {
		t.Errorf("reopened ledger spent %v, want %v", eps, spent)
	}
	h, n := again.History()
	if n != 3 || len(h) != 2 || h[0].Steps != 150 {
		t.Errorf("reopened history %+v after %d charges, want 2 merged entries after 3", h, n)
	}
	snap, err := ReadLedger(p)
	if err != nil || snap.Charges != 3 || snap.Budget != testBudget {
		t.Errorf("ReadLedger: %+v, %v", snap, err)
	}
}

func TestLedgerRefusesStepsOverBudget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "client.ledger")
	l, err := OpenLedger(p, Budget{Epsilon: 1, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	small := StepRecord{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 100}
	if err := l.Charge(small); err != nil {
		t.Fatal(err)
	}
	before, _ := l.Spent()
	big := StepRecord{NoiseMultiplier: 0.8, SampleRate: 0.1, Steps: 1000}
	err = l.Charge(big)
	var be *BudgetExceededError
	if !errors.Is(err, ErrBudgetExceeded) || !errors.As(err, &be) {
		t.Fatalf("over-budget charge: err %v, want ErrBudgetExceeded", err)
	}
	if be.Spent != before || !(be.WouldSpend > 1) || len(be.Steps) != 1 || be.Steps[0] != big {
		t.Errorf("error details %+v", be)
	}
	if err := l.Check(big); !errors.Is(err, ErrBudgetExceeded) || err.Error() != be.Error() {
		t.Errorf("Check of the over-budget step: %v, want Charge's refusal %v", err, be)
	}
	if err := l.Check(StepRecord{NoiseMultiplier: 5, SampleRate: 0.001, Steps: 1}); err != nil {
		t.Errorf("Check of a step within the budget: %v", err)
	}
	after, _ := l.Spent()
	_ = l.Close()
	reopened, err := OpenLedger(p, Budget{Epsilon: 1, Delta: 1e-5})
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := reopened.Spent()
	if after != before || onDisk != before {
		t.Errorf("refused step changed the ledger: spent %v → %v (on disk %v)", before, after, onDisk)
	}
	if l.Remaining() != 1-before {
		t.Errorf("remaining %v, want %v", l.Remaining(), 1-before)
	}
}

func TestLedgerRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "client.ledger")
	if _, err := OpenLedger(p, Budget{Epsilon: 0, Delta: 1e-5}); err == nil || !strings.Contains(err.Error(), "epsilon") {
		t.Errorf("zero ε budget: %v", err)
	}
	if _, err := OpenLedger(p, Budget{Epsilon: 1, Delta: 1}); err == nil || !strings.Contains(err.Error(), "delta") {
		t.Errorf("δ = 1 budget: %v", err)
	}
	l, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []StepRecord{
		{NoiseMultiplier: 1, SampleRate: 0.1, Steps: 0},
		{NoiseMultiplier: -1, SampleRate: 0.1, Steps: 1},
		{NoiseMultiplier: 1, SampleRate: 2, Steps: 1},
	} {
		if err := l.Charge(s); err == nil {
			t.Errorf("%+v: want an error", s)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(p, Budget{Epsilon: 4, Delta: 1e-5}); !errors.Is(err, ErrBudgetMismatch) || !strings.Contains(err.Error(), "larger ε = 4") {
		t.Errorf("different budget: %v", err)
	}
	// A corrupted ledger is refused, never reset to zero.
	data, _ := os.ReadFile(p)
	corrupt := strings.Replace(string(data), `"charges": 0`, `"charges": 7`, 1)
	if corrupt == string(data) {
		t.Fatal("test setup: pattern not found in ledger file")
	}
	if err := os.WriteFile(p, []byte(corrupt), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLedger(p, testBudget); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt ledger: %v", err)
	}
	// Leftovers of an interrupted write are removed on open.
	q := filepath.Join(dir, "other.ledger")
	stale := q + ".tmp-123"
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	lq, err := OpenLedger(q, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	defer lq.Close()
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file survived open: %v", err)
	}
}

// memFS models a POSIX file system across a crash: file data survives only once fsynced,
// and directory entries (creations, renames, removals) only once the directory is
// fsynced — or, with keepDirOps, as soon as they are made (as ext4 and XFS usually do).
// Every mutating operation is numbered; the one numbered crashAt, and all after it, fail
// as if the process had died just before it, and the one numbered failAt fails once
// without effect while the process goes on.
type memFS struct {
	names   map[string]*memInode // the namespace as the running process sees it
	durable map[string]*memInode // the namespace as of the last directory fsync
	ops     int
	crashAt int
	failAt  int
	crashed bool
	nextTmp int
	locks   map[string]bool // held by the running process; a crash releases them
}

type memInode struct {
	data, synced []byte
}

var (
	errInjected = errors.New("injected failure")
	errCrashed  = errors.New("process crashed")
)

func newMemFS() *memFS {
	return &memFS{names: map[string]*memInode{}, durable: map[string]*memInode{}}
}

var _ fileSystem = (*memFS)(nil)

// op numbers a mutating operation and decides whether it fails.
func (m *memFS) op() error {
	if m.crashed {
		return errCrashed
	}
	m.ops++
	if m.ops == m.crashAt {
		m.crashed = true
		return errCrashed
	}
	if m.ops == m.failAt {
		return errInjected
	}
	return nil
}

// restart models the machine coming back after a crash.
func (m *memFS) restart(keepDirOps bool) {
	ns := m.durable
	if keepDirOps {
		ns = m.names
	}
	m.names = map[string]*memInode{}
	for name, ino := range ns {
		restored := &memInode{data: append([]byte(nil), ino.synced...), synced: append([]byte(nil), ino.synced...)}
		m.names[name] = restored
	}
	m.durable = map[string]*memInode{}
	for k, v := range m.names {
		m.durable[k] = v
	}
	m.crashed, m.crashAt, m.failAt = false, 0, 0
	m.locks = nil
}

// Lock is not a numbered operation: the lock file holds no ledger data.
func (m *memFS) Lock(name string) (func() error, error) {
	if m.crashed {
		return nil, errCrashed
	}
	if m.locks[name] {
		return nil, ErrLedgerInUse
	}
	if m.locks == nil {
		m.locks = map[string]bool{}
	}
	m.locks[name] = true
	return func() error { delete(m.locks, name); return nil }, nil
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	if m.crashed {
		return nil, errCrashed
	}
	ino, ok := m.names[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), ino.data...), nil
}

func (m *memFS) Glob(pattern string) ([]string, error) {
	if m.crashed {
		return nil, errCrashed
	}
	var out []string
	for name := range m.names {
		if ok, _ := path.Match(pattern, name); ok {
			out = append(out, name)
		}
	}
	return out, nil
}

func (m *memFS) CreateTemp(dir, pattern string) (tempFile, error) {
	if err := m.op(); err != nil {
		return nil, err
	}
	m.nextTmp++
	name := filepath.Join(dir, strings.Replace(pattern, "*", strconv.Itoa(m.nextTmp), 1))
	ino := &memInode{}
	m.names[name] = ino
	return &memFile{fs: m, name: name, ino: ino}, nil
}

func (m *memFS) Rename(oldpath, newpath string) error {
	if err := m.op(); err != nil {
		return err
	}
	ino, ok := m.names[oldpath]
	if !ok {
		return fs.ErrNotExist
	}
	delete(m.names, oldpath)
	m.names[newpath] = ino
	return nil
}

func (m *memFS) Remove(name string) error {
	if err := m.op(); err != nil {
		return err
	}
	if _, ok := m.names[name]; !ok {
		return fs.ErrNotExist
	}
	delete(m.names, name)
	return nil
}

func (m *memFS) SyncDir(string) error {
	if err := m.op(); err != nil {
		return err
	}
	m.durable = map[string]*memInode{}
	for k, v := range m.names {
		m.durable[k] = v
	}
	return nil
}

type memFile struct {
	fs     *memFS
	name   string
	ino    *memInode
	closed bool
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.fs.op(); err != nil {
		return 0, err
	}
	f.ino.data = append(f.ino.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	if err := f.fs.op(); err != nil {
		return err
	}
	f.ino.synced = append([]byte(nil), f.ino.data...)
	return nil
}

func (f *memFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	return f.fs.op()
}

func withFileSystem(fsys fileSystem) LedgerOption {
	return func(o *ledgerOptions) { o.fs = fsys }
}

// crashSteps are charged in order; the fourth would exceed testBudget.
var crashSteps = []StepRecord{
	{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 200},
	{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 300},
	{NoiseMultiplier: 0.9, SampleRate: 0.02, Steps: 100},
	{NoiseMultiplier: 0.5, SampleRate: 0.2, Steps: 500},
	{NoiseMultiplier: 3, SampleRate: 0.01, Steps: 10},
}

// runClient opens the ledger and charges crashSteps until the first error other than
// ErrBudgetExceeded (a crash). It returns the steps it released (Charge returned nil) and
// the step in flight when it stopped, if any.
func runClient(fsys *memFS, p string) (released []StepRecord, inFlight *StepRecord) {
	l, err := OpenLedger(p, testBudget, withFileSystem(fsys))
	if err != nil {
		return nil, nil
	}
	for i := range crashSteps {
		s := crashSteps[i]
		err := l.Charge(s)
		switch {
		case err == nil:
			released = append(released, s)
		case errors.Is(err, ErrBudgetExceeded):
		default:
			if fsys.crashed {
				return released, &s
			}
		}
	}
	return released, nil
}

func TestLedgerCrashAtEveryWritePoint(t *testing.T) {
	const p = "/data/client.ledger"
	clean := newMemFS()
	allReleased, _ := runClient(clean, p)
	total := clean.ops
	if len(allReleased) != len(crashSteps)-1 {
		t.Fatalf("setup: %d of %d steps released without crashes, want all but the over-budget one", len(allReleased), len(crashSteps))
	}
	for k := 1; k <= total+1; k++ {
		for _, keepDirOps := range []bool{false, true} {
			name := fmt.Sprintf("crash before op %d of %d, directory ops kept %v", k, total, keepDirOps)
			fsys := newMemFS()
			fsys.crashAt = k
			released, inFlight := runClient(fsys, p)
			fsys.restart(keepDirOps)
			l, err := OpenLedger(p, testBudget, withFileSystem(fsys))
			if err != nil {
				t.Errorf("%s: reopening: %v", name, err)
				continue
			}
			spent, _ := l.Spent()
			lower := epsilonOf(t, released)
			upper := lower
			if inFlight != nil {
				upper = epsilonOf(t, append(released, *inFlight))
			}
			if spent < lower {
				t.Errorf("%s: spent %v after restart, below the %v of the %d released steps", name, spent, lower, len(released))
			}
			if spent > upper {
				t.Errorf("%s: spent %v after restart, above the %v of the attempted steps", name, spent, upper)
			}
			// The recovered ledger keeps working.
			if err := l.Charge(StepRecord{NoiseMultiplier: 5, SampleRate: 0.001, Steps: 1}); err != nil {
				t.Errorf("%s: charging after recovery: %v", name, err)
			}
		}
	}
}

func TestLedgerFailureAtEveryWritePoint(t *testing.T) {
	// A write that fails (disk full, I/O error) while the process goes on: the failed
	// charge is reported, nothing is released for it, later charges proceed, and the
	// reopened ledger never counts less than what was released.
	const p = "/data/client.ledger"
	clean := newMemFS()
	runClient(clean, p)
	for k := 1; k <= clean.ops; k++ {
		fsys := newMemFS()
		fsys.failAt = k
		l, err := OpenLedger(p, testBudget, withFileSystem(fsys))
		if err != nil {
			continue // the failure hit the ledger's creation, which reported it
		}
		var released []StepRecord
		failures := 0
		for _, s := range crashSteps {
			err := l.Charge(s)
			switch {
			case err == nil:
				released = append(released, s)
			case errors.Is(err, ErrBudgetExceeded):
			case errors.Is(err, errInjected):
				failures++
			default:
				t.Fatalf("op %d: unexpected error %v", k, err)
			}
		}
		inMemory, _ := l.Spent()
		if want := epsilonOf(t, released); inMemory != want {
			t.Errorf("op %d: in-memory spent %v, want %v of the released steps", k, inMemory, want)
		}
		fsys.restart(false)
		reopened, err := OpenLedger(p, testBudget, withFileSystem(fsys))
		if err != nil {
			t.Errorf("op %d: reopening: %v", k, err)
			continue
		}
		if spent, _ := reopened.Spent(); spent < epsilonOf(t, released) {
			t.Errorf("op %d: reopened spent %v below released %v", k, spent, epsilonOf(t, released))
		}
	}
}

// TestLedgerSurvivesKill runs a client in a child process that charges one step after
// another and reports each released step on stdout, kills it with SIGKILL mid-stream, and
// checks that the reopened ledger counts at least every step the child reported.
func TestLedgerSurvivesKill(t *testing.T) {
	if p := os.Getenv("CONFIDE_DP_LEDGER_CHILD"); p != "" {
		ledgerChild(p)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	p := filepath.Join(t.TempDir(), "client.ledger")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerSurvivesKill$")
	cmd.Env = append(os.Environ(), "CONFIDE_DP_LEDGER_CHILD="+p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 40
	released := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "released ")); err == nil {
			released = n
		}
		if released >= killAfter {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if released < killAfter {
		t.Fatalf("child reported only %d steps before exiting", released)
	}
	l, err := OpenLedger(p, Budget{Epsilon: 1e6, Delta: 1e-5})
	if err != nil {
		t.Fatalf("reopening after kill: %v", err)
	}
	h, charges := l.History()
	if len(h) != 1 || h[0].Steps < released || charges < int64(released) {
		t.Errorf("after kill: history %+v, %d charges; the child had released %d steps", h, charges, released)
	}
}

func ledgerChild(p string) {
	l, err := OpenLedger(p, Budget{Epsilon: 1e6, Delta: 1e-5})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := 1; i <= 100000; i++ {
		if err := l.Charge(StepRecord{NoiseMultiplier: 1, SampleRate: 0.01, Steps: 1}); err != nil {
			fmt.Println("charge:", err)
			os.Exit(2)
		}
		fmt.Printf("released %d\n", i)
	}
	os.Exit(0)
}

func BenchmarkLedgerCharge(b *testing.B) {
	l, err := OpenLedger(filepath.Join(b.TempDir(), "bench.ledger"), Budget{Epsilon: math.MaxFloat64, Delta: 1e-5})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := l.Charge(StepRecord{NoiseMultiplier: 1, SampleRate: 0.01, Steps: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

func withClock(now func() time.Time) LedgerOption {
	return func(o *ledgerOptions) { o.now = now }
}

// TestLedgerBudgetIsPinnedAndRaisedOnlyOnRequest: a larger budget is refused unless
// WithRaiseBudget asks for it; the raise is then in the file, with its time and the ε
// spent before it; a smaller budget and a different δ are refused even with the option.
func TestLedgerBudgetIsPinnedAndRaisedOnlyOnRequest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "client.ledger")
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	raised := created.Add(48 * time.Hour)
	l, err := OpenLedger(p, Budget{Epsilon: 1, Delta: 1e-5}, withClock(func() time.Time { return created }))
	if err != nil {
		t.Fatal(err)
	}
	step := StepRecord{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 100}
	if err := l.Charge(step); err != nil {
		t.Fatal(err)
	}
	spent, _ := l.Spent()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		budget Budget
		raise  bool
		want   string
	}{
		{"larger-without-option", Budget{Epsilon: 2, Delta: 1e-5}, false, "larger ε = 2: a raise must be asked for explicitly"},
		{"smaller-without-option", Budget{Epsilon: 0.5, Delta: 1e-5}, false, "smaller ε = 0.5: a ledger's budget is never lowered"},
		{"smaller-with-option", Budget{Epsilon: 0.5, Delta: 1e-5}, true, "never lowered"},
		{"other-delta-with-option", Budget{Epsilon: 2, Delta: 1e-6}, true, "a ledger's δ cannot change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []LedgerOption
			if tc.raise {
				opts = append(opts, WithRaiseBudget())
			}
			_, err := OpenLedger(p, tc.budget, opts...)
			var me *BudgetMismatchError
			if !errors.As(err, &me) || !errors.Is(err, ErrBudgetMismatch) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want a *BudgetMismatchError naming %s and saying %q", err, p, tc.want)
			}
			if me.Pinned != (Budget{Epsilon: 1, Delta: 1e-5}) || me.Opened != tc.budget {
				t.Errorf("error fields %+v", me)
			}
		})
	}
	l, err = OpenLedger(p, Budget{Epsilon: 2, Delta: 1e-5}, WithRaiseBudget(), withClock(func() time.Time { return raised }))
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := l.Spent(); eps != spent || l.Budget().Epsilon != 2 {
		t.Errorf("after the raise: spent %v of %v, want %v of 2", eps, l.Budget().Epsilon, spent)
	}
	want := []BudgetChange{
		{Time: created, Budget: Budget{Epsilon: 1, Delta: 1e-5}},
		{Time: raised, Budget: Budget{Epsilon: 2, Delta: 1e-5}, Spent: spent},
	}
	if got := l.BudgetHistory(); !slices.Equal(got, want) {
		t.Errorf("budget history %+v, want %+v", got, want)
	}
	_ = l.Close()
	snap, err := ReadLedger(p)
	if err != nil || snap.Budget.Epsilon != 2 || !slices.Equal(snap.BudgetHistory, want) || snap.Charges != 1 {
		t.Fatalf("ReadLedger after the raise: %+v, %v", snap, err)
	}
	// The raised budget is now the pinned one: reopening with it needs no option, and the
	// option with the same budget records nothing new.
	for _, opts := range [][]LedgerOption{nil, {WithRaiseBudget()}} {
		l, err := OpenLedger(p, Budget{Epsilon: 2, Delta: 1e-5}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(l.BudgetHistory()); n != 2 {
			t.Errorf("%d budget changes after reopening with the same budget, want 2", n)
		}
		_ = l.Close()
	}
	if _, err := OpenLedger(p, Budget{Epsilon: 1, Delta: 1e-5}); !errors.Is(err, ErrBudgetMismatch) {
		t.Errorf("back to the old budget: %v, want a refusal", err)
	}
}

// TestLedgerLockKeepsASecondOwnerOut: while a ledger is open, opening it again (from this
// process, or another: TestLedgerLockAcrossProcesses) fails with ErrLedgerInUse and names
// the file; Close releases the lock and stops charges.
func TestLedgerLockKeepsASecondOwnerOut(t *testing.T) {
	p := filepath.Join(t.TempDir(), "client.ledger")
	l, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenLedger(p, testBudget)
	if !errors.Is(err, ErrLedgerInUse) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: %v, want ErrLedgerInUse naming %s", err, p)
	}
	// The audit read needs no lock.
	if _, err := ReadLedger(p); err != nil {
		t.Errorf("ReadLedger of an open ledger: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Charge(StepRecord{NoiseMultiplier: 1, SampleRate: 0.01, Steps: 1}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("charge after Close: %v", err)
	}
	again, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	_ = again.Close()
}

// TestLedgerLockAcrossProcesses: a child process holds the ledger open; the parent cannot
// open it until the child exits.
func TestLedgerLockAcrossProcesses(t *testing.T) {
	if p := os.Getenv("CONFIDE_DP_LEDGER_HOLDER"); p != "" {
		l, err := OpenLedger(p, testBudget)
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(2)
		}
		fmt.Println("holding")
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes our stdin
		_ = l.Close()
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	p := filepath.Join(t.TempDir(), "client.ledger")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerLockAcrossProcesses$")
	cmd.Env = append(os.Environ(), "CONFIDE_DP_LEDGER_HOLDER="+p)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "holding" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q", sc.Text())
	}
	_, err = OpenLedger(p, testBudget)
	if !errors.Is(err, ErrLedgerInUse) || !strings.Contains(err.Error(), p) {
		t.Errorf("open while the child holds the ledger: %v, want ErrLedgerInUse", err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	l, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatalf("open after the child exited: %v", err)
	}
	_ = l.Close()
}

// mapStore is a LedgerStore in memory.
type mapStore struct{ data []byte }

func (s *mapStore) Load() ([]byte, error) {
	if s.data == nil {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(s.data), nil
}
func (s *mapStore) Save(data []byte) error { s.data = slices.Clone(data); return nil }
func (s *mapStore) String() string         { return "test store" }

// TestLedgerInStoreBehavesLikeTheFile: a ledger kept in a caller's store holds the same
// content as the file (ReadLedger reads it once written out), with the same budget rules.
func TestLedgerInStoreBehavesLikeTheFile(t *testing.T) {
	store := &mapStore{}
	if _, err := ReadLedgerIn(store); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadLedgerIn of an empty store: %v", err)
	}
	l, err := OpenLedgerIn(store, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	steps := []StepRecord{{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 600}, {NoiseMultiplier: 0.9, SampleRate: 0.02, Steps: 100}}
	if err := l.Charge(steps...); err != nil {
		t.Fatal(err)
	}
	if eps, _ := l.Spent(); eps != epsilonOf(t, steps) {
		t.Errorf("spent %v, accountant %v", eps, epsilonOf(t, steps))
	}
	again, err := OpenLedgerIn(store, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	if h, n := again.History(); n != 1 || !slices.Equal(h, steps) {
		t.Errorf("reopened: %+v after %d charges, want %+v after 1", h, n, steps)
	}
	p := filepath.Join(t.TempDir(), "copy.ledger")
	if err := os.WriteFile(p, store.data, 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := ReadLedger(p)
	if err != nil {
		t.Fatal(err)
	}
	fromStore, err := ReadLedgerIn(store)
	if err != nil || !slices.Equal(fromFile.History, fromStore.History) || fromFile.Budget != fromStore.Budget {
		t.Errorf("store snapshot %+v (%v), file snapshot %+v", fromStore, err, fromFile)
	}
	if _, err := OpenLedgerIn(store, Budget{Epsilon: 4, Delta: 1e-5}); !errors.Is(err, ErrBudgetMismatch) || !strings.Contains(err.Error(), "test store") {
		t.Errorf("other budget: %v", err)
	}
	store.data = []byte("{garbage")
	if _, err := OpenLedgerIn(store, testBudget); err == nil || !strings.Contains(err.Error(), "not a ledger file") {
		t.Errorf("garbage in the store: %v", err)
	}
}

// TestLedgerReadsVersion1: a ledger written before budget histories were kept opens as an
// RDP ledger, and its next write is the current version.
func TestLedgerReadsVersion1(t *testing.T) {
	content := `{"format":"confide-dp-ledger","version":1,"budget":{"epsilon":3,"delta":1e-05},"charges":2,"history":[{"noise_multiplier":1.1,"sample_rate":0.01,"steps":150}]}`
	sum := sha256.Sum256([]byte(content))
	file := fmt.Sprintf(`{"sha256": %q, "ledger": %s}`, hex.EncodeToString(sum[:]), content)
	p := filepath.Join(t.TempDir(), "v1.ledger")
	if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := OpenLedger(p, testBudget)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if h, n := l.History(); n != 2 || len(h) != 1 || h[0].Steps != 150 || len(l.BudgetHistory()) != 0 {
		t.Fatalf("v1 ledger read as %+v after %d charges, budgets %+v", h, n, l.BudgetHistory())
	}
	if err := l.Charge(StepRecord{NoiseMultiplier: 1.1, SampleRate: 0.01, Steps: 10}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if !strings.Contains(string(data), `"version": 3`) || !strings.Contains(string(data), `"accountant": "rdp"`) || l.Accountant() != accountant.MethodRDP {
		t.Errorf("rewritten ledger is not version 3 with the rdp accountant (%v):\n%s", l.Accountant(), data)
	}
}

// TestLedgerKeepsItsAccountant: a ledger created with the PRV accountant records it,
// reports ε by it (below the RDP ε of the same history), refuses to be reopened with
// another accountant, and reopens with its own when none is asked for.
func TestLedgerKeepsItsAccountant(t *testing.T) {
	p := filepath.Join(t.TempDir(), "prv.ledger")
	budget := Budget{Epsilon: 8, Delta: 1e-5}
	steps := StepRecord{NoiseMultiplier: 1.1, SampleRate: 256.0 / 60000, Steps: 2000}
	l, err := OpenLedger(p, budget, WithAccountant(accountant.MethodPRV))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Charge(steps); err != nil {
		t.Fatal(err)
	}
	spent := l.Result()
	rdp, err := accountant.Epsilon([]accountant.Step{steps}, budget.Delta, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Accountant() != accountant.MethodPRV || spent.Method != accountant.MethodPRV || !(spent.Epsilon < rdp.Epsilon) {
		t.Errorf("PRV ledger: accountant %v, spent %v by %v; RDP would say %v", l.Accountant(), spent.Epsilon, spent.Method, rdp.Epsilon)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := ReadLedger(p)
	if err != nil || snap.Accountant != accountant.MethodPRV {
		t.Fatalf("snapshot accountant %v (%v), want prv", snap.Accountant, err)
	}
	if _, err := OpenLedger(p, budget, WithAccountant(accountant.MethodRDP)); !errors.Is(err, ErrAccountantMismatch) || !strings.Contains(err.Error(), "prv") {
		t.Errorf("reopening with rdp: %v, want ErrAccountantMismatch naming prv", err)
	}
	l, err = OpenLedger(p, budget)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if eps, _ := l.Spent(); l.Accountant() != accountant.MethodPRV || eps != spent.Epsilon {
		t.Errorf("reopened without an accountant: %v spending %v, want prv spending %v", l.Accountant(), eps, spent.Epsilon)
	}
}
