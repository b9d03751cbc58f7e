package server

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// Partial sums: the root's side of hierarchical aggregation (issue 17 item 5; hierarchy.go
// says whom it trusts with what, secagg's doc the protocol). Under authenticated secure
// aggregation an intermediate aggregator (package aggregator) keeps the fit uploads of its
// subtree's clients instead of relaying them:
//
//  1. it checks an upload as the root's Aggregator would (certificate, signature,
//     commitment, every ciphertext) and forwards the client's result with a blob
//     HeldUpload, the upload's 32-byte commitment root, in place of the upload. The
//     coordinator closes the client's task as answered, as for an upload, and records the
//     upload as held by that aggregator (a source); it does not count as a contributor yet.
//  2. Once no fit task is pending (every sampled client answered, failed or timed out), the
//     coordinator asks every source for its partial sum of the uploads it holds (a task
//     TASK_KIND_PARTIAL_SUM, pulled over the Aggregation service) and gives them until a
//     fresh fit deadline.
//  3. A partial sum is added into the round's aggregate by the driver (PartialWork), which
//     checks it as HierarchicalAggregator.AddPartial does (every listed commitment signed
//     for this round by a certificate of the CA, every identity new) and that it lists
//     exactly uploads the coordinator holds for that source, with the same task and root;
//     it is subtracted again (Drop) if it lists one that is not. Its clients become
//     contributors; held clients it does not list count as failures.
//  4. A source that disconnects (SourceGone) or sends nothing before the deadline drops
//     the clients it held, as dropouts: the round goes on if sampling.min_fit contributors
//     remain. Nothing of theirs was decrypted or used. One that disconnects after its
//     partial sum was added, before the aggregate is frozen, could not open its uploads
//     for the members: its partial sum is subtracted again (DropWork) with the same effect.
//  5. The decryption request lists every contributor's signed commitment; a member's
//     challenge goes to every source as a TASK_KIND_OPEN task, and the merged Opening
//     (HierarchicalAggregator.Open, which checks each source's part against its partial
//     sum) goes to the member. A source that cannot open, or lies, abandons the round's
//     aggregate, as a member that disappears does; one caught lying (PartialSourceError)
//     may sum no more (HoldRefused): it relays its clients' uploads whole from then on.
//
// Only the fit phase is summed; evaluation statistics and the statistics round's uploads
// are relayed one by one.

// heldUpload is a fit upload an aggregator holds for the round.
type heldUpload struct {
	task string
	root [32]byte
}

// source is an intermediate aggregator with uploads in the round.
type source struct {
	held   map[string]heldUpload // client → its upload
	asked  string                // the partial-sum task, once asked
	adding bool                  // the driver is adding (or dropping) its partial sum
	done   bool                  // its partial sum was added, refused or given up on
	added  []string              // the clients its added partial sum holds
	gone   bool                  // its connection closed
}

// SourceResultIn: an aggregator pushed the result of a task of its own (a partial sum or
// an opening), over the Aggregation service.
type SourceResultIn struct {
	Source string
	Result *pb.Result
}

// SourceGone: the connection of an aggregator closed (it died or restarted). The uploads
// it held for the round are lost.
type SourceGone struct{ Source string }

// PartialAdded: the driver's answer to a PartialWork: the clients whose uploads the partial
// sum added, or the reason it was refused (the aggregate is then unchanged).
type PartialAdded struct {
	Round   uint64
	Source  string
	Clients []string
	Err     string
}

// PartialDropped: the driver's answer to a DropWork (Err non-empty when the partial sum
// could not be subtracted).
type PartialDropped struct {
	Round  uint64
	Source string
	Err    string
}

func (SourceResultIn) isEvent() {}
func (SourceGone) isEvent()     {}
func (PartialAdded) isEvent()   {}
func (PartialDropped) isEvent() {}

// DropWork subtracts the partial sum of an aggregator that disconnected from the round's
// aggregate (HierarchicalAggregator.Drop). Its answer is a PartialDropped event.
type DropWork struct {
	Round  uint64
	Source string
	h      *secagg.HierarchicalAggregator
}

// Run drops the partial sum; it returns a PartialDropped event.
func (w DropWork) Run() Event {
	ev := PartialDropped{Round: w.Round, Source: w.Source}
	if err := w.h.Drop(w.Source); err != nil {
		ev.Err = err.Error()
	}
	return ev
}

