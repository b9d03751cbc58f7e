package data

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// ErrStatisticsPending: a federation's schema still has statistics to estimate (columns
// with a range and no mean or std), so a client cannot encode its data with it yet.
var ErrStatisticsPending = errors.New("normalisation statistics not yet estimated")

// StatisticsSlots is the number of sums a client reports for each Estimate: the count of
// its values, Σu and Σu², where u ∈ [−1, 1] is the value clipped to the range and mapped
// linearly onto [−1, 1].
const StatisticsSlots = 3

// Estimate is a numeric column (or the target) whose mean and std a federation estimates
// from its clients' rows: the schema gives a range [Lo, Hi] and neither statistic.
//
// Each client reports, for each estimate, the count n of its values (missing ones, which
// missing: mean fills, are not counted), Σu and Σu², with u = (clip(x, Lo, Hi) − c)/h,
// c = (Lo+Hi)/2, h = (Hi−Lo)/2. One row changes each of the three sums by at most 1, so the
// L2 sensitivity of the whole vector to one row is √(3k) for k estimates: the Gaussian
// mechanism with noise multiplier z adds N(0, 3k·z²) to every sum (StatisticsSensitivity).
type Estimate struct {
	// Name is "columns[j] (name)" or "target (name)", for messages.
	Name   string
	Lo, Hi float64
	column int // index in Schema.Columns; −1 for the target
}

// Estimates lists the statistics the federation must estimate, in the order of the sums
// StatisticsSums returns: the columns in the schema's order, then the target.
func (s *Schema) Estimates() []Estimate {
	var out []Estimate
	for j, c := range s.Columns {
		if (c.Type == "" || c.Type == ColumnNumeric) && (c.Normalize == "" || c.Normalize == NormalizeStandard) && len(c.Range) == 2 && c.Mean == nil && c.Std == nil {
			out = append(out, Estimate{Name: fmt.Sprintf("columns[%d] (%s)", j, c.Name), Lo: c.Range[0], Hi: c.Range[1], column: j})
		}
	}
	if t := s.Target; t != nil && t.Normalize != NormalizeNone && len(t.Range) == 2 && t.Mean == nil && t.Std == nil {
		out = append(out, Estimate{Name: fmt.Sprintf("target (%s)", t.Column), Lo: t.Range[0], Hi: t.Range[1], column: -1})
	}
	return out
}

// StatisticsSensitivity is the L2 sensitivity, to one row, of the sums of k estimates
// (see Estimate).
func StatisticsSensitivity(k int) float64 { return math.Sqrt(float64(StatisticsSlots * k)) }

// StatisticsSums reads a client's own file (path; a glob for several) with the schema and
// returns, for every Estimate in order, the count, Σu and Σu² of its values over the first
// maxRows rows that fit the schema (all of them when maxRows ≤ 0), and the number of rows
// used. Bad rows fail the read unless skipBadRows. Only csv and tsv datasets have
// statistics to estimate.
func (s *Schema) StatisticsSums(ctx context.Context, path string, skipBadRows bool, maxRows int) ([]float64, int, error) {
	est := s.Estimates()
	if len(est) == 0 {
		return nil, 0, fmt.Errorf("data: dataset spec %s has no statistics to estimate (no numeric column or target with a range and without mean and std)", s.Name)
	}
	if s.Format != FormatCSV && s.Format != FormatTSV {
		return nil, 0, fmt.Errorf("data: statistics are estimated for csv and tsv datasets, not %s", s.Format)
	}
	paths, err := expandPaths(path)
	if err != nil {
		return nil, 0, err
	}
	bad := &badRows{skip: skipBadRows}
	t := newRawTable(s)
	for _, p := range paths {
		if err := readTable(ctx, s, p, bad, t); err != nil {
			return nil, 0, err
		}
	}
	if err := bad.err(); err != nil {
		return nil, 0, err
	}
	n := t.n
	if maxRows > 0 {
		n = min(n, maxRows)
	}
	sums := make([]float64, StatisticsSlots*len(est))
	for i, e := range est {
		vals := t.target
		if e.column >= 0 {
			vals = t.num[e.column]
		}
		for _, x := range vals[:n] {
			e.add(sums[3*i:3*i+3], x)
		}
	}
	return sums, n, nil
}

