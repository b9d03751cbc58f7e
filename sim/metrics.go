package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
	"github.com/confide-fl/confide/train"
)

// evaluator is the coordinator's central evaluation (server.CentralEvaluator) on the test
// set, split across one model per worker; it runs every Evaluation.Every rounds, at round 0
// and at the last round, and notes the first round reaching the target accuracy.
type evaluator struct {
	test *data.Dataset
	// transformed says test holds the output of the model's feature stage (featurize).
	transformed bool
	models      []*model.Model
	batch       int
	every       int
	rounds      int
	target      float64

	mu      sync.Mutex
	results map[uint64]evaluation
	took    map[uint64]time.Duration
	reached uint64 // first round with accuracy ≥ target (0: none)
}

type evaluation struct{ accuracy, loss float64 }

func newEvaluator(spec model.Spec, test *data.Dataset, c Config) (*evaluator, error) {
	e := &evaluator{test: test, batch: c.Evaluation.BatchSize, every: c.Evaluation.Every, rounds: c.Rounds, target: c.TargetAccuracy, results: map[uint64]evaluation{}, took: map[uint64]time.Duration{}}
	// One shard per worker whenever the test set has an example for each: evaluation holds
	// up the next round, so it must use every core even when the test set is smaller than
	// two batches (Shakespeare's 600 windows against the default batch of 1000). A shard's
	// batches are at most batch/shards examples, so the shards together hold no more
	// activations than one batch.
	shards := max(1, min(c.Workers, test.N))
	e.batch = max(1, e.batch/shards)
	p, err := c.precision()
	if err != nil {
		return nil, err
	}
	for range shards {
		m, err := model.New(spec, rand.New(rand.NewPCG(0, 0)))
		if err != nil {
			return nil, err
		}
		if err := train.CheckCompatible(m, test); err != nil {
			return nil, fmt.Errorf("model vs test set: %w", err)
		}
		if err := m.SetPrecision(p); err != nil {
			return nil, err
		}
		e.models = append(e.models, m)
	}
	return e, nil
}

func (e *evaluator) due(round uint64) bool {
	return round == 0 || round%uint64(e.every) == 0 || round == uint64(e.rounds)
}

// central evaluates the released model params on the test set when round is due, and
// records the result (the run's accuracies, the round reaching the target).
func (e *evaluator) central(round uint64, params []float64) (map[string]float64, error) {
	return e.evaluate(round, params, true)
}

// iterate evaluates the global iterate params when the released model is an average of
// the global models (strategy.ema_decay): its figures only join the round's row.
func (e *evaluator) iterate(round uint64, params []float64) (map[string]float64, error) {
	return e.evaluate(round, params, false)
}

func (e *evaluator) evaluate(round uint64, params []float64, record bool) (map[string]float64, error) {
	if !e.due(round) {
		return nil, nil
	}
	start := time.Now()
	type part struct {
		loss float64
		st   model.Stats
		err  error
	}
	parts := make([]part, len(e.models))
	n := e.test.N
	var wg sync.WaitGroup
	for w, m := range e.models {
		lo, hi := w*n/len(e.models), (w+1)*n/len(e.models)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[w]
			if p.err = m.SetParams(params); p.err != nil {
				return
			}
			var b data.Batch
			var in model.Input
			idx := make([]int, 0, e.batch)
			for start := lo; start < hi; start += e.batch {
				idx = idx[:0]
				for i := start; i < min(start+e.batch, hi); i++ {
					idx = append(idx, i)
				}
				e.test.Gather(&b, idx)
				tg := train.Input(e.test, &b, &in)
				in.Transformed = e.transformed
				l, st, err := m.Evaluate(&in, tg)
				if err != nil {
					p.err = err
					return
				}
				p.loss += l
				p.st.Correct += st.Correct
				p.st.Count += st.Count
			}
		}()
	}
	wg.Wait()
	var loss float64
	var st model.Stats
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		loss += p.loss
		st.Correct += p.st.Correct
		st.Count += p.st.Count
	}
	ev := evaluation{loss: loss / float64(max(n, 1))}
	if st.Count > 0 {
		ev.accuracy = float64(st.Correct) / float64(st.Count)
	}
	e.mu.Lock()
	e.took[round] += time.Since(start)
	if record {
		e.results[round] = ev
		if e.target > 0 && e.reached == 0 && round > 0 && ev.accuracy >= e.target {
			e.reached = round
		}
	}
	e.mu.Unlock()
	out := map[string]float64{"accuracy": ev.accuracy, "loss": ev.loss}
	if e.test.Task == data.TaskRegress && !e.transformed {
		// A regression model's errors in the target's units (one pass; test sets of tables
		// are small).
		if err := e.models[0].SetParams(params); err != nil {
			return nil, err
		}
		r, err := train.Evaluate(e.models[0], e.test, e.batch)
		if err != nil {
			return nil, err
		}
		out["r2"], out["rmse"], out["mae"] = r.Regression.R2, r.Regression.RMSE, r.Regression.MAE
	}
	return out, nil
}

