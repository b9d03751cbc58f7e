package strategy

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// robustBase is what the robust aggregators share: they need every update and evaluate
// like FedAvg.
type robustBase struct{}

func (robustBase) NeedsIndividualUpdates() bool                          { return true }
func (robustBase) ConfigureFit(uint64, []float64) FitConfig              { return FitConfig{} }
func (robustBase) ConfigureEvaluate(uint64, []float64) map[string]string { return nil }
func (robustBase) AggregateEvaluate(_ uint64, results []EvaluateResult, _ []Failure) (Metrics, error) {
	return weightedEvaluate(results)
}

func individual(name string, round uint64, dim int, r FitResults) ([]ClientUpdate, error) {
	if r.Sum != nil {
		return nil, fmt.Errorf("%s round %d: %w", name, round, ErrNeedsIndividualUpdates)
	}
	if len(r.Updates) == 0 {
		return nil, fmt.Errorf("%s round %d: no updates to aggregate", name, round)
	}
	for _, u := range r.Updates {
		if err := checkUpdate(dim, u); err != nil {
			return nil, fmt.Errorf("%s round %d: %w", name, round, err)
		}
	}
	return r.Updates, nil
}

// FedMedian takes the coordinate-wise median of the updates (Yin et al. 2018), unweighted.
type FedMedian struct{ robustBase }

var _ Strategy = (*FedMedian)(nil)

func (*FedMedian) Name() string { return NameFedMedian }

func (*FedMedian) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	ups, err := individual(NameFedMedian, round, len(global), r)
	if err != nil {
		return nil, nil, err
	}
	col := make([]float64, len(ups))
	agg := make([]float64, len(global))
	for i := range agg {
		for k, u := range ups {
			col[k] = u.Delta[i]
		}
		slices.Sort(col)
		n := len(col)
		if n%2 == 1 {
			agg[i] = col[n/2]
		} else {
			agg[i] = (col[n/2-1] + col[n/2]) / 2
		}
	}
	return applyDelta(global, agg, 1), Metrics{"update_norm": norm(agg)}, nil
}

// TrimmedMean drops the ⌊β·n⌋ largest and smallest values of every coordinate and averages
// the rest, unweighted (Yin et al. 2018).
type TrimmedMean struct {
	robustBase
	Beta float64
}

var _ Strategy = (*TrimmedMean)(nil)

func (*TrimmedMean) Name() string { return NameTrimmedMean }

func (t *TrimmedMean) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	ups, err := individual(NameTrimmedMean, round, len(global), r)
	if err != nil {
		return nil, nil, err
	}
	n := len(ups)
	cut := int(math.Floor(t.Beta * float64(n)))
	if n-2*cut < 1 {
		return nil, nil, fmt.Errorf("trimmedmean round %d: trimming %d of %d updates from each end leaves none (lower trim_fraction)", round, cut, n)
	}
	col := make([]float64, n)
	agg := make([]float64, len(global))
	for i := range agg {
		for k, u := range ups {
			col[k] = u.Delta[i]
		}
		slices.Sort(col)
		var s float64
		for _, v := range col[cut : n-cut] {
			s += v
		}
		agg[i] = s / float64(n-2*cut)
	}
	return applyDelta(global, agg, 1), Metrics{"update_norm": norm(agg)}, nil
}

// Krum (Blanchard et al. 2017) scores every update by the sum of squared distances to its
// n−f−2 nearest others and keeps the best-scored one; with Keep > 1 it is Multi-Krum and
// averages the Keep best (unweighted).
type Krum struct {
	robustBase
	Byzantine int
	Keep      int
}

var _ Strategy = (*Krum)(nil)

func (*Krum) Name() string { return NameKrum }

func (k *Krum) AggregateFit(round uint64, global []float64, r FitResults) ([]float64, Metrics, error) {
	ups, err := individual(NameKrum, round, len(global), r)
	if err != nil {
		return nil, nil, err
	}
	n := len(ups)
	// Blanchard et al. 2017, Proposition 1: Krum is Byzantine-resilient to f of n updates
	// only when 2f + 2 < n.
	if n <= 2*k.Byzantine+2 {
		return nil, nil, fmt.Errorf("krum round %d: %d updates with strategy.byzantine = %d: Krum needs more than 2f + 2 = %d updates; lower strategy.byzantine or sample more clients (sampling.min_fit)", round, n, k.Byzantine, 2*k.Byzantine+2)
	}
	closest := n - k.Byzantine - 2
	dist := make([][]float64, n)
	for i := range dist {
		dist[i] = make([]float64, n)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			var s float64
			for c, v := range ups[i].Delta {
				d := v - ups[j].Delta[c]
				s += d * d
			}
			dist[i][j], dist[j][i] = s, s
		}
	}
	type scored struct {
		idx   int
		score float64
	}
	scores := make([]scored, n)
	row := make([]float64, 0, n)
	for i := range ups {
		row = row[:0]
		for j := range ups {
			if j != i {
				row = append(row, dist[i][j])
			}
		}
		slices.Sort(row)
		var s float64
		for _, d := range row[:closest] {
			s += d
		}
		scores[i] = scored{i, s}
	}
	sort.SliceStable(scores, func(a, b int) bool { return scores[a].score < scores[b].score })
	keep := min(k.Keep, n)
	agg := make([]float64, len(global))
	for _, s := range scores[:keep] {
		for c, v := range ups[s.idx].Delta {
			agg[c] += v / float64(keep)
		}
	}
	return applyDelta(global, agg, 1), Metrics{"update_norm": norm(agg), "krum_selected": float64(scores[0].idx)}, nil
}
