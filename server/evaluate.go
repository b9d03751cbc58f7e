package server

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

func (c *Coordinator) startEvaluate(r *Ready) {
	s := c.cfg.Sampling
	e := &evalRound{number: c.round, pending: map[string]string{}}
	c.eval = e
	n := 0
	if s.FractionEvaluate > 0 || s.MinEvaluate > 0 {
		n = max(int(math.Ceil(s.FractionEvaluate*float64(c.available()))), s.MinEvaluate)
	}
	if n == 0 || c.available() == 0 {
		c.finishEvaluate(r)
		return
	}
	t := c.cfg.Training
	released, _ := c.released() // the clients evaluate the model the federation releases
	spec := &pb.EvaluateSpec{Model: c.modelPB, BatchSize: 256, Config: c.strat.ConfigureEvaluate(e.number, released), DatasetSchema: c.datasetJSON}
	blobs := []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(released))}
	if c.sa != nil {
		// The statistics travel encrypted; only their sum over ≥ min_contributions
		// evaluating clients is decrypted.
		if !c.committeeUsable() || c.available() < c.cfg.SecAgg.MinContributions {
			c.finishEvaluate(r)
			return
		}
		n = min(max(n, c.cfg.SecAgg.MinContributions), c.cfg.SecAgg.MaxContributors)
		agg, err := secagg.NewAggregator(*c.sa, secagg.AggregatorConfig{Session: c.com.session, Round: e.number, Dim: statisticSlots, Committee: c.cfg.committeeConfig(), Workers: 1, Purpose: secagg.PurposeEvaluation, Verifier: c.verifier})
		if err != nil {
			e.failures = append(e.failures, strategy.Failure{Kind: strategy.FailureError, Reason: "secure aggregation of evaluation statistics: " + err.Error()})
			c.finishEvaluate(r)
			return
		}
		e.agg = agg
		spec.Secagg = &pb.SecAggSpec{Session: c.com.session[:], Params: c.saProto}
		spec.Statistics = &pb.StatisticsSpec{LossCap: t.LossCap}
		spec.WeightScale, spec.MaxWeight = t.WeightScale, c.maxWeight()
	}
	c.phase = phaseEvaluate
	c.deadline = c.now + c.cfg.Deadlines.Evaluate
	for _, id := range c.sample(n, nil) {
		ts := &taskState{client: id, kind: pb.TaskKind_TASK_KIND_EVALUATE, round: e.number}
		c.newTask(r, ts, &pb.Task{Spec: &pb.Task_Evaluate{Evaluate: spec}, Blobs: c.withPublicKey(id, blobs)})
		e.pending[id] = ts.id
	}
}

func (c *Coordinator) evalResult(ts *taskState, res *pb.Result, r *Ready) string {
	e := c.eval
	if c.phase != phaseEvaluate || e == nil || e.number != ts.round {
		return fmt.Sprintf("round %d is not evaluating", ts.round)
	}
	if e.agg != nil {
		delete(e.pending, ts.client)
		e.queue(r, e.number, ts.client, ts.id, "evaluation", res.Blobs)
		return ""
	}
	loss, ok := res.Metrics["loss"]
	if !ok || math.IsNaN(loss) || math.IsInf(loss, 0) || res.NumExamples < 1 {
		return "an evaluation needs a finite loss metric and num_examples ≥ 1"
	}
	delete(e.pending, ts.client)
	e.results = append(e.results, strategy.EvaluateResult{ClientID: ts.client, NumExamples: int(res.NumExamples), Loss: loss, Metrics: res.Metrics})
	if len(e.pending) == 0 {
		c.finishEvaluate(r)
	}
	return ""
}