// add adds value x of the estimate's column to its three sums (a NaN, a missing value that
// missing: mean fills once the mean is known, is not counted).
func (e Estimate) add(sums []float64, x float64) {
	if math.IsNaN(x) {
		return
	}
	c, h := (e.Lo+e.Hi)/2, (e.Hi-e.Lo)/2
	u := (min(max(x, e.Lo), e.Hi) - c) / h
	sums[0]++
	sums[1] += u
	sums[2] += u * u
}

// rawMissing marks a missing cell of an estimated column with missing: mean in a dataset
// encoded under RawForEstimates, where the column's mean is not known yet: a finite value
// no raw column holds, so the dataset stays valid, DatasetStatisticsSums leaves the cell
// out as StatisticsSums leaves out a missing value of a file, and ApplyEstimates gives it
// the column's standardised mean, 0, as a load with the estimated schema does.
const rawMissing = -math.MaxFloat64

// RawForEstimates returns a copy of the schema that encodes the raw values of its
// estimates (mean 0, std 1; a missing cell of a missing: mean column marked, see
// rawMissing), for a simulator that holds every client's rows encoded once: its virtual
// clients sum their rows with DatasetStatisticsSums, and ApplyEstimates standardises the
// rows once the statistics round has estimated the statistics.
func (s *Schema) RawForEstimates() *Schema {
	c := s.clone()
	zero, one := 0.0, 1.0
	for _, e := range s.Estimates() {
		if e.column < 0 {
			c.Target.Mean, c.Target.Std = &zero, &one
		} else {
			c.Columns[e.column].Mean, c.Columns[e.column].Std = &zero, &one
			if c.Columns[e.column].Missing == MissingMean {
				c.rawEstimated = append(c.rawEstimated, e.column)
			}
		}
	}
	return c
}

// PendingEstimates returns a copy of loaded (the schema a load under RawForEstimates
// applied: classes and categories filled in) with the statistics of s's estimates left
// out again, as the federation ships it to its statistics round.
func (s *Schema) PendingEstimates(loaded *Schema) *Schema {
	c := loaded.clone()
	c.rawEstimated = nil
	for _, e := range s.Estimates() {
		if e.column < 0 {
			c.Target.Mean, c.Target.Std = nil, nil
		} else {
			c.Columns[e.column].Mean, c.Columns[e.column].Std = nil, nil
		}
	}
	return c
}

// DatasetStatisticsSums is StatisticsSums for a dataset encoded under RawForEstimates (its
// estimated features and target hold raw values), over its first maxRows examples (all
// when maxRows ≤ 0).
func (s *Schema) DatasetStatisticsSums(ds *Dataset, maxRows int) ([]float64, error) {
	est := s.Estimates()
	if len(est) == 0 {
		return nil, fmt.Errorf("data: dataset spec %s has no statistics to estimate", s.Name)
	}
	if d := s.FeatureDim(); d != ds.Dim {
		return nil, fmt.Errorf("data: dataset %s has %d features, its schema encodes %d", ds.Name, ds.Dim, d)
	}
	n := ds.N
	if maxRows > 0 {
		n = min(n, maxRows)
	}
	sums := make([]float64, StatisticsSlots*len(est))
	for i, e := range est {
		off := -1
		if e.column >= 0 {
			off = s.featureOffset(e.column)
		} else if ds.NumValues != 1 {
			return nil, fmt.Errorf("data: dataset %s has no regression target to estimate", ds.Name)
		}
		for r := range n {
			x := ds.Values[r]
			if off >= 0 {
				x = ds.X[r*ds.Dim+off]
			}
			if x == rawMissing {
				continue // a missing value, as StatisticsSums skips it in a file
			}
			e.add(sums[3*i:3*i+3], x)
		}
	}
	return sums, nil
}

