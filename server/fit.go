package server

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

func (c *Coordinator) startFit(r *Ready) {
	avail := c.available()
	var sampled []string
	if c.ul != nil {
		sampled = c.samplePoisson(c.ul.sampleRate(avail))
		c.ul.sampled(avail)
	} else {
		n := int(math.Ceil(c.cfg.Sampling.FractionFit * float64(avail)))
		if c.cfg.Sampling.NumFit > 0 {
			n = c.cfg.Sampling.NumFit
		}
		n = max(n, c.cfg.Sampling.MinFit)
		if c.sa != nil {
			// An aggregate may not hold more updates than the overflow budget allows.
			n = min(n, c.cfg.SecAgg.MaxContributors)
		}
		room := c.budgetRoom()
		sampled = c.sample(n, room)
		if len(sampled) == 0 && room != nil && avail > 0 {
			c.fit = &fitRound{number: c.round + 1}
			c.failRound(fmt.Sprintf("every one of the %d online clients has spent its privacy budget: none has room for another fit task in dp.budget_epsilon = %g, or it refused one on its own budget", avail, c.cfg.DP.BudgetEpsilon), r)
			return
		}
	}
	number := c.round + 1
	// Remember closed tasks for one round back: enough to tell a late or duplicate
	// result from an unknown one without growing forever.
	for id, cl := range c.closed {
		if cl.round+1 < number {
			delete(c.closed, id)
		}
	}
	f := &fitRound{number: number, sampled: sampled, pending: map[string]string{}}
	if c.sa == nil {
		f.plain = newPlainAggregate(c.dim+c.extra(), c.strat.NeedsIndividualUpdates())
	}
	if c.ul != nil {
		f.clip = c.ul.clip()
		switch {
		case len(sampled) == 0:
			c.fit = f
			c.failRound(fmt.Sprintf("Poisson sampling (rate %.3g of %d online clients) drew no client", c.ul.sampleRate(avail), avail), r)
			return
		case c.sa != nil && len(sampled) > c.cfg.SecAgg.MaxContributors:
			// Dropping some would change the sampling the accountant assumes; the round
			// releases nothing instead.
			c.fit = f
			c.failRound(fmt.Sprintf("Poisson sampling drew %d clients, more than secure_aggregation.max_contributors = %d", len(sampled), c.cfg.SecAgg.MaxContributors), r)
			return
		}
	}
	fc := c.strat.ConfigureFit(number, c.global)
	t, d := c.cfg.Training, c.cfg.DP
	spec := LocalTrainingSpec(t, d)
	spec.Model, spec.ProximalMu = c.modelPB, fc.ProximalMu
	spec.UpdateClipNorm, spec.WeightScale, spec.MaxWeight = d.UpdateClipNorm, t.WeightScale, c.maxWeight()
	spec.Config, spec.DatasetSchema = fc.Config, c.datasetJSON
	if c.trainStatistics() {
		spec.Statistics = &pb.StatisticsSpec{LossCap: t.LossCap}
	}
	if c.ul != nil {
		spec.UpdateClipNorm = f.clip
		spec.UserLevelDp = c.ul.spec(f.clip)
	}
	blobs := []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(c.global))}
	if c.ctl != nil {
		spec.Scaffold = &pb.ScaffoldSpec{ControlClipNorm: c.ctl.ControlClipNorm()}
		blobs = append(blobs, blob.New(blob.Control, blob.EncodeFloats(c.ctl.Control(c.dim))))
		f.population = len(c.clients)
	}
	if c.sa != nil {
		acfg := secagg.AggregatorConfig{Session: c.com.session, Round: number, Dim: c.dim + c.extra(), Committee: c.cfg.committeeConfig(), Workers: 2, Purpose: secagg.PurposeFit, Verifier: c.verifier}
		var err error
		if c.verifier != nil && c.uploadStore != nil {
			if acfg.Store, err = c.uploadStore(); err != nil {
				c.fit = f
				c.failRound(fmt.Sprintf("secure aggregation: the store of the round's uploads: %v", err), r)
				return
			}
		}
		agg, err := secagg.NewAggregator(*c.sa, acfg)
		if err != nil {
			c.fit = f
			c.failRound(fmt.Sprintf("secure aggregation: %v", err), r)
			return
		}
		f.agg = agg
		spec.Secagg = &pb.SecAggSpec{Session: c.com.session[:], Params: c.saProto, UploadValues: int64(c.dim + c.extra())}
	}
	c.fit = f
	c.phase = phaseFit
	c.deadline = c.now + c.cfg.Deadlines.Fit
	for _, id := range sampled {
		var (
			eps     float64
			charged bool
			err     error
		)
		if c.rl != nil {
			// Charged when issued: the client may train whether or not a result arrives.
			eps, charged, err = c.rl.issued(id, number)
			if err != nil {
				c.failRound(err.Error(), r)
				return
			}
			r.Persist = append(r.Persist, PrivacyRecord{ClientID: id, Round: number, Epsilon: eps, Delta: d.Delta})
			r.Notices = append(r.Notices, PrivacySpent{ClientID: id, Epsilon: eps})
		}
		ts := &taskState{client: id, kind: pb.TaskKind_TASK_KIND_FIT, round: number, charged: charged}
		c.newTask(r, ts, &pb.Task{Spec: &pb.Task_Fit{Fit: spec}, Blobs: c.withPublicKey(id, blobs)})
		f.pending[id] = ts.id
	}
	r.Notices = append(r.Notices, RoundStarted{Round: number, Clients: slices.Clone(sampled)})
}

