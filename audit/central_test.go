package audit

import (
	"math/rand/v2"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// padded is a classification set of n examples whose first informative features carry
// the class (three Gaussian blobs) and whose other zeros features are zero in every
// example, like the blank border of MNIST's images.
func padded(n, informative, zeros int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	dim := informative + zeros
	ds := &data.Dataset{Name: "padded", N: n, Dim: dim, X: make([]float64, n*dim), Y: make([]int32, n), NumClasses: 3}
	for i := range n {
		y := int32(i % 3)
		ds.Y[i] = y
		for j := range informative {
			mean := 0.0
			if j%3 == int(y) {
				mean = 2
			}
			ds.X[i*dim+j] = mean + rng.NormFloat64()
		}
	}
	return ds
}

func newModel(t *testing.T, ds *data.Dataset, hidden int) *model.Model {
	t.Helper()
	m, err := model.New(model.Spec{Type: model.TypeMLP, Input: ds.Dim, Hidden: []int{hidden}, Output: ds.NumClasses, Activation: model.ActTanh}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWhiteBoxAudit runs DP-SGD white-box audits of 300 gradient canaries on a small MLP:
// the mechanism as built (σ for ε = 2) stays below its claim, and a broken one that adds
// no noise while still claiming ε = 2 is caught.
func TestWhiteBoxAudit(t *testing.T) {
	const claimed, delta = 2.0, 1e-5
	ds := padded(2000, 8, 24, 1)
	cfg := train.Config{Epochs: 8, BatchSize: 100, Seed: 1, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.5, Momentum: 0.9}}
	steps := cfg.Epochs * ds.N / cfg.BatchSize
	q := float64(cfg.BatchSize) / float64(ds.N)
	sigma, _, err := accountant.NoiseMultiplier(accountant.NoiseSearch{TargetEpsilon: claimed, Delta: delta, SampleRate: q, Steps: steps}, accountant.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		sigma float64
		check func(eps float64) bool
		want  string
	}{
		{"honest", sigma, func(eps float64) bool { return eps >= 0 && eps <= claimed }, "in [0, 2]"},
		{"noise-off", 0, func(eps float64) bool { return eps > claimed }, "> 2 (the claim is false)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.DP = &train.DPConfig{NoiseMultiplier: tc.sigma, MaxGradNorm: 1}
			m := newModel(t, ds, 32) // 24 blank inputs × 32 units: 768 coordinates without data gradient
			res, err := RunCentral(t.Context(), m, ds, Central{
				Mode: WhiteBox, Canaries: 300, Confidence: 0.95, Delta: delta, Train: c, CanaryNorm: 1, Seed: 3,
			}, Sources{Noise: dp.NewDeterministicNoise(5), Sampler: rand.New(rand.NewPCG(6, 7))})
			if err != nil {
				t.Fatal(err)
			}
			b := res.Bound
			if !tc.check(b.EpsilonLower) {
				t.Errorf("ε lower %.3f (%d of %d guesses right, %s), want %s", b.EpsilonLower, b.Correct, b.Guesses, b.Strategy, tc.want)
			}
			if res.QuietCanaries != 300 || res.Updates != steps {
				t.Errorf("%d quiet canaries, %d updates seen; want 300 and %d", res.QuietCanaries, res.Updates, steps)
			}
			// The accounting history is the run's whatever the canaries did.
			if got := res.Steps; len(got) != 1 || got[0].Steps != steps || got[0].SampleRate != q {
				t.Errorf("DP steps %+v, want %d at q = %v", got, steps, q)
			}
			t.Logf("σ = %.3f: ε lower %.3f (%d of %d right, %s)", tc.sigma, b.EpsilonLower, b.Correct, b.Guesses, b.Strategy)
		})
	}
}

// TestWhiteBoxWithoutDP: without noise or clipping every sampled canary shows.
func TestWhiteBoxWithoutDP(t *testing.T) {
	ds := padded(1000, 8, 24, 2)
	res, err := RunCentral(t.Context(), newModel(t, ds, 32), ds, Central{
		Mode: WhiteBox, Canaries: 500, Confidence: 0.95, Delta: 1e-5, CanaryNorm: 1, Seed: 1,
		Train: train.Config{Epochs: 3, BatchSize: 50, Seed: 1, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1}},
	}, Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Bound.EpsilonLower < 3 || res.Steps != nil {
		t.Errorf("ε lower %.3f, DP steps %v: want ≥ 3 and none", res.Bound.EpsilonLower, res.Steps)
	}
}

// TestBlackBoxWithoutDP: an MLP that memorises random labels memorises the mislabelled
// canaries it trained on, and the audit sees it from the final model alone.
func TestBlackBoxWithoutDP(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, dim = 600, 30
	ds := &data.Dataset{Name: "noise", N: n, Dim: dim, X: make([]float64, n*dim), Y: make([]int32, n), NumClasses: 4}
	for i := range ds.X {
		ds.X[i] = rng.NormFloat64()
	}
	for i := range ds.Y {
		ds.Y[i] = int32(rng.IntN(4))
	}
	res, err := RunCentral(t.Context(), newModel(t, ds, 128), ds, Central{
		Mode: BlackBox, Canaries: 200, Confidence: 0.95, Delta: 1e-5, Seed: 2,
		Train: train.Config{Epochs: 60, BatchSize: 20, Seed: 1, Optimizer: model.OptimizerConfig{Name: "adam", LR: 3e-3}},
	}, Sources{})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Bound
	if b.EpsilonLower < 1 || res.TrainExamples != n-200+b.Included {
		t.Errorf("ε lower %.3f (%d of %d right), %d examples trained on: want ≥ 1 and %d", b.EpsilonLower, b.Correct, b.Guesses, res.TrainExamples, n-200+b.Included)
	}
	t.Logf("ε lower %.3f (%d of %d right, %s)", b.EpsilonLower, b.Correct, b.Guesses, b.Strategy)
}

func TestInputCanaries(t *testing.T) {
	ds := padded(30, 2, 1, 1)
	c, err := NewInputCanaries(ds, 10, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	in := 0
	for i, r := range c.Rows {
		if c.Labels[i] == ds.Y[r] || c.Labels[i] < 0 || c.Labels[i] >= 3 {
			t.Errorf("canary %d (row %d, label %d) relabelled %d: want another class", i, r, ds.Y[r], c.Labels[i])
		}
		if c.Included[i] {
			in++
		}
	}
	tr := c.TrainingSet(ds)
	if tr.N != 20+in {
		t.Fatalf("training set of %d, want %d", tr.N, 20+in)
	}
	// The included canaries close the set, with their new labels and their features.
	k := 20
	for i, r := range c.Rows {
		if !c.Included[i] {
			continue
		}
		if tr.Y[k] != c.Labels[i] || tr.X[k*3] != ds.X[r*3] {
			t.Errorf("row %d: label %d, x %v; want canary %d's %d, %v", k, tr.Y[k], tr.X[k*3], i, c.Labels[i], ds.X[r*3])
		}
		k++
	}
	if _, err := NewInputCanaries(ds, 30, rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Error("30 canaries of 30 examples accepted")
	}
}

func TestCentralRefusesPerLayerWhiteBox(t *testing.T) {
	ds := padded(100, 2, 2, 1)
	_, err := RunCentral(t.Context(), newModel(t, ds, 4), ds, Central{
		Mode: WhiteBox, Canaries: 4, Confidence: 0.95, CanaryNorm: 1,
		Train: train.Config{Epochs: 1, BatchSize: 10, Optimizer: model.OptimizerConfig{Name: "sgd", LR: 0.1}, DP: &train.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, Clipping: "per-layer"}},
	}, Sources{})
	if err == nil {
		t.Fatal("per-layer clipping accepted for a white-box audit")
	}
}

func TestLogOdds(t *testing.T) {
	// Two classes: log-odds is the logit difference.
	if got := logOdds([]float64{3, 1}, 0); got != 2 {
		t.Errorf("logOdds = %v, want 2", got)
	}
	// Three equal logits: p = 1/3, log(p/(1−p)) = log ½.
	if got, want := logOdds([]float64{5, 5, 5}, 1), -0.6931471805599453; got-want > 1e-12 || want-got > 1e-12 {
		t.Errorf("logOdds = %v, want %v", got, want)
	}
}

// nopOptimizer takes steps without moving anything.
type nopOptimizer struct{}

func (nopOptimizer) Step(_, _ []float64) {}
func (nopOptimizer) SetLR(float64)       {}
func (nopOptimizer) LR() float64         { return 0 }

// TestGradientCanariesSampling: on zero updates a canary's score counts the steps that held
// it: once an epoch with shuffled batches, about q·T under Poisson sampling; never when it
// is excluded.
func TestGradientCanariesSampling(t *testing.T) {
	const m, epochs, spe = 40, 3, 10
	included := DrawInclusion(m, rand.New(rand.NewPCG(1, 1)))
	coords := make([]int, m)
	for i := range coords {
		coords[i] = 2 * i
	}
	for _, tc := range []struct {
		name string
		g    GradientCanaries
		want func(s float64) bool
	}{
		{"once-an-epoch", GradientCanaries{StepsPerEpoch: spe}, func(s float64) bool { return s == epochs }},
		{"poisson", GradientCanaries{SampleRate: 0.5}, func(s float64) bool { return s >= 3 && s <= 27 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			g.Base, g.Coordinates, g.Included, g.Magnitude, g.Sampler = nopOptimizer{}, coords, included, 0.25, rand.New(rand.NewPCG(2, 2))
			for range epochs * spe {
				g.Step(make([]float64, 2*m), make([]float64, 2*m))
			}
			for i, s := range g.Scores() {
				if included[i] && !tc.want(s) || !included[i] && s != 0 {
					t.Errorf("canary %d (included %v): score %v", i, included[i], s)
				}
			}
		})
	}
}