// PartialWork adds an aggregator's partial sum into the round's aggregate: it decodes and
// checks it (HierarchicalAggregator.AddPartial) and that it lists exactly uploads held for
// that aggregator. Its answer is a PartialAdded event.
type PartialWork struct {
	Round  uint64
	Source string
	h      *secagg.HierarchicalAggregator
	data   []byte
	held   map[string]heldUpload // a copy
}

// Run adds the partial sum; it returns a PartialAdded event.
func (w PartialWork) Run() Event {
	ev := PartialAdded{Round: w.Round, Source: w.Source}
	var p secagg.PartialSum
	if err := p.UnmarshalBinary(w.data); err != nil {
		ev.Err = err.Error()
		return ev
	}
	if err := w.h.AddPartial(&p, w.Source); err != nil {
		ev.Err = err.Error()
		return ev
	}
	listed := w.h.SourceUploads(w.Source)
	for _, u := range listed {
		if h, ok := w.held[u.ClientID]; !ok || h.task != u.TaskID || h.root != u.Root {
			ev.Err = fmt.Sprintf("it lists an upload of client %q (task %s) that the server does not hold for it", u.ClientID, u.TaskID)
			if err := w.h.Drop(w.Source); err != nil {
				ev.Err += "; dropping it: " + err.Error()
			}
			return ev
		}
		ev.Clients = append(ev.Clients, u.ClientID)
	}
	return ev
}

// AggregatorDistrusted: an aggregator's opening did not match its partial sum (it lied
// about the uploads it summed); the round's aggregate was abandoned, and the aggregator
// may no longer sum: its clients' uploads must be relayed whole (HoldRefused).
type AggregatorDistrusted struct {
	Aggregator string
	Round      uint64
	Reason     string
}

func (AggregatorDistrusted) isNotice() {}

// HoldRefused returns why the aggregator may not hold uploads, "" if it may: one caught
// lying about a partial sum relays its clients' uploads whole from then on (the server
// refuses its held results before reading them, so that it can).
func (c *Coordinator) HoldRefused(aggregator string) string {
	if why, ok := c.distrusted[aggregator]; ok {
		return fmt.Sprintf("aggregator %s may not sum uploads any more (its partial sum of %s); relay the upload itself", aggregator, why)
	}
	return ""
}

// heldResult takes a fit result whose upload the aggregator via holds.
func (c *Coordinator) heldResult(ts *taskState, res *pb.Result, via string, r *Ready) string {
	f := c.fit
	switch {
	case via == "":
		return fmt.Sprintf("blob %q comes only from an intermediate aggregator; send the upload itself", blob.HeldUpload)
	case f.agg == nil || c.verifier == nil:
		return "an upload held by an aggregator needs authenticated secure aggregation (client certificates and a verifier)"
	}
	data, err := blob.Find(res.Blobs, blob.HeldUpload)
	if err != nil {
		return err.Error()
	}
	if len(data) != 32 {
		return fmt.Sprintf("blob %q of %d bytes: must be the upload's 32-byte commitment root", blob.HeldUpload, len(data))
	}
	if f.hier == nil {
		if f.hier, err = secagg.HierarchicalOf(f.agg); err != nil {
			return err.Error()
		}
	}
	if f.sources == nil {
		f.sources = map[string]*source{}
	}
	s := f.sources[via]
	if s == nil {
		s = &source{held: map[string]heldUpload{}}
		f.sources[via] = s
	}
	if why := c.HoldRefused(via); why != "" {
		return why
	}
	if s.asked != "" || s.done {
		return fmt.Sprintf("aggregator %s was already asked for its partial sum of round %d", via, f.number)
	}
	delete(f.pending, ts.client)
	s.held[ts.client] = heldUpload{task: ts.id, root: [32]byte(data)}
	if len(f.pending) == 0 && !f.busy() {
		c.finishFit(r)
	}
	return ""
}

// partialsBusy reports whether a partial sum is being added.
func (f *fitRound) partialsBusy() bool {
	for _, s := range f.sources {
		if s.adding {
			return true
		}
	}
	return false
}

