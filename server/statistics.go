package server

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// Defaults of the statistics round (DPConfig.StatisticsNoiseMultiplier, StatisticsMaxRows).
const (
	defaultStatisticsNoiseMultiplier = 5
	defaultStatisticsMaxRows         = 100_000
)

// statisticsNoise is the statistics round's noise multiplier z.
func (d DPConfig) statisticsNoise() float64 {
	if d.StatisticsNoiseMultiplier == 0 {
		return defaultStatisticsNoiseMultiplier
	}
	return d.StatisticsNoiseMultiplier
}

// statisticsMaxRows is the most rows of a client the statistics round sums.
func (d DPConfig) statisticsMaxRows() int {
	if d.StatisticsMaxRows == 0 {
		return defaultStatisticsMaxRows
	}
	return d.StatisticsMaxRows
}

// statRound is the statistics round (see pb.ColumnStatisticsSpec): before the first round,
// the sampled clients send the noised sums of the dataset schema's estimates, from which
// the server derives the means and stds it ships in every later task.
type statRound struct {
	number   uint64 // the attempt: secagg's round of the statistics aggregate
	dim      int
	pending  map[string]string // client → task id
	plain    []float64         // without secure aggregation: the sum of the noised sums
	count    int
	failures []strategy.Failure
	uploads  // under secure aggregation: the encrypted sum
}

// StatisticsRecord: the federation estimated its dataset's statistics; Schema is the
// shipped schema with them filled in (a restarted server ships it without asking again),
// Clients those charged for the release (the record-level account), NoiseMultiplier its z.
type StatisticsRecord struct {
	Schema          []byte
	Clients         []string
	NoiseMultiplier float64
}

func (StatisticsRecord) isRecord() {}

// StatisticsEstimated: the statistics round ended; Estimates maps each estimated column
// (data.Estimate.Name) to its mean and std, or Failed says why there are none yet (the
// round runs again).
type StatisticsEstimated struct {
	Contributors int
	Estimates    map[string][2]float64
	// Schema is the estimated schema as the federation ships it (nil when Failed).
	Schema []byte
	Failed bool
	Reason string
}

func (StatisticsEstimated) isNotice() {}

// validateStatistics checks the statistics round's settings when the dataset has
// estimates.
func (c Config) validateStatistics(bad func(format string, a ...any)) {
	d := c.DP
	if z := d.StatisticsNoiseMultiplier; math.IsNaN(z) || math.IsInf(z, 0) || z < 0 {
		bad("dp.statistics_noise_multiplier = %v: must be finite and ≥ 0 (0 takes %d)", z, defaultStatisticsNoiseMultiplier)
	}
	if d.StatisticsMaxRows < 0 {
		bad("dp.statistics_max_rows = %d: must be ≥ 0 (0 takes %d)", d.StatisticsMaxRows, defaultStatisticsMaxRows)
	}
	if c.Dataset == nil || len(c.Dataset.Estimates()) == 0 {
		return
	}
	if c.DP.UserLevel.On() {
		bad("dataset: the statistics round estimates means and stds with record-level DP (one row's change is bounded), which does not bound one client's whole contribution as dp.user_level needs: give mean and std in the schema instead of range")
	}
	if c.SecAgg.Enabled && c.valueBits() != 0 {
		bad("dataset: the statistics round (columns given with a range) under secure_aggregation.value_bits %d: the packed encoding rounds each client's sums after its noise share is drawn, so the decrypted sum is no longer the Gaussian mechanism that is accounted; use the float encoding (value_bits 0, or leave value_bits unset), or give mean and std in the schema", c.valueBits())
	}
}

// needsStatistics reports whether the statistics round must run before the next round.
func (c *Coordinator) needsStatistics() bool {
	return c.round == 0 && c.cfg.Dataset != nil && len(c.cfg.Dataset.Estimates()) > 0
}

