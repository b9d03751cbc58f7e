package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"time"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// memNet is the in-memory transport: it drives the coordinator as server/doc.go's seam
// says (events in, Ready out, Persist before Send), in virtual time. A task reaches its
// client at once; the client starts it when idle, and its result arrives after a virtual
// duration that depends on the client's data and speed; a client that drops out stops
// answering and heartbeating. The training itself runs on the worker pool as soon as a
// task starts, and results are delivered in virtual-time order, so a run does not depend
// on how fast the machine computes.
type memNet struct {
	r      *run
	ctx    context.Context
	coord  *server.Coordinator
	events eventQueue
	seq    uint64

	clients   map[int]*memClient // clients with a task queued or running
	connected []uint64           // bitset: joined and not left or crashed
	crashed   []int              // crashed clients, to reconnect at the next refresh
	lastSweep time.Duration
	refresh   uint64 // round whose availability to apply next (0: none pending)
	stalled   bool

	round   uint64 // round in progress
	sampled int
	done    int
}

type memClient struct {
	queue []*pb.Task
	busy  bool
}

type eventKind int

const (
	evResult eventKind = iota + 1 // a task's result reaches the server
	evCrash                       // a client drops out
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	k    int
	job  *job
}

// job is a task running on the worker pool.
type job struct {
	task *pb.Task
	res  *pb.Result
	err  error
	done chan struct{}
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = event{} // the backing array must not keep the job (its task and result) alive
	*q = old[:len(old)-1]
	return e
}

func runMemory(ctx context.Context, r *run) error {
	ctx, cancel := context.WithCancel(ctx)
	// Tasks still running when the federation ends (stragglers, the round after the
	// target was reached) are abandoned.
	defer r.pool.close()
	defer cancel()
	n := &memNet{r: r, ctx: ctx, coord: r.coord, clients: map[int]*memClient{}, connected: make([]uint64, (r.pop.n+63)/64)}
	if err := n.joinInitial(); err != nil {
		return err
	}
	for !n.over() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n.refresh > 0 {
			round := n.refresh
			n.refresh = 0
			if err := n.applyAvailability(round); err != nil {
				return err
			}
		}
		if len(n.crashed) > 0 && n.coord.Idle() {
			// Clients that crashed restart and reconnect while the server waits for
			// enough of them to start the next round.
			if err := n.applyAvailability(n.coord.Round() + 1); err != nil {
				return err
			}
		}
		next, hasEv := n.events.peek()
		dl, hasDl := n.coord.NextDeadline()
		var target time.Duration
		switch {
		case hasEv && hasDl:
			target = min(next.at, dl)
		case hasEv:
			target = next.at
		case hasDl:
			target = dl
		default:
			// Nothing scheduled: the coordinator waits for clients to connect.
			if !n.stalled {
				n.stalled = true
				if err := n.applyAvailability(n.coord.Round() + 1); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("sim: the coordinator is waiting for clients: %d are online, it needs %d (min_available) and, under secure aggregation, a committee of %d; lower min_available or raise heterogeneity.availability",
				n.coord.Online(), r.fed.Sampling.MinAvailable, r.fed.SecAgg.CommitteeSize)
		}
		n.stalled = false
		// One tick at a time: a tick can start a phase that schedules earlier events or
		// moves the deadline, so the next target is recomputed after each.
		if err := n.tickTowards(target); err != nil {
			return err
		}
		for !n.over() {
			ev, ok := n.events.peek()
			if !ok || ev.at > n.coord.Now() {
				break
			}
			heap.Pop(&n.events)
			if err := n.process(ev); err != nil {
				return err
			}
		}
	}
	return nil
}

func (q eventQueue) peek() (event, bool) {
	if len(q) == 0 {
		return event{}, false
	}
	return q[0], true
}

// over reports whether the run is done: all rounds ran or the target accuracy was reached.
func (n *memNet) over() bool {
	return n.coord.Finished() || n.r.eval.targetRound() > 0
}

func (n *memNet) isConnected(k int) bool { return n.connected[k/64]&(1<<(k%64)) != 0 }

