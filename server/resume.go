package server

import (
	"fmt"
	"math"
	"slices"

	"github.com/confide-fl/confide/proto/blob"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server/strategy"
)

// samplerState is the sampling generator's state, saved in round records.
func (c *Coordinator) samplerState() []byte {
	b, err := c.sampler.MarshalBinary()
	if err != nil {
		return nil // *rand.PCG and *rand.ChaCha8 never fail
	}
	return b
}

// restore puts the coordinator where a federation's durable state left it (Options.Resume):
// the registered clients (offline until they reconnect), the latest key committee, the
// rounds done, the global model, the strategy's and the sampling generator's state, the
// user-level accountant and the server's record-level account of every client. A round
// that was running when the server stopped is not in the state: it runs again. Task ids
// carry the boot number from the second start on, so a result for a task of an earlier
// boot never matches a new task.
func (c *Coordinator) restore(st *State) error {
	if st.Boots > 1 {
		c.idPrefix = fmt.Sprintf("b%d.", st.Boots)
	}
	for _, cr := range st.Clients {
		if cr.ClientID == "" || len(cr.ClientID) > maxClientIDLength {
			return fmt.Errorf("server: resume: client id of %d bytes", len(cr.ClientID))
		}
		if _, ok := c.clients[cr.ClientID]; ok {
			continue
		}
		cs := &clientState{id: cr.ClientID, eligible: cr.CommitteeEligible}
		c.clients[cr.ClientID] = cs
		c.roster = append(c.roster, cs)
	}
	c.rosterSorted = false
	if st.Params != nil {
		if len(st.Params) != c.dim {
			return fmt.Errorf("server: resume: the stored model has %d parameters, federation.model has %d: the state belongs to another model (use another --state-dir)", len(st.Params), c.dim)
		}
		for i, v := range st.Params {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("server: resume: stored parameter %d is %v", i, v)
			}
		}
		c.global = slices.Clone(st.Params)
	}
	c.round = st.Round
	if st.StrategyState != nil {
		sf, ok := c.strat.(strategy.Stateful)
		if !ok {
			return fmt.Errorf("server: resume: the state holds strategy state, but strategy %s keeps none: the state belongs to another configuration", c.strat.Name())
		}
		if err := sf.UnmarshalState(st.StrategyState); err != nil {
			return fmt.Errorf("server: resume: strategy %s: %w", c.strat.Name(), err)
		}
	}
	if st.SamplerState != nil {
		if err := c.sampler.UnmarshalBinary(st.SamplerState); err != nil {
			// Another kind of generator (a seed was set or dropped): start a fresh one.
			c.sampler, _, _, _ = generators(c.cfg.Seed)
		}
	}
	if com := st.Committee; com != nil && c.sa != nil {
		if err := c.restoreCommittee(com); err != nil {
			return err
		}
	}
	if c.rl != nil {
		for id, n := range st.FitTasks {
			// n distinct rounds, the latest of them FitLastRound[id].
			last := st.FitLastRound[id]
			for i := range n {
				if _, _, err := c.rl.issued(id, last-uint64(n-1-i)); err != nil {
					return fmt.Errorf("server: resume: %w", err)
				}
			}
		}
		for id, n := range st.FitWithdrawn {
			for range n {
				if _, err := c.rl.withdraw(id); err != nil {
					return fmt.Errorf("server: resume: %w", err)
				}
			}
		}
	}
	if st.Statistics != nil && c.cfg.Dataset != nil {
		if err := c.restoreStatistics(st.Statistics); err != nil {
			return err
		}
	}
	for id, eps := range st.Reported {
		if cs := c.clients[id]; cs != nil {
			cs.epsilon = eps
		}
		c.epsMax = max(c.epsMax, eps)
	}
	if u := st.UserLevel; u != nil && c.ul != nil {
		c.ul.rounds = u.Rounds
		if u.SampleRate > 0 {
			c.ul.population = int(math.Round(c.ul.m / u.SampleRate))
		}
		if c.ul.clipper != nil && u.Clip > 0 {
			if err := c.ul.clipper.SetClip(u.Clip); err != nil {
				return fmt.Errorf("server: resume: %w", err)
			}
		}
	}
	c.started = true // the initial model was evaluated at the first start
	return nil
}

func (c *Coordinator) restoreCommittee(r *CommitteeRecord) error {
	if len(r.Members) != c.cfg.SecAgg.CommitteeSize {
		return nil // another committee size: form a new committee
	}
	for _, id := range r.Members {
		if _, ok := c.clients[id]; !ok {
			return fmt.Errorf("server: resume: committee member %q is not a registered client", id)
		}
	}
	var pk secagg.PublicKey
	if err := pk.UnmarshalBinary(r.PublicKey); err != nil {
		return fmt.Errorf("server: resume: committee public key: %w", err)
	}
	if pk.Session != secagg.SessionID(r.Session) {
		return fmt.Errorf("server: resume: committee public key of session %s, record of %x", pk.Session, r.Session)
	}
	if pk.ParamsDigest != c.sa.Digest() {
		// A key made under other secure-aggregation parameters (the configuration changed,
		// or its default encoding did): no client can encrypt under it now, so form a new
		// committee.
		return nil
	}
	com := &committee{session: r.Session, members: slices.Clone(r.Members), pkBlob: blob.New(blob.PublicKey, r.PublicKey), holders: map[secagg.MemberID]bool{}, ready: true, formedAt: r.FormedRound}
	for _, m := range r.Holders {
		if m < 1 || int(m) > len(r.Members) {
			return fmt.Errorf("server: resume: committee holder %d out of 1…%d", m, len(r.Members))
		}
		com.holders[secagg.MemberID(m)] = true
	}
	c.com = com
	return nil
}
