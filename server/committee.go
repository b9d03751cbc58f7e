package server

import (
	"fmt"
	"slices"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// committeeUsable reports whether the current committee can decrypt this round's aggregate:
// it finished its setup, is not due for rotation and has at least Threshold holders online.
func (c *Coordinator) committeeUsable() bool {
	com := c.com
	if com == nil || !com.ready {
		return false
	}
	if every := c.cfg.SecAgg.RotateEvery; every > 0 && c.round-com.formedAt >= uint64(every) {
		return false
	}
	online := 0
	for i, id := range com.members {
		if cs := c.clients[id]; cs.online && !cs.left && com.holders[secagg.MemberID(i+1)] {
			online++
		}
	}
	return online >= c.cfg.SecAgg.Threshold
}

// startKeySetup picks K online, committee-eligible clients uniformly at random and asks each
// to announce its identity key for a new session.
func (c *Coordinator) startKeySetup(r *Ready) {
	var cands []*clientState
	for _, cs := range c.onlineClients() {
		if cs.eligible {
			cands = append(cands, cs)
		}
	}
	k := c.cfg.SecAgg.CommitteeSize
	if len(cands) < k {
		c.waitingFor(r, fmt.Sprintf("%d of the %d committee-eligible clients a key committee needs are online (secure_aggregation.committee_size)", len(cands), k))
		return
	}
	// Uniformly at random among the eligible identities, from the secret sampling
	// generator: preferring reliable clients would favour whoever stays online to be
	// picked (Sybils the CA issued, a colluding group), so missed duties never exclude.
	c.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	var session secagg.SessionID
	for i := 0; i < len(session); i += 8 {
		v := c.ids.Uint64()
		for b := 0; b < 8; b++ {
			session[i+b] = byte(v >> (8 * b))
		}
	}
	var setup *secagg.KeySetup
	var err error
	if c.verifier != nil {
		setup, err = secagg.NewAuthenticatedKeySetup(*c.sa, session, c.cfg.committeeConfig(), c.verifier)
	} else {
		setup, err = secagg.NewKeySetup(*c.sa, session, c.cfg.committeeConfig())
	}
	if err != nil {
		// The configuration was validated against the same parameters.
		panic(fmt.Sprintf("server: key setup with validated config: %v", err))
	}
	com := &committee{session: session, setup: setup, stage: pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE, holders: map[secagg.MemberID]bool{}}
	for _, cs := range cands[:k] {
		com.members = append(com.members, cs.id)
	}
	c.com = com
	c.phase = phaseKeySetup
	c.deadline = c.now + c.cfg.Deadlines.KeySetup
	for i := range com.members {
		c.sendKeySetup(r, secagg.MemberID(i+1), nil)
	}
}

func (c *Coordinator) sendKeySetup(r *Ready, m secagg.MemberID, blobs []*pb.Blob) {
	com := c.com
	ts := &taskState{client: com.members[m-1], kind: pb.TaskKind_TASK_KIND_KEY_SETUP, round: c.round + 1, stage: com.stage, member: m, session: com.session}
	spec := &pb.KeySetupSpec{Stage: com.stage, Session: com.session[:], MemberId: uint32(m), Params: c.saProto}
	c.newTask(r, ts, &pb.Task{Spec: &pb.Task_KeySetup{KeySetup: spec}, Blobs: blobs})
}

func (c *Coordinator) keySetupResult(ts *taskState, res *pb.Result, r *Ready) string {
	com := c.com
	if c.phase != phaseKeySetup || com == nil || com.session != ts.session || com.stage != ts.stage {
		return "key setup stage is over"
	}
	switch ts.stage {
	case pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE:
		data, err := blob.Find(res.Blobs, blob.Announcement)
		if err != nil {
			return err.Error()
		}
		var a secagg.KeyAnnouncement
		if err := a.UnmarshalBinary(data); err != nil {
			return err.Error()
		}
		if a.Member != ts.member {
			return fmt.Sprintf("announcement claims member %d, the task was for member %d", a.Member, ts.member)
		}
		if err := com.setup.AddAnnouncement(&a); err != nil {
			return err.Error()
		}
		if c.verifier != nil {
			if id := com.setup.Identity(ts.member); id != ts.client {
				// A seat is held by the client it was given to, under its own certificate.
				return fmt.Sprintf("announcement for member %d signed by identity %q, the seat belongs to client %q", ts.member, id, ts.client)
			}
		}
		r.Persist = append(r.Persist, KeySetupRecord{Session: com.session, Stage: ts.stage, Member: uint16(ts.member), Client: ts.client, Message: data})
		if len(com.setup.Missing()) > 0 {
			return ""
		}
		ro, err := com.setup.Roster()
		if err != nil {
			c.abortKeySetup(fmt.Sprintf("roster: %v", err), nil, r)
			return ""
		}
		rb, err := ro.MarshalBinary()
		if err != nil {
			c.abortKeySetup(fmt.Sprintf("roster: %v", err), nil, r)
			return ""
		}
		com.stage = pb.KeySetupStage_KEY_SETUP_STAGE_DEAL
		c.deadline = c.now + c.cfg.Deadlines.KeySetup
		b := blob.New(blob.Roster, rb)
		for i := range com.members {
			c.sendKeySetup(r, secagg.MemberID(i+1), []*pb.Blob{b})
		}
	case pb.KeySetupStage_KEY_SETUP_STAGE_DEAL:
		data, err := blob.Find(res.Blobs, blob.Dealing)
		if err != nil {
			return err.Error()
		}
		var d secagg.Dealing
		if err := d.UnmarshalBinary(data); err != nil {
			return err.Error()
		}
		if d.From != ts.member {
			return fmt.Sprintf("dealing claims member %d, the task was for member %d", d.From, ts.member)
		}
		if err := com.setup.AddDealing(&d); err != nil {
			return err.Error()
		}
		r.Persist = append(r.Persist, KeySetupRecord{Session: com.session, Stage: ts.stage, Member: uint16(ts.member), Client: ts.client, Message: data})
		c.keySetupProgress(r, false)
	case pb.KeySetupStage_KEY_SETUP_STAGE_RECEIVE:
		com.holders[ts.member] = true
		c.keySetupProgress(r, false)
	}
	return ""
}

// finalizeKeySetup combines the dealings into the collective key and delivers every member
// its sealed Shamir shares.
func (c *Coordinator) finalizeKeySetup(r *Ready) {
	com := c.com
	pk, deliveries, err := com.setup.Finalize()
	if err != nil {
		c.abortKeySetup(fmt.Sprintf("finalize: %v", err), nil, r)
		return
	}
	pkb, err := pk.MarshalBinary()
	if err != nil {
		c.abortKeySetup(fmt.Sprintf("public key: %v", err), nil, r)
		return
	}
	// Dealing tasks of members that did not deal are over.
	c.closeKeySetupTasks(r)
	com.pkBlob = blob.New(blob.PublicKey, pkb)
	com.stage = pb.KeySetupStage_KEY_SETUP_STAGE_RECEIVE
	c.deadline = c.now + c.cfg.Deadlines.KeySetup
	for _, v := range deliveries {
		if cs := c.clients[com.members[v.To-1]]; !cs.online || cs.left {
			continue // an offline member holds no share of this committee
		}
		vb, err := v.MarshalBinary()
		if err != nil {
			c.abortKeySetup(fmt.Sprintf("share delivery: %v", err), nil, r)
			return
		}
		c.sendKeySetup(r, v.To, []*pb.Blob{blob.New(blob.Delivery, vb)})
	}
	c.keySetupProgress(r, false)
}

func (c *Coordinator) committeeReady(r *Ready) {
	com := c.com
	c.closeKeySetupTasks(r)
	com.ready = true
	com.formedAt = c.round
	com.setup = nil
	var holders []uint16
	for m := range com.holders {
		holders = append(holders, uint16(m))
	}
	slices.Sort(holders)
	r.Persist = append(r.Persist, CommitteeRecord{Session: com.session, Members: slices.Clone(com.members), Holders: holders, PublicKey: com.pkBlob.Data, FormedRound: com.formedAt})
	r.Notices = append(r.Notices, CommitteeReady{Session: com.session.String(), Members: slices.Clone(com.members)})
	c.phase = phaseWaiting
}

// keySetupMemberFailed handles a member that refused, failed or dropped during the setup.
func (c *Coordinator) keySetupMemberFailed(ts *taskState, reason string, r *Ready) {
	if c.com.stage == pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE {
		// The roster needs every member's identity key: start over without this client.
		c.abortKeySetup(fmt.Sprintf("member %d could not announce: %s", ts.member, reason), []string{ts.client}, r)
		return
	}
	c.keySetupProgress(r, false)
}

// keySetupDeadline finishes the stage with what arrived, or gives up.
func (c *Coordinator) keySetupDeadline(r *Ready) {
	com := c.com
	if com.stage == pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE {
		var missing []string
		for _, m := range com.setup.Missing() {
			missing = append(missing, com.members[m-1])
		}
		c.abortKeySetup("announcements missing at the deadline", missing, r)
		return
	}
	c.keySetupProgress(r, true)
}

// keySetupProgress moves the DEAL or RECEIVE stage on once every member still expected has
// answered (or the deadline passed), provided at least Threshold of them succeeded.
func (c *Coordinator) keySetupProgress(r *Ready, deadline bool) {
	com := c.com
	outstanding := false
	for _, ts := range c.tasks {
		if ts.kind == pb.TaskKind_TASK_KIND_KEY_SETUP && ts.session == com.session && ts.stage == com.stage && c.clients[ts.client].online {
			outstanding = true
		}
	}
	if outstanding && !deadline {
		return
	}
	t := c.cfg.SecAgg.Threshold
	switch com.stage {
	case pb.KeySetupStage_KEY_SETUP_STAGE_DEAL:
		if n := len(com.setup.Dealers()); n >= t {
			c.finalizeKeySetup(r)
		} else {
			c.abortKeySetup(fmt.Sprintf("%d dealings, the threshold is %d", n, t), c.membersNotIn(com.setup.Dealers()), r)
		}
	case pb.KeySetupStage_KEY_SETUP_STAGE_RECEIVE:
		if n := len(com.holders); n >= t {
			c.committeeReady(r)
		} else {
			c.abortKeySetup(fmt.Sprintf("%d members confirmed their shares, the threshold is %d", n, t), nil, r)
		}
	}
}

func (c *Coordinator) membersNotIn(ids []secagg.MemberID) []string {
	var out []string
	for i, id := range c.com.members {
		if !slices.Contains(ids, secagg.MemberID(i+1)) {
			out = append(out, id)
		}
	}
	return out
}

func (c *Coordinator) abortKeySetup(reason string, missing []string, r *Ready) {
	com := c.com
	c.closeKeySetupTasks(r)
	r.Notices = append(r.Notices, KeySetupFailed{Session: com.session.String(), Reason: reason, Missing: missing})
	c.com = nil
	c.phase = phaseWaiting
}

// closeKeySetupTasks revokes the outstanding tasks of the current key setup.
func (c *Coordinator) closeKeySetupTasks(r *Ready) {
	var ids []string
	for id, ts := range c.tasks {
		if ts.kind == pb.TaskKind_TASK_KIND_KEY_SETUP && ts.session == c.com.session {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		c.closeTask(id, false, r)
	}
}
