package client

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// ColumnStatistician is a Trainer that can answer a federation's statistics round: the
// sums of data.Schema.StatisticsSums over its own rows (at most maxRows of them), for the
// schema's estimates in order. ModelTrainer is one when it reads its own files
// (ModelTrainerConfig.Source).
type ColumnStatistician interface {
	StatisticsSums(ctx context.Context, schema *data.Schema, maxRows int) ([]float64, error)
}

var _ ColumnStatistician = (*ModelTrainer)(nil)

// StatisticsSums reads the trainer's DataSource with the federation's schema and returns
// the sums its estimates need (see data.Schema.StatisticsSums).
func (t *ModelTrainer) StatisticsSums(ctx context.Context, schema *data.Schema, maxRows int) ([]float64, error) {
	src := t.cfg.Source
	if src == nil {
		return nil, TaskError(errors.New("the federation estimates its dataset's statistics from the clients' own files, and this client has none (start it with --data FILE)"))
	}
	sums, _, err := schema.StatisticsSums(ctx, src.Path, src.SkipBadRows, maxRows)
	if err != nil {
		return nil, fmt.Errorf("client: reading %s for the dataset's statistics: %w", src.Path, err)
	}
	return sums, nil
}

// statistics answers a statistics task (see pb.ColumnStatisticsSpec): the sums of the
// schema's estimates over the client's rows, with Gaussian noise of the task's multiplier
// over their sensitivity, charged to the ledger before anything leaves; under secure
// aggregation only the client's share of the noise, encrypted.
func (p *Party) statistics(ctx context.Context, t *pb.Task, res *pb.Result) error {
	spec := t.GetStatistics()
	if spec == nil {
		return errors.New("statistics task without a statistics spec")
	}
	z := spec.GetNoiseMultiplier()
	if !(z > 0) || math.IsInf(z, 0) {
		return fmt.Errorf("the statistics task's noise multiplier %v: must be finite and > 0 (dp.statistics_noise_multiplier)", z)
	}
	if z < p.cfg.MinNoiseMultiplier {
		return fmt.Errorf("refused: the statistics task's noise multiplier %g is below this client's minimum %g (min-noise-multiplier): %w", z, p.cfg.MinNoiseMultiplier, ErrBudgetExceeded)
	}
	maxRows := int(spec.GetMaxRows())
	if maxRows < 1 {
		return fmt.Errorf("the statistics task's max_rows %d: must be ≥ 1 (dp.statistics_max_rows)", maxRows)
	}
	schema, err := shippedSchema(spec.GetDatasetSchema())
	if err != nil {
		return err
	}
	if schema == nil {
		return errors.New("the statistics task carries no dataset schema")
	}
	k := len(schema.Estimates())
	if k == 0 {
		return errors.New("the statistics task's dataset schema has nothing to estimate (no column with a range and without mean and std)")
	}
	cs, ok := p.trainer.(ColumnStatistician)
	if !ok {
		return errors.New("this client's trainer cannot compute column statistics (it implements no client.ColumnStatistician)")
	}
	var (
		enc    *secagg.Encryptor
		params secagg.Parameters
		shares = 1.0 // the noise shares every decrypted sum holds
	)
	if sa := spec.GetSecagg(); sa != nil {
		if enc, params, err = p.encryptor(t, sa); err != nil {
			return err
		}
		// secAggParams has checked min_contributions against this client's floor, and the
		// committee decrypts no sum of fewer uploads.
		shares = float64(sa.GetParams().GetMinContributions())
	}
	sums, err := cs.StatisticsSums(ctx, schema, maxRows)
	if err != nil {
		return p.private("column statistics", err)
	}
	if len(sums) != data.StatisticsSlots*k {
		return p.private("column statistics", fmt.Errorf("trainer returned %d sums for %d estimates", len(sums), k))
	}
	if acc, ok := p.trainer.(StatisticsAccountant); ok {
		if err := acc.ChargeStatistics(z); err != nil {
			return p.private("charging the column statistics", err)
		}
	} else if p.cfg.MinNoiseMultiplier > 0 {
		return errors.New("the statistics round needs a trainer that keeps a privacy ledger (StatisticsAccountant); this one does not, so nothing is shared")
	}
	src, err := p.noise()
	if err != nil {
		return err
	}
	// Gaussian mechanism over the sums' L2 sensitivity √(3k) to one row (data.Estimate).
	std := z * data.StatisticsSensitivity(k) / math.Sqrt(shares)
	if err := dp.AddGaussianNoise(sums, std, src); err != nil {
		return err
	}
	if enc == nil {
		res.Blobs = []*pb.Blob{blob.New(blob.Update, blob.EncodeFloats(sums))}
		return nil
	}
	// Every sum is within ±max_rows before the noise: scaled by B/max_rows into the
	// coordinate bound B, the noised value clamped to it (post-processing of a noised
	// value). The server scales the decrypted sum back.
	b := params.Literal().ClipBound
	for i, v := range sums {
		sums[i] = min(max(v*b/float64(maxRows), -b), b) * (1 - 1e-12)
	}
	// Encrypted straight into the upload's bytes, as the fit and evaluate uploads are.
	ub, err := enc.EncryptBinary(secagg.UploadContext{Round: t.GetRound(), Purpose: secagg.PurposeStatistics, TaskID: t.GetTaskId(), TaskDigest: taskDigest("statistics", t.GetRound(), nil, spec)}, sums, 1)
	if err != nil {
		return p.private("encrypting the column statistics", err)
	}
	res.Blobs = []*pb.Blob{blob.New(blob.EncryptedUpdate, ub)}
	return nil
}
