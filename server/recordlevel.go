package server

import (
	"fmt"
	"maps"
	"slices"

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
	// stats is the noise multiplier of the statistics round each client was sent a task
	// of (a Gaussian mechanism of sample rate 1, one step; see pb.ColumnStatisticsSpec),
	// composed with its fit tasks.
	stats map[string]float64
	// epsStats caches ε by the count of fit tasks for clients charged the statistics
	// round too (a federation has one statistics noise multiplier).
	epsStats map[int]float64
}

func newRecordLevel(d DPConfig) *recordLevel {
	if !(d.NoiseMultiplier > 0) {
		return nil
	}
	acct, _ := d.Accounting() // validated with the config
	return &recordLevel{
		step:  accountant.Step{NoiseMultiplier: d.NoiseMultiplier, SampleRate: d.SampleRate, Steps: d.Steps},
		delta: d.Delta, acct: acct, tasks: map[string]int{}, last: map[string]uint64{}, eps: map[int]float64{}, stats: map[string]float64{}, epsStats: map[int]float64{},
	}
}

// issued charges client a fit task of round (once per round) and returns its total ε at δ.
func (a *recordLevel) issued(client string, round uint64) (float64, error) {
	k := a.tasks[client]
	if a.last[client] != round || k == 0 {
		k++
	}
	a.tasks[client], a.last[client] = k, round
	return a.epsilon(client)
}

// issuedStatistics charges client the statistics round's release (noise multiplier z,
// once) and returns its total ε at δ.
func (a *recordLevel) issuedStatistics(client string, z float64) (float64, error) {
	a.stats[client] = z
	return a.epsilon(client)
}

// statisticsClients lists the clients charged for the statistics round, sorted.
func (a *recordLevel) statisticsClients() []string {
	return slices.Sorted(maps.Keys(a.stats))
}

// epsilon is client's ε at δ: its fit tasks composed with the statistics round's release.
func (a *recordLevel) epsilon(client string) (float64, error) {
	k := a.tasks[client]
	z, stat := a.stats[client]
	cache := a.eps
	if stat {
		cache = a.epsStats
	}
	if eps, ok := cache[k]; ok {
		a.max = max(a.max, eps)
		return eps, nil
	}
	var steps []accountant.Step
	if k > 0 {
		s := a.step
		s.Steps *= k
		steps = append(steps, s)
	}
	if stat {
		steps = append(steps, accountant.Step{NoiseMultiplier: z, SampleRate: 1, Steps: 1})
	}
	if len(steps) == 0 {
		return 0, nil
	}
	res, err := accountant.Epsilon(steps, a.delta, a.acct)
	if err != nil {
		return 0, fmt.Errorf("record-level accounting of %d fit tasks and the statistics round: %w", k, err)
	}
	cache[k] = res.Epsilon
	a.max = max(a.max, res.Epsilon)
	return res.Epsilon, nil
}
