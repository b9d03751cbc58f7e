package client

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
)

// PrivacyAccount is a client's privacy bookkeeping around fit tasks, for any Trainer: the
// ledger of a budget (see OpenLedger) and the rules ModelTrainer follows with it.
//
//   - Admit, before training: a task without DP-SGD noise is refused (unbounded ε), and so
//     is one whose planned steps would take ε past the budget (ErrBudgetExceeded either way,
//     which the Party reports to the server as a refusal).
//   - Charge, after training and before the parameters leave the Trainer: the steps
//     taken are written durably to the ledger; a task whose deadline passed is dropped
//     uncharged instead (the server would refuse its result).
//   - ChargeStatistics: the noised statistics a Party shares without secure aggregation
//     (StatisticsAccountant).
//
// Without a budget the account has no ledger: it admits every task and charges nothing,
// and the client's updates carry no record-level guarantee it accounts for.
type PrivacyAccount struct {
	ledger *dp.Ledger
}

var _ StatisticsAccountant = (*PrivacyAccount)(nil)

// OpenPrivacyAccount opens the ledger of budget in store (nil budget: an account without a
// ledger). raise allows a budget above the one the ledger pinned, recording the raise.
func OpenPrivacyAccount(store Store, budget *dp.Budget, raise bool, opts ...dp.LedgerOption) (*PrivacyAccount, error) {
	if budget == nil {
		return &PrivacyAccount{}, nil
	}
	opts = slices.Clone(opts)
	if raise {
		opts = append(opts, dp.WithRaiseBudget())
	}
	l, err := OpenLedger(store, *budget, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: privacy ledger: %w", err)
	}
	return &PrivacyAccount{ledger: l}, nil
}

// Ledger returns the account's ledger, nil without a budget.
func (a *PrivacyAccount) Ledger() *dp.Ledger { return a.ledger }

// Admit checks a fit task before training: with a budget, the task must ask for DP-SGD
// noise and its planned steps (noise multiplier, sample rate, steps) must fit the budget.
func (a *PrivacyAccount) Admit(task DPConfig, planned accountant.Step) error {
	if a.ledger == nil {
		return nil
	}
	if task.NoiseMultiplier <= 0 {
		return fmt.Errorf("the server asks for training without DP-SGD noise (unbounded ε), this client has a budget of ε = %g: %w", a.ledger.Budget().Epsilon, ErrBudgetExceeded)
	}
	if err := a.ledger.Check(planned); err != nil {
		return fmt.Errorf("refused before training: %w", err)
	}
	return nil
}

// Charge records the DP-SGD steps a task took, before its parameters are released, and
// returns the ε spent in all (NaN without a budget). When ctx is done (the task's deadline
// passed) it charges nothing and returns an error: the update must then be dropped.
func (a *PrivacyAccount) Charge(ctx context.Context, steps ...accountant.Step) (float64, error) {
	if a.ledger == nil {
		return math.NaN(), nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("the task's time ran out during training; the update is dropped and nothing charged: %w", err)
	}
	if err := a.ledger.Charge(steps...); err != nil {
		return 0, err
	}
	eps, _ := a.ledger.Spent()
	return eps, nil
}

// ChargeStatistics records in the ledger one Gaussian mechanism with noise multiplier z on
// statistics of the local data (sample rate 1, one step), which a Party shares without
// secure aggregation when its operator opted in (PartyConfig.ShareStatistics). It refuses
// (ErrBudgetExceeded) a release the budget cannot pay for. Without a budget there is no
// ledger and nothing to charge.
func (a *PrivacyAccount) ChargeStatistics(z float64) error {
	if a.ledger == nil {
		return nil
	}
	return a.ledger.Charge(dp.StepRecord{NoiseMultiplier: z, SampleRate: 1, Steps: 1})
}

// Close releases the ledger (its file lock), if any.
func (a *PrivacyAccount) Close() error {
	if a.ledger == nil {
		return nil
	}
	return a.ledger.Close()
}