// withPublicKey returns the blobs of a task for client under secure aggregation: with the
// session's collective public key the first time the client gets a task of the session
// (it keeps it; the message, with the signed roster and shares that verify it, is several
// times an update of a small model), without it after.
func (c *Coordinator) withPublicKey(client string, blobs []*pb.Blob) []*pb.Blob {
	cs := c.clients[client]
	if c.sa == nil || c.com == nil || cs == nil || (cs.keyOf == c.com.session && cs.keySent) {
		return blobs
	}
	cs.keyOf, cs.keySent = c.com.session, true
	return append(slices.Clone(blobs), c.com.pkBlob)
}

// maxWeight bounds the weight of a client's update: the weight clients encrypt under secure
// aggregation, and the weight the server gives plaintext updates, so both modes agree.
func (c *Coordinator) maxWeight() float64 { return c.cfg.SecAgg.MaxWeight }

// weight is the aggregation weight of a plaintext update of a client with n examples,
// min(n / weight_scale, max_weight) as clients compute it under secure aggregation: 1 for
// every client under user-level DP. A client that does not share its example count (n = 0,
// the default without secure aggregation, see client.PartyConfig.ShareStatistics) weighs
// max_weight.
func (c *Coordinator) weight(n int64) float64 {
	if c.ul != nil || c.ctl != nil {
		return 1
	}
	if n <= 0 {
		return c.maxWeight()
	}
	return min(float64(n)/c.cfg.Training.WeightScale, c.maxWeight())
}

// trainStatistics reports whether fit tasks ask for the training statistics inside the
// secure aggregate: under secure aggregation without user-level DP or distributed noise
// (whose guarantees do not cover them).
func (c *Coordinator) trainStatistics() bool {
	return c.sa != nil && c.ul == nil && !c.cfg.DP.Distributed
}

// statisticSlots is the number of values a client appends for its statistics.
const statisticSlots = 2

// extra is the number of values clients append to their update: the adaptive clip's
// indicator, or the training statistics.
func (c *Coordinator) extra() int {
	n := c.controlDim()
	switch {
	case c.ul != nil:
		n += c.ul.extra()
	case c.trainStatistics():
		n += statisticSlots
	}
	return n
}

