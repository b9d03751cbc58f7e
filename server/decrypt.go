package server

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// startDecrypt asks the first Threshold online holders of the committee for decryption
// shares of agg: the round's update sum, or (eval) its evaluation statistics.
func (c *Coordinator) startDecrypt(agg *secagg.Aggregator, round uint64, eval bool, r *Ready) {
	c.startDecryptOf(agg, nil, round, eval, r)
}

// startDecryptOf is startDecrypt of an aggregate that may hold partial sums (hier, whose
// direct part is agg; nil: none).
func (c *Coordinator) startDecryptOf(agg *secagg.Aggregator, hier *secagg.HierarchicalAggregator, round uint64, eval bool, r *Ready) {
	t := c.cfg.SecAgg.Threshold
	// A member of the set that disappears stalls the aggregate (members answer one set per
	// aggregate: two sets' shares would be two flooded looks at each key share), so the
	// set is the t holders heard from most recently, the likeliest to still be there.
	var set []secagg.MemberID
	for i, id := range c.com.members {
		m := secagg.MemberID(i + 1)
		if cs := c.clients[id]; cs.online && !cs.left && c.com.holders[m] {
			set = append(set, m)
		}
	}
	slices.SortStableFunc(set, func(a, b secagg.MemberID) int {
		return cmp.Compare(c.clients[c.com.members[b-1]].lastSeen, c.clients[c.com.members[a-1]].lastSeen)
	})
	if len(set) > t {
		set = set[:t]
	}
	slices.Sort(set)
	// The statistics round decrypts from its own phase (finishStatistics).
	c.dec = &decryption{agg: agg, hier: hier, round: round, eval: eval, stats: c.phase == phaseStatistics}
	if len(set) < t {
		c.com = nil
		c.decryptFailed(fmt.Sprintf("only %d key-committee members are online, the threshold is %d; a new committee will be formed", len(set), t), r)
		return
	}
	var (
		req *secagg.DecryptionRequest
		err error
	)
	if hier != nil {
		req, err = hier.DecryptionRequest(set)
	} else {
		req, err = agg.DecryptionRequest(set)
	}
	if err != nil {
		c.decryptFailed(fmt.Sprintf("decryption request: %v", err), r)
		return
	}
	data, err := req.MarshalBinary()
	if err != nil {
		c.decryptFailed(fmt.Sprintf("decryption request: %v", err), r)
		return
	}
	c.dec.req = blob.New(blob.Request, data)
	c.dec.set = set
	c.dec.shares = map[secagg.MemberID]*secagg.DecryptionShare{}
	c.phase = phaseDecrypt
	c.deadline = c.now + c.cfg.Deadlines.Decrypt
	stage := pb.DecryptStage_DECRYPT_STAGE_UNSPECIFIED
	if c.verifier != nil {
		// Authenticated members first challenge the aggregate, then check its openings.
		stage = pb.DecryptStage_DECRYPT_STAGE_CHALLENGE
	}
	for _, m := range set {
		c.sendDecrypt(r, m, stage, c.dec.req)
	}
}

// sendDecrypt sends member m the decrypt task of a stage with its blobs.
func (c *Coordinator) sendDecrypt(r *Ready, m secagg.MemberID, stage pb.DecryptStage, blobs ...*pb.Blob) {
	ts := &taskState{client: c.com.members[m-1], kind: pb.TaskKind_TASK_KIND_DECRYPT, round: c.dec.round, member: m, session: c.com.session, decStage: stage}
	spec := &pb.DecryptSpec{Session: c.com.session[:], MemberId: uint32(m), Params: c.saProto, Stage: stage}
	c.newTask(r, ts, &pb.Task{Spec: &pb.Task_Decrypt{Decrypt: spec}, Blobs: blobs})
}

// decryptFailed ends a decryption that cannot finish: the round fails, or its evaluation
// ends without federated statistics.
func (c *Coordinator) decryptFailed(reason string, r *Ready) {
	d := c.dec
	c.dec = nil
	if d != nil && d.stats {
		c.statisticsFailed(&statRound{}, "statistics not decrypted: "+reason, r)
		return
	}
	if d != nil && d.eval {
		c.closeAll(r)
		if c.eval != nil {
			c.eval.failures = append(c.eval.failures, strategy.Failure{Kind: strategy.FailureError, Reason: "evaluation statistics not decrypted: " + reason})
			c.endEvaluate(nil, r)
		}
		return
	}
	c.failRound(reason, r)
}

