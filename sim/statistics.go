package sim

import (
	"context"
	"fmt"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/server"
)

var _ client.ColumnStatistician = (*virtualTrainer)(nil)

// StatisticsSums answers the statistics round from virtual client k's rows, which hold the
// estimated columns' raw values until the round is over (see loadSpecDataset).
func (t *virtualTrainer) StatisticsSums(ctx context.Context, schema *data.Schema, maxRows int) ([]float64, error) {
	w, release, err := t.worker(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return schema.DatasetStatisticsSums(t.r.pop.view(t.k, &w.buf), maxRows)
}

// statisticsEstimated logs the end of the federation's statistics round (memory
// transport; a failed round runs again).
func (r *run) statisticsEstimated(v server.StatisticsEstimated) {
	if v.Failed {
		r.log.Info("statistics round failed", "reason", v.Reason)
		return
	}
	r.log.Info("dataset statistics estimated", "clients", v.Contributors, "estimates", v.Estimates)
}

// applyStatistics standardises the estimated columns of the training and test sets with
// the federation's estimates (the shipped schema of its StatisticsRecord, which both
// transports persist through the recorder), as every later task's schema asks of a real
// client's files. It runs before any task of round 1 is sent.
func (r *run) applyStatistics(shipped []byte) error {
	if r.pending == nil {
		return nil
	}
	est, err := data.ParseSchemaJSON(shipped)
	if err != nil {
		return fmt.Errorf("sim: the estimated dataset statistics: %w", err)
	}
	if err := r.pending.ApplyEstimates(est, r.train, r.test); err != nil {
		return fmt.Errorf("sim: applying the estimated dataset statistics: %w", err)
	}
	r.pending, r.schema = nil, est
	return nil
}
