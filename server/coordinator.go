package server

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// CentralEvaluator evaluates global parameters on a server-side test set (Flower's
// evaluate_fn). It must be deterministic and do no I/O beyond reading data it holds.
type CentralEvaluator func(round uint64, params []float64) (map[string]float64, error)

// Options are the coordinator's collaborators.
type Options struct {
	// Central, when set, evaluates the initial model and every round's released model
	// (the new global model, or the strategy's average of them, strategy.ema_decay).
	Central CentralEvaluator
	// CentralIterate evaluates the global iterate the clients train from when the strategy
	// releases an average instead (its metrics join the round's prefixed iterate_); nil:
	// Central evaluates both, one call each, with the same round.
	CentralIterate CentralEvaluator
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
	// Strategy, when set, aggregates instead of the one cfg.Strategy names: a program that
	// embeds the server brings its own (strategy.Strategy). Under secure aggregation it
	// sees only the weighted sum, so one that needs individual updates is refused.
	Strategy strategy.Strategy
	// UploadStore, when set, gives each round's fit aggregate under authenticated secure
	// aggregation the store where it keeps its uploads' commitment trees for the members'
	// spot checks (secagg.AggregatorConfig.Store; 8 bytes per value and upload), so that
	// the server's memory does not grow with the clients of a round: TempUploadStore keeps
	// them in an unlinked temporary file. Nil keeps them in memory.
	UploadStore func() (secagg.LeafStore, error)
}

type phase int

const (
	phaseWaiting phase = iota
	phaseKeySetup
	phaseFit
	phaseDecrypt
	phaseEvaluate
	phaseFinished
	phaseStatistics
)

func (p phase) String() string {
	return [...]string{"waiting", "key-setup", "fit", "decrypt", "evaluate", "finished", "statistics"}[p]
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
	// outOfBudget: the client refused a fit task on its privacy budget. Every task of the
	// federation costs the same and a ledger only grows, so it would refuse the next too:
	// it is not sampled for fit tasks again (until a restart forgets this).
	outOfBudget bool
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
	// charged: a fit task the record-level account charged (its round's first), whose
	// charge a refusal takes back.
	charged bool
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
	plain        *plainAggregate   // without secure aggregation
	uploads                        // the updates being added; under secure aggregation the encrypted sum
	contributors []string
	failures     []strategy.Failure
	// stats are the decrypted training statistics (secure aggregation): the weighted mean
	// loss and accuracy of the contributors' last local epoch.
	stats map[string]float64
	// SCAFFOLD: the clients that could have been sampled, and the sum of the
	// control-variate deltas once the round's aggregate is known.
	population int
	controlSum []float64
	// Hierarchical aggregation (partials.go): the aggregate once an aggregator holds
	// uploads of the round, and those aggregators.
	hier    *secagg.HierarchicalAggregator
	sources map[string]*source
}

type evalRound struct {
	number   uint64
	pending  map[string]string
	results  []strategy.EvaluateResult
	failures []strategy.Failure
	// uploads sums the encrypted evaluation statistics under secure aggregation.
	uploads
}

// decryption is an aggregate the key committee is opening: the round's update, or the
// round's evaluation statistics.
type decryption struct {
	agg    *secagg.Aggregator
	round  uint64
	eval   bool
	stats  bool // the statistics round's sums
	set    []secagg.MemberID
	req    *pb.Blob
	shares map[secagg.MemberID]*secagg.DecryptionShare
	// combining: every share is in and the driver is combining them (CombineWork).
	combining bool
	// hier is the round's hierarchical aggregate (agg is its direct part); challenges and
	// openings hold each member's challenge until every source opened its uploads for it.
	hier       *secagg.HierarchicalAggregator
	challenges map[secagg.MemberID]*secagg.Challenge
	openings   map[secagg.MemberID]map[string]*secagg.Opening
}

