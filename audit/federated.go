package audit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// Federated is an audit of a simulated federation's user-level DP (DP-FedAvg,
// dp.user_level): canary clients, each in the population with probability ½, whose
// update is a fixed direction.
type Federated struct {
	Sim        sim.Config
	Canaries   int
	Confidence float64
	// Seed drives the audit's draws (which canaries join, their coordinates); the
	// federation's noise is whatever Sim says (crypto/rand unless dp.deterministic_noise).
	Seed uint64
}

// FederatedResult is what an audit of a federation found.
type FederatedResult struct {
	Bound Bound
	// Report is the simulation's report; its Summary.Privacy.UserLevel holds the
	// claimed user-level ε.
	Report *sim.Report
	// Model is the spec of the federation's model.
	Model model.Spec
	// QuietCanaries counts the canaries whose coordinate had no data gradient at all.
	QuietCanaries int
	// Rounds is the number of released aggregates the auditor saw.
	Rounds int
}

// canaryUpdateNorm is the norm of a canary client's update before the client's own
// clipping: far above any clip norm S, so every canary sends exactly S·e_j, the largest
// update the accountant allows one client.
const canaryUpdateNorm = 1e6

// clientCanary is a canary client's trainer: its update is canaryUpdateNorm·e_j.
type clientCanary struct{ coordinate int }

var _ client.Trainer = clientCanary{}

func (c clientCanary) Fit(_ context.Context, global []float64, _ client.FitConfig) (client.FitResult, error) {
	p := slices.Clone(global)
	if c.coordinate >= len(p) {
		return client.FitResult{}, fmt.Errorf("audit: canary coordinate %d of a model with %d parameters", c.coordinate, len(p))
	}
	p[c.coordinate] += canaryUpdateNorm
	return client.FitResult{Params: p, NumExamples: 1}, nil
}

func (clientCanary) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{}, errors.New("audit: a canary client holds no test data")
}

// modelTrace keeps the canary coordinates of every round's global model.
type modelTrace struct {
	coords []int
	mu     sync.Mutex
	rounds map[uint64][]float64
}

func (t *modelTrace) observe(round uint64, params []float64) {
	v := make([]float64, len(t.coords))
	for i, j := range t.coords {
		v[i] = params[j]
	}
	t.mu.Lock()
	t.rounds[round] = v
	t.mu.Unlock()
}

// scores returns each canary's white-box score and the number of released aggregates seen.
// Round r's aggregate moves the model by Δ_r (for FedAvg, the noised sum of the clipped
// updates over the expected cohort, times the server's step); each Δ_r is divided by its
// root mean square over the canary coordinates, an estimate of the round's noise scale
// (the clip S and the server's step change from round to round), so every round weighs
// alike; a canary's score is the sum over rounds of its standardised coordinate.
func (t *modelTrace) scores() ([]float64, int) {
	rounds := slices.Sorted(func(yield func(uint64) bool) {
		for r := range t.rounds {
			if !yield(r) {
				return
			}
		}
	})
	s := make([]float64, len(t.coords))
	seen := 0
	for i := 1; i < len(rounds); i++ {
		prev, cur := t.rounds[rounds[i-1]], t.rounds[rounds[i]]
		var ss float64
		for k := range cur {
			d := cur[k] - prev[k]
			ss += d * d
		}
		rms := math.Sqrt(ss / float64(len(cur)))
		if rms == 0 {
			continue // a round that released nothing
		}
		seen++
		for k := range cur {
			s[k] += (cur[k] - prev[k]) / rms
		}
	}
	return s, seen
}

// RunFederated runs the federation c.Sim describes with c.Canaries canary clients, each
// added to the population with probability ½; a canary's update is a large multiple of
// e_j, which its own client-side clipping turns into S·e_j, on one of the model's quietest
// coordinates (QuietCoordinates on the training set at a fresh initialisation). The
// auditor sees every round's global model, that is every released noised aggregate (the
// white-box setting), and scores by projection. opts.Train and opts.Test, when set,
// replace the configured dataset; opts.Canaries and opts.OnModel are the audit's.
func RunFederated(ctx context.Context, c Federated, opts sim.Options) (*FederatedResult, error) {
	if !c.Sim.DP.UserLevel.On() {
		return nil, errors.New("audit: a federated audit checks user-level DP: the sim config needs dp.user_level (see examples/mnist-user-level.yaml)")
	}
	if c.Canaries < 1 {
		return nil, fmt.Errorf("audit: canaries = %d: must be ≥ 1", c.Canaries)
	}
	if !(c.Confidence > 0 && c.Confidence < 1) {
		return nil, fmt.Errorf("audit: confidence = %v: must be in (0, 1)", c.Confidence)
	}
	if opts.Train == nil || opts.Test == nil {
		var err error
		if opts.Train, opts.Test, err = sim.LoadDataset(ctx, c.Sim.WithDefaults()); err != nil {
			return nil, err
		}
	}
	spec, err := sim.ModelSpec(c.Sim, opts.Train)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x6665646175646974))
	m, err := model.New(spec, rand.New(rand.NewPCG(c.Seed, 0x696e6974)))
	if err != nil {
		return nil, err
	}
	coords, quiet, err := QuietCoordinates(ctx, m, opts.Train, false, c.Canaries, rng)
	if err != nil {
		return nil, err
	}
	included := DrawInclusion(c.Canaries, rng)
	opts.Canaries = nil
	for i, in := range included {
		if in {
			opts.Canaries = append(opts.Canaries, clientCanary{coordinate: coords[i]})
		}
	}
	trace := &modelTrace{coords: coords, rounds: map[uint64][]float64{}}
	opts.OnModel = trace.observe
	rep, err := sim.Run(ctx, c.Sim, opts)
	if err != nil {
		return nil, err
	}
	for _, r := range rep.Rounds {
		if r.UpdateClip >= canaryUpdateNorm {
			return nil, fmt.Errorf("audit: round %d clipped updates to %g, above the canaries' norm %g: the canaries were not the largest updates", r.Round, r.UpdateClip, canaryUpdateNorm)
		}
	}
	res := &FederatedResult{Report: rep, Model: spec, QuietCanaries: quiet}
	scores, seen := trace.scores()
	res.Rounds = seen
	delta := c.Sim.WithDefaults().DP.Delta
	if u := rep.Summary.Privacy.UserLevel; u != nil {
		delta = u.Delta
	}
	if res.Bound, err = Evaluate(scores, included, delta, c.Confidence); err != nil {
		return nil, err
	}
	return res, nil
}