func (c *Coordinator) decryptResult(ts *taskState, res *pb.Result, r *Ready) string {
	d := c.dec
	if c.phase != phaseDecrypt || d == nil || d.round != ts.round {
		return fmt.Sprintf("round %d is not decrypting", ts.round)
	}
	if ts.decStage == pb.DecryptStage_DECRYPT_STAGE_CHALLENGE {
		data, err := blob.Find(res.Blobs, blob.Challenge)
		if err != nil {
			return err.Error()
		}
		var ch secagg.Challenge
		if err := ch.UnmarshalBinary(data); err != nil {
			return err.Error()
		}
		if ch.From != ts.member {
			return fmt.Sprintf("challenge claims member %d, the task was for member %d", ch.From, ts.member)
		}
		if !c.challengeSources(ts.member, &ch, data, r) {
			c.sendOpening(ts.member, &ch, nil, r)
		}
		return ""
	}
	data, err := blob.Find(res.Blobs, blob.Share)
	if err != nil {
		return err.Error()
	}
	var sh secagg.DecryptionShare
	if err := sh.UnmarshalBinary(data); err != nil {
		return err.Error()
	}
	if sh.From != ts.member {
		return fmt.Sprintf("decryption share claims member %d, the task was for member %d", sh.From, ts.member)
	}
	d.shares[ts.member] = &sh
	if len(d.shares) < len(d.set) {
		return ""
	}
	shares := make([]*secagg.DecryptionShare, 0, len(d.set))
	for _, m := range d.set {
		shares = append(shares, d.shares[m])
	}
	// Combining decrypts and decodes the whole aggregate: driver work (Combined).
	d.combining = true
	r.Work = append(r.Work, CombineWork{Round: d.round, Evaluation: d.eval, agg: d.agg, shares: shares})
	return ""
}

// CombineWork combines the decryption shares of an aggregate into its plaintext sum
// (secagg.Aggregator.Combine). Its answer is a Combined event.
type CombineWork struct {
	Round      uint64
	Evaluation bool // the round's evaluation statistics, not its update
	agg        *secagg.Aggregator
	shares     []*secagg.DecryptionShare
}

// Combined: the driver's answer to a CombineWork (Err non-empty when the shares did not
// combine).
type Combined struct {
	Round      uint64
	Evaluation bool
	sum        *secagg.AggregateResult
	Err        string
}

func (Combined) isEvent() {}

// Run combines the shares; it returns a Combined event.
func (w CombineWork) Run() Event {
	sum, err := w.agg.Combine(w.shares)
	ev := Combined{Round: w.Round, Evaluation: w.Evaluation, sum: sum}
	if err != nil {
		ev.Err = err.Error()
	}
	return ev
}

// combined takes the plaintext sum of the aggregate being decrypted: it checks the sum's
// range and finishes the evaluation, or releases the round's update.
func (c *Coordinator) combined(e Combined, r *Ready) error {
	d := c.dec
	if c.phase != phaseDecrypt || d == nil || !d.combining || d.round != e.Round || d.eval != e.Evaluation {
		return reject(RejectLate, "decrypted aggregate of round %d arrived after its decryption ended", e.Round)
	}
	if e.Err != "" || e.sum == nil {
		c.decryptFailed(fmt.Sprintf("combining decryption shares: %s", e.Err), r)
		return nil
	}
	sum := e.sum
	c.dec = nil
	if d.stats {
		c.statisticsDecrypted(sum, r)
		return nil
	}
	if err := c.checkAggregate(sum, d.eval); err != nil {
		c.decryptFailed(err.Error(), r)
		return nil
	}
	if d.eval {
		c.endEvaluate(c.decodeStatistics(sum.WeightedSum, sum.TotalWeight, ""), r)
		return nil
	}
	if c.ul != nil {
		c.releaseUserLevel(sum.WeightedSum, sum.Count, r)
		return nil
	}
	update, control, rest := c.splitSum(sum.WeightedSum)
	if c.trainStatistics() {
		c.fit.stats = c.decodeStatistics(rest, sum.TotalWeight, "train_")
	}
	c.fit.controlSum = control
	c.aggregate(strategy.FitResults{Sum: &strategy.WeightedSum{Sum: update, TotalWeight: sum.TotalWeight, Count: sum.Count}, Failures: c.fit.failures}, r)
	return nil
}