// controlDim is the number of SCAFFOLD control-variate deltas clients append right after
// their update: one per parameter (0 without SCAFFOLD).
func (c *Coordinator) controlDim() int {
	if c.ctl != nil {
		return c.dim
	}
	return 0
}

// splitSum splits an aggregate of updates (the decrypted or exact plaintext sum) into the
// model's part, SCAFFOLD's control-variate deltas (nil without), and the values after them.
func (c *Coordinator) splitSum(sum []float64) (update, control, rest []float64) {
	k := c.dim + c.controlDim()
	update, rest = sum[:c.dim:c.dim], sum[k:]
	if c.ctl != nil {
		control = sum[c.dim:k:k]
	}
	return update, control, rest
}

// decodeStatistics turns the decrypted sums of the statistic slots (see
// client.statisticSlots) and the total weight into the weighted mean loss and accuracy.
func (c *Coordinator) decodeStatistics(slots []float64, totalWeight float64, prefix string) map[string]float64 {
	if len(slots) != statisticSlots || !(totalWeight > 0) {
		return nil
	}
	b := c.sa.Literal().ClipBound
	return map[string]float64{
		prefix + "loss":     slots[0] / totalWeight / b * c.cfg.Training.LossCap,
		prefix + "accuracy": slots[1] / totalWeight / b,
	}
}

// fitResult accepts a successful fit result; it returns a non-empty message when invalid.
func (c *Coordinator) fitResult(ts *taskState, res *pb.Result, via string, r *Ready) string {
	f := c.fit
	if c.phase != phaseFit || f == nil || f.number != ts.round {
		return fmt.Sprintf("round %d is no longer collecting updates", ts.round)
	}
	if res.NumExamples < 0 {
		return fmt.Sprintf("num_examples = %d: must be ≥ 0 (0: not shared)", res.NumExamples)
	}
	if hasBlob(res.Blobs, blob.HeldUpload) {
		return c.heldResult(ts, res, via, r) // an aggregator holds the upload (partials.go)
	}
	if f.agg != nil {
		if hasBlob(res.Blobs, blob.Update) {
			return "plaintext update sent under secure aggregation; send only encrypted_update"
		}
		// Contributes once the driver has verified and added it (Aggregated).
		delete(f.pending, ts.client)
		f.queue(r, f.number, ts.client, ts.id, "update", res.Blobs)
		return ""
	}
	if !hasBlob(res.Blobs, blob.Update) {
		return fmt.Sprintf("blob %q missing", blob.Update)
	}
	// Verifying, decoding, checking and adding the update is driver work (PlainUpdateWork).
	clip, key := c.cfg.DP.UpdateClipNorm, "dp.update_clip_norm"
	if c.ul != nil {
		clip, key = f.clip, "the round's user-level clip"
	}
	delete(f.pending, ts.client)
	if f.adding == nil {
		f.adding = map[string]string{}
	}
	f.adding[ts.client] = ts.id
	r.Work = append(r.Work, PlainUpdateWork{Round: f.number, TaskID: ts.id, ClientID: ts.client, blobs: res.Blobs,
		dim: c.dim, extra: c.extra(), clip: clip, clipKey: key, userLevel: c.ul != nil,
		update: strategy.ClientUpdate{ClientID: ts.client, Weight: c.weight(res.NumExamples), NumExamples: int(res.NumExamples), Metrics: res.Metrics},
		into:   f.plain})
	return ""
}

