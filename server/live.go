package server

import (
	"context"
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/confide-fl/confide/dashboard"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// LiveConfig describes the federation a Live follows.
type LiveConfig struct {
	// Kind is "server" (the default) or "simulation"; Name the federation's name.
	Kind string
	Name string
	// VirtualTime: the coordinator's clock is a simulation's (its ticks are not wall time).
	VirtualTime bool
	// CheckpointDir holds the model files the dashboard offers for download (empty: none).
	CheckpointDir string
	// MaxClients bounds the clients a snapshot lists (default 500, sorted by id).
	MaxClients int
}

// Live is a federation's state for the dashboard (a dashboard.Source). It keeps what the
// coordinator's notices say (the rounds, and per client the rounds it was sampled for and
// contributed to, its refusals and dropouts, and its ε as the server accounts it) and what
// it reads of the coordinator's state (phase, clients online and when last seen, the key
// committee), and hands out copies to any number of readers. Everything it keeps the
// server holds anyway; nothing is derived from a client's data.
//
// A driver feeds it on the goroutine that steps the coordinator: a Service does when
// ServiceConfig.Live is set (and reads the coordinator through Run's loop before each
// snapshot, so that a snapshot is fresh between notices); another driver, such as the
// simulator's in-memory network, calls Notice with every notice.
type Live struct {
	dashboard.Broadcast
	cfg LiveConfig

	mu sync.Mutex
	// refresh, set by a Service, observes the coordinator on Run's goroutine; traffic
	// reads the service's payload byte counters (received, sent).
	refresh  func(context.Context) error
	traffic  func() (up, down int64)
	observed time.Time
	snap     dashboard.Snapshot // the coordinator's state as last observed
	seen     []seenClient
	tally    map[string]*clientTally
	epsMax   float64 // the largest of the clients' ε (clientTally.epsilon)
	coordEps float64 // the coordinator's largest ε as last observed
	epsSum   float64
	epsN     int
	open     map[uint64]*openRound
	rounds   []dashboard.Round
	revision uint64
	bytesUp  int64 // the traffic counters at the last round's end
	bytesDn  int64
	userEps  float64
	keyFail  string
	stopped  string
}

// seenClient is a client as the coordinator last showed it.
type seenClient struct {
	id      string
	online  bool
	seenAgo float64
	member  bool
}

// clientTally is what the notices said of one client. Its ε is the larger of the server's
// account (the fit tasks it issued the client, less those refused: it may go down) and the
// client's report of its ledger.
type clientTally struct {
	sampled, rounds, refusals, dropouts int
	epsilon, account, reported          float64
}

// openRound is a round that started and has not finished (its central evaluation may
// arrive before its RoundFinished notice, as in the simulator).
type openRound struct {
	start   time.Time
	sampled []string
	rec     dashboard.Round
}

var _ dashboard.Source = (*Live)(nil)

// NewLive returns a Live that has seen nothing yet.
func NewLive(cfg LiveConfig) *Live {
	if cfg.Kind == "" {
		cfg.Kind = "server"
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 500
	}
	clock := "wall"
	if cfg.VirtualTime {
		clock = "virtual"
	}
	return &Live{cfg: cfg, tally: map[string]*clientTally{}, open: map[uint64]*openRound{},
		snap: dashboard.Snapshot{Kind: cfg.Kind, Name: cfg.Name, State: "starting", Clock: clock, CheckpointDir: cfg.CheckpointDir}}
}

// attach makes s feed l: the coordinator is observed now (Run has not started) and before
// each snapshot through Run's loop, and round traffic comes from the service's counters.
func (l *Live) attach(s *Service) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refresh = func(ctx context.Context) error {
		return s.ask(ctx, func(c *Coordinator) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.observe(c)
			return nil
		})
	}
	m := s.cfg.Metrics
	l.traffic = func() (int64, int64) { return counterValue(m.bytesIn), counterValue(m.bytesOut) }
	l.bytesUp, l.bytesDn = l.traffic()
	l.observe(s.coord)
}

func counterValue(c interface{ Write(*dto.Metric) error }) int64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// SetCheckpointDir changes the directory of the model files offered for download.
func (l *Live) SetCheckpointDir(dir string) {
	l.mu.Lock()
	l.snap.CheckpointDir = dir
	l.mu.Unlock()
}

// Stopped records that the driver stopped the federation before the coordinator finished
// (a simulation that reached its target accuracy), and why.
func (l *Live) Stopped(reason string) {
	l.mu.Lock()
	l.stopped = reason
	l.mu.Unlock()
	l.Notify()
}

// SetTraffic sets the payload bytes of a finished round, for a driver that attributes its
// traffic to rounds itself (the simulator counts each task's bytes for the task's round).
func (l *Live) SetTraffic(round uint64, up, down int64) {
	l.mu.Lock()
	changed := false
	if i, ok := l.finished(round); ok {
		if r := &l.rounds[i]; r.BytesUp != up || r.BytesDown != down {
			r.BytesUp, r.BytesDown = up, down
			l.revision++
			r.Revision = l.revision
			changed = true
		}
	}
	l.mu.Unlock()
	if changed {
		l.Notify()
	}
}