// ApplyEstimates standardises, in place, the estimated features and target of datasets
// encoded under RawForEstimates with the statistics of estimated (WithStatistics's
// result): x ↦ (x − mean)/std. A target's ValueNormalization records them, so errors are
// still reported in the target's units.
func (s *Schema) ApplyEstimates(estimated *Schema, sets ...*Dataset) error {
	for _, e := range s.Estimates() {
		mean, std := estimateOf(estimated, e)
		if math.IsNaN(mean) {
			return fmt.Errorf("data: %s has no estimate", e.Name)
		}
		for _, ds := range sets {
			if ds == nil {
				continue
			}
			if e.column < 0 {
				for r := range ds.Values {
					ds.Values[r] = (ds.Values[r] - mean) / std
				}
				ds.ValueNormalization = &Normalization{Mean: []float64{mean}, Std: []float64{std}}
				continue
			}
			off := s.featureOffset(e.column)
			for r := range ds.N {
				if x := &ds.X[r*ds.Dim+off]; *x == rawMissing {
					*x = 0 // missing: mean, standardised
				} else {
					*x = (*x - mean) / std
				}
			}
		}
	}
	return nil
}

// EstimateOf returns the mean and std estimated holds for the column (or target) of e.
func EstimateOf(estimated *Schema, e Estimate) (mean, std float64) { return estimateOf(estimated, e) }

func estimateOf(s *Schema, e Estimate) (mean, std float64) {
	var m, sd *float64
	if e.column < 0 {
		if s.Target != nil {
			m, sd = s.Target.Mean, s.Target.Std
		}
	} else if e.column < len(s.Columns) {
		m, sd = s.Columns[e.column].Mean, s.Columns[e.column].Std
	}
	if m == nil || sd == nil {
		return math.NaN(), math.NaN()
	}
	return *m, *sd
}

// minStdFraction is the smallest std an estimate gets, as a fraction of its range's
// half-width: noise can make the estimated variance of a nearly constant column ≤ 0.
const minStdFraction = 1e-3

// WithStatistics returns a copy of the schema with the mean and std of every Estimate
// derived from the sums of all clients (noised): mean = c + h·Σu/n and
// std = h·√(Σu²/n − (Σu/n)²), at least 0.001·h. It fails when a noised count is below 2
// (too few rows, or too much noise, to estimate from).
func (s *Schema) WithStatistics(sums []float64) (*Schema, error) {
	est := s.Estimates()
	if len(sums) != StatisticsSlots*len(est) {
		return nil, fmt.Errorf("data: %d statistics sums for %d estimates, want %d", len(sums), len(est), StatisticsSlots*len(est))
	}
	c := s.clone()
	for i, e := range est {
		n, s1, s2 := sums[3*i], sums[3*i+1], sums[3*i+2]
		if math.IsNaN(n+s1+s2) || math.IsInf(n+s1+s2, 0) {
			return nil, fmt.Errorf("data: statistics of %s: sums %v are not finite", e.Name, sums[3*i:3*i+3])
		}
		if n < 2 {
			return nil, fmt.Errorf("data: statistics of %s: the noised count of values is %.3g, too few to estimate a mean and std from (more clients or rows, or a lower statistics noise multiplier)", e.Name, n)
		}
		mid, h := (e.Lo+e.Hi)/2, (e.Hi-e.Lo)/2
		mu := min(max(s1/n, -1), 1)
		sd := math.Sqrt(max(s2/n-mu*mu, 0))
		mean, std := mid+h*mu, h*max(sd, minStdFraction)
		if e.column < 0 {
			c.Target.Mean, c.Target.Std = &mean, &std
		} else {
			c.Columns[e.column].Mean, c.Columns[e.column].Std = &mean, &std
		}
	}
	return c, nil
}