// startStatistics samples the online clients (at most secure_aggregation.max_contributors
// under secure aggregation) and sends them statistics tasks. The round must run again
// when it cannot start; statsRetryAt then says when.
func (c *Coordinator) startStatistics(r *Ready) {
	k := len(c.cfg.Dataset.Estimates())
	s := &statRound{number: c.statsAttempts, dim: data.StatisticsSlots * k, pending: map[string]string{}}
	c.statsAttempts++
	n := c.available()
	spec := &pb.ColumnStatisticsSpec{DatasetSchema: c.datasetJSON, NoiseMultiplier: c.cfg.DP.statisticsNoise(), MaxRows: int32(c.cfg.DP.statisticsMaxRows())}
	if c.sa != nil {
		if n < c.cfg.SecAgg.MinContributions {
			c.statisticsFailed(s, fmt.Sprintf("%d clients online, fewer than secure_aggregation.min_contributions = %d", n, c.cfg.SecAgg.MinContributions), r)
			return
		}
		n = min(n, c.cfg.SecAgg.MaxContributors)
		agg, err := secagg.NewAggregator(*c.sa, secagg.AggregatorConfig{Session: c.com.session, Round: s.number, Dim: s.dim, Committee: c.cfg.committeeConfig(), Workers: 1, Purpose: secagg.PurposeStatistics, Verifier: c.verifier})
		if err != nil {
			c.statisticsFailed(s, "secure aggregation of the statistics: "+err.Error(), r)
			return
		}
		s.agg = agg
		spec.Secagg = &pb.SecAggSpec{Session: c.com.session[:], Params: c.saProto}
	} else {
		s.plain = make([]float64, s.dim)
	}
	c.stats = s
	c.phase = phaseStatistics
	c.deadline = c.now + c.cfg.Deadlines.Evaluate
	for _, id := range c.sample(n, nil) {
		if c.rl != nil {
			// Charged when issued, as fit tasks are: the client may release whether or
			// not a result arrives.
			eps, err := c.rl.issuedStatistics(id, spec.NoiseMultiplier)
			if err != nil {
				c.statisticsFailed(s, err.Error(), r)
				return
			}
			r.Persist = append(r.Persist, PrivacyRecord{ClientID: id, Round: c.round, Epsilon: eps, Delta: c.cfg.DP.Delta})
			r.Notices = append(r.Notices, PrivacySpent{ClientID: id, Epsilon: eps})
		}
		ts := &taskState{client: id, kind: pb.TaskKind_TASK_KIND_STATISTICS, round: s.number}
		c.newTask(r, ts, &pb.Task{Spec: &pb.Task_Statistics{Statistics: spec}, Blobs: c.withPublicKey(id, nil)})
		s.pending[id] = ts.id
	}
}

// statisticsResult takes a client's sums: noised in the clear, or encrypted.
func (c *Coordinator) statisticsResult(ts *taskState, res *pb.Result, r *Ready) string {
	s := c.stats
	if c.phase != phaseStatistics || s == nil || s.number != ts.round {
		return fmt.Sprintf("statistics round %d is not running", ts.round)
	}
	delete(s.pending, ts.client)
	if s.agg != nil {
		s.queue(r, s.number, ts.client, ts.id, "statistics", res.Blobs)
		return ""
	}
	b, err := blob.Find(res.Blobs, blob.Update)
	if err == nil {
		var v []float64
		if v, err = blob.DecodeFloats(b, s.dim); err == nil {
			err = checkFiniteValues(v)
			for i, x := range v {
				s.plain[i] += x
			}
		}
	}
	if err != nil {
		s.failures = append(s.failures, strategy.Failure{ClientID: ts.client, Kind: strategy.FailureRejected, Reason: "statistics: " + err.Error()})
	} else {
		s.count++
	}
	if len(s.pending) == 0 {
		c.finishStatistics(r)
	}
	return ""
}

func checkFiniteValues(v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("value %d is %v", i, x)
		}
	}
	return nil
}

// statisticsTaskFailed routes a failed statistics task.
func (c *Coordinator) statisticsTaskFailed(ts *taskState, f strategy.Failure, r *Ready) {
	s := c.stats
	if c.phase != phaseStatistics || s == nil || s.number != ts.round {
		return
	}
	delete(s.pending, ts.client)
	s.failures = append(s.failures, f)
	if len(s.pending) == 0 {
		c.finishStatistics(r)
	}
}

// statisticsAggregated takes the driver's answer to adding an encrypted upload.
func (c *Coordinator) statisticsAggregated(e Aggregated, r *Ready) {
	s := c.stats
	if e.Err != "" {
		s.failures = append(s.failures, strategy.Failure{ClientID: e.ClientID, Kind: strategy.FailureRejected, Reason: "encrypted statistics refused: " + e.Err})
	}
	if len(s.pending) == 0 && !s.busy() {
		c.finishStatistics(r)
	}
}

// finishStatistics ends the collection: the committee decrypts the sum under secure
// aggregation, or the plaintext sum is used.
func (c *Coordinator) finishStatistics(r *Ready) {
	s := c.stats
	for _, id := range slices.Sorted(mapsKeys(s.pending)) {
		c.closeTask(s.pending[id], false, r)
		s.failures = append(s.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "no statistics before the deadline"})
	}
	clear(s.pending)
	if s.busy() {
		return // statisticsAggregated finishes
	}
	if s.agg != nil {
		if s.agg.Count() >= c.cfg.SecAgg.MinContributions && c.com != nil {
			c.startDecrypt(s.agg, s.number, false, r)
			return
		}
		c.statisticsFailed(s, fmt.Sprintf("%d clients sent statistics, fewer than secure_aggregation.min_contributions = %d: nothing decrypted", s.agg.Count(), c.cfg.SecAgg.MinContributions), r)
		return
	}
	if s.count == 0 {
		c.statisticsFailed(s, "no client sent statistics"+failureReasons(s.failures), r)
		return
	}
	c.estimated(s, s.plain, s.count, r)
}

