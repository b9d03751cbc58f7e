package client

import "github.com/confide-fl/confide/dp"

var _ StatisticsAccountant = (*ModelTrainer)(nil)

// ChargeStatistics records in the ledger one Gaussian mechanism with noise multiplier z on
// statistics of the local data (sample rate 1, one step), which a Party shares without
// secure aggregation when its operator opted in (PartyConfig.ShareStatistics). It refuses
// (ErrBudgetExceeded) a release the budget cannot pay for. Without a budget there is no
// ledger and nothing to charge.
func (t *ModelTrainer) ChargeStatistics(z float64) error {
	if t.ledger == nil {
		return nil
	}
	return t.ledger.Charge(dp.StepRecord{NoiseMultiplier: z, SampleRate: 1, Steps: 1})
}