// awaitPartials asks every source that holds uploads for its partial sum, once, and
// reports whether the fit phase must still wait for one. At the deadline (expired) it
// gives up on the sources that have not answered: their clients count as dropped.
func (c *Coordinator) awaitPartials(expired bool, r *Ready) bool {
	f := c.fit
	wait := false
	for _, name := range slices.Sorted(maps.Keys(f.sources)) {
		s := f.sources[name]
		switch {
		case s.done || s.adding:
			wait = wait || s.adding
		case s.asked != "" && expired:
			c.dropSource(name, "its aggregator "+name+" forwarded no partial sum before the deadline", r)
		case s.asked == "":
			if !wait && !c.anyAsked() {
				// The partials get a fresh fit deadline from the moment they are asked for.
				c.deadline = c.now + c.cfg.Deadlines.Fit
			}
			ts := &taskState{client: name, kind: pb.TaskKind_TASK_KIND_PARTIAL_SUM, round: f.number}
			spec := &pb.PartialSumSpec{Session: c.com.session[:]}
			for _, id := range slices.Sorted(maps.Keys(s.held)) {
				spec.TaskIds = append(spec.TaskIds, s.held[id].task)
			}
			c.newTask(r, ts, &pb.Task{Spec: &pb.Task_PartialSum{PartialSum: spec}})
			s.asked = ts.id
			wait = true
		default:
			wait = true
		}
	}
	return wait
}

func (c *Coordinator) anyAsked() bool {
	for _, s := range c.fit.sources {
		if s.asked != "" {
			return true
		}
	}
	return false
}

// dropSource gives up on an aggregator's partial sum: every client it held counts as
// dropped (a failure, as a client that never answered), and its task is revoked.
func (c *Coordinator) dropSource(name, reason string, r *Ready) {
	f := c.fit
	s := f.sources[name]
	if s == nil || s.done {
		return
	}
	s.done = true
	if s.asked != "" {
		c.closeTask(s.asked, false, r)
	}
	for _, id := range slices.Sorted(maps.Keys(s.held)) {
		f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "update lost: " + reason})
	}
}

// sourceResult takes an aggregator's result of a task of its own.
func (c *Coordinator) sourceResult(e SourceResultIn, r *Ready) error {
	res := e.Result
	if res == nil || res.TaskId == "" {
		return reject(RejectInvalid, "result from aggregator %q names no task", e.Source)
	}
	ts, ok := c.tasks[res.TaskId]
	if !ok || (ts.kind != pb.TaskKind_TASK_KIND_PARTIAL_SUM && ts.kind != pb.TaskKind_TASK_KIND_OPEN) {
		return reject(RejectUnknownTask, "aggregator %q: task %s is not outstanding", e.Source, res.TaskId)
	}
	if ts.client != e.Source {
		return reject(RejectWrongClient, "task %s is not aggregator %q's", res.TaskId, e.Source)
	}
	c.closeTask(ts.id, true, r)
	if res.Kind != ts.kind || res.Round != ts.round {
		c.sourceFailed(ts, fmt.Sprintf("result header says %v round %d, the task is %v round %d", res.Kind, res.Round, ts.kind, ts.round), r)
		return reject(RejectInvalid, "aggregator %q: result of task %s: header says %v round %d, the task is %v round %d", e.Source, ts.id, res.Kind, res.Round, ts.kind, ts.round)
	}
	if res.Status != pb.ResultStatus_RESULT_STATUS_OK {
		c.sourceFailed(ts, fmt.Sprintf("status %v: %s", res.Status, res.Reason), r)
		return nil
	}
	var msg string
	if ts.kind == pb.TaskKind_TASK_KIND_PARTIAL_SUM {
		msg = c.partialResult(ts, res, r)
	} else {
		msg = c.openResult(ts, res, r)
	}
	if msg != "" {
		c.sourceFailed(ts, msg, r)
		return reject(RejectInvalid, "aggregator %q: result of task %s: %s", e.Source, ts.id, msg)
	}
	return nil
}

func (c *Coordinator) partialResult(ts *taskState, res *pb.Result, r *Ready) string {
	f := c.fit
	if c.phase != phaseFit || f == nil || f.number != ts.round || f.sources[ts.client] == nil {
		return fmt.Sprintf("round %d is no longer collecting partial sums", ts.round)
	}
	data, err := blob.Find(res.Blobs, blob.PartialSum)
	if err != nil {
		return err.Error()
	}
	s := f.sources[ts.client]
	s.adding = true
	r.Work = append(r.Work, PartialWork{Round: f.number, Source: ts.client, h: f.hier, data: data, held: maps.Clone(s.held)})
	return ""
}