// failureReasons summarises the first failures for a message.
func failureReasons(fs []strategy.Failure) string {
	if len(fs) == 0 {
		return ""
	}
	out := " ("
	for i, f := range fs[:min(len(fs), 3)] {
		if i > 0 {
			out += "; "
		}
		out += f.ClientID + ": " + f.Reason
	}
	return out + ")"
}

// statisticsDecrypted takes the decrypted sum (each client's sums scaled by B/max_rows).
func (c *Coordinator) statisticsDecrypted(sum *secagg.AggregateResult, r *Ready) {
	s := c.stats
	lit := c.sa.Literal()
	n := float64(sum.Count)
	d := float64(len(sum.WeightedSum))
	if sum.Count < 1 || math.Abs(sum.TotalWeight-n) > 1e-3*n+1e-3 {
		c.statisticsFailed(s, fmt.Sprintf("the decrypted statistics hold a total weight of %g for %d uploads of weight 1", sum.TotalWeight, sum.Count), r)
		return
	}
	decode := c.sa.ErrorStd(c.cfg.SecAgg.Threshold) * (math.Sqrt(d) + 8)
	var ss float64
	for _, v := range sum.WeightedSum {
		ss += v * v
	}
	if bound := n * math.Sqrt(d) * lit.ClipBound; !(math.Sqrt(ss) <= bound+decode) {
		c.statisticsFailed(s, fmt.Sprintf("the decrypted statistics have norm %.6g, more than %d uploads within the coordinate bound can sum to (%.6g)", math.Sqrt(ss), sum.Count, bound+decode), r)
		return
	}
	scale := float64(c.cfg.DP.statisticsMaxRows()) / lit.ClipBound
	sums := make([]float64, len(sum.WeightedSum))
	for i, v := range sum.WeightedSum {
		sums[i] = v * scale
	}
	c.estimated(s, sums, sum.Count, r)
}

// estimated derives the means and stds from the summed statistics, ships them from now on
// and persists them.
func (c *Coordinator) estimated(s *statRound, sums []float64, count int, r *Ready) {
	schema, err := c.cfg.Dataset.WithStatistics(sums)
	if err != nil {
		c.statisticsFailed(s, err.Error(), r)
		return
	}
	shipped, err := schema.Shipped()
	if err != nil {
		c.statisticsFailed(s, err.Error(), r)
		return
	}
	est := map[string][2]float64{}
	for _, e := range c.cfg.Dataset.Estimates() {
		m, sd := data.EstimateOf(schema, e)
		est[e.Name] = [2]float64{m, sd}
	}
	c.cfg.Dataset, c.datasetJSON = schema, shipped
	c.stats, c.phase = nil, phaseWaiting
	charged := []string{}
	if c.rl != nil {
		charged = c.rl.statisticsClients()
	}
	r.Persist = append(r.Persist, StatisticsRecord{Schema: shipped, Clients: charged, NoiseMultiplier: c.cfg.DP.statisticsNoise()})
	r.Notices = append(r.Notices, StatisticsEstimated{Contributors: count, Estimates: est, Schema: shipped})
}

// statisticsRetry is how long the coordinator waits before running a failed statistics
// round again.
const statisticsRetry = 30 * time.Second

// statisticsFailed ends a statistics round without estimates: it runs again after
// statisticsRetry.
func (c *Coordinator) statisticsFailed(s *statRound, reason string, r *Ready) {
	c.closeAll(r)
	c.stats, c.phase = nil, phaseWaiting
	c.statsRetryAt = c.now + statisticsRetry
	r.Notices = append(r.Notices, StatisticsEstimated{Failed: true, Reason: reason + failureReasons(s.failures)})
}

// restoreStatistics ships the estimated schema of a earlier start and charges the
// record-level account of the clients that paid for it.
func (c *Coordinator) restoreStatistics(rec *StatisticsRecord) error {
	schema, err := data.ParseSchemaJSON(rec.Schema)
	if err != nil {
		return fmt.Errorf("server: resume: estimated dataset statistics: %w", err)
	}
	if len(schema.Estimates()) > 0 {
		return fmt.Errorf("server: resume: the stored dataset statistics leave %s unestimated", schema.Estimates()[0].Name)
	}
	c.cfg.Dataset, c.datasetJSON = schema, slices.Clone(rec.Schema)
	if c.rl != nil {
		for _, id := range rec.Clients {
			if _, err := c.rl.issuedStatistics(id, rec.NoiseMultiplier); err != nil {
				return fmt.Errorf("server: resume: %w", err)
			}
		}
	}
	return nil
}
