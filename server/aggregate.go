package server

import (
	"fmt"

	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// Work is computation the coordinator hands its driver because it takes time that grows
// with the model and uses several cores: adding encrypted uploads to an aggregate and
// combining decryption shares. The driver calls Run off the goroutine that steps the
// coordinator, one Work at a time in the order the Readies list them, and steps the event
// Run returns. Until that event arrives the coordinator does not touch what the Work uses.
type Work interface {
	Run() Event
}

// AggregationWork adds one client's encrypted upload (a fit update or evaluation
// statistics) into its round's aggregate: decoding the upload, checking its certificate,
// signature and commitment, and adding its ciphertexts. Its answer is an Aggregated event;
// until then the coordinator counts the client neither as a contributor nor as a failure,
// and the phase does not end.
type AggregationWork struct {
	Round    uint64
	TaskID   string
	ClientID string
	agg      *secagg.Aggregator
	data     []byte // the marshalled secagg.EncryptedUpdate (read-only blob data)
	what     string // "update" or "evaluation", for messages
}

// Aggregated: the driver's answer to an AggregationWork (Err non-empty when the upload
// was refused; the aggregate is then unchanged).
type Aggregated struct {
	TaskID   string
	ClientID string
	Err      string
}

func (Aggregated) isEvent() {}

// Run decodes the upload, checks that it names the work's client and task, and adds it to
// the aggregate. It returns an Aggregated event.
func (w AggregationWork) Run() Event {
	ev := Aggregated{TaskID: w.TaskID, ClientID: w.ClientID}
	if err := w.add(); err != nil {
		ev.Err = err.Error()
	}
	return ev
}

func (w AggregationWork) add() error {
	var u secagg.EncryptedUpdate
	if err := u.UnmarshalBinary(w.data); err != nil {
		return err
	}
	if u.ClientID != w.ClientID {
		return fmt.Errorf("encrypted %s names client %q", w.what, u.ClientID)
	}
	if u.TaskID != w.TaskID {
		return fmt.Errorf("encrypted %s made for task %q, not %s", w.what, u.TaskID, w.TaskID)
	}
	return w.agg.Add(&u)
}

// uploads is the encrypted aggregate of a phase (fit or evaluate) with the uploads being
// added into it by the driver.
type uploads struct {
	agg *secagg.Aggregator
	// adding maps a client to the task whose upload the driver is adding.
	adding map[string]string
}

// queue records that the driver is to add client's upload for task to the aggregate.
func (u *uploads) queue(r *Ready, round uint64, client, task, what string, data []byte) {
	if u.adding == nil {
		u.adding = map[string]string{}
	}
	u.adding[client] = task
	r.Work = append(r.Work, AggregationWork{Round: round, TaskID: task, ClientID: client, agg: u.agg, data: data, what: what})
}

// busy reports whether uploads are still being added (the aggregate must not be read).
func (u *uploads) busy() bool { return len(u.adding) > 0 }

// done takes an Aggregated event for this aggregate; it reports whether the event was one.
func (u *uploads) done(e Aggregated) bool {
	if u == nil || u.agg == nil || u.adding[e.ClientID] != e.TaskID || e.TaskID == "" {
		return false
	}
	delete(u.adding, e.ClientID)
	return true
}

// aggregated takes the driver's answer to an AggregationWork: the client contributed to
// its phase's aggregate, or its upload was refused (a failure of its task). The phase ends
// once nothing is pending or being added.
func (c *Coordinator) aggregated(e Aggregated, r *Ready) error {
	switch {
	case c.fit != nil && c.phase == phaseFit && c.fit.uploads.done(e):
		f := c.fit
		if e.Err != "" {
			f.failures = append(f.failures, strategy.Failure{ClientID: e.ClientID, Kind: strategy.FailureRejected, Reason: "encrypted update refused: " + e.Err})
		} else {
			f.contributors = append(f.contributors, e.ClientID)
		}
		if len(f.pending) == 0 && !f.busy() {
			c.finishFit(r)
		}
	case c.eval != nil && c.phase == phaseEvaluate && c.eval.uploads.done(e):
		ev := c.eval
		if e.Err != "" {
			ev.failures = append(ev.failures, strategy.Failure{ClientID: e.ClientID, Kind: strategy.FailureRejected, Reason: "encrypted evaluation refused: " + e.Err})
		}
		if len(ev.pending) == 0 && !ev.busy() {
			c.finishEvaluate(r)
		}
	default:
		return reject(RejectLate, "upload of task %s from %q was added after its phase ended", e.TaskID, e.ClientID)
	}
	return nil
}