// Coordinator runs the rounds of a federation as a single-threaded state machine (the etcd
// raft style): Step takes an Event and returns a Ready with the records to persist, the tasks
// to send and revoke, and notices. It reads no clock (time arrives as Tick events), starts no
// goroutine and does no I/O, so a deployment and the simulator drive the same code.
type Coordinator struct {
	cfg     Config
	strat   strategy.Strategy
	ctl     strategy.Controlled // SCAFFOLD's control variates (nil: none)
	central CentralEvaluator
	// centralIterate evaluates the global iterate when the strategy releases an average.
	centralIterate CentralEvaluator
	// verifier authenticates secure aggregation's key material and uploads (nil: passive).
	verifier *secagg.Verifier
	// uploadStore gives the fit aggregate its store (Options.UploadStore; nil: memory).
	uploadStore func() (secagg.LeafStore, error)
	// distrusted are the aggregators caught lying about a partial sum, with the reason: they
	// may relay but no longer sum (partials.go).
	distrusted map[string]string
	// rng draws the client sample and the committee; ids draws session ids. Both are
	// keyed from crypto/rand unless Config.Seed fixes them (experiments), and no output of
	// rng ever reaches a client: amplification by sampling assumes the sample is secret.
	rng, ids *rand.Rand
	// sampler is rng's source, whose state round records keep (resume continues it).
	sampler samplerSource
	// idPrefix tells the task ids of a restarted server from those of earlier boots.
	idPrefix string
	// evalPending counts the central evaluations asked of the driver and not yet back.
	evalPending int
	// waiting is the last reason reported for not starting a round.
	waiting   string
	waitingAt time.Duration // when the waiting reason was last reported
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

	// datasetJSON is the shipped form of cfg.Dataset (nil without one).
	datasetJSON []byte
	// stats is the running statistics round (nil: none), statsAttempts the rounds started
	// so far, statsRetryAt when a failed one runs again.
	stats         *statRound
	statsAttempts uint64
	statsRetryAt  time.Duration

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
	if opts.Strategy != nil {
		if strat = strategy.Wrap(opts.Strategy, cfg.Strategy); cfg.SecAgg.Enabled && strat.NeedsIndividualUpdates() {
			return nil, fmt.Errorf("server: strategy %s needs individual client updates: %w", strat.Name(), strategy.ErrNeedsIndividualUpdates)
		}
	}
	c := &Coordinator{
		cfg: cfg, strat: strat, central: opts.Central, centralIterate: opts.CentralIterate, verifier: opts.Verifier, uploadStore: opts.UploadStore,
		ctl:     strategy.ControlledOf(strat),
		clients: map[string]*clientState{}, tasks: map[string]*taskState{}, closed: map[string]closedTask{},
	}
	var modelSeed uint64
	if c.sampler, c.ids, modelSeed, err = generators(cfg.Seed); err != nil {
		return nil, err
	}
	c.rng = rand.New(c.sampler)
	c.rl = newRecordLevel(cfg.DP)
	if cfg.DP.UserLevel.On() {
		acct, err := cfg.DP.Accounting()
		if err != nil {
			return nil, err
		}
		if c.ul, err = newUserLevel(cfg.DP.UserLevel, cfg.SecAgg.MinContributions, opts.Noise, acct); err != nil {
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
	if cfg.Dataset != nil {
		if c.datasetJSON, err = cfg.Dataset.Shipped(); err != nil {
			return nil, fmt.Errorf("server: dataset: %w", err)
		}
	}
	if cfg.SecAgg.Enabled {
		p, err := cfg.secAggParams()
		if err == nil && p.Packed() && cfg.SecAgg.Primes == 0 {
			// primes 0: the count that makes this model's uploads smallest (the padding of
			// the last ciphertext decides for small models; the few slots appended to the
			// model's values are left out of the choice); the task carries it.
			p, err = secagg.PackedForDimension(cfg.secAggLiteral(), c.dim)
		}
		if err != nil {
			return nil, fmt.Errorf("server: secure aggregation: %w", err)
		}
		c.sa = &p
		lit := p.Literal()
		if cfg.DiscreteUserLevel() && c.ul != nil {
			d, err := cfg.discreteUserLevel()
			if err != nil {
				return nil, fmt.Errorf("server: dp.user_level: %w", err)
			}
			d.MaxShares = lit.MaxContributors
			if v, err := d.LocalVariance(); err != nil || v == 0 || v != lit.NoiseVariance {
				return nil, fmt.Errorf("server: dp.user_level: the secure-aggregation parameters carry noise variance %d, the distributed discrete Gaussian needs %d (%v)", lit.NoiseVariance, v, err)
			}
			c.ul.discrete, c.ul.variance = &d, lit.NoiseVariance
		}
		cc := cfg.committeeConfig()
		c.saProto = &pb.SecAggParams{
			LogN: int32(lit.LogN), LogQ: int32(lit.LogQ), LogScale: int32(lit.LogScale), FloodingSigma: lit.FloodingSigma,
			ClipBound: lit.ClipBound, MaxWeight: lit.MaxWeight, MaxContributors: int32(lit.MaxContributors),
			CommitteeSize: int32(cc.Size), Threshold: int32(cc.Threshold), MinContributions: int32(cc.MinContributions),
			ValueBits: int32(lit.ValueBits), Primes: int32(lit.Primes), NoiseVariance: lit.NoiseVariance,
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

// Global returns a copy of the current global parameters: the iterate the clients train
// from.
func (c *Coordinator) Global() []float64 { return slices.Clone(c.global) }

// Released returns a copy of the model the federation releases: the strategy's average of
// the global models when it keeps one (strategy.ema_decay), else the global parameters.
func (c *Coordinator) Released() []float64 {
	r, _ := c.released()
	return slices.Clone(r)
}

// released returns the released model (not a copy) and whether it is an average distinct
// from the global iterate.
func (c *Coordinator) released() ([]float64, bool) {
	if a, ok := c.strat.(strategy.Averaging); ok {
		if r := a.Released(); len(r) == c.dim {
			return r, true
		}
	}
	return c.global, false
}

// Finished reports whether all rounds are done.
func (c *Coordinator) Finished() bool { return c.phase == phaseFinished }

// Idle reports whether no phase is running: the coordinator waits for clients (or for a
// committee) before the next round.
func (c *Coordinator) Idle() bool { return c.phase == phaseWaiting }

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
	case Evaluated:
		return c.evaluated(e, r)
	case Aggregated:
		return c.aggregated(e, r)
	case Combined:
		return c.combined(e, r)
	case SourceResultIn:
		return c.sourceResult(e, r)
	case SourceGone:
		return c.sourceGone(e, r)
	case PartialAdded:
		return c.partialAdded(e, r)
	case PartialDropped:
		return c.partialDropped(e, r)
	default:
		return reject(RejectInvalid, "unknown event %T", ev)
	}
	return nil
}

// advance starts whatever the current state allows: the initial evaluation, a key setup, a
// round, or the end.
func (c *Coordinator) advance(r *Ready) {
	if !c.started {
		c.started = true
		c.requestEvaluation(0, r)
	}
	// A round can fail as it starts (e.g. Poisson sampling drew no client); then the next
	// one starts at once.
	for c.phase == phaseWaiting {
		if c.round >= uint64(c.cfg.Rounds) {
			if c.evalPending > 0 {
				return // the last round's central evaluation is still out
			}
			c.phase = phaseFinished
			c.closeAll(r)
			r.Notices = append(r.Notices, Finished{Rounds: c.round})
			return
		}
		if n, need := c.available(), c.cfg.Sampling.MinAvailable; n < need {
			c.waitingFor(r, fmt.Sprintf("%d of the %d clients a round needs are online (sampling.min_available)", n, need))
			return
		}
		c.waiting = "" // the next wait is news
		if c.sa != nil && !c.committeeUsable() {
			c.startKeySetup(r)
			return
		}
		if c.needsStatistics() {
			if c.now < c.statsRetryAt {
				c.waitingFor(r, "the dataset's statistics round failed; it runs again shortly")
				return
			}
			c.startStatistics(r)
			continue
		}
		c.startFit(r)
	}
}
