package server

import (
	"fmt"
	"math"
	"slices"
	"time"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server/strategy"
)

// NextDeadline returns the time (the sum of the ticks seen so far, like Now) at which the
// current phase's deadline passes, and false when no phase is waiting on one. A driver
// that advances time in jumps, like the simulator, ticks no further than this, so
// deadlines fire on time.
func (c *Coordinator) NextDeadline() (time.Duration, bool) {
	switch c.phase {
	case phaseFit, phaseEvaluate, phaseDecrypt, phaseKeySetup, phaseStatistics:
		return c.deadline, true
	case phaseWaiting:
		if c.needsStatistics() && c.now < c.statsRetryAt {
			return c.statsRetryAt, true // a failed statistics round runs again then
		}
	}
	return 0, false
}

// Now returns the coordinator's time: the sum of the ticks it has seen.
func (c *Coordinator) Now() time.Duration { return c.now }

func (c *Coordinator) checkDeadline(r *Ready) {
	if c.now < c.deadline {
		return
	}
	switch c.phase {
	case phaseFit:
		c.finishFit(r)
	case phaseEvaluate:
		c.finishEvaluate(r)
	case phaseStatistics:
		c.finishStatistics(r)
	case phaseDecrypt:
		if c.dec.combining {
			return // every share arrived in time; combined ends the phase
		}
		var missing []string
		for _, id := range c.dec.set {
			if _, ok := c.dec.shares[id]; !ok {
				missing = append(missing, c.com.members[id-1])
			}
		}
		c.decryptFailed(fmt.Sprintf("committee members %v sent no decryption share before the deadline", missing), r)
	case phaseKeySetup:
		c.keySetupDeadline(r)
	}
}

// newTask registers a task and queues it for its client.
func (c *Coordinator) newTask(r *Ready, ts *taskState, t *pb.Task) {
	c.seq++
	ts.id = fmt.Sprintf("%s%s-r%d-%d", c.idPrefix, kindName(ts.kind), ts.round, c.seq)
	t.TaskId, t.Kind, t.Round = ts.id, ts.kind, ts.round
	c.tasks[ts.id] = ts
	r.Send = append(r.Send, Envelope{To: ts.client, Task: t, Deadline: c.deadline})
}

func kindName(k pb.TaskKind) string {
	switch k {
	case pb.TaskKind_TASK_KIND_FIT:
		return "fit"
	case pb.TaskKind_TASK_KIND_EVALUATE:
		return "eval"
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		return "key"
	case pb.TaskKind_TASK_KIND_DECRYPT:
		return "dec"
	case pb.TaskKind_TASK_KIND_STATISTICS:
		return "stats"
	case pb.TaskKind_TASK_KIND_PARTIAL_SUM:
		return "partial"
	case pb.TaskKind_TASK_KIND_OPEN:
		return "open"
	}
	return "task"
}

// closeTask removes an outstanding task; unanswered ones are revoked from the client's queue.
func (c *Coordinator) closeTask(id string, answered bool, r *Ready) *taskState {
	ts, ok := c.tasks[id]
	if !ok {
		return nil
	}
	delete(c.tasks, id)
	c.closed[id] = closedTask{client: ts.client, round: ts.round, answered: answered}
	if !answered {
		r.Revoke = append(r.Revoke, Revocation{To: ts.client, TaskID: id})
	}
	return ts
}

// closeAll revokes every outstanding task (phase change).
func (c *Coordinator) closeAll(r *Ready) {
	ids := make([]string, 0, len(c.tasks))
	for id := range c.tasks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.closeTask(id, false, r)
	}
}

