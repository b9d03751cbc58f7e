package audit

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp/dpsgd"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// Mode is what the auditor sees.
type Mode string

const (
	// WhiteBox auditors see every update the mechanism releases (each DP-SGD step's noisy
	// gradient, each round's noised aggregate) and plant gradient canaries: the setting in
	// which the accountant's bound is tight (Nasr et al. 2021, 2023).
	WhiteBox Mode = "white-box"
	// BlackBox auditors plant input canaries (mislabelled training examples) and see only
	// the final model.
	BlackBox Mode = "black-box"
)

// ParseMode returns the mode a flag names.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case WhiteBox, BlackBox:
		return m, nil
	}
	return "", fmt.Errorf("mode %q unknown (use %s or %s)", s, WhiteBox, BlackBox)
}

// DrawInclusion returns which of m canaries are in the training data: each independently
// with probability ½, the randomisation Steinke et al.'s analysis rests on (S_i = ±1).
func DrawInclusion(m int, rng *rand.Rand) []bool {
	in := make([]bool, m)
	for i := range in {
		in[i] = rng.IntN(2) == 1
	}
	return in
}

// QuietCoordinates returns k coordinates of m's parameter vector on which the data's
// gradient is smallest: the sum over ds, in batches, of the absolute batch gradient, ties
// (most often exact zeros) broken at random by rng. A Dirac gradient canary on such a
// coordinate is seen against the mechanism's noise alone, not against the data's own
// gradient there. On an MLP reading images these are first-layer weights of pixels that
// are zero in every training image: their gradient stays exactly zero for the whole run,
// whatever the other weights become. The gradient is taken at m's parameters and at a
// second draw of them from rng, and a coordinate must be quiet at both: a ReLU unit dead at
// m's initialisation is quiet there too, but a canary on one of its weights can revive it,
// and then its other weights are quiet no more. ds is read through m's feature stage when
// transformed is false and m has one. quiet counts the returned coordinates with no data
// gradient at all. It returns an error when m has fewer than k parameters.
func QuietCoordinates(ctx context.Context, m *model.Model, ds *data.Dataset, transformed bool, k int, rng *rand.Rand) (coords []int, quiet int, err error) {
	d := m.NumParams()
	if k > d {
		return nil, 0, fmt.Errorf("audit: %d canaries need as many coordinates; the model has %d parameters", k, d)
	}
	alt, err := model.New(m.Spec, rng)
	if err != nil {
		return nil, 0, err
	}
	activity := make([]float64, d)
	for _, probe := range []*model.Model{m, alt} {
		if err := addGradientActivity(ctx, probe, ds, transformed, activity); err != nil {
			return nil, 0, err
		}
	}
	order := rng.Perm(d)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(activity[a], activity[b]) })
	coords = order[:k]
	for _, j := range coords {
		if activity[j] == 0 {
			quiet++
		}
	}
	return coords, quiet, nil
}

// addGradientActivity adds to activity the absolute gradient of m's loss on each batch of ds.
func addGradientActivity(ctx context.Context, m *model.Model, ds *data.Dataset, transformed bool, activity []float64) error {
	var b data.Batch
	var in model.Input
	const batch = 256
	idx := make([]int, 0, batch)
	for lo := 0; lo < ds.N; lo += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx = idx[:0]
		for i := lo; i < min(lo+batch, ds.N); i++ {
			idx = append(idx, i)
		}
		ds.Gather(&b, idx)
		tg := train.Input(ds, &b, &in)
		in.Transformed = transformed
		m.ZeroGrads()
		if _, _, err := m.Backprop(&in, tg, 1, nil); err != nil {
			return fmt.Errorf("audit: probing the data's gradient: %w", err)
		}
		for j, g := range m.Grads {
			activity[j] += math.Abs(g)
		}
	}
	m.ZeroGrads()
	return nil
}

// GradientCanaries plant Dirac gradient canaries in a training run and record what a
// white-box auditor sees of them. It wraps the optimizer that receives the released
// update: under DP-SGD the noisy clipped sum divided by the expected batch (dpsgd.Optimizer
// hands its Base exactly that), without DP the batch's mean gradient. Before passing the
// update on, it adds Magnitude at the coordinate of every included canary that this step
// holds, then adds the update's value at every canary's coordinate to that canary's score.
// A step holds each included canary as it would a training example: with probability
// SampleRate (Poisson sampling, DP-SGD), or, when StepsPerEpoch is set (shuffled batches,
// training without DP), in one step of every epoch, drawn at random.
//
// Adding the canary to the released sum rather than to the clipped sum before the noise is
// the same mechanism: the noise is independent and added, so the two orders give the same
// distribution. A canary of norm Magnitude·(expected batch) = C is an example whose clipped
// gradient is C·e_j, the worst case the accountant covers.
type GradientCanaries struct {
	Base model.Optimizer
	// Coordinates[i] is canary i's coordinate; Included[i] whether it is in the data.
	Coordinates []int
	Included    []bool
	// Magnitude is what an included canary adds to its coordinate of the update when
	// sampled: C / (expected batch) under DP-SGD.
	Magnitude     float64
	SampleRate    float64
	StepsPerEpoch int
	// Sampler draws which included canaries a step holds (seeded for a reproducible audit;
	// it is independent of the mechanism's own noise and sampling).
	Sampler *rand.Rand

	scores  []float64
	members []int // indices of the included canaries
	batch   []int
	slot    []int // with StepsPerEpoch: the step of the epoch each member joins
	steps   int
}