// finishFit ends the fit phase: stragglers count as dropped; then, once the driver has
// added every upload that arrived in time, decrypt or aggregate.
func (c *Coordinator) finishFit(r *Ready) {
	f := c.fit
	for _, id := range slices.Sorted(mapsKeys(f.pending)) {
		c.closeTask(f.pending[id], false, r)
		f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "no result before the fit deadline"})
	}
	clear(f.pending)
	if f.busy() || f.partialsBusy() {
		return // aggregated (partialAdded) finishes the phase
	}
	if c.awaitPartials(c.now >= c.deadline, r) {
		return // partialAdded, a deadline or SourceGone finishes the phase
	}
	if n := len(f.contributors); n < c.cfg.Sampling.MinFit {
		c.failRound(fmt.Sprintf("only %d of the sampled clients returned updates, sampling.min_fit is %d", n, c.cfg.Sampling.MinFit), r)
		return
	}
	if f.agg != nil {
		c.startDecryptOf(f.agg, f.hier, f.number, false, r)
		return
	}
	// The sums are exact (order-independent) and the updates kept in client order, so a
	// round's result does not depend on the network's order of arrival, and a resumed run
	// reproduces an uninterrupted one bit for bit.
	slices.Sort(f.contributors)
	p := f.plain
	if p.updates != nil {
		slices.SortFunc(p.updates, func(a, b strategy.ClientUpdate) int { return strings.Compare(a.ClientID, b.ClientID) })
		c.aggregate(strategy.FitResults{Updates: p.updates, Failures: f.failures}, r)
		return
	}
	sum := p.sum.Float64s()
	if c.ul != nil {
		c.releaseUserLevel(sum, p.sum.Terms(), r)
		return
	}
	update, control, _ := c.splitSum(sum)
	f.controlSum = control
	c.aggregate(strategy.FitResults{Sum: &strategy.WeightedSum{Sum: update, TotalWeight: p.weight.Float64s()[0], Count: p.sum.Terms()}, Failures: f.failures}, r)
}