func (e *evaluator) result(round uint64) (evaluation, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ev, ok := e.results[round]
	return ev, ok
}

func (e *evaluator) duration(round uint64) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.took[round]
}

func (e *evaluator) targetRound() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reached
}

// RoundMetrics is one row of the per-round table.
type RoundMetrics struct {
	Round  int    `json:"round"`
	Failed bool   `json:"failed,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Sampled clients, Contributors whose update was aggregated; of the others, Dropped
	// timed out (crashed, offline or past the deadline), Refused declined on privacy budget
	// grounds, Errors failed or sent invalid results. Late counts results that arrived
	// after the fit deadline (stragglers, already among Dropped).
	Sampled      int `json:"sampled"`
	Contributors int `json:"contributors"`
	Dropped      int `json:"dropped"`
	Refused      int `json:"refused"`
	Errors       int `json:"errors"`
	Late         int `json:"late"`
	// Accuracy and Loss on the central test set, when evaluated this round.
	Accuracy *float64 `json:"accuracy,omitempty"`
	Loss     *float64 `json:"loss,omitempty"`
	// R2, RMSE and MAE of a regression model on the central test set, in the target's units.
	R2   *float64 `json:"r2,omitempty"`
	RMSE *float64 `json:"rmse,omitempty"`
	MAE  *float64 `json:"mae,omitempty"`
	// TrainLoss and TrainAccuracy are the contributors' last-epoch means (example-weighted).
	TrainLoss     *float64 `json:"train_loss,omitempty"`
	TrainAccuracy *float64 `json:"train_accuracy,omitempty"`
	// FederatedAccuracy and FederatedLoss: federated evaluation (evaluation.fraction > 0).
	FederatedAccuracy *float64 `json:"federated_accuracy,omitempty"`
	FederatedLoss     *float64 `json:"federated_loss,omitempty"`
	// IterateAccuracy and IterateLoss are the central test set's figures of the global
	// iterate the clients train from, when the released model (Accuracy, Loss) is the
	// strategy's average of the global models (strategy.ema_decay).
	IterateAccuracy *float64 `json:"iterate_accuracy,omitempty"`
	IterateLoss     *float64 `json:"iterate_loss,omitempty"`
	// Epsilon is the largest total ε at δ any client has spent so far (DP-SGD), as the
	// server accounts it: the fit tasks it issued, less those the client refused (a task
	// whose client dropped out stays charged: the server cannot tell whether it trained).
	// Without dropouts it is the clients' ledgers' figure, the summary's privacy.epsilon.
	Epsilon float64 `json:"epsilon"`
	// UserEpsilon is the federation's user-level ε so far (dp.user_level), and UpdateClip
	// the round's clip norm S under it.
	UserEpsilon float64 `json:"user_epsilon,omitempty"`
	UpdateClip  float64 `json:"update_clip,omitempty"`
	// SumNoiseStd and CountNoiseStd are the least Gaussian noise (standard deviations) that
	// any sum decrypted or released in the round carried on each update coordinate and on
	// the adaptive clip's indicator sum (sensitivities UpdateClip and ½): with them anyone
	// can recompute the noise multiplier the accountant uses.
	SumNoiseStd   float64 `json:"sum_noise_std,omitempty"`
	CountNoiseStd float64 `json:"count_noise_std,omitempty"`
	// BytesDown and BytesUp are the payload bytes of the round's tasks and results
	// (models, encrypted updates, key-setup and decryption messages).
	BytesDown int64 `json:"bytes_down"`
	BytesUp   int64 `json:"bytes_up"`
	// Examples is the number of example-epochs the sampled clients were asked to train
	// (memory transport).
	Examples int `json:"examples"`
	// VirtualSeconds is the simulated time at the round's end (memory transport);
	// WallSeconds the wall time the round took, EvalSeconds the part of it spent in
	// central evaluation; ElapsedSeconds the wall time since the start.
	VirtualSeconds float64 `json:"virtual_seconds"`
	WallSeconds    float64 `json:"wall_seconds"`
	EvalSeconds    float64 `json:"eval_seconds"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// recorder assembles RoundMetrics from the coordinator's records (through the Store, for
// every transport) and, with the memory transport, its notices and the traffic.
type recorder struct {
	r *run

	mu        sync.Mutex
	rows      []RoundMetrics
	userLevel *server.UserLevelPrivacyRecord // the latest
	open      map[int]*RoundMetrics          // rounds started, not yet recorded
	bytesDown map[uint64]int64
	bytesUp   map[uint64]int64
	late      map[uint64]int
	lastEnd   time.Time
}

func newRecorder(r *run) *recorder {
	return &recorder{r: r, open: map[int]*RoundMetrics{}, bytesDown: map[uint64]int64{}, bytesUp: map[uint64]int64{}, late: map[uint64]int{}, lastEnd: r.start}
}

// Append is the coordinator's server.Store: it keeps round metrics, not models (the last
// global model is the coordinator's; nothing else needs to survive a simulated run).
func (rc *recorder) Append(records []server.Record) error {
	for _, rec := range records {
		switch v := rec.(type) {
		case server.RoundRecord:
			rc.roundRecord(v)
		case server.UserLevelPrivacyRecord:
			rc.mu.Lock()
			rc.userLevel = &v
			rc.mu.Unlock()
		case server.EvaluationRecord:
			rc.evaluation(v)
		case server.StatisticsRecord:
			if err := rc.r.applyStatistics(v.Schema); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ server.Store = (*recorder)(nil)

func (rc *recorder) row(round int) *RoundMetrics {
	m, ok := rc.open[round]
	if !ok {
		m = &RoundMetrics{Round: round}
		rc.open[round] = m
	}
	return m
}

// started notes a round's sample (memory transport).
func (rc *recorder) started(round uint64, sampled, examples int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	m := rc.row(int(round))
	m.Sampled, m.Examples = sampled, examples
}

// finished notes the failures of a round (memory transport).
func (rc *recorder) finished(n server.RoundFinished) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	m := rc.row(int(n.Round))
	for i := len(rc.rows) - 1; i >= 0; i-- {
		if rc.rows[i].Round == int(n.Round) {
			m = &rc.rows[i]
			delete(rc.open, int(n.Round))
			break
		}
	}
	for _, f := range n.Failures {
		switch f.Kind {
		case strategy.FailureTimeout:
			m.Dropped++
		case strategy.FailureRefused:
			m.Refused++
		default:
			m.Errors++
		}
	}
}

func (rc *recorder) traffic(round uint64, down, up int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bytesDown[round] += down
	rc.bytesUp[round] += up
}

func (rc *recorder) lateResult(round uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.late[round]++
}

// federated notes a round's federated evaluation.
func (rc *recorder) federated(round uint64, m map[string]float64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range rc.rows {
		if rc.rows[i].Round == int(round) {
			setOpt(&rc.rows[i].FederatedAccuracy, m, "accuracy")
			setOpt(&rc.rows[i].FederatedLoss, m, "loss")
		}
	}
}

func setOpt(dst **float64, m map[string]float64, key string) {
	if v, ok := m[key]; ok && !math.IsNaN(v) {
		*dst = &v
	}
}

func (rc *recorder) roundRecord(rr server.RoundRecord) {
	now := time.Now()
	rc.mu.Lock()
	m := *rc.row(int(rr.Round))
	delete(rc.open, int(rr.Round))
	m.Failed, m.Reason = rr.Failed, rr.Reason
	if !rr.Failed {
		m.Contributors = len(rr.Contributors)
	}
	setOpt(&m.TrainLoss, rr.Metrics, "train_loss")
	setOpt(&m.TrainAccuracy, rr.Metrics, "train_accuracy")
	p := rr.Privacy
	m.Epsilon, m.UserEpsilon, m.UpdateClip = p.EpsilonMax, p.UserEpsilon, p.UpdateClip
	m.SumNoiseStd, m.CountNoiseStd = p.SumNoiseStd, p.CountNoiseStd
	if n := len(rc.rows); rr.Failed && n > 0 {
		m.Epsilon = rc.rows[n-1].Epsilon
		m.UserEpsilon = rc.rows[n-1].UserEpsilon
	}
	m.WallSeconds = now.Sub(rc.lastEnd).Seconds()
	m.ElapsedSeconds = now.Sub(rc.r.start).Seconds()
	rc.lastEnd = now
	rc.rows = append(rc.rows, m)
	rc.mu.Unlock()
}

// evaluation adds a central evaluation to its round's row (recorded just before it).
func (rc *recorder) evaluation(ev server.EvaluationRecord) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.rows) - 1; i >= 0; i-- {
		if rc.rows[i].Round == int(ev.Round) {
			setOpt(&rc.rows[i].Accuracy, ev.Metrics, "accuracy")
			setOpt(&rc.rows[i].Loss, ev.Metrics, "loss")
			setOpt(&rc.rows[i].R2, ev.Metrics, "r2")
			setOpt(&rc.rows[i].RMSE, ev.Metrics, "rmse")
			setOpt(&rc.rows[i].MAE, ev.Metrics, "mae")
			setOpt(&rc.rows[i].IterateAccuracy, ev.Metrics, server.IteratePrefix+"accuracy")
			setOpt(&rc.rows[i].IterateLoss, ev.Metrics, server.IteratePrefix+"loss")
			// The evaluation runs after the round's record: its time joins the round's
			// wall time here, and not the next round's.
			now := time.Now()
			rc.rows[i].EvalSeconds = rc.r.eval.duration(ev.Round).Seconds()
			if i == len(rc.rows)-1 {
				rc.rows[i].WallSeconds += now.Sub(rc.lastEnd).Seconds()
				rc.rows[i].ElapsedSeconds = now.Sub(rc.r.start).Seconds()
				rc.lastEnd = now
			}
			return
		}
	}
}

// close fills the traffic, lateness and virtual time into the rows and returns them.
func (rc *recorder) close() []RoundMetrics {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range rc.rows {
		r := uint64(rc.rows[i].Round)
		rc.rows[i].BytesDown, rc.rows[i].BytesUp, rc.rows[i].Late = rc.bytesDown[r], rc.bytesUp[r], rc.late[r]
	}
	return append([]RoundMetrics(nil), rc.rows...)
}

// userLevelRecord returns the latest user-level privacy record (nil: none).
func (rc *recorder) userLevelRecord() *server.UserLevelPrivacyRecord {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.userLevel
}

// lastRow returns a copy of the last recorded round.
func (rc *recorder) lastRow() (RoundMetrics, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.rows) == 0 {
		return RoundMetrics{}, false
	}
	m := rc.rows[len(rc.rows)-1]
	r := uint64(m.Round)
	m.BytesDown, m.BytesUp, m.Late = rc.bytesDown[r], rc.bytesUp[r], rc.late[r]
	return m, true
}

func (rc *recorder) setVirtual(round int, t time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.rows) - 1; i >= 0; i-- {
		if rc.rows[i].Round == round {
			rc.rows[i].VirtualSeconds = t.Seconds()
			return
		}
	}
}