// finishEvaluate ends the collection of evaluation results: under secure aggregation it
// has the committee decrypt the statistics' sum when enough clients sent theirs.
func (c *Coordinator) finishEvaluate(r *Ready) {
	e := c.eval
	for _, id := range slices.Sorted(mapsKeys(e.pending)) {
		c.closeTask(e.pending[id], false, r)
		e.failures = append(e.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "no result before the evaluate deadline"})
	}
	clear(e.pending)
	if e.busy() {
		return // aggregated finishes the phase
	}
	if e.agg != nil {
		if e.agg.Count() >= c.cfg.SecAgg.MinContributions && c.com != nil {
			c.startDecrypt(e.agg, e.number, true, r)
			return
		}
		if e.agg.Count() > 0 {
			e.failures = append(e.failures, strategy.Failure{Kind: strategy.FailureError, Reason: fmt.Sprintf("only %d clients sent evaluation statistics, fewer than secure_aggregation.min_contributions = %d: nothing decrypted", e.agg.Count(), c.cfg.SecAgg.MinContributions)})
		}
		c.endEvaluate(nil, r)
		return
	}
	var fed map[string]float64
	if len(e.results) > 0 {
		if m, err := c.strat.AggregateEvaluate(e.number, e.results, e.failures); err == nil {
			fed = m
		}
	}
	c.endEvaluate(fed, r)
}

// endEvaluate reports the round's evaluation (federated: the aggregated statistics, nil
// when there are none) and returns to waiting.
func (c *Coordinator) endEvaluate(federated map[string]float64, r *Ready) {
	e := c.eval
	n := EvaluationFinished{Round: e.number, Federated: federated, Evaluations: len(e.results)}
	if e.agg != nil {
		n.Evaluations = e.agg.Count()
	}
	if n.Federated != nil {
		r.Notices = append(r.Notices, n)
	}
	c.eval = nil
	c.phase = phaseWaiting
}

// requestEvaluation asks the driver to evaluate the released model after round (and the
// global iterate when they differ) on the server's test set (Options.Central): the work
// runs outside Step, so a large test set cannot starve heartbeats; the driver answers
// with an Evaluated event.
func (c *Coordinator) requestEvaluation(round uint64, r *Ready) {
	if c.central == nil {
		return
	}
	c.evalPending++
	req := EvaluationRequest{Round: round}
	released, averaged := c.released()
	req.Params = slices.Clone(released)
	if averaged {
		req.Iterate = slices.Clone(c.global)
	}
	r.Evaluate = append(r.Evaluate, req)
}

// IteratePrefix opens the names of the central metrics of the global iterate, evaluated
// beside the released average (strategy.ema_decay): iterate_accuracy, iterate_loss.
const IteratePrefix = "iterate_"

// Run carries out the request: central evaluates Params and, when it returned metrics
// (an evaluator may skip rounds), iterate (nil: central) evaluates Iterate when set, its
// metrics added with IteratePrefix. A driver steps the Evaluated it returns.
func (req EvaluationRequest) Run(central, iterate CentralEvaluator) Evaluated {
	m, err := central(req.Round, req.Params)
	if err == nil && m != nil && req.Iterate != nil {
		if iterate == nil {
			iterate = central
		}
		var mi map[string]float64
		if mi, err = iterate(req.Round, req.Iterate); err == nil {
			m = maps.Clone(m)
			for k, v := range mi {
				m[IteratePrefix+k] = v
			}
		}
	}
	ev := Evaluated{Round: req.Round, Metrics: m}
	if err != nil {
		ev.Metrics, ev.Err = nil, err.Error()
	}
	return ev
}

// evaluated takes a central evaluation back from the driver: it is persisted (an
// EvaluationRecord, which a store adds to the round's metrics as central_*) and reported.
func (c *Coordinator) evaluated(e Evaluated, r *Ready) error {
	if c.evalPending == 0 {
		return reject(RejectInvalid, "central evaluation of round %d that was never asked for", e.Round)
	}
	c.evalPending--
	m := e.Metrics
	if e.Err != "" {
		m = map[string]float64{"error": 1}
	}
	r.Persist = append(r.Persist, EvaluationRecord{Round: e.Round, Metrics: maps.Clone(m), Err: e.Err})
	r.Notices = append(r.Notices, EvaluationFinished{Round: e.Round, Central: m})
	return nil
}

// CentralEvaluator returns the evaluator of Options.Central (nil without), which a driver
// runs for each EvaluationRequest of a Ready, outside Step and one at a time.
func (c *Coordinator) CentralEvaluator() CentralEvaluator { return c.central }

// IterateEvaluator returns the evaluator of Options.CentralIterate (nil: CentralEvaluator
// evaluates the iterate too; see EvaluationRequest.Run).
func (c *Coordinator) IterateEvaluator() CentralEvaluator { return c.centralIterate }