func (n *memNet) setConnected(k int, on bool) {
	if on {
		n.connected[k/64] |= 1 << (k % 64)
	} else {
		n.connected[k/64] &^= 1 << (k % 64)
	}
}

// available reports whether client k is available in a round.
func (n *memNet) available(k int, round uint64) bool {
	a := n.r.cfg.Heterogeneity.Availability
	return a >= 1 || unit(n.r.cfg.Seed, 0x617661696c, uint64(k), round) < a
}

// joinInitial connects the clients available in round 1. When some are not, they join in a
// seeded random order, so that the first round, which starts as soon as min_available
// clients are online, does not favour low client indices.
func (n *memNet) joinInitial() error {
	order := func(yield func(int) bool) {
		for k := range n.r.pop.n {
			if !yield(k) {
				return
			}
		}
	}
	if n.r.cfg.Heterogeneity.Availability < 1 {
		perm := rand.New(rand.NewPCG(n.r.cfg.Seed, 0x6a6f696e)).Perm(n.r.pop.n)
		order = slices.Values(perm)
	}
	for k := range order {
		if !n.available(k, 1) {
			continue
		}
		if err := n.join(k); err != nil {
			return err
		}
	}
	return nil
}

func (n *memNet) join(k int) error {
	n.setConnected(k, true)
	return n.step(server.Join{ClientID: n.r.id(k), CommitteeEligible: true})
}

