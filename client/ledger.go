package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"

	"github.com/confide-fl/confide/dp/accountant"
)

// ledgerName is the Store entry of the privacy ledger.
const ledgerName = "privacy-ledger.json"

// Budget is a client's privacy budget: the (ε, δ) its data may spend over its lifetime.
// Epsilon 0 means no limit (steps are still accounted).
type Budget struct {
	Epsilon float64
	Delta   float64
}

// Validate checks the budget.
func (b Budget) Validate() error {
	if math.IsNaN(b.Epsilon) || math.IsInf(b.Epsilon, 0) || b.Epsilon < 0 {
		return fmt.Errorf("privacy budget epsilon = %v: must be ≥ 0 (0: no limit)", b.Epsilon)
	}
	if !(b.Delta > 0 && b.Delta < 1) {
		return fmt.Errorf("privacy budget delta = %v: must be in (0, 1), below 1/number of examples", b.Delta)
	}
	return nil
}

// Ledger is a client's persistent record of the DP-SGD steps its data went through, with
// the RDP accountant computing the ε they spend. It is saved in the Store after every
// charge, before the trained parameters leave the client.
type Ledger struct {
	store  Store
	budget Budget
	acc    *accountant.RDP
}

type ledgerFile struct {
	Version int               `json:"version"`
	Steps   []accountant.Step `json:"steps"`
}

// OpenLedger loads the ledger from store (an empty one if none was saved).
func OpenLedger(store Store, budget Budget) (*Ledger, error) {
	if err := budget.Validate(); err != nil {
		return nil, err
	}
	acc, err := accountant.NewRDP(accountant.Config{})
	if err != nil {
		return nil, err
	}
	l := &Ledger{store: store, budget: budget, acc: acc}
	b, err := store.Load(ledgerName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return l, nil
	case err != nil:
		return nil, fmt.Errorf("client: privacy ledger: %w", err)
	}
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("client: privacy ledger %s is corrupted: %w (restore it from a backup; deleting it forgets spent privacy)", ledgerName, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("client: privacy ledger version %d unknown", f.Version)
	}
	for i, s := range f.Steps {
		if err := acc.Compose(s); err != nil {
			return nil, fmt.Errorf("client: privacy ledger entry %d: %w", i, err)
		}
	}
	return l, nil
}

// Budget returns the ledger's budget.
func (l *Ledger) Budget() Budget { return l.budget }

// Epsilon returns the ε spent so far at the budget's δ (0 before any step).
func (l *Ledger) Epsilon(extra ...accountant.Step) (float64, error) {
	if len(l.acc.History()) == 0 && len(extra) == 0 {
		return 0, nil
	}
	r, err := l.acc.Epsilon(l.budget.Delta, extra...)
	if err != nil {
		return 0, err
	}
	return r.Epsilon, nil
}

// Check returns the ε the ledger would hold after the planned steps, or an error wrapping
// ErrBudgetExceeded when that passes the budget.
func (l *Ledger) Check(planned ...accountant.Step) (float64, error) {
	eps, err := l.Epsilon(planned...)
	if err != nil {
		return 0, fmt.Errorf("client: privacy accounting: %w", err)
	}
	if l.budget.Epsilon > 0 && eps > l.budget.Epsilon {
		spent, _ := l.Epsilon()
		return eps, fmt.Errorf("the task would bring ε to %.4g at δ = %g, over the budget %g (spent so far %.4g): %w", eps, l.budget.Delta, l.budget.Epsilon, spent, ErrBudgetExceeded)
	}
	return eps, nil
}

// Charge records steps and saves the ledger.
func (l *Ledger) Charge(steps ...accountant.Step) error {
	for _, s := range steps {
		if err := l.acc.Compose(s); err != nil {
			return fmt.Errorf("client: privacy ledger: %w", err)
		}
	}
	b, err := json.Marshal(ledgerFile{Version: 1, Steps: l.acc.History()})
	if err != nil {
		return err
	}
	if err := l.store.Save(ledgerName, b); err != nil {
		return fmt.Errorf("client: saving the privacy ledger: %w", err)
	}
	return nil
}