var _ model.Optimizer = (*GradientCanaries)(nil)

// Step plants the sampled canaries in grads, scores every canary, then runs Base.
func (g *GradientCanaries) Step(params, grads []float64) {
	if g.scores == nil {
		g.scores = make([]float64, len(g.Coordinates))
		for i, in := range g.Included {
			if in {
				g.members = append(g.members, i)
			}
		}
	}
	if spe := g.StepsPerEpoch; spe > 0 {
		if g.steps%spe == 0 {
			g.slot = g.slot[:0]
			for range g.members {
				g.slot = append(g.slot, g.Sampler.IntN(spe))
			}
		}
		g.batch = g.batch[:0]
		for k, s := range g.slot {
			if s == g.steps%spe {
				g.batch = append(g.batch, k)
			}
		}
	} else {
		g.batch = dpsgd.PoissonSample(g.batch[:0], len(g.members), g.SampleRate, g.Sampler)
	}
	for _, k := range g.batch {
		grads[g.Coordinates[g.members[k]]] += g.Magnitude
	}
	for i, j := range g.Coordinates {
		g.scores[i] += grads[j]
	}
	g.steps++
	g.Base.Step(params, grads)
}

// SetLR and LR pass through to Base.
func (g *GradientCanaries) SetLR(lr float64) { g.Base.SetLR(lr) }
func (g *GradientCanaries) LR() float64      { return g.Base.LR() }

// Scores returns each canary's score: the sum over the steps of the released update at its
// coordinate, in units of Magnitude (so an included canary's score is about the number of
// steps that sampled it, plus noise).
func (g *GradientCanaries) Scores() []float64 {
	out := make([]float64, len(g.Coordinates))
	for i, s := range g.scores {
		out[i] = s / g.Magnitude
	}
	return out
}

// Steps is the number of updates the canaries saw.
func (g *GradientCanaries) Steps() int { return g.steps }

// InputCanaries are a black-box audit's canaries: m training examples taken out of the
// training set and given another label, drawn at random; the included ones go back in with
// that label.
type InputCanaries struct {
	// Rows are the canaries' rows of the original training set, Labels their new labels.
	Rows     []int
	Labels   []int32
	Included []bool
}

// NewInputCanaries draws m canaries from ds (a classification dataset of at least two
// classes and more than m examples), each with a wrong label drawn uniformly from the others.
func NewInputCanaries(ds *data.Dataset, m int, rng *rand.Rand) (*InputCanaries, error) {
	if ds.Task != data.TaskClassify || ds.NumClasses < 2 || ds.Y == nil {
		return nil, fmt.Errorf("audit: black-box canaries are mislabelled examples; dataset %s is not a classification task (use the white-box mode)", ds.Name)
	}
	if m >= ds.N {
		return nil, fmt.Errorf("audit: %d canaries from a training set of %d examples: use fewer canaries", m, ds.N)
	}
	c := &InputCanaries{Rows: rng.Perm(ds.N)[:m], Labels: make([]int32, m)}
	k := int32(ds.NumClasses)
	for i, r := range c.Rows {
		c.Labels[i] = (ds.Y[r] + 1 + int32(rng.IntN(int(k-1)))) % k
	}
	c.Included = DrawInclusion(m, rng)
	return c, nil
}

// TrainingSet returns ds without the canaries' rows, followed by the included canaries
// with their new labels.
func (c *InputCanaries) TrainingSet(ds *data.Dataset) *data.Dataset {
	isCanary := make([]bool, ds.N)
	for _, r := range c.Rows {
		isCanary[r] = true
	}
	idx := make([]int, 0, ds.N)
	for i := range ds.N {
		if !isCanary[i] {
			idx = append(idx, i)
		}
	}
	base := len(idx)
	var labels []int32
	for i, r := range c.Rows {
		if c.Included[i] {
			idx = append(idx, r)
			labels = append(labels, c.Labels[i])
		}
	}
	out := ds.Subset(idx)
	copy(out.Y[base:], labels)
	out.Group = nil
	return out
}

// Set returns the canaries as a dataset, with their new labels.
func (c *InputCanaries) Set(ds *data.Dataset) *data.Dataset {
	out := ds.Subset(c.Rows)
	copy(out.Y, c.Labels)
	out.Group = nil
	return out
}

// Scores returns each canary's score under the trained model m: the log-odds the model
// gives its canary label, z_y − log Σ_{c≠y} e^{z_c} (the logit-scaled confidence of
// Carlini et al. 2022), which is high when the model has memorised the wrong label.
func (c *InputCanaries) Scores(ctx context.Context, m *model.Model, ds *data.Dataset) ([]float64, error) {
	set := c.Set(ds)
	scores := make([]float64, 0, set.N)
	err := train.EachOutput(ctx, m, set, 256, func(logits []float64, y int32) error {
		scores = append(scores, logOdds(logits, int(y)))
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	if len(scores) != len(c.Rows) {
		return nil, fmt.Errorf("audit: %d scores for %d canaries", len(scores), len(c.Rows))
	}
	return scores, nil
}

// logOdds is z_y − log Σ_{c≠y} e^{z_c}, computed stably.
func logOdds(z []float64, y int) float64 {
	top := math.Inf(-1)
	for c, v := range z {
		if c != y {
			top = max(top, v)
		}
	}
	var s float64
	for c, v := range z {
		if c != y {
			s += math.Exp(v - top)
		}
	}
	return z[y] - top - math.Log(s)
}