// Notice takes one of the coordinator's notices; c, when not nil, is the coordinator,
// observed now: call it on the goroutine that steps c. A nil Live ignores it.
func (l *Live) Notice(n Notice, c *Coordinator) {
	if l == nil {
		return
	}
	l.mu.Lock()
	switch n := n.(type) {
	case RoundStarted:
		o := l.openRound(n.Round)
		o.start, o.sampled, o.rec.Sampled = time.Now(), slices.Clone(n.Clients), len(n.Clients)
		for _, id := range n.Clients {
			l.client(id).sampled++
		}
		l.snap.Waiting = ""
	case RoundFinished:
		l.roundFinished(n)
	case EvaluationFinished:
		l.evaluated(n)
	case PrivacySpent:
		t := l.client(n.ClientID)
		if n.Reported {
			t.reported = max(t.reported, n.Epsilon)
		} else {
			t.account = n.Epsilon
		}
		eps := max(t.account, t.reported)
		switch {
		case t.epsilon == 0 && eps > 0:
			l.epsN++
		case t.epsilon > 0 && eps == 0:
			l.epsN--
		}
		l.epsSum += eps - t.epsilon
		lowered := eps < t.epsilon
		t.epsilon = eps
		if lowered {
			l.epsMax = 0
			for _, o := range l.tally {
				l.epsMax = max(l.epsMax, o.epsilon)
			}
		} else {
			l.epsMax = max(l.epsMax, eps)
		}
		c = nil // one per sampled client: the state is observed with the round's notice
	case KeySetupFailed:
		l.keyFail = n.Reason
	case CommitteeReady:
		l.keyFail = ""
	case Waiting:
		l.snap.Waiting = n.Reason
	}
	if c != nil {
		l.observe(c)
	}
	l.mu.Unlock()
	l.Notify()
}

func (l *Live) client(id string) *clientTally {
	t, ok := l.tally[id]
	if !ok {
		t = &clientTally{}
		l.tally[id] = t
	}
	return t
}

func (l *Live) openRound(round uint64) *openRound {
	o, ok := l.open[round]
	if !ok {
		o = &openRound{start: time.Now(), rec: dashboard.Round{Round: round}}
		l.open[round] = o
	}
	return o
}

// finished returns the index of a finished round's record.
func (l *Live) finished(round uint64) (int, bool) {
	for i := len(l.rounds) - 1; i >= 0; i-- {
		if l.rounds[i].Round == round {
			return i, true
		}
	}
	return 0, false
}

func (l *Live) roundFinished(n RoundFinished) {
	o := l.openRound(n.Round)
	delete(l.open, n.Round)
	r := o.rec
	r.Failed, r.Reason = n.Failed, n.Reason
	if !n.Failed {
		r.Contributors = n.Contributors
	}
	failed := map[string]bool{}
	for _, f := range n.Failures {
		failed[f.ClientID] = true
		var count *int
		switch f.Kind {
		case strategy.FailureTimeout:
			r.Dropouts++
			count = &l.client(f.ClientID).dropouts
		case strategy.FailureRefused:
			r.Refusals++
			count = &l.client(f.ClientID).refusals
		default:
			r.Errors++
		}
		if count != nil && f.ClientID != "" {
			*count++
		}
	}
	if !n.Failed {
		for _, id := range o.sampled {
			if !failed[id] {
				l.client(id).rounds++
			}
		}
	}
	if v, ok := n.Metrics["train_loss"]; ok && !math.IsNaN(v) {
		r.TrainLoss = &v
	}
	if v, ok := n.Metrics["user_epsilon"]; ok {
		l.userEps = v
	}
	// The round's own figures: the next round's tasks may have been charged already.
	if n.Failed && len(l.rounds) > 0 {
		r.Epsilon = l.rounds[len(l.rounds)-1].Epsilon
	} else {
		r.Epsilon = max(n.Metrics["epsilon_max"], n.Metrics["epsilon_reported_max"])
	}
	r.UserEpsilon = l.userEps
	r.Seconds = time.Since(o.start).Seconds()
	if l.traffic != nil {
		up, down := l.traffic()
		r.BytesUp, r.BytesDown = up-l.bytesUp, down-l.bytesDn
		l.bytesUp, l.bytesDn = up, down
	}
	l.revision++
	r.Revision = l.revision
	l.rounds = append(l.rounds, r)
}

func (l *Live) evaluated(n EvaluationFinished) {
	set := func(dst **float64, m map[string]float64, key string) {
		if v, ok := m[key]; ok && !math.IsNaN(v) {
			*dst = &v
		}
	}
	if n.Round == 0 {
		set(&l.snap.InitialAccuracy, n.Central, "accuracy")
		return
	}
	var r *dashboard.Round
	if i, ok := l.finished(n.Round); ok {
		r = &l.rounds[i]
	} else {
		r = &l.openRound(n.Round).rec
	}
	if _, failed := n.Central["error"]; !failed {
		set(&r.Accuracy, n.Central, "accuracy")
		set(&r.Loss, n.Central, "loss")
	}
	set(&r.FederatedAccuracy, n.Federated, "accuracy")
	set(&r.FederatedLoss, n.Federated, "loss")
	l.revision++
	r.Revision = l.revision
}

