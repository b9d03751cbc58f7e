package client

var _ StatisticsAccountant = (*ModelTrainer)(nil)

// ChargeStatistics charges the ledger for noised statistics a Party shares without secure
// aggregation (see PrivacyAccount.ChargeStatistics).
func (t *ModelTrainer) ChargeStatistics(z float64) error { return t.account.ChargeStatistics(z) }
