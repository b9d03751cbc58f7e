package client

import (
	"fmt"
	"path/filepath"

	"github.com/confide-fl/confide/dp"
)

// LedgerName is the privacy ledger's name in a client's Store: the file of a DirStore's
// directory, or the entry of any other Store.
const LedgerName = "privacy-ledger.json"

// OpenLedger opens the privacy ledger kept in store, creating it with budget if there is
// none. In a DirStore it is the file LedgerName of the directory, opened with
// dp.OpenLedger: written durably and locked against a second process until Close. In any
// other Store (MemoryStore: the simulator, which must not touch the disk) it is the entry
// LedgerName, opened with dp.OpenLedgerIn: the same checksummed content and budget rules,
// no lock. Either way it is one dp.Ledger format, which `confide privacy ledger` audits.
func OpenLedger(store Store, budget dp.Budget, opts ...dp.LedgerOption) (*dp.Ledger, error) {
	if ds, ok := store.(*DirStore); ok {
		return dp.OpenLedger(filepath.Join(ds.Dir, LedgerName), budget, opts...)
	}
	return dp.OpenLedgerIn(ledgerEntry{store}, budget, opts...)
}

// ReadLedger reads the privacy ledger in store without opening it (audits, a simulator's
// report); the error wraps fs.ErrNotExist when the client has none.
func ReadLedger(store Store) (dp.LedgerSnapshot, error) {
	if ds, ok := store.(*DirStore); ok {
		return dp.ReadLedger(filepath.Join(ds.Dir, LedgerName))
	}
	return dp.ReadLedgerIn(ledgerEntry{store})
}

// ledgerEntry is the ledger's entry of a Store, as a dp.LedgerStore.
type ledgerEntry struct{ s Store }

var _ dp.LedgerStore = ledgerEntry{}

func (e ledgerEntry) Load() ([]byte, error)  { return e.s.Load(LedgerName) }
func (e ledgerEntry) Save(data []byte) error { return e.s.Save(LedgerName, data) }
func (e ledgerEntry) String() string         { return fmt.Sprintf("%q of the client's state", LedgerName) }