// observe copies what the dashboard shows of c's state; l.mu is held, and c is not being
// stepped.
func (l *Live) observe(c *Coordinator) {
	l.observed = time.Now()
	cfg := c.cfg
	s := &l.snap
	s.State, s.Round, s.Rounds, s.Strategy = c.Phase(), c.Round(), cfg.Rounds, cfg.Strategy.Name
	s.Current = 0
	if c.fit != nil {
		s.Current = c.fit.number
	}
	s.Now = c.now.Seconds()
	s.ClientsOnline, s.ClientsRegistered = c.online, len(c.clients)
	l.coordEps = c.maxEpsilon()

	d := cfg.DP
	p := dashboard.Privacy{DPSGD: d.NoiseMultiplier > 0, UpdateClipNorm: d.UpdateClipNorm, SecureAggregation: cfg.SecAgg.Enabled}
	if p.DPSGD {
		p.NoiseMultiplier, p.MaxGradNorm, p.SampleRate, p.Steps, p.Delta = d.NoiseMultiplier, d.MaxGradNorm, d.SampleRate, d.Steps, d.Delta
	}
	if p.DPSGD || d.UserLevel.On() {
		if a, err := d.Accounting(); err == nil {
			p.Accountant = a.Method.String()
		}
	}
	if u := d.UserLevel; u.On() {
		p.UserLevel = &dashboard.UserLevel{Mode: u.Mode, NoiseMultiplier: u.NoiseMultiplier, Clip: u.Clip, Adaptive: u.IsAdaptive(), Delta: u.Delta}
		if c.fit != nil && c.fit.clip > 0 {
			p.UserLevel.Clip = c.fit.clip
		}
	}
	s.Privacy = p

	s.Committee = nil
	if com := c.com; com != nil {
		v := &dashboard.Committee{Session: hex.EncodeToString(com.session[:8]), Ready: com.ready, Size: len(com.members),
			Threshold: cfg.SecAgg.Threshold, Holders: len(com.holders), FormedRound: com.formedAt}
		v.Stage = "ready"
		if !com.ready {
			v.Stage = strings.ToLower(strings.TrimPrefix(com.stage.String(), "KEY_SETUP_STAGE_"))
		}
		for i, id := range com.members {
			if cs := c.clients[id]; cs != nil && cs.online && !cs.left && com.holders[secagg.MemberID(i+1)] {
				v.HoldersOnline++
			}
		}
		s.Committee = v
	}

	l.seen = l.seen[:0]
	var members map[string]bool
	if c.com != nil {
		members = make(map[string]bool, len(c.com.members))
		for _, id := range c.com.members {
			members[id] = true
		}
	}
	for _, cs := range c.sortedRoster() {
		if len(l.seen) == l.cfg.MaxClients {
			break
		}
		if cs.left {
			continue
		}
		l.seen = append(l.seen, seenClient{id: cs.id, online: cs.online, seenAgo: (c.now - cs.lastSeen).Seconds(), member: members[cs.id]})
	}
}

// freshness is how old an observation may be before a snapshot asks for a new one.
const freshness = 200 * time.Millisecond

// Snapshot implements dashboard.Source.
func (l *Live) Snapshot(ctx context.Context) (dashboard.Snapshot, error) {
	l.mu.Lock()
	refresh := l.refresh != nil && l.snap.State != "finished" && time.Since(l.observed) > freshness
	l.mu.Unlock()
	if refresh {
		// Bounded: after Run stops, the last observation stands.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = l.refresh(rctx)
		cancel()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.snap
	if l.stopped != "" {
		s.State, s.Waiting, s.Current = "stopped", l.stopped, 0
	}
	s.Privacy.EpsilonMax, s.Privacy.ClientsAccounted = max(l.epsMax, l.coordEps), l.epsN
	if l.epsN > 0 {
		s.Privacy.EpsilonMean = l.epsSum / float64(l.epsN)
	}
	if u := s.Privacy.UserLevel; u != nil {
		cp := *u
		cp.Epsilon = l.userEps
		s.Privacy.UserLevel = &cp
	}
	if s.Committee != nil {
		cp := *s.Committee
		cp.LastFailure = l.keyFail
		s.Committee = &cp
	}
	s.Clients = make([]dashboard.Client, len(l.seen))
	for i, v := range l.seen {
		cl := dashboard.Client{ID: v.id, Online: v.online, SeenAgo: v.seenAgo, Member: v.member}
		if t, ok := l.tally[v.id]; ok {
			cl.Sampled, cl.Rounds, cl.Refusals, cl.Dropouts, cl.Epsilon = t.sampled, t.rounds, t.refusals, t.dropouts, t.epsilon
		}
		s.Clients[i] = cl
	}
	s.History = slices.Clone(l.rounds)
	return s, nil
}
