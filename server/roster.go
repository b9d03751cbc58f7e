package server

import (
	"math"
	"slices"
	"strings"
	"time"
)

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

// waitingRepeat is how often a reason to wait that has not changed is reported again.
const waitingRepeat = 30 * time.Second

// waitingFor reports why no round is starting: when the reason changes, and every
// waitingRepeat while it does not, so an operator watching the log sees the server is alive.
func (c *Coordinator) waitingFor(r *Ready, reason string) {
	if reason != c.waiting || c.now-c.waitingAt >= waitingRepeat {
		c.waiting, c.waitingAt = reason, c.now
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

// sample returns n of the online clients (sorted by id) for which ok holds (nil: all), drawn
// uniformly without replacement with the coordinator's generator. When most registered
// clients qualify it draws by rejection from the roster, in O(n) expected time and memory
// however many clients are registered (with ok, counting them takes one pass); otherwise it
// shuffles the qualifying ones. Without ok, or when every online client qualifies, the draws
// are the same as sampling the online clients.
func (c *Coordinator) sample(n int, ok func(*clientState) bool) []string {
	eligible := c.online
	roster := c.sortedRoster()
	if ok != nil {
		eligible = 0
		for _, cs := range roster {
			if cs.online && ok(cs) {
				eligible++
			}
		}
		if eligible == c.online {
			ok = nil
		}
	}
	n = min(n, eligible)
	ids := make([]string, 0, n)
	if 2*eligible >= len(roster) && n < eligible {
		picked := make(map[*clientState]bool, n)
		for len(ids) < n {
			cs := roster[c.rng.IntN(len(roster))]
			if cs.online && !picked[cs] && (ok == nil || ok(cs)) {
				picked[cs] = true
				ids = append(ids, cs.id)
			}
		}
	} else {
		on := c.onlineClients()
		if ok != nil {
			on = slices.DeleteFunc(on, func(cs *clientState) bool { return !ok(cs) })
		}
		c.rng.Shuffle(len(on), func(i, j int) { on[i], on[j] = on[j], on[i] })
		for _, cs := range on[:n] {
			ids = append(ids, cs.id)
		}
	}
	slices.Sort(ids)
	return ids
}