// releaseUserLevel noises the sum of count updates (user-level DP), updates the adaptive
// clip and aggregates the noised sum over the expected number of clients: every client
// weighs 1 and the denominator is m whatever the number that reported (DP-FedAvg's fixed
// denominator).
func (c *Coordinator) releaseUserLevel(sum []float64, count int, r *Ready) {
	f := c.fit
	noised, metrics, err := c.ul.release(sum, count, f.clip)
	if err != nil {
		c.failRound(fmt.Sprintf("user-level DP: %v", err), r)
		return
	}
	f.dpMetrics = metrics
	c.aggregate(strategy.FitResults{Sum: &strategy.WeightedSum{Sum: noised, TotalWeight: c.ul.m, Count: count}, Failures: f.failures}, r)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkAggregate refuses a decrypted sum that honest clipped updates cannot produce, so one
// client's out-of-range ciphertext (secure aggregation cannot check what a client encrypts)
// fails the round instead of silently wrecking the model. Each upload encrypts a vector of
// L2 norm at most max(w)·S (the clipped update; under user-level DP the update plus the
// client's noise share, and the centred indicator) and values within the coordinate bound;
// their sum, plus the decoding error, must stay within count times that.
func (c *Coordinator) checkAggregate(sum *secagg.AggregateResult, eval bool) error {
	lit := c.sa.Literal()
	n := float64(sum.Count)
	if sum.Count < 1 || !(sum.TotalWeight >= 0) || sum.TotalWeight > n*lit.MaxWeight*(1+1e-6)+1e-3 {
		return fmt.Errorf("the decrypted aggregate holds a total weight of %g for %d updates, more than max_weight %g each: a client encrypted an out-of-range weight", sum.TotalWeight, sum.Count, lit.MaxWeight)
	}
	d := float64(len(sum.WeightedSum))
	decode := c.sa.ErrorStd(c.cfg.SecAgg.Threshold) * (math.Sqrt(d) + 8) // ‖error‖ bound, 8σ of slack
	var bound float64
	switch {
	case eval:
		// Two statistic slots, each within the coordinate bound, times the weight.
		bound = math.Sqrt(2) * lit.ClipBound * sum.TotalWeight
	case c.ul != nil:
		// Each update: clipped to S (≤ the coordinate bound), plus its noise share
		// (≤ share·(√d + 8) with overwhelming probability), plus the indicator ½.
		share := 0.0
		if c.ul.distributed {
			share = c.ul.zUpdate * c.fit.clip / math.Sqrt(float64(c.ul.mMin))
		}
		bound = n * (c.fit.clip + share*(math.Sqrt(d)+8) + 0.5)
	default:
		// The clipped update and the statistic slots, times the weight.
		bound = sum.TotalWeight * (c.cfg.DP.UpdateClipNorm + c.cfg.Strategy.ControlClipNorm + math.Sqrt(statisticSlots)*lit.ClipBound)
	}
	var ss float64
	for _, v := range sum.WeightedSum {
		ss += v * v
	}
	if norm := math.Sqrt(ss); !(norm <= bound+decode) {
		return fmt.Errorf("the decrypted aggregate has norm %.6g, more than %d honest clipped updates can sum to (%.6g): a client encrypted values outside its clip; the round is dropped", norm, sum.Count, bound+decode)
	}
	return nil
}

// aggregate applies the strategy, evaluates centrally, checkpoints and moves on to evaluation.
func (c *Coordinator) aggregate(res strategy.FitResults, r *Ready) {
	f := c.fit
	next, metrics, err := c.strat.AggregateFit(f.number, c.global, res)
	if err == nil && len(next) != c.dim {
		err = fmt.Errorf("strategy %s returned %d parameters, want %d", c.strat.Name(), len(next), c.dim)
	}
	if err == nil {
		for i, v := range next {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				err = fmt.Errorf("strategy %s produced parameter %d = %v", c.strat.Name(), i, v)
				break
			}
		}
	}
	if err == nil && c.ctl != nil {
		if f.controlSum == nil {
			err = fmt.Errorf("scaffold: no control-variate deltas in the round's aggregate")
		} else {
			err = c.ctl.UpdateControl(f.controlSum, res.Count(), max(f.population, res.Count()))
		}
	}
	if err != nil {
		c.failRound(err.Error(), r)
		return
	}
	if metrics == nil {
		metrics = strategy.Metrics{}
	}
	for k, v := range f.stats {
		metrics[k] = v
	}
	metrics["contributors"] = float64(res.Count())
	if c.rl != nil {
		metrics["epsilon_max"] = c.rl.max
	}
	if c.epsMax > 0 {
		metrics["epsilon_reported_max"] = c.epsMax
	}
	for k, v := range f.dpMetrics {
		metrics[k] = v
	}
	var ulRec *UserLevelPrivacyRecord
	if c.ul != nil {
		rec, err := c.userLevelRecord(f.number)
		if err != nil {
			c.failRound(err.Error(), r)
			return
		}
		ulRec = &rec
		metrics["user_epsilon"] = rec.Epsilon
		metrics["user_delta"] = rec.Delta
	}
	c.global = next
	c.round = f.number
	c.requestEvaluation(f.number, r)
	rec := RoundRecord{Round: f.number, Params: slices.Clone(c.global), Metrics: metrics, Contributors: slices.Clone(f.contributors), SamplerState: c.samplerState(), Privacy: privacyOf(metrics)}
	if released, averaged := c.released(); averaged {
		rec.Released = slices.Clone(released)
	}
	if st, ok := c.strat.(strategy.Stateful); ok {
		if b, err := st.MarshalState(); err == nil {
			rec.StrategyState = b
		}
	}
	r.Persist = append(r.Persist, rec)
	if ulRec != nil {
		r.Persist = append(r.Persist, *ulRec)
	}
	r.Notices = append(r.Notices, RoundFinished{Round: f.number, Contributors: res.Count(), Failures: slices.Clone(f.failures), Metrics: metrics})
	c.endFit()
	c.startEvaluate(r)
}