// partialAdded takes the driver's answer to a PartialWork.
func (c *Coordinator) partialAdded(e PartialAdded, r *Ready) error {
	f := c.fit
	if c.phase != phaseFit || f == nil || f.number != e.Round || f.sources[e.Source] == nil || !f.sources[e.Source].adding {
		return reject(RejectLate, "partial sum of aggregator %q for round %d was added after its phase ended", e.Source, e.Round)
	}
	s := f.sources[e.Source]
	s.adding, s.done = false, true
	if e.Err != "" {
		for _, id := range slices.Sorted(maps.Keys(s.held)) {
			f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureRejected, Reason: fmt.Sprintf("the partial sum of aggregator %s was refused: %s", e.Source, e.Err)})
		}
	} else {
		f.contributors = append(f.contributors, e.Clients...)
		s.added = e.Clients
		for _, id := range slices.Sorted(maps.Keys(s.held)) {
			if !slices.Contains(e.Clients, id) {
				f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureRejected, Reason: "its aggregator " + e.Source + " did not sum its upload"})
			}
		}
		if s.gone {
			c.dropAdded(e.Source, r)
			return nil
		}
	}
	if len(f.pending) == 0 && !f.busy() {
		c.finishFit(r)
	}
	return nil
}

// dropAdded has the driver subtract the added partial sum of a source that disconnected.
func (c *Coordinator) dropAdded(name string, r *Ready) {
	f := c.fit
	f.sources[name].adding = true
	r.Work = append(r.Work, DropWork{Round: f.number, Source: name, h: f.hier})
}

// partialDropped takes the driver's answer to a DropWork: the source's clients leave the
// round's contributors.
func (c *Coordinator) partialDropped(e PartialDropped, r *Ready) error {
	f := c.fit
	if c.phase != phaseFit || f == nil || f.number != e.Round || f.sources[e.Source] == nil || !f.sources[e.Source].adding {
		return reject(RejectLate, "partial sum of aggregator %q for round %d was dropped after its phase ended", e.Source, e.Round)
	}
	s := f.sources[e.Source]
	s.adding = false
	if e.Err == "" {
		f.contributors = slices.DeleteFunc(f.contributors, func(id string) bool { return slices.Contains(s.added, id) })
		for _, id := range s.added {
			f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "update lost: its aggregator " + e.Source + " disconnected before the aggregate was decrypted"})
		}
		s.added = nil
	}
	if len(f.pending) == 0 && !f.busy() {
		c.finishFit(r)
	}
	return nil
}

// sourceFailed routes the failure of an aggregator's task.
func (c *Coordinator) sourceFailed(ts *taskState, reason string, r *Ready) {
	switch ts.kind {
	case pb.TaskKind_TASK_KIND_PARTIAL_SUM:
		if c.phase == phaseFit && c.fit != nil && c.fit.number == ts.round {
			c.dropSource(ts.client, "its aggregator "+ts.client+" failed to forward its partial sum: "+reason, r)
			if len(c.fit.pending) == 0 && !c.fit.busy() {
				c.finishFit(r)
			}
		}
	case pb.TaskKind_TASK_KIND_OPEN:
		if c.phase == phaseDecrypt && c.dec != nil && c.dec.round == ts.round && !c.dec.combining {
			c.decryptFailed(fmt.Sprintf("aggregator %s could not open its uploads for member %d's spot checks: %s", ts.client, ts.member, reason), r)
		}
	}
}

