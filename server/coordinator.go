package server

import (
	"cmp"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// CentralEvaluator evaluates global parameters on a server-side test set (Flower's
// evaluate_fn). It must be deterministic and do no I/O beyond reading data it holds.
type CentralEvaluator func(round uint64, params []float64) (map[string]float64, error)

// Options are the coordinator's collaborators.
type Options struct {
	// Central, when set, evaluates the initial model and every round's new model.
	Central CentralEvaluator
	// Initial parameters; nil initialises the model from Config.Seed.
	Initial []float64
	// Verifier, when set, is the federation's CA (the one that issues the clients' TLS
	// certificates): key setup accepts only announcements and dealings signed by the
	// client each committee seat was given to, aggregates accept only uploads signed by
	// their uploader for their task, and decryption runs the committee's spot checks
	// (secagg's active-server model). Nil runs secure aggregation in the passive model.
	Verifier *secagg.Verifier
	// Resume, when set, starts the coordinator from a federation's durable state (see
	// SQLiteStore.Load) instead of round 0.
	Resume *State
	// Noise is where the coordinator draws the Gaussian noise of user-level DP in central
	// mode (the noise on the sum and the adaptive clip's count noise); it is required
	// when dp.user_level is on. Production servers pass dp.NewSecureNoise(); a
	// dp.DeterministicNoise is for tests and reproducible simulations only.
	Noise dp.NoiseSource
}

type phase int

const (
	phaseWaiting phase = iota
	phaseKeySetup
	phaseFit
	phaseDecrypt
	phaseEvaluate
	phaseFinished
)

func (p phase) String() string {
	return [...]string{"waiting", "key-setup", "fit", "decrypt", "evaluate", "finished"}[p]
}

type clientState struct {
	id       string
	eligible bool
	online   bool
	left     bool
	lastSeen time.Duration
	// keyOf is the session whose collective public key the client was sent (keySent); a
	// failed task sends it again (the client may have restarted and lost it).
	keyOf   secagg.SessionID
	keySent bool
	epsilon float64
}

type taskState struct {
	id      string
	client  string
	kind    pb.TaskKind
	round   uint64
	stage   pb.KeySetupStage
	member  secagg.MemberID
	session secagg.SessionID
	// decStage is the step of a decrypt task (challenge or share with an authenticated
	// committee).
	decStage pb.DecryptStage
}

type closedTask struct {
	client   string
	round    uint64
	answered bool
}

type committee struct {
	session  secagg.SessionID
	members  []string // members[i] holds member id i+1
	setup    *secagg.KeySetup
	stage    pb.KeySetupStage
	pkBlob   *pb.Blob
	holders  map[secagg.MemberID]bool // members that confirmed their threshold share
	ready    bool
	formedAt uint64 // rounds completed when it became ready
}

type fitRound struct {
	number       uint64
	sampled      []string
	clip         float64 // user-level DP: the round's clip norm S (0: user-level DP off)
	dpMetrics    map[string]float64
	pending      map[string]string // client → task id
	updates      []strategy.ClientUpdate
	agg          *secagg.Aggregator
	contributors []string
	failures     []strategy.Failure
	// stats are the decrypted training statistics (secure aggregation): the weighted mean
	// loss and accuracy of the contributors' last local epoch.
	stats map[string]float64
}

type evalRound struct {
	number   uint64
	pending  map[string]string
	results  []strategy.EvaluateResult
	failures []strategy.Failure
	central  map[string]float64
	// agg sums the encrypted evaluation statistics under secure aggregation.
	agg *secagg.Aggregator
}

// decryption is an aggregate the key committee is opening: the round's update, or the
// round's evaluation statistics.
type decryption struct {
	agg    *secagg.Aggregator
	round  uint64
	eval   bool
	set    []secagg.MemberID
	req    *pb.Blob
	shares map[secagg.MemberID]*secagg.DecryptionShare
}

// Coordinator runs the rounds of a federation as a single-threaded state machine (the etcd
// raft style): Step takes an Event and returns a Ready with the records to persist, the tasks
// to send and revoke, and notices. It reads no clock (time arrives as Tick events), starts no
// goroutine and does no I/O, so a deployment and the simulator drive the same code.
type Coordinator struct {
	cfg     Config
	strat   strategy.Strategy
	central CentralEvaluator
	// verifier authenticates secure aggregation's key material and uploads (nil: passive).
	verifier *secagg.Verifier
	// rng draws the client sample and the committee; ids draws session ids. Both are
	// keyed from crypto/rand unless Config.Seed fixes them (experiments), and no output of
	// rng ever reaches a client: amplification by sampling assumes the sample is secret.
	rng, ids *rand.Rand
	// sampler is rng's source, whose state round records keep (resume continues it).
	sampler samplerSource
	// idPrefix tells the task ids of a restarted server from those of earlier boots.
	idPrefix string
	// waiting is the last reason reported for not starting a round.
	waiting string
	// expiryAt is when registrations are next checked for expiry.
	expiryAt time.Duration

	sa       *secagg.Parameters
	saProto  *pb.SecAggParams
	modelPB  *pb.ModelSpec
	dim      int
	started  bool
	now      time.Duration
	deadline time.Duration
	phase    phase
	round    uint64 // rounds completed
	global   []float64
	seq      uint64

	clients map[string]*clientState
	// roster holds every registered client, sorted by id when rosterSorted; online counts
	// the connected ones and livenessAt is a time before which no client can time out,
	// so that a federation of millions of clients costs O(1) per event and per tick.
	roster       []*clientState
	rosterSorted bool
	online       int
	livenessAt   time.Duration
	epsMax       float64 // the largest ε a client reported
	rl           *recordLevel
	tasks        map[string]*taskState
	closed       map[string]closedTask
	com          *committee
	fit          *fitRound
	eval         *evalRound
	dec          *decryption
	ul           *userLevel // nil: user-level DP off
}

// New validates cfg (after filling defaults) and returns a coordinator at round 0.
func New(cfg Config, opts Options) (*Coordinator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	strat, err := strategy.New(cfg.Strategy, cfg.SecAgg.Enabled)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		cfg: cfg, strat: strat, central: opts.Central, verifier: opts.Verifier,
		clients: map[string]*clientState{}, tasks: map[string]*taskState{}, closed: map[string]closedTask{},
	}
	var modelSeed uint64
	if c.sampler, c.ids, modelSeed, err = generators(cfg.Seed); err != nil {
		return nil, err
	}
	c.rng = rand.New(c.sampler)
	c.rl = newRecordLevel(cfg.DP)
	if cfg.DP.UserLevel.On() {
		if c.ul, err = newUserLevel(cfg.DP.UserLevel, cfg.SecAgg.MinContributions, opts.Noise); err != nil {
			return nil, err
		}
	}
	if opts.Initial != nil {
		c.global = slices.Clone(opts.Initial)
	} else {
		m, err := model.New(cfg.Model, rand.New(rand.NewPCG(modelSeed, 0x696e6974)))
		if err != nil {
			return nil, fmt.Errorf("server: initial model: %w", err)
		}
		c.global = m.Params
	}
	if c.dim, err = cfg.Model.NumParams(); err != nil {
		return nil, fmt.Errorf("server: model: %w", err)
	}
	if len(c.global) != c.dim {
		return nil, fmt.Errorf("server: initial parameters have %d values, model needs %d", len(c.global), c.dim)
	}
	c.modelPB = &pb.ModelSpec{SpecJson: cfg.Model.JSON(), NumParams: int64(c.dim)}
	if cfg.SecAgg.Enabled {
		p, err := cfg.secAggParams()
		if err != nil {
			return nil, fmt.Errorf("server: secure aggregation: %w", err)
		}
		c.sa = &p
		lit := p.Literal()
		cc := cfg.committeeConfig()
		c.saProto = &pb.SecAggParams{
			LogN: int32(lit.LogN), LogQ: int32(lit.LogQ), LogScale: int32(lit.LogScale), FloodingSigma: lit.FloodingSigma,
			ClipBound: lit.ClipBound, MaxWeight: lit.MaxWeight, MaxContributors: int32(lit.MaxContributors),
			CommitteeSize: int32(cc.Size), Threshold: int32(cc.Threshold), MinContributions: int32(cc.MinContributions),
		}
	}
	if opts.Resume != nil {
		if err := c.restore(opts.Resume); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// generators returns the sampling generator, the id generator and the seed of the initial
// model. With seed 0 (production) all three come from crypto/rand: the samplers are
// ChaCha8 streams under independent 256-bit keys, so the clients a round picks and the
// committee cannot be predicted from anything a client sees. A non-zero seed makes them
// reproducible for experiments and simulations, and makes the sample public to anyone who
// knows the seed.
func generators(seed uint64) (sampling samplerSource, ids *rand.Rand, modelSeed uint64, err error) {
	if seed != 0 {
		return rand.NewPCG(seed, 0x636f6f7264), rand.New(rand.NewPCG(seed, 0x73657373)), seed, nil
	}
	var k [2][32]byte
	var m [8]byte
	for _, b := range [][]byte{k[0][:], k[1][:], m[:]} {
		if _, err := crand.Read(b); err != nil {
			return nil, nil, 0, fmt.Errorf("server: crypto/rand: %w", err)
		}
	}
	return rand.NewChaCha8(k[0]), rand.New(rand.NewChaCha8(k[1])), binary.LittleEndian.Uint64(m[:]), nil
}

// samplerSource is a random source whose state can be saved and restored (*rand.PCG,
// *rand.ChaCha8).
type samplerSource interface {
	rand.Source
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// Config returns the configuration with defaults filled in.
func (c *Coordinator) Config() Config { return c.cfg }

// Round returns the number of completed rounds.
func (c *Coordinator) Round() uint64 { return c.round }

// Global returns a copy of the current global parameters.
func (c *Coordinator) Global() []float64 { return slices.Clone(c.global) }

// Finished reports whether all rounds are done.
func (c *Coordinator) Finished() bool { return c.phase == phaseFinished }

// Phase names the current phase (for logs and tests).
func (c *Coordinator) Phase() string { return c.phase.String() }

// Online returns the number of connected clients.
func (c *Coordinator) Online() int { return c.available() }

// Step applies one event and returns what to do. A refused event returns a *RejectError
// together with a Ready that may still hold work (an invalid result counts as a failure).
func (c *Coordinator) Step(ev Event) (Ready, error) {
	var r Ready
	err := c.step(ev, &r)
	c.advance(&r)
	if err != nil {
		return r, err
	}
	return r, nil
}

func (c *Coordinator) step(ev Event, r *Ready) error {
	switch e := ev.(type) {
	case Join:
		return c.join(e, r)
	case Leave:
		cs, err := c.client(e.ClientID)
		if err != nil {
			return err
		}
		cs.left = true
		c.setOnline(cs, false)
		c.failClientTasks(cs.id, "client left", r)
		c.forget(cs)
	case Disconnected:
		cs, err := c.client(e.ClientID)
		if err != nil {
			return err
		}
		if cs.online {
			c.setOnline(cs, false)
			r.Notices = append(r.Notices, ClientOffline{ClientID: cs.id})
			c.failClientTasks(cs.id, "client disconnected", r)
		}
	case Heartbeat:
		cs, err := c.client(e.ClientID)
		if err != nil {
			return err
		}
		c.seen(cs)
	case Tick:
		if e.Elapsed < 0 {
			return reject(RejectInvalid, "tick of negative duration %v", e.Elapsed)
		}
		c.now += e.Elapsed
		c.checkLiveness(r)
		c.expireRegistrations(r)
		c.checkDeadline(r)
	case ResultIn:
		return c.result(e, r)
	default:
		return reject(RejectInvalid, "unknown event %T", ev)
	}
	return nil
}

const maxClientIDLength = 256

func (c *Coordinator) join(e Join, r *Ready) error {
	if e.ClientID == "" || len(e.ClientID) > maxClientIDLength {
		return reject(RejectInvalid, "client id of %d bytes: must be 1…%d", len(e.ClientID), maxClientIDLength)
	}
	cs, ok := c.clients[e.ClientID]
	if !ok || cs.eligible != e.CommitteeEligible {
		r.Persist = append(r.Persist, ClientRecord(e))
	}
	if !ok {
		cs = &clientState{id: e.ClientID}
		c.clients[e.ClientID] = cs
		c.roster = append(c.roster, cs)
		c.rosterSorted = len(c.roster) < 2 || (c.rosterSorted && c.roster[len(c.roster)-2].id < cs.id)
	}
	cs.eligible, cs.left = e.CommitteeEligible, false
	c.seen(cs)
	return nil
}

func (c *Coordinator) client(id string) (*clientState, error) {
	cs, ok := c.clients[id]
	if !ok || cs.left {
		return nil, reject(RejectUnknownClient, "client %q has not joined (call Join first)", id)
	}
	return cs, nil
}

func (c *Coordinator) seen(cs *clientState) {
	c.setOnline(cs, true)
	cs.lastSeen = c.now
}

// setOnline changes a client's connection state, keeping the count of online clients.
func (c *Coordinator) setOnline(cs *clientState, on bool) {
	switch {
	case on && !cs.online:
		c.online++
	case !on && cs.online:
		c.online--
	}
	cs.online = on
}

func (c *Coordinator) available() int { return c.online }

// sortedRoster returns every registered client sorted by id (sorting once after joins).
func (c *Coordinator) sortedRoster() []*clientState {
	if !c.rosterSorted {
		slices.SortFunc(c.roster, func(a, b *clientState) int { return strings.Compare(a.id, b.id) })
		c.rosterSorted = true
	}
	return c.roster
}

// onlineClients returns the connected clients sorted by id.
func (c *Coordinator) onlineClients() []*clientState {
	out := make([]*clientState, 0, c.online)
	for _, cs := range c.sortedRoster() {
		if cs.online {
			out = append(out, cs)
		}
	}
	return out
}

// forget drops a client's state (it left, or its registration expired), unless it holds a
// seat of the current key committee, whose members the coordinator must still name.
func (c *Coordinator) forget(cs *clientState) {
	if c.com != nil && slices.Contains(c.com.members, cs.id) {
		return
	}
	delete(c.clients, cs.id)
	if i := slices.Index(c.roster, cs); i >= 0 {
		c.roster = slices.Delete(c.roster, i, i+1)
	}
}

// expireRegistrations forgets the clients offline for longer than the registration TTL,
// scanning the roster at most once a minute of coordinator time.
func (c *Coordinator) expireRegistrations(r *Ready) {
	if c.now < c.expiryAt {
		return
	}
	ttl := c.cfg.Deadlines.RegistrationTTL
	c.expiryAt = c.now + min(ttl, time.Minute)
	var gone []*clientState
	for _, cs := range c.roster {
		if !cs.online && c.now-cs.lastSeen > ttl {
			gone = append(gone, cs)
		}
	}
	for _, cs := range gone {
		if _, ok := c.clients[cs.id]; !ok {
			continue
		}
		c.forget(cs)
		if _, kept := c.clients[cs.id]; !kept {
			r.Notices = append(r.Notices, ClientExpired{ClientID: cs.id})
		}
	}
}

// checkLiveness takes offline the clients not heard from within the client timeout. A scan
// also finds the oldest heartbeat among those still online, so later ticks skip the scan
// until that one could expire (heartbeats only move times forward).
func (c *Coordinator) checkLiveness(r *Ready) {
	timeout := c.cfg.Deadlines.ClientTimeout
	if c.now <= c.livenessAt {
		return
	}
	oldest := c.now
	for _, cs := range c.sortedRoster() {
		if !cs.online {
			continue
		}
		if c.now-cs.lastSeen > timeout {
			c.setOnline(cs, false)
			r.Notices = append(r.Notices, ClientOffline{ClientID: cs.id})
			c.failClientTasks(cs.id, "client offline (no heartbeat)", r)
			continue
		}
		oldest = min(oldest, cs.lastSeen)
	}
	c.livenessAt = oldest + timeout
}

// NextDeadline returns the time (the sum of the ticks seen so far, like Now) at which the
// current phase's deadline passes, and false when no phase is waiting on one. A driver
// that advances time in jumps, like the simulator, ticks no further than this, so
// deadlines fire on time.
func (c *Coordinator) NextDeadline() (time.Duration, bool) {
	switch c.phase {
	case phaseFit, phaseEvaluate, phaseDecrypt, phaseKeySetup:
		return c.deadline, true
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
	case phaseDecrypt:
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
	if cs := c.clients[ts.client]; cs != nil && (ts.kind == pb.TaskKind_TASK_KIND_FIT || ts.kind == pb.TaskKind_TASK_KIND_EVALUATE) {
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
	case pb.TaskKind_TASK_KIND_DECRYPT:
		if c.phase == phaseDecrypt && c.dec != nil && c.dec.round == ts.round {
			c.decryptFailed(fmt.Sprintf("committee member %d (client %q) could not decrypt: %s", ts.member, ts.client, reason), r)
		}
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		if c.phase == phaseKeySetup && c.com != nil && c.com.session == ts.session {
			c.keySetupMemberFailed(ts, reason, r)
		}
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
		msg = c.fitResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_EVALUATE:
		msg = c.evalResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		msg = c.keySetupResult(ts, res, r)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		msg = c.decryptResult(ts, res, r)
	}
	if msg != "" {
		return fail("%s", msg)
	}
	return nil
}

// advance starts whatever the current state allows: the initial evaluation, a key setup, a
// round, or the end.
func (c *Coordinator) advance(r *Ready) {
	if !c.started {
		c.started = true
		if c.central != nil {
			m, err := c.central(0, c.global)
			if err != nil {
				m = map[string]float64{"error": 1}
			}
			r.Notices = append(r.Notices, EvaluationFinished{Round: 0, Central: m})
		}
	}
	// A round can fail as it starts (e.g. Poisson sampling drew no client); then the next
	// one starts at once.
	for c.phase == phaseWaiting {
		if c.round >= uint64(c.cfg.Rounds) {
			c.phase = phaseFinished
			c.closeAll(r)
			r.Notices = append(r.Notices, Finished{Rounds: c.round})
			return
		}
		if n, need := c.available(), c.cfg.Sampling.MinAvailable; n < need {
			c.waitingFor(r, fmt.Sprintf("%d of the %d clients a round needs are online (sampling.min_available)", n, need))
			return
		}
		if c.sa != nil && !c.committeeUsable() {
			c.startKeySetup(r)
			return
		}
		c.startFit(r)
	}
}

// waitingFor reports, once per change, why no round is starting.
func (c *Coordinator) waitingFor(r *Ready, reason string) {
	if reason != c.waiting {
		c.waiting = reason
		r.Notices = append(r.Notices, Waiting{Reason: reason})
	}
}

// samplePoisson returns each online client (sorted by id) independently with probability
// p, as the user-level accountant assumes, drawing the gaps between sampled clients from
// the geometric distribution so a round costs O(sampled) draws.
func (c *Coordinator) samplePoisson(p float64) []string {
	on := c.onlineClients()
	ids := make([]string, 0, int(p*float64(len(on)))+1)
	if p >= 1 {
		for _, cs := range on {
			ids = append(ids, cs.id)
		}
		return ids
	}
	if p <= 0 {
		return ids
	}
	logq := math.Log1p(-p)
	for i := -1; ; {
		gap := math.Floor(math.Log1p(-c.rng.Float64()) / logq)
		if gap >= float64(len(on)-1-i) {
			return ids
		}
		i += 1 + int(gap)
		ids = append(ids, on[i].id)
	}
}

// sample returns n of the online clients (sorted by id), drawn uniformly without replacement
// with the coordinator's generator. When most registered clients are online it draws by
// rejection from the roster, in O(n) expected time and memory however many clients are
// registered; otherwise it shuffles the online ones.
func (c *Coordinator) sample(n int) []string {
	n = min(n, c.online)
	roster := c.sortedRoster()
	ids := make([]string, 0, n)
	if 2*c.online >= len(roster) && n < c.online {
		picked := make(map[*clientState]bool, n)
		for len(ids) < n {
			cs := roster[c.rng.IntN(len(roster))]
			if cs.online && !picked[cs] {
				picked[cs] = true
				ids = append(ids, cs.id)
			}
		}
	} else {
		on := c.onlineClients()
		c.rng.Shuffle(len(on), func(i, j int) { on[i], on[j] = on[j], on[i] })
		for _, cs := range on[:n] {
			ids = append(ids, cs.id)
		}
	}
	slices.Sort(ids)
	return ids
}

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
		sampled = c.sample(n)
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
	spec := &pb.FitSpec{
		Model: c.modelPB, LocalEpochs: int32(t.Epochs), BatchSize: int32(t.BatchSize), Optimizer: t.Optimizer,
		LearningRate: t.LR, Momentum: t.Momentum, ProximalMu: fc.ProximalMu,
		Dp:             &pb.DPSpec{NoiseMultiplier: d.NoiseMultiplier, MaxGradNorm: d.MaxGradNorm, Delta: d.Delta, SampleRate: d.SampleRate, Steps: int32(d.Steps)},
		UpdateClipNorm: d.UpdateClipNorm, WeightScale: t.WeightScale, MaxWeight: c.maxWeight(),
		Config: fc.Config,
	}
	if c.trainStatistics() {
		spec.Statistics = &pb.StatisticsSpec{LossCap: t.LossCap}
	}
	if c.ul != nil {
		spec.UpdateClipNorm = f.clip
		spec.UserLevelDp = c.ul.spec(f.clip)
	}
	blobs := []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(c.global))}
	if c.sa != nil {
		agg, err := secagg.NewAggregator(*c.sa, secagg.AggregatorConfig{Session: c.com.session, Round: number, Dim: c.dim + c.extra(), Committee: c.cfg.committeeConfig(), Workers: 2, Purpose: secagg.PurposeFit, Verifier: c.verifier})
		if err != nil {
			c.fit = f
			c.failRound(fmt.Sprintf("secure aggregation: %v", err), r)
			return
		}
		f.agg = agg
		spec.Secagg = &pb.SecAggSpec{Session: c.com.session[:], Params: c.saProto}
	}
	c.fit = f
	c.phase = phaseFit
	c.deadline = c.now + c.cfg.Deadlines.Fit
	for _, id := range sampled {
		if c.rl != nil {
			// Charged when issued: the client may train whether or not a result arrives.
			eps, err := c.rl.issued(id, number)
			if err != nil {
				c.failRound(err.Error(), r)
				return
			}
			r.Persist = append(r.Persist, PrivacyRecord{ClientID: id, Round: number, Epsilon: eps, Delta: d.Delta})
			r.Notices = append(r.Notices, PrivacySpent{ClientID: id, Epsilon: eps})
		}
		ts := &taskState{client: id, kind: pb.TaskKind_TASK_KIND_FIT, round: number}
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
	if c.ul != nil {
		return 1
	}
	if n <= 0 {
		return c.maxWeight()
	}
	return min(float64(n)/c.cfg.Training.WeightScale, c.maxWeight())
}

// trainStatistics reports whether fit tasks ask for the training statistics inside the
// secure aggregate: under secure aggregation without user-level DP (whose guarantee does
// not cover them).
func (c *Coordinator) trainStatistics() bool { return c.sa != nil && c.ul == nil }

// statisticSlots is the number of values a client appends for its statistics.
const statisticSlots = 2

// extra is the number of values clients append to their update: the adaptive clip's
// indicator, or the training statistics.
func (c *Coordinator) extra() int {
	switch {
	case c.ul != nil:
		return c.ul.extra()
	case c.trainStatistics():
		return statisticSlots
	}
	return 0
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
func (c *Coordinator) fitResult(ts *taskState, res *pb.Result, r *Ready) string {
	f := c.fit
	if c.phase != phaseFit || f == nil || f.number != ts.round {
		return fmt.Sprintf("round %d is no longer collecting updates", ts.round)
	}
	if res.NumExamples < 0 {
		return fmt.Sprintf("num_examples = %d: must be ≥ 0 (0: not shared)", res.NumExamples)
	}
	if f.agg != nil {
		if b, _ := blob.Find(res.Blobs, blob.Update); b != nil {
			return "plaintext update sent under secure aggregation; send only encrypted_update"
		}
		data, err := blob.Find(res.Blobs, blob.EncryptedUpdate)
		if err != nil {
			return err.Error()
		}
		var u secagg.EncryptedUpdate
		if err := u.UnmarshalBinary(data); err != nil {
			return err.Error()
		}
		if u.ClientID != ts.client {
			return fmt.Sprintf("encrypted update names client %q", u.ClientID)
		}
		if u.TaskID != ts.id {
			return fmt.Sprintf("encrypted update made for task %q, not %s", u.TaskID, ts.id)
		}
		if err := f.agg.Add(&u); err != nil {
			return err.Error()
		}
	} else {
		data, err := blob.Find(res.Blobs, blob.Update)
		if err != nil {
			return err.Error()
		}
		delta, err := blob.DecodeFloats(data, c.dim+c.extra())
		if err != nil {
			return "update: " + err.Error()
		}
		clip, key := c.cfg.DP.UpdateClipNorm, "dp.update_clip_norm"
		if c.ul != nil {
			clip, key = f.clip, "the round's user-level clip"
			if b := delta[c.dim:]; len(b) > 0 && b[0] != 0.5 && b[0] != -0.5 {
				return fmt.Sprintf("clip indicator %v: must be +½ or −½ (the centred 1[‖Δ‖ ≤ S] − ½)", b[0])
			}
		}
		if clip > 0 {
			var s float64
			for _, v := range delta[:c.dim] {
				s += v * v
			}
			if n := math.Sqrt(s); n > clip*(1+1e-9) {
				return fmt.Sprintf("update norm %.6g exceeds %s %g (clip before sending)", n, key, clip)
			}
		}
		f.updates = append(f.updates, strategy.ClientUpdate{ClientID: ts.client, Delta: delta, Weight: c.weight(res.NumExamples), NumExamples: int(res.NumExamples), Metrics: res.Metrics})
	}
	delete(f.pending, ts.client)
	f.contributors = append(f.contributors, ts.client)
	if len(f.pending) == 0 {
		c.finishFit(r)
	}
	return ""
}

// finishFit ends the fit phase: stragglers count as dropped; then decrypt or aggregate.
func (c *Coordinator) finishFit(r *Ready) {
	f := c.fit
	for _, id := range slices.Sorted(mapsKeys(f.pending)) {
		c.closeTask(f.pending[id], false, r)
		f.failures = append(f.failures, strategy.Failure{ClientID: id, Kind: strategy.FailureTimeout, Reason: "no result before the fit deadline"})
	}
	clear(f.pending)
	if n := len(f.contributors); n < c.cfg.Sampling.MinFit {
		c.failRound(fmt.Sprintf("only %d of the sampled clients returned updates, sampling.min_fit is %d", n, c.cfg.Sampling.MinFit), r)
		return
	}
	if f.agg != nil {
		c.startDecrypt(f.agg, f.number, false, r)
		return
	}
	if c.ul != nil {
		sum := make([]float64, c.dim+c.extra())
		for _, u := range f.updates {
			for i, v := range u.Delta {
				sum[i] += v
			}
		}
		c.releaseUserLevel(sum, len(f.updates), r)
		return
	}
	c.aggregate(strategy.FitResults{Updates: f.updates, Failures: f.failures}, r)
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

// startDecrypt asks the first Threshold online holders of the committee for decryption
// shares of agg: the round's update sum, or (eval) its evaluation statistics.
func (c *Coordinator) startDecrypt(agg *secagg.Aggregator, round uint64, eval bool, r *Ready) {
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
	c.dec = &decryption{agg: agg, round: round, eval: eval}
	if len(set) < t {
		c.com = nil
		c.decryptFailed(fmt.Sprintf("only %d key-committee members are online, the threshold is %d; a new committee will be formed", len(set), t), r)
		return
	}
	req, err := agg.DecryptionRequest(set)
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
		op, err := d.agg.Open(&ch)
		if err != nil {
			c.decryptFailed(fmt.Sprintf("opening member %d's spot checks: %v", ts.member, err), r)
			return ""
		}
		ob, err := op.MarshalBinary()
		if err != nil {
			c.decryptFailed(fmt.Sprintf("opening member %d's spot checks: %v", ts.member, err), r)
			return ""
		}
		// The member kept the request from the challenge step: only the opening goes out.
		c.sendDecrypt(r, ts.member, pb.DecryptStage_DECRYPT_STAGE_SHARE, blob.New(blob.Opening, ob))
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
	sum, err := d.agg.Combine(shares)
	if err != nil {
		c.decryptFailed(fmt.Sprintf("combining decryption shares: %v", err), r)
		return ""
	}
	c.dec = nil
	if err := c.checkAggregate(sum, d.eval); err != nil {
		c.decryptFailed(err.Error(), r)
		return ""
	}
	if d.eval {
		c.endEvaluate(c.decodeStatistics(sum.WeightedSum, sum.TotalWeight, ""), r)
		return ""
	}
	if c.ul != nil {
		c.releaseUserLevel(sum.WeightedSum, sum.Count, r)
		return ""
	}
	if c.trainStatistics() {
		c.fit.stats = c.decodeStatistics(sum.WeightedSum[c.dim:], sum.TotalWeight, "train_")
	}
	c.aggregate(strategy.FitResults{Sum: &strategy.WeightedSum{Sum: sum.WeightedSum[:c.dim:c.dim], TotalWeight: sum.TotalWeight, Count: sum.Count}, Failures: c.fit.failures}, r)
	return ""
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
		bound = sum.TotalWeight * (c.cfg.DP.UpdateClipNorm + math.Sqrt(statisticSlots)*lit.ClipBound)
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
	var central map[string]float64
	if c.central != nil {
		central, err = c.central(f.number, c.global)
		if err != nil {
			central = nil
			metrics["central_eval_failed"] = 1
		}
		for k, v := range central {
			metrics["central_"+k] = v
		}
	}
	rec := RoundRecord{Round: f.number, Params: slices.Clone(c.global), Metrics: metrics, Contributors: slices.Clone(f.contributors), SamplerState: c.samplerState()}
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
	c.fit = nil
	c.startEvaluate(central, r)
}

// maxEpsilon is the largest total record-level ε of any client: the server's own account of
// the fit tasks it issued (and, should a client report more, its report).
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
	r.Persist = append(r.Persist, RoundRecord{Round: f.number, Params: slices.Clone(c.global), Failed: true, Reason: reason, Contributors: slices.Clone(f.contributors), SamplerState: c.samplerState()})
	if c.ul != nil && f.clip > 0 {
		// The round sampled clients: it counts for the accountant, released or not.
		if rec, err := c.userLevelRecord(f.number); err == nil {
			r.Persist = append(r.Persist, rec)
		}
	}
	r.Notices = append(r.Notices, RoundFinished{Round: f.number, Contributors: 0, Failures: slices.Clone(f.failures), Failed: true, Reason: reason})
	c.fit = nil
	c.phase = phaseWaiting
}

func (c *Coordinator) startEvaluate(central map[string]float64, r *Ready) {
	s := c.cfg.Sampling
	e := &evalRound{number: c.round, pending: map[string]string{}, central: central}
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
	spec := &pb.EvaluateSpec{Model: c.modelPB, BatchSize: 256, Config: c.strat.ConfigureEvaluate(e.number, c.global)}
	blobs := []*pb.Blob{blob.New(blob.Params, blob.EncodeFloats(c.global))}
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
	for _, id := range c.sample(n) {
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
		data, err := blob.Find(res.Blobs, blob.EncryptedUpdate)
		if err != nil {
			return err.Error()
		}
		var u secagg.EncryptedUpdate
		if err := u.UnmarshalBinary(data); err != nil {
			return err.Error()
		}
		if u.ClientID != ts.client {
			return fmt.Sprintf("encrypted evaluation names client %q", u.ClientID)
		}
		if u.TaskID != ts.id {
			return fmt.Sprintf("encrypted evaluation made for task %q, not %s", u.TaskID, ts.id)
		}
		if err := e.agg.Add(&u); err != nil {
			return err.Error()
		}
		delete(e.pending, ts.client)
		if len(e.pending) == 0 {
			c.finishEvaluate(r)
		}
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
	n := EvaluationFinished{Round: e.number, Central: e.central, Federated: federated, Evaluations: len(e.results)}
	if e.agg != nil {
		n.Evaluations = e.agg.Count()
	}
	if n.Central != nil || n.Federated != nil {
		r.Notices = append(r.Notices, n)
	}
	c.eval = nil
	c.phase = phaseWaiting
}
