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
// run — and takes the charge back when the client refuses the task on its privacy budget
// (it refuses before training: its ledger is charged only for tasks it runs). So the
// account is the ε a client actually spent, the same figure as its ledger, except for
// tasks whose outcome the server never learnt (those stay charged). A client asked again
// for a round it already trained in, with the same model (the round runs again after a
// server restart), re-sends the update it made (client.Party does), so the server charges
// each client once per round, and a refusal of such a repeated task takes nothing back.
// Clients report their own ledger's ε too; the server reports the larger.
//
// The server's sampling of clients for a round plays no part in this account: every task
// is charged in full, as if the client were sure to be sampled (amplification by sampling
// applies to the records of a client's DP-SGD batches only, q = dp.sample_rate), so
// skipping clients whose budget is spent (see roomFor) changes no one's ε.
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

// issued charges client a fit task of round (once per round) and returns its total ε at δ,
// and whether this task was charged (false: the round's task was charged before).
func (a *recordLevel) issued(client string, round uint64) (eps float64, charged bool, err error) {
	k := a.tasks[client]
	if a.last[client] != round || k == 0 {
		k++
		charged = true
	}
	a.tasks[client], a.last[client] = k, round
	eps, err = a.epsilon(client)
	return eps, charged, err
}

// withdraw takes back the charge of a fit task the client refused before training, and
// returns its total ε at δ.
func (a *recordLevel) withdraw(client string) (float64, error) {
	if a.tasks[client] == 0 {
		return a.epsilon(client)
	}
	a.tasks[client]--
	eps, err := a.epsilon(client)
	if err != nil {
		return 0, err
	}
	// The largest ε may have been this client's.
	a.max = 0
	for _, id := range slices.Concat(slices.Collect(maps.Keys(a.tasks)), a.statisticsClients()) {
		if _, err := a.epsilon(id); err != nil {
			return 0, err
		}
	}
	return eps, nil
}

// roomFor reports whether one more fit task keeps client within the budget ε (at δ); not
// when the accountant fails (issuing the task would fail the round).
func (a *recordLevel) roomFor(client string, budget float64) bool {
	z, stat := a.stats[client]
	eps, err := a.epsilonOf(a.tasks[client]+1, z, stat)
	return err == nil && eps <= budget
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
	z, stat := a.stats[client]
	eps, err := a.epsilonOf(a.tasks[client], z, stat)
	if err == nil {
		a.max = max(a.max, eps)
	}
	return eps, err
}

// epsilonOf is the ε at δ of k fit tasks composed, when stat, with the statistics round's
// release of noise multiplier z.
func (a *recordLevel) epsilonOf(k int, z float64, stat bool) (float64, error) {
	cache := a.eps
	if stat {
		cache = a.epsStats
	}
	if eps, ok := cache[k]; ok {
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
	return res.Epsilon, nil
}