// sourceGone drops an aggregator that disconnected from the round it has uploads in.
func (c *Coordinator) sourceGone(e SourceGone, r *Ready) error {
	var ids []string
	for id, ts := range c.tasks {
		if ts.client == e.Source {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if ts := c.tasks[id]; ts != nil {
			c.closeTask(id, false, r)
			c.sourceFailed(ts, "it disconnected", r)
		}
	}
	if f := c.fit; c.phase == phaseFit && f != nil && f.sources[e.Source] != nil {
		s := f.sources[e.Source]
		s.gone = true
		switch {
		case s.adding: // partialAdded drops it
		case !s.done:
			c.dropSource(e.Source, "its aggregator "+e.Source+" disconnected", r)
		case len(s.added) > 0:
			c.dropAdded(e.Source, r)
			return nil
		}
		if len(f.pending) == 0 && !f.busy() {
			c.finishFit(r)
		}
	}
	if d := c.dec; c.phase == phaseDecrypt && d != nil && d.hier != nil && !d.combining && slices.Contains(d.hier.Sources(), e.Source) {
		c.decryptFailed(fmt.Sprintf("aggregator %s disconnected before the members' spot checks of its uploads", e.Source), r)
	}
	return nil
}

// SourceResultLimit bounds the blobs of an aggregator's result of task, as ResultLimit a
// client's: a partial sum is an unsigned upload plus a commitment per held upload.
func (c *Coordinator) SourceResultLimit(source, taskID string) (int64, error) {
	ts, ok := c.tasks[taskID]
	if !ok {
		return 0, reject(RejectUnknownTask, "aggregator %q: task %s is not outstanding", source, taskID)
	}
	if ts.client != source {
		return 0, reject(RejectWrongClient, "task %s is not aggregator %q's", taskID, source)
	}
	held := 0
	if f := c.fit; f != nil && f.sources[source] != nil {
		held = len(f.sources[source].held)
	}
	perCommitment := int64(maxCertificateBytes + secagg.MaxSignatureBytes + 512)
	if ts.kind == pb.TaskKind_TASK_KIND_PARTIAL_SUM {
		return int64(c.sa.SignedUpdateBytes(c.dim+c.extra(), len(source), 0, 0)) + int64(held)*perCommitment, nil
	}
	// An opening: every held upload's leaves and paths, at most an upload's c1 each.
	return int64(held+1) * int64(c.sa.SignedUpdateBytes(c.dim+c.extra(), len(source), 0, 0)), nil
}

// challengeSources sends a member's challenge to every source of the aggregate being
// decrypted; it reports whether there is any (else the opening is the direct uploads').
func (c *Coordinator) challengeSources(m secagg.MemberID, ch *secagg.Challenge, raw []byte, r *Ready) bool {
	d := c.dec
	if d.hier == nil || len(d.hier.Sources()) == 0 {
		return false
	}
	if d.challenges == nil {
		d.challenges, d.openings = map[secagg.MemberID]*secagg.Challenge{}, map[secagg.MemberID]map[string]*secagg.Opening{}
	}
	d.challenges[m], d.openings[m] = ch, map[string]*secagg.Opening{}
	for _, name := range d.hier.Sources() {
		ts := &taskState{client: name, kind: pb.TaskKind_TASK_KIND_OPEN, round: d.round, member: m}
		c.newTask(r, ts, &pb.Task{Blobs: []*pb.Blob{blob.New(blob.Challenge, raw)}})
	}
	return true
}

// openResult takes a source's opening for a member's challenge; once every source has
// answered that challenge the merged opening goes to the member.
func (c *Coordinator) openResult(ts *taskState, res *pb.Result, r *Ready) string {
	d := c.dec
	if c.phase != phaseDecrypt || d == nil || d.round != ts.round || d.challenges[ts.member] == nil {
		return fmt.Sprintf("round %d is not opening member %d's spot checks", ts.round, ts.member)
	}
	data, err := blob.Find(res.Blobs, blob.Opening)
	if err != nil {
		return err.Error()
	}
	var o secagg.Opening
	if err := o.UnmarshalBinary(data); err != nil {
		return err.Error()
	}
	got := d.openings[ts.member]
	got[ts.client] = &o
	if len(got) < len(d.hier.Sources()) {
		return ""
	}
	c.sendOpening(ts.member, d.challenges[ts.member], got, r)
	return ""
}

// sendOpening opens the aggregate for member m's challenge (with the sources' openings,
// if any) and sends it the share task.
func (c *Coordinator) sendOpening(m secagg.MemberID, ch *secagg.Challenge, sources map[string]*secagg.Opening, r *Ready) {
	d := c.dec
	var (
		op  *secagg.Opening
		err error
	)
	if d.hier != nil {
		op, err = d.hier.Open(ch, sources)
	} else {
		op, err = d.agg.Open(ch)
	}
	if err != nil {
		var lied *secagg.PartialSourceError
		if errors.As(err, &lied) {
			if c.distrusted == nil {
				c.distrusted = map[string]string{}
			}
			c.distrusted[lied.Source] = fmt.Sprintf("round %d: %v", d.round, lied.Err)
			r.Notices = append(r.Notices, AggregatorDistrusted{Aggregator: lied.Source, Round: d.round, Reason: lied.Err.Error()})
		}
		c.decryptFailed(fmt.Sprintf("opening member %d's spot checks: %v", m, err), r)
		return
	}
	ob, err := op.MarshalBinary()
	if err != nil {
		c.decryptFailed(fmt.Sprintf("opening member %d's spot checks: %v", m, err), r)
		return
	}
	// The member kept the request from the challenge step: only the opening goes out.
	c.sendDecrypt(r, m, pb.DecryptStage_DECRYPT_STAGE_SHARE, blob.New(blob.Opening, ob))
}