// endFit drops the round's fit phase and releases its aggregate (and the aggregate's
// store). An upload the driver is still adding then fails, and its late answer is refused.
func (c *Coordinator) endFit() {
	if c.fit.agg != nil {
		_ = c.fit.agg.Release() // a temporary file's close error loses nothing
	}
	c.fit = nil
}

// budgetRoom returns whether a client has room in its privacy budget for a fit task: it
// has not refused one on its budget, and the server's account of its ε leaves room in
// dp.budget_epsilon (when set). Nil without record-level accounting (every client has).
func (c *Coordinator) budgetRoom() func(*clientState) bool {
	budget := c.cfg.DP.BudgetEpsilon
	if c.rl == nil {
		return nil
	}
	return func(cs *clientState) bool {
		return !cs.outOfBudget && (budget <= 0 || c.rl.roomFor(cs.id, budget))
	}
}

// maxEpsilon is the largest total record-level ε of any client: the server's own account of
// the fit tasks it issued and the client did not refuse (and, should a client report more,
// its report).
func (c *Coordinator) maxEpsilon() float64 {
	if c.rl != nil {
		return max(c.rl.max, c.epsMax)
	}
	return c.epsMax
}

// failRound ends the current round without a model update; it still counts as a round.
func (c *Coordinator) failRound(reason string, r *Ready) {
	f := c.fit
	c.closeAll(r)
	c.round = f.number
	failed := RoundRecord{Round: f.number, Params: slices.Clone(c.global), Failed: true, Reason: reason, Contributors: slices.Clone(f.contributors), SamplerState: c.samplerState()}
	if c.rl != nil {
		failed.Privacy.EpsilonMax = c.rl.max
	}
	var ulRec *UserLevelPrivacyRecord
	if c.ul != nil && f.clip > 0 {
		// The round sampled clients: it counts for the accountant, released or not.
		if rec, err := c.userLevelRecord(f.number); err == nil {
			ulRec = &rec
			failed.Privacy.UserEpsilon, failed.Privacy.UserDelta = rec.Epsilon, rec.Delta
		}
	}
	r.Persist = append(r.Persist, failed)
	if ulRec != nil {
		r.Persist = append(r.Persist, *ulRec)
	}
	r.Notices = append(r.Notices, RoundFinished{Round: f.number, Contributors: 0, Failures: slices.Clone(f.failures), Failed: true, Reason: reason})
	c.endFit()
	c.phase = phaseWaiting
}

// privacyOf reads a round's privacy figures from its metrics (see RoundPrivacy).
func privacyOf(m map[string]float64) RoundPrivacy {
	return RoundPrivacy{
		EpsilonMax: m["epsilon_max"], UserEpsilon: m["user_epsilon"], UserDelta: m["user_delta"],
		UpdateClip: m["update_clip"], SumNoiseStd: m["sum_noise_std"], CountNoiseStd: m["count_noise_std"],
	}
}

// LocalTrainingSpec is the fit task's local training: every setting of t and d that a
// client's trainer uses (client.FitConfigFromSpec reads them back). The one place they
// enter a FitSpec.
func LocalTrainingSpec(t TrainingConfig, d DPConfig) *pb.FitSpec {
	return &pb.FitSpec{
		LocalEpochs: int32(t.Epochs), BatchSize: int32(t.BatchSize), Optimizer: t.Optimizer,
		LearningRate: t.LR, Momentum: t.Momentum, Nesterov: t.Nesterov, WeightDecay: t.WeightDecay,
		Beta1: t.Beta1, Beta2: t.Beta2, Eps: t.Eps, Schedule: t.Schedule, Warmup: int32(t.Warmup),
		Dp: &pb.DPSpec{NoiseMultiplier: d.NoiseMultiplier, MaxGradNorm: d.MaxGradNorm, Delta: d.Delta, SampleRate: d.SampleRate, Steps: int32(d.Steps),
			Clipping: d.Clipping, LayerMaxGradNorms: d.LayerMaxGradNorms, Distributed: d.Distributed},
	}
}
