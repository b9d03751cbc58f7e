package dp

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
	if be.Spent != before || !(be.WouldSpend > 1) || be.Step != big {
		t.Errorf("error details %+v", be)
	}
	after, _ := l.Spent()
	reopened, _ := OpenLedger(p, Budget{Epsilon: 1, Delta: 1e-5})
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
	if _, err := OpenLedger(p, Budget{Epsilon: 4, Delta: 1e-5}); err == nil || !strings.Contains(err.Error(), "created with budget") {
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
	if _, err := OpenLedger(q, testBudget); err != nil {
		t.Fatal(err)
	}
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
