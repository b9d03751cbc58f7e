package server

import (
	"fmt"

	"github.com/confide-fl/confide/dp/accountant"
)

// recordLevel is the server's own account of every client's record-level (DP-SGD) privacy:
// the fit tasks fix the DP-SGD schedule (σ, q, T), so the ε a client spends follows from
// the tasks it was sent, not from its data, and the server charges each client when it
// issues the task — whether or not a result comes back, as the client's training may have
// run. A client asked again for a round it already trained in, with the same model (the round
// runs again after a server restart), re-sends the update it made (client.Party does), so
// the server charges each client once per round. Clients report their own ledger's ε too;
// the server reports both.
type recordLevel struct {
	step  accountant.Step // one fit task
	delta float64
	acct  accountant.Config // dp.accountant
	// tasks counts the rounds a client was issued a DP fit task in, last the latest such
	// round; eps caches ε by the count (the schedule is the same for every task of a
	// federation).
	tasks map[string]int
	last  map[string]uint64
	eps   map[int]float64
	max   float64
}

func newRecordLevel(d DPConfig) *recordLevel {
	if !(d.NoiseMultiplier > 0) {
		return nil
	}
	acct, _ := d.Accounting() // validated with the config
	return &recordLevel{
		step:  accountant.Step{NoiseMultiplier: d.NoiseMultiplier, SampleRate: d.SampleRate, Steps: d.Steps},
		delta: d.Delta, acct: acct, tasks: map[string]int{}, last: map[string]uint64{}, eps: map[int]float64{},
	}
}

// issued charges client a fit task of round (once per round) and returns its total ε at δ.
func (a *recordLevel) issued(client string, round uint64) (float64, error) {
	k := a.tasks[client]
	if a.last[client] != round || k == 0 {
		k++
	}
	eps, ok := a.eps[k]
	if !ok {
		s := a.step
		s.Steps *= k
		res, err := accountant.Epsilon([]accountant.Step{s}, a.delta, a.acct)
		if err != nil {
			return 0, fmt.Errorf("record-level accounting of %d fit tasks: %w", k, err)
		}
		eps = res.Epsilon
		a.eps[k] = eps
	}
	a.tasks[client], a.last[client] = k, round
	a.max = max(a.max, eps)
	return eps, nil
}
