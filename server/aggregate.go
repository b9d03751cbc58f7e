package server

import (
	"fmt"
	"math"

	"github.com/confide-fl/confide/internal/exactsum"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
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
// statistics) into its round's aggregate: checking its ciphertexts, certificate, signature
// and commitment, then adding its ciphertexts, one chunk at a time from the upload's bytes.
// Its answer is an Aggregated event; until then the coordinator counts the client neither
// as a contributor nor as a failure, and the phase does not end.
type AggregationWork struct {
	Round    uint64
	TaskID   string
	ClientID string
	agg      *secagg.Aggregator
	blobs    []*pb.Blob // the result's blobs (read-only), with the marshalled secagg.EncryptedUpdate
	what     string     // "update" or "evaluation", for messages
}

// Aggregated: the driver's answer to an AggregationWork (Err non-empty when the upload
// was refused; the aggregate is then unchanged).
type Aggregated struct {
	TaskID   string
	ClientID string
	Err      string
}

func (Aggregated) isEvent() {}

// Run checks that the upload names the work's client and task and adds it to the
// aggregate, chunk by chunk from its bytes (secagg.Aggregator.AddBinary: the upload is
// never decoded whole). It returns an Aggregated event.
func (w AggregationWork) Run() Event {
	ev := Aggregated{TaskID: w.TaskID, ClientID: w.ClientID}
	if err := w.add(); err != nil {
		ev.Err = err.Error()
	}
	return ev
}

func (w AggregationWork) upload() *pb.Blob { return firstBlob(w.blobs) }

func (w AggregationWork) add() error {
	data, err := blob.Find(w.blobs, blob.EncryptedUpdate)
	if err != nil {
		return err
	}
	return w.agg.AddBinary(data, func(clientID, taskID string) error {
		if clientID != w.ClientID {
			return fmt.Errorf("encrypted %s names client %q", w.what, clientID)
		}
		if taskID != w.TaskID {
			return fmt.Errorf("encrypted %s made for task %q, not %s", w.what, taskID, w.TaskID)
		}
		return nil
	})
}

// uploads is the encrypted aggregate of a phase (fit or evaluate) with the uploads being
// added into it by the driver.
type uploads struct {
	agg *secagg.Aggregator
	// adding maps a client to the task whose upload the driver is adding.
	adding map[string]string
}

// queue records that the driver is to add client's upload for task to the aggregate.
func (u *uploads) queue(r *Ready, round uint64, client, task, what string, blobs []*pb.Blob) {
	if u.adding == nil {
		u.adding = map[string]string{}
	}
	u.adding[client] = task
	r.Work = append(r.Work, AggregationWork{Round: round, TaskID: task, ClientID: client, agg: u.agg, blobs: blobs, what: what})
}

// busy reports whether uploads are still being added (the aggregate must not be read).
func (u *uploads) busy() bool { return len(u.adding) > 0 }

// done takes an Aggregated event for this aggregate; it reports whether the event was one.
func (u *uploads) done(e Aggregated) bool {
	if u == nil || e.TaskID == "" || u.adding[e.ClientID] != e.TaskID {
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
			what := "update refused: "
			if f.agg != nil {
				what = "encrypted " + what
			}
			f.failures = append(f.failures, strategy.Failure{ClientID: e.ClientID, Kind: strategy.FailureRejected, Reason: what + e.Err})
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
	case c.stats != nil && c.phase == phaseStatistics && c.stats.uploads.done(e):
		c.statisticsAggregated(e, r)
	default:
		return reject(RejectLate, "upload of task %s from %q was added after its phase ended", e.TaskID, e.ClientID)
	}
	return nil
}

// firstBlob is blobs[0], nil if there is none.
func firstBlob(blobs []*pb.Blob) *pb.Blob {
	if len(blobs) == 0 {
		return nil
	}
	return blobs[0]
}

// hasBlob reports whether blobs hold one called name (not verified).
func hasBlob(blobs []*pb.Blob, name string) bool {
	for _, b := range blobs {
		if b.GetName() == name {
			return true
		}
	}
	return false
}

// plainAggregate is the sum of a round's plaintext updates: exact running sums (the
// update's weighted values and the weights) for strategies that need only the weighted
// sum, or the updates themselves for those that need each one (robust aggregation).
type plainAggregate struct {
	sum, weight *exactsum.Vector
	updates     []strategy.ClientUpdate // non-nil: keep every update
}

func newPlainAggregate(n int, individual bool) *plainAggregate {
	if individual {
		return &plainAggregate{updates: []strategy.ClientUpdate{}}
	}
	return &plainAggregate{sum: exactsum.New(n), weight: exactsum.New(1)}
}

// PlainUpdateWork verifies, decodes and checks one client's plaintext update (length,
// finite values, the clip norm, the user-level clip indicator) and adds it to the round's
// plaintext aggregate. Its answer is an Aggregated event.
type PlainUpdateWork struct {
	Round     uint64
	TaskID    string
	ClientID  string
	blobs     []*pb.Blob
	dim       int
	extra     int
	clip      float64
	clipKey   string
	userLevel bool
	update    strategy.ClientUpdate // without Delta
	into      *plainAggregate
}

// Run checks the update and adds it; it returns an Aggregated event.
func (w PlainUpdateWork) Run() Event {
	ev := Aggregated{TaskID: w.TaskID, ClientID: w.ClientID}
	if err := w.add(); err != nil {
		ev.Err = err.Error()
	}
	return ev
}

func (w PlainUpdateWork) upload() *pb.Blob { return firstBlob(w.blobs) }

func (w PlainUpdateWork) add() error {
	data, err := blob.Find(w.blobs, blob.Update)
	if err != nil {
		return err
	}
	delta, err := blob.DecodeFloats(data, w.dim+w.extra)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if b := delta[w.dim:]; w.userLevel && len(b) > 0 && b[0] != 0.5 && b[0] != -0.5 {
		return fmt.Errorf("clip indicator %v: must be +½ or −½ (the centred 1[‖Δ‖ ≤ S] − ½)", b[0])
	}
	if w.clip > 0 {
		var s float64
		for _, v := range delta[:w.dim] {
			s += v * v
		}
		if n := math.Sqrt(s); n > w.clip*(1+1e-9) {
			return fmt.Errorf("update norm %.6g exceeds %s %g (clip before sending)", n, w.clipKey, w.clip)
		}
	}
	p := w.into
	if p.updates != nil {
		u := w.update
		u.Delta = delta
		p.updates = append(p.updates, u)
		return nil
	}
	if err := p.sum.AddScaled(w.update.Weight, delta); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return p.weight.AddScaled(1, []float64{w.update.Weight})
}