// failClientTasks ends the client's outstanding tasks as failed (it left or went offline).
func (c *Coordinator) failClientTasks(client, reason string, r *Ready) {
	var ids []string
	for id, ts := range c.tasks {
		if ts.client == client {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		ts := c.tasks[id]
		if ts == nil {
			continue // a phase change while failing an earlier task closed it
		}
		c.closeTask(id, false, r)
		c.taskFailed(ts, strategy.FailureTimeout, reason, r)
	}
}

// taskFailed routes the failure of a task to its phase.
func (c *Coordinator) taskFailed(ts *taskState, kind strategy.FailureKind, reason string, r *Ready) {
	f := strategy.Failure{ClientID: ts.client, Kind: kind, Reason: reason}
	if cs := c.clients[ts.client]; cs != nil && (ts.kind == pb.TaskKind_TASK_KIND_FIT || ts.kind == pb.TaskKind_TASK_KIND_EVALUATE || ts.kind == pb.TaskKind_TASK_KIND_STATISTICS) {
		cs.keySent = false // it may have lost the session's key: send it with the next task
	}
	switch ts.kind {
	case pb.TaskKind_TASK_KIND_FIT:
		if c.phase == phaseFit && c.fit != nil && c.fit.number == ts.round {
			delete(c.fit.pending, ts.client)
			c.fit.failures = append(c.fit.failures, f)
			if len(c.fit.pending) == 0 {
				c.finishFit(r)
			}
		}
	case pb.TaskKind_TASK_KIND_EVALUATE:
		if c.phase == phaseEvaluate && c.eval != nil && c.eval.number == ts.round {
			delete(c.eval.pending, ts.client)
			c.eval.failures = append(c.eval.failures, f)
			if len(c.eval.pending) == 0 {
				c.finishEvaluate(r)
			}
		}
	case pb.TaskKind_TASK_KIND_STATISTICS:
		c.statisticsTaskFailed(ts, f, r)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		if c.phase == phaseDecrypt && c.dec != nil && c.dec.round == ts.round {
			c.decryptFailed(fmt.Sprintf("committee member %d (client %q) could not decrypt: %s", ts.member, ts.client, reason), r)
		}
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		if c.phase == phaseKeySetup && c.com != nil && c.com.session == ts.session {
			c.keySetupMemberFailed(ts, reason, r)
		}
	case pb.TaskKind_TASK_KIND_PARTIAL_SUM, pb.TaskKind_TASK_KIND_OPEN:
		c.sourceFailed(ts, reason, r)
	}
}

// result handles a pushed result: it checks the task is outstanding, belongs to the sender
// and matches the header, then hands it to its phase.
func (c *Coordinator) result(e ResultIn, r *Ready) error {
	cs, err := c.client(e.ClientID)
	if err != nil {
		return err
	}
	c.seen(cs)
	res := e.Result
	if res == nil || res.TaskId == "" {
		return reject(RejectInvalid, "result from %q names no task", e.ClientID)
	}
	ts, err := c.outstanding(e.ClientID, res.TaskId)
	if err != nil {
		return err
	}
	c.closeTask(ts.id, true, r)
	fail := func(format string, a ...any) error {
		rej := reject(RejectInvalid, "result of task %s from %q: "+format, append([]any{ts.id, e.ClientID}, a...)...)
		c.taskFailed(ts, strategy.FailureRejected, rej.Msg, r)
		return rej
	}
	if res.Kind != ts.kind || res.Round != ts.round {
		return fail("header says %v round %d, the task is %v round %d", res.Kind, res.Round, ts.kind, ts.round)
	}
	for _, k := range slices.Sorted(mapsKeys(res.Metrics)) {
		if v := res.Metrics[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fail("metric %q is %v: metrics must be finite numbers", k, v)
		}
	}
	if eps, ok := res.Metrics["epsilon"]; ok {
		if math.IsNaN(eps) || math.IsInf(eps, 0) || eps < 0 {
			return fail("epsilon metric %v is not a finite number ≥ 0", eps)
		}
		cs.epsilon = max(cs.epsilon, eps)
		c.epsMax = max(c.epsMax, eps)
		r.Persist = append(r.Persist, PrivacyRecord{ClientID: cs.id, Round: ts.round, Epsilon: eps, Delta: c.cfg.DP.Delta, Reported: true})
		r.Notices = append(r.Notices, PrivacySpent{ClientID: cs.id, Epsilon: eps, Reported: true})
	}
	switch res.Status {
	case pb.ResultStatus_RESULT_STATUS_OK:
	case pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET:
		if ts.charged && c.rl != nil {
			// Refused before training: the client spent nothing on it.
			cs.outOfBudget = true
			eps, err := c.rl.withdraw(cs.id)
			if err != nil {
				return err
			}
			r.Persist = append(r.Persist, PrivacyRecord{ClientID: cs.id, Round: ts.round, Epsilon: eps, Delta: c.cfg.DP.Delta, Withdrawn: true})
			r.Notices = append(r.Notices, PrivacySpent{ClientID: cs.id, Epsilon: eps})
		}
		c.taskFailed(ts, strategy.FailureRefused, "privacy budget: "+res.Reason, r)
		return nil
	case pb.ResultStatus_RESULT_STATUS_FAILED:
		c.taskFailed(ts, strategy.FailureError, res.Reason, r)
		return nil
	default:
		return fail("status %v unknown", res.Status)
	}
	var msg string
	switch ts.kind {
	case pb.TaskKind_TASK_KIND_FIT:
		msg = c.fitResult(ts, res, e.Via, r)
	case pb.TaskKind_TASK_KIND_EVALUATE:
		msg = c.evalResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		msg = c.keySetupResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		msg = c.decryptResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_STATISTICS:
		msg = c.statisticsResult(ts, res, r)
	}
	if msg != "" {
		return fail("%s", msg)
	}
	return nil
}
