package dpsgd

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/confide-fl/confide/model"
)

// seededNoise is a deterministic Gaussian source for tests only.
type seededNoise struct{ r *rand.Rand }

func (s seededNoise) AddGaussian(dst []float64, std float64) {
	for i := range dst {
		dst[i] += std * s.r.NormFloat64()
	}
}

// recordingOpt keeps the gradient it was given instead of updating.
type recordingOpt struct{ got []float64 }

func (r *recordingOpt) Step(_, g []float64) { r.got = append(r.got[:0], g...) }
func (r *recordingOpt) SetLR(float64)       {}
func (r *recordingOpt) LR() float64         { return 0 }

// exampleGrad leaves example i's own gradient (naive backprop of it alone) in m.Grads.
func exampleGrad(t *testing.T, m *model.Model, in *model.Input, tg model.Targets, i int) {
	t.Helper()
	d := len(in.X) / in.B
	m.ZeroGrads()
	one := &model.Input{X: in.X[i*d : (i+1)*d], B: 1}
	if _, _, err := m.Backprop(one, model.Targets{Class: tg.Class[i : i+1]}, 1, nil); err != nil {
		t.Fatal(err)
	}
}

func smallModel(t *testing.T) (*model.Model, *model.Input, model.Targets) {
	t.Helper()
	m, err := model.New(model.Spec{Type: model.TypeMLP, Input: 5, Hidden: []int{4}, Output: 3, Activation: "tanh"}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	B := 6
	in := &model.Input{X: make([]float64, B*5), B: B}
	for i := range in.X {
		in.X[i] = 3 * rng.NormFloat64()
	}
	tg := model.Targets{Class: make([]int32, B)}
	for i := range tg.Class {
		tg.Class[i] = int32(rng.IntN(3))
	}
	return m, in, tg
}

// TestClippedSumMatchesNaive checks the noiseless DP-SGD gradient against clipping each
// example's own gradient (one-example-at-a-time backprop) and summing.
func TestClippedSumMatchesNaive(t *testing.T) {
	for _, c := range []float64{0.05, 0.5, 100} {
		m, in, tg := smallModel(t)
		rec := &recordingOpt{}
		const eb = 4.0
		o, err := New(m, rec, seededNoise{rand.New(rand.NewPCG(1, 1))}, Config{NoiseMultiplier: 0, MaxGradNorm: c, ExpectedBatch: eb})
		if err != nil {
			t.Fatal(err)
		}
		st, err := o.Step(m, in, tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, m.NumParams())
		clipped := 0
		for i := 0; i < in.B; i++ {
			exampleGrad(t, m, in, tg, i)
			n := 0.0
			for _, g := range m.Grads {
				n += g * g
			}
			n = math.Sqrt(n)
			f := math.Min(1, c/n)
			if f < 1 {
				clipped++
			}
			// The clipped contribution of every example is bounded by C.
			if f*n > c*(1+1e-12) {
				t.Fatalf("C=%v: example %d contributes norm %v", c, i, f*n)
			}
			for k, g := range m.Grads {
				want[k] += f * g / eb
			}
		}
		if st.Clipped != clipped || st.Batch != in.B {
			t.Errorf("C=%v: stats %+v, want %d clipped of %d", c, st, clipped, in.B)
		}
		var d, nw float64
		for k := range want {
			d += (rec.got[k] - want[k]) * (rec.got[k] - want[k])
			nw += want[k] * want[k]
		}
		if math.Sqrt(d/nw) > 1e-9 {
			t.Errorf("C=%v: relative error %.3g against naive clipping", c, math.Sqrt(d/nw))
		}
	}
}

// TestNoiseScale: on an empty batch the gradient is pure noise / expected batch, so its
// sample standard deviation must be σ·C/(q·N) and its mean 0.
func TestNoiseScale(t *testing.T) {
	big, err := model.New(model.Spec{Type: model.TypeMLP, Input: 200, Hidden: []int{200}, Output: 10}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingOpt{}
	cfg := Config{NoiseMultiplier: 1.3, MaxGradNorm: 0.7, ExpectedBatch: 8}
	o, err := New(big, rec, seededNoise{rand.New(rand.NewPCG(9, 9))}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Step(big, &model.Input{}, model.Targets{}, nil); err != nil {
		t.Fatal(err)
	}
	n := float64(len(rec.got))
	var sum, sq float64
	for _, g := range rec.got {
		sum += g
		sq += g * g
	}
	mean := sum / n
	std := math.Sqrt(sq/n - mean*mean)
	want := cfg.NoiseMultiplier * cfg.MaxGradNorm / cfg.ExpectedBatch
	// n ≈ 42k samples: the mean's sd is want/√n ≈ 0.0005·want; the sd's relative sd is 1/√(2n) ≈ 0.35%.
	if math.Abs(mean) > 5*want/math.Sqrt(n) {
		t.Errorf("noise mean %v, want 0 ± %v", mean, 5*want/math.Sqrt(n))
	}
	if math.Abs(std/want-1) > 5/math.Sqrt(2*n) {
		t.Errorf("noise sd %v, want %v", std, want)
	}
}

func TestConfigValidation(t *testing.T) {
	m, _, _ := smallModel(t)
	for _, c := range []Config{
		{NoiseMultiplier: -1, MaxGradNorm: 1, ExpectedBatch: 1},
		{NoiseMultiplier: 1, MaxGradNorm: 0, ExpectedBatch: 1},
		{NoiseMultiplier: 1, MaxGradNorm: 1, ExpectedBatch: 0},
		{NoiseMultiplier: math.NaN(), MaxGradNorm: 1, ExpectedBatch: 1},
	} {
		if _, err := New(m, &recordingOpt{}, seededNoise{}, c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestPoissonSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, q, trials = 1000, 0.03, 4000
	counts := make([]int, n)
	total, empty := 0, 0
	var buf []int
	for trial := 0; trial < trials; trial++ {
		buf = PoissonSample(buf[:0], n, q, rng)
		prev := -1
		for _, i := range buf {
			if i <= prev || i >= n {
				t.Fatalf("indices not strictly increasing in range: %v", buf)
			}
			prev = i
			counts[i]++
		}
		total += len(buf)
	}
	// Mean batch size q·n = 30 with sd √(n q (1−q)) / √trials ≈ 0.085.
	if mean := float64(total) / trials; math.Abs(mean-q*n) > 0.5 {
		t.Errorf("mean batch %v, want %v", mean, q*n)
	}
	// Every index is drawn with probability q: chi-square over indices.
	chi := 0.0
	exp := float64(trials) * q
	for _, c := range counts {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	// df = 999: mean 999, sd ≈ 44.7; allow 5 sd.
	if chi > 999+5*44.7 {
		t.Errorf("per-index frequencies: chi-square %v too large", chi)
	}
	// Tiny q makes empty batches common (Opacus #161): they must come back empty, not fail.
	for trial := 0; trial < 100; trial++ {
		if len(PoissonSample(nil, 10, 0.001, rng)) == 0 {
			empty++
		}
	}
	if empty < 90 {
		t.Errorf("only %d of 100 batches empty at q·n = 0.01", empty)
	}
	if got := PoissonSample(nil, 5, 1, rng); len(got) != 5 {
		t.Errorf("q = 1 gave %v", got)
	}
	if got := PoissonSample(nil, 5, 0, rng); len(got) != 0 {
		t.Errorf("q = 0 gave %v", got)
	}
}

// TestPerLayerClippingMatchesNaive checks per-layer clipping against its definition: each
// example's own gradient (one-example-at-a-time backprop) split into the model's layer
// slices, each slice clipped to its threshold C_l, summed — for the equal split C/√L and for
// explicit thresholds.
func TestPerLayerClippingMatchesNaive(t *testing.T) {
	for _, c := range []struct {
		name   string
		clip   float64
		layers []float64
	}{
		{"equal_C0.05", 0.05, nil},
		{"equal_C0.5", 0.5, nil},
		{"equal_C100", 100, nil},
		{"explicit", 0.5, []float64{0.3, 0.4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, in, tg := smallModel(t)
			sizes := m.ParamLayerSizes()
			if len(sizes) != 2 || sizes[0]+sizes[1] != m.NumParams() {
				t.Fatalf("layer sizes %v for %d parameters", sizes, m.NumParams())
			}
			thresholds := c.layers
			if thresholds == nil {
				thresholds = []float64{c.clip / math.Sqrt2, c.clip / math.Sqrt2}
			}
			rec := &recordingOpt{}
			const eb = 4.0
			o, err := New(m, rec, seededNoise{rand.New(rand.NewPCG(1, 1))}, Config{
				MaxGradNorm: c.clip, ExpectedBatch: eb, Clipping: ClipPerLayer, LayerMaxGradNorms: c.layers,
			})
			if err != nil {
				t.Fatal(err)
			}
			st, err := o.Step(m, in, tg, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float64, m.NumParams())
			clipped := 0
			for i := 0; i < in.B; i++ {
				exampleGrad(t, m, in, tg, i)
				off, any, total := 0, false, 0.0
				for l, k := range sizes {
					g := m.Grads[off : off+k]
					n := 0.0
					for _, v := range g {
						n += v * v
					}
					n = math.Sqrt(n)
					f := math.Min(1, thresholds[l]/n)
					any = any || f < 1
					total += f * f * n * n
					for j, v := range g {
						want[off+j] += f * v / eb
					}
					off += k
				}
				// The clipped example's whole gradient stays within C: the noise's calibration.
				if math.Sqrt(total) > c.clip*(1+1e-12) {
					t.Fatalf("example %d contributes norm %v > C = %v", i, math.Sqrt(total), c.clip)
				}
				if any {
					clipped++
				}
			}
			if st.Clipped != clipped {
				t.Errorf("%d examples clipped, want %d", st.Clipped, clipped)
			}
			if e := relDiff(rec.got, want); e > 1e-9 {
				t.Errorf("relative error %.3g against naive per-layer clipping", e)
			}
		})
	}
}

func relDiff(got, want []float64) float64 {
	var d, nw float64
	for k := range want {
		d += (got[k] - want[k]) * (got[k] - want[k])
		nw += want[k] * want[k]
	}
	return math.Sqrt(d / nw)
}

func TestPerLayerConfigValidation(t *testing.T) {
	m, _, _ := smallModel(t)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"unknown_mode", Config{MaxGradNorm: 1, ExpectedBatch: 1, Clipping: "layerwise"}},
		{"thresholds_without_per_layer", Config{MaxGradNorm: 1, ExpectedBatch: 1, LayerMaxGradNorms: []float64{0.6, 0.8}}},
		{"inconsistent_C", Config{MaxGradNorm: 2, ExpectedBatch: 1, Clipping: ClipPerLayer, LayerMaxGradNorms: []float64{0.6, 0.8}}},
		{"non_positive", Config{MaxGradNorm: 1, ExpectedBatch: 1, Clipping: ClipPerLayer, LayerMaxGradNorms: []float64{0, 1}}},
		{"wrong_count", Config{MaxGradNorm: 1, ExpectedBatch: 1, Clipping: ClipPerLayer, LayerMaxGradNorms: []float64{1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(m, &recordingOpt{}, seededNoise{}, c.cfg); err == nil {
				t.Errorf("%+v accepted", c.cfg)
			}
		})
	}
	ok := Config{MaxGradNorm: 1, ExpectedBatch: 1, Clipping: ClipPerLayer, LayerMaxGradNorms: []float64{0.6, 0.8}}
	if _, err := New(m, &recordingOpt{}, seededNoise{}, ok); err != nil {
		t.Errorf("√(0.6² + 0.8²) = 1 rejected: %v", err)
	}
}

// A float32 model's DP-SGD steps (which leave the rounded new weights for the next pass,
// model.Model.Step) train exactly as steps whose next pass rounds Params itself.
func TestStepFloat32MatchesRoundingAgain(t *testing.T) {
	a, in, tg := smallModel(t)
	if err := a.SetPrecision(model.Float32); err != nil {
		t.Fatal(err)
	}
	b := a.Clone()
	cfg := Config{NoiseMultiplier: 0.5, MaxGradNorm: 0.3, ExpectedBatch: 6}
	for _, m := range []*model.Model{a, b} {
		o, err := New(m, &model.SGD{Rate: 0.5}, seededNoise{rand.New(rand.NewPCG(5, 6))}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := o.Step(m, in, tg, nil); err != nil {
				t.Fatal(err)
			}
			if m == b {
				// SetParams discards the rounded copy: b's next pass rounds Params again.
				if err := b.SetParams(append([]float64(nil), b.Params...)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	ya, err := a.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]float64(nil), ya.Data...)
	yb, err := b.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range yb.Data {
		if math.Float64bits(got[i]) != math.Float64bits(w) {
			t.Fatalf("output %d after three DP-SGD steps: %v, rounding Params again gives %v", i, got[i], w)
		}
	}
}

// seededNormals is seededNoise that also lends its draws (NormalsUser), in the same order.
type seededNormals struct {
	seededNoise
	used *int
}

func (s seededNormals) UseNormals(n int, use func(z []float64) bool) bool {
	z := make([]float64, n)
	for i := range z {
		z[i] = s.r.NormFloat64()
	}
	*s.used++
	if use(z) && slices.ContainsFunc(z, func(v float64) bool { return v != 0 }) {
		panic("use reported the draws used but did not zero them")
	}
	return true
}

// With a noise source that lends its draws, DP-SGD adds them in the update's pass and ends
// at the Params of adding them to the gradient first, in both precisions and with
// momentum (which takes the float64 gradient).
func TestStepWithLentNormalsMatches(t *testing.T) {
	for _, prec := range []model.Precision{model.Float32, model.Float64} {
		for _, mu := range []float64{0, 0.9} {
			a, in, tg := smallModel(t)
			if err := a.SetPrecision(prec); err != nil {
				t.Fatal(err)
			}
			b := a.Clone()
			cfg := Config{NoiseMultiplier: 0.8, MaxGradNorm: 0.3, ExpectedBatch: 6}
			used := 0
			oa, err := New(a, &model.SGD{Rate: 0.5, Momentum: mu}, seededNormals{seededNoise{rand.New(rand.NewPCG(5, 6))}, &used}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ob, err := New(b, &model.SGD{Rate: 0.5, Momentum: mu}, seededNoise{rand.New(rand.NewPCG(5, 6))}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for step := range 3 {
				sa, err := oa.Step(a, in, tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				sb, err := ob.Step(b, in, tg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if sa != sb {
					t.Fatalf("%v, momentum %g, step %d: stats %+v, want %+v", prec, mu, step, sa, sb)
				}
				for i := range a.Params {
					if math.Float64bits(a.Params[i]) != math.Float64bits(b.Params[i]) {
						t.Fatalf("%v, momentum %g, step %d: param %d = %v, want %v", prec, mu, step, i, a.Params[i], b.Params[i])
					}
				}
			}
			if used != 3 {
				t.Fatalf("%v, momentum %g: the draws were lent %d times in 3 steps", prec, mu, used)
			}
		}
	}
}