// applyAvailability connects the idle clients available in round and disconnects the idle
// ones that are not; busy clients keep their connection until their tasks are done.
func (n *memNet) applyAvailability(round uint64) error {
	crashed := n.crashed
	n.crashed = nil
	if n.r.cfg.Heterogeneity.Availability >= 1 {
		for _, k := range crashed {
			if !n.isConnected(k) && n.clients[k] == nil {
				if err := n.join(k); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for k := range n.r.pop.n {
		if n.clients[k] != nil {
			continue
		}
		want, on := n.available(k, round), n.isConnected(k)
		switch {
		case want && !on:
			if err := n.join(k); err != nil {
				return err
			}
		case !want && on:
			n.setConnected(k, false)
			if err := n.step(server.Leave{ClientID: n.r.id(k)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepInterval is how often connected clients heartbeat: half the client timeout, as a
// long-polling client re-polls well within it.
func (n *memNet) sweepInterval() time.Duration {
	return max(n.r.fed.Deadlines.ClientTimeout/2, time.Millisecond)
}

// tickTowards advances the coordinator's clock towards t in one tick, stopping early at the
// next heartbeat sweep (every connected client heartbeats every sweep interval).
func (n *memNet) tickTowards(t time.Duration) error {
	sweepAt := n.lastSweep + n.sweepInterval()
	if next := min(t, sweepAt); next > n.coord.Now() {
		if err := n.step(server.Tick{Elapsed: next - n.coord.Now()}); err != nil {
			return err
		}
	}
	if n.coord.Now() >= sweepAt {
		return n.sweep()
	}
	return nil
}

func (n *memNet) sweep() error {
	n.lastSweep = n.coord.Now()
	for w, word := range n.connected {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			if err := n.step(server.Heartbeat{ClientID: n.r.id(w*64 + b)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// step applies an event; a refusal (a *server.RejectError) is logged, not fatal: clients
// send late or invalid results in a deployment too.
func (n *memNet) step(ev server.Event) error {
	rd, err := n.coord.Step(ev)
	if aerr := n.apply(rd); aerr != nil {
		return aerr
	}
	var rej *server.RejectError
	if errors.As(err, &rej) {
		if rej.Code == server.RejectLate {
			if res, ok := ev.(server.ResultIn); ok && res.Result.GetKind() == pb.TaskKind_TASK_KIND_FIT {
				n.r.rec.lateResult(res.Result.GetRound())
			}
		}
		n.r.log.Debug("coordinator refused an event", "event", fmt.Sprintf("%T", ev), "err", err)
		return nil
	}
	return err
}

// apply carries out a Ready: persist, then revoke and deliver tasks, then the notices.
func (n *memNet) apply(rd server.Ready) error {
	return server.Driver{Store: n.r.rec, Deliver: n.deliver, Evaluate: n.evaluate, Work: n.work, Notify: n.notify}.Apply(rd)
}

// deliver queues sent tasks for their virtual clients, withdraws revoked ones, and starts
// the clients that got work.
func (n *memNet) deliver(send []server.Envelope, revoke []server.Revocation) error {
	var touched []int
	for _, e := range send {
		k, err := n.r.index(e.To)
		if err != nil {
			return err
		}
		if !n.isConnected(k) {
			continue // crashed: it never pulls the task; the coordinator times it out
		}
		c := n.clients[k]
		if c == nil {
			c = &memClient{}
			n.clients[k] = c
		}
		c.queue = append(c.queue, e.Task)
		touched = append(touched, k)
	}
	for _, v := range revoke {
		k, err := n.r.index(v.To)
		if err != nil {
			return err
		}
		if c := n.clients[k]; c != nil {
			c.queue = slices.DeleteFunc(c.queue, func(t *pb.Task) bool { return t.TaskId == v.TaskID })
			n.forgetIfIdle(k)
		}
	}
	for _, k := range touched {
		if err := n.startNext(k); err != nil {
			return err
		}
	}
	return nil
}

// evaluate runs central evaluations at once (the simulator's clock is virtual), before the
// round's notices, so a round is reported with its test accuracy.
func (n *memNet) evaluate(reqs []server.EvaluationRequest) error {
	for _, req := range reqs {
		if err := n.step(req.Run(n.coord.CentralEvaluator(), n.coord.IterateEvaluator())); err != nil {
			return err
		}
	}
	return nil
}

// work runs the coordinator's computations at once, as it evaluates.
func (n *memNet) work(work []server.Work) error {
	for _, w := range work {
		if err := n.step(w.Run()); err != nil {
			return err
		}
	}
	return nil
}

// notify acts on a notice: progress, reports, logs.
func (n *memNet) notify(no server.Notice) {
	n.tellLive(no)
	switch v := no.(type) {
	case server.RoundStarted:
		n.round, n.sampled, n.done = v.Round, len(v.Clients), 0
		examples := 0
		for _, id := range v.Clients {
			if k, err := n.r.index(id); err == nil {
				examples += n.r.pop.size(k) * n.r.fed.Training.Epochs
			}
		}
		n.r.rec.started(v.Round, len(v.Clients), examples)
		n.refresh = v.Round + 1
		n.progress("fit")
	case server.RoundFinished:
		n.r.rec.finished(v)
		n.r.rec.setVirtual(int(v.Round), n.coord.Now())
		if n.r.opts.OnRound != nil {
			if row, ok := n.r.rec.lastRow(); ok {
				n.r.opts.OnRound(row)
			}
		}
	case server.EvaluationFinished:
		if v.Federated != nil {
			n.r.rec.federated(v.Round, v.Federated)
		}
	case server.StatisticsEstimated:
		n.r.statisticsEstimated(v)
	case server.KeySetupFailed:
		n.r.log.Info("key setup failed", "session", v.Session, "reason", v.Reason, "missing", v.Missing)
	case server.CommitteeReady:
		n.r.log.Info("key committee ready", "session", v.Session, "members", v.Members)
	}
}

func (n *memNet) progress(phase string) {
	if n.r.opts.OnProgress == nil {
		return
	}
	p := Progress{Round: int(n.round), Rounds: n.r.cfg.Rounds, ClientsDone: n.done, ClientsSampled: n.sampled, Phase: phase,
		VirtualTime: n.coord.Now(), LastAccuracy: math.NaN(), CompletedRounds: int(n.coord.Round())}
	if row, ok := n.r.rec.lastRow(); ok && row.Accuracy != nil {
		p.LastAccuracy = *row.Accuracy
	}
	n.r.opts.OnProgress(p)
}

func (n *memNet) forgetIfIdle(k int) {
	if c := n.clients[k]; c != nil && !c.busy && len(c.queue) == 0 {
		delete(n.clients, k)
	}
}

func (n *memNet) schedule(e event) event {
	n.seq++
	e.seq = n.seq
	heap.Push(&n.events, e)
	return e
}

// startNext starts client k's next queued task if it is idle: the task's payload counts as
// downloaded, its training starts on the pool and its result is due after the task's
// virtual duration, or the client crashes part-way (dropout).
func (n *memNet) startNext(k int) error {
	c := n.clients[k]
	if c == nil || c.busy || len(c.queue) == 0 {
		return nil
	}
	t := c.queue[0]
	c.queue = c.queue[1:]
	c.busy = true
	n.r.rec.traffic(t.GetRound(), blobBytes(t.GetBlobs()), 0)
	d := n.duration(k, t)
	now := n.coord.Now()
	h := n.r.cfg.Heterogeneity
	if t.GetKind() == pb.TaskKind_TASK_KIND_FIT && h.Dropout > 0 && unit(n.r.cfg.Seed, 0x64726f70, uint64(k), t.GetRound()) < h.Dropout {
		at := now + time.Duration(unit(n.r.cfg.Seed, 0x7768656e, uint64(k), t.GetRound())*float64(d))
		n.schedule(event{at: at, kind: evCrash, k: k})
		return nil
	}
	st, err := n.r.state(k)
	if err != nil {
		return err
	}
	j := &job{task: t, done: make(chan struct{})}
	e := n.schedule(event{at: now + d, kind: evResult, k: k, job: j})
	n.r.pool.spawn(n.ctx, e.at, e.seq, func(w *worker) {
		defer close(j.done)
		if w == nil {
			j.err = n.ctx.Err()
			return
		}
		j.res, j.err = n.r.handle(n.ctx, w, k, st, t)
	})
	return nil
}

// duration is the virtual time client k takes for a task: the latency plus its work at its
// speed (examples × epochs for training, a third of a pass for evaluation, a nominal 100
// example-times for key-setup and decryption steps).
func (n *memNet) duration(k int, t *pb.Task) time.Duration {
	h := n.r.cfg.Heterogeneity
	speed := 1.0
	if h.SpeedSigma > 0 {
		speed = math.Exp(h.SpeedSigma * normal(n.r.cfg.Seed, 0x7370656564, uint64(k)))
	}
	ex := float64(h.ExampleTime)
	var work float64
	switch t.GetKind() {
	case pb.TaskKind_TASK_KIND_FIT:
		work = float64(n.r.pop.size(k)) * float64(max(t.GetFit().GetLocalEpochs(), 1)) * ex
	case pb.TaskKind_TASK_KIND_EVALUATE:
		work = float64(n.r.pop.size(k)) * ex / 3
	default:
		work = 100 * ex
	}
	return h.Latency + time.Duration(speed*work)
}

// process handles a due event.
func (n *memNet) process(ev event) error {
	c := n.clients[ev.k]
	switch ev.kind {
	case evCrash:
		n.setConnected(ev.k, false)
		n.crashed = append(n.crashed, ev.k)
		if c != nil {
			c.busy, c.queue = false, nil
			n.forgetIfIdle(ev.k)
		}
		return nil
	case evResult:
		select {
		case <-ev.job.done:
		case <-n.ctx.Done():
			return n.ctx.Err()
		}
		if ev.job.err != nil {
			if n.ctx.Err() != nil {
				return n.ctx.Err()
			}
			return fmt.Errorf("sim: client %s could not save its state: %w", n.r.id(ev.k), ev.job.err)
		}
		res := ev.job.res
		n.r.rec.traffic(res.GetRound(), 0, blobBytes(res.GetBlobs()))
		if res.GetKind() == pb.TaskKind_TASK_KIND_FIT && res.GetRound() == n.round {
			n.done++
			n.progress("fit")
		}
		if err := n.step(server.ResultIn{ClientID: n.r.id(ev.k), Result: res}); err != nil {
			return err
		}
		if c != nil {
			c.busy = false
			if err := n.startNext(ev.k); err != nil {
				return err
			}
			n.forgetIfIdle(ev.k)
		}
		return nil
	}
	return fmt.Errorf("sim: unknown event kind %d", ev.kind)
}

func blobBytes(bs []*pb.Blob) int64 {
	var s int64
	for _, b := range bs {
		s += int64(len(b.GetData()))
	}
	return s
}
