package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/internal/linalg"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// Overhead compares a simulated round with training the same examples centrally in this
// process: the same model, epochs, batch size, optimizer and DP-SGD setting, one core, no
// federation. Times are per example-epoch, so rounds whose clients hold different numbers
// of examples compare fairly.
type Overhead struct {
	// RoundMicrosPerExample is the median over rounds of the round's wall time, less its
	// central evaluation, per example-epoch trained by its clients.
	RoundMicrosPerExample float64 `json:"round_us_per_example"`
	// CentralMicrosPerExample is the median over Reps central passes over the examples of
	// ClientsPerRound clients.
	CentralMicrosPerExample float64 `json:"central_us_per_example"`
	// Ratio is RoundMicrosPerExample / CentralMicrosPerExample.
	Ratio float64 `json:"ratio"`
	// Workers is the run's number of workers (clients trained at once); the central pass
	// uses one core.
	Workers  int `json:"workers"`
	Reps     int `json:"reps"`
	Examples int `json:"central_examples"`
}

// MeasureOverhead trains the examples of ClientsPerRound clients of cfg's population
// centrally, reps times, and compares with the rounds of rep (a report of Run with cfg).
func MeasureOverhead(ctx context.Context, cfg Config, opts Options, rep *Report, reps int) (Overhead, error) {
	if reps < 1 {
		return Overhead{}, fmt.Errorf("overhead: %d repetitions: must be ≥ 1", reps)
	}
	var perRound []float64
	for _, m := range rep.Rounds {
		if m.Failed || m.Examples == 0 {
			continue
		}
		perRound = append(perRound, (m.WallSeconds-m.EvalSeconds)/float64(m.Examples)*1e6)
	}
	if len(perRound) == 0 {
		return Overhead{}, fmt.Errorf("overhead: the report has no round with trained examples (the memory transport records them)")
	}
	r, err := newRun(ctx, cfg, opts)
	if err != nil {
		return Overhead{}, err
	}
	c := r.cfg
	rng := rand.New(rand.NewPCG(c.Seed, 0x63656e74))
	var idx []int
	for _, k := range rng.Perm(r.pop.n)[:c.ClientsPerRound] {
		idx = append(idx, r.pop.indices(k, nil)...)
	}
	// The clients' rows, of the features when the model has a feature stage (computed
	// once by newRun, as in the run).
	ds := r.pop.train.Subset(idx)
	prev := linalg.Workers
	linalg.Workers = 1
	defer func() { linalg.Workers = prev }()
	m, err := model.New(r.spec, rand.New(rand.NewPCG(c.Seed, 1)))
	if err != nil {
		return Overhead{}, err
	}
	tc := train.Config{
		Epochs: c.Training.Epochs, BatchSize: c.Training.BatchSize, Seed: c.Seed,
		Optimizer: model.OptimizerConfig{Name: c.Training.Optimizer, LR: c.Training.LR, Momentum: c.Training.Momentum},
	}
	if c.dpOn() {
		tc.DP = &train.DPConfig{NoiseMultiplier: c.DP.NoiseMultiplier, MaxGradNorm: c.DP.MaxGradNorm}
	}
	var central []float64
	for range reps {
		if err := ctx.Err(); err != nil {
			return Overhead{}, err
		}
		t, err := train.New(m, tc)
		if err != nil {
			return Overhead{}, err
		}
		if r.spec.Features != nil {
			if err := t.UseFeatures(ds, ds); err != nil {
				return Overhead{}, err
			}
		}
		if c.dpOn() {
			noise, err := dp.NewSecureNoise()
			if err != nil {
				return Overhead{}, err
			}
			sampler, err := dp.SecureRand()
			if err != nil {
				return Overhead{}, err
			}
			if err := t.EnableDP(noise, sampler); err != nil {
				return Overhead{}, err
			}
		}
		start := time.Now()
		for range c.Training.Epochs {
			if _, err := t.Epoch(ctx, ds, nil); err != nil {
				return Overhead{}, err
			}
		}
		central = append(central, time.Since(start).Seconds()/float64(ds.N*c.Training.Epochs)*1e6)
	}
	o := Overhead{RoundMicrosPerExample: median(perRound), CentralMicrosPerExample: median(central), Workers: c.Workers, Reps: reps, Examples: ds.N}
	o.Ratio = o.RoundMicrosPerExample / o.CentralMicrosPerExample
	return o, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
