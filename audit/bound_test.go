package audit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestEpsilonLowerAllCorrectClosedForm(t *testing.T) {
	// With δ = 0 and every one of r guesses correct, the p-value is p_ε^r, so the bound
	// solves p_ε = β^{1/r}: ε = log(p/(1−p)).
	for _, r := range []int{1, 10, 100, 1000} {
		for _, beta := range []float64{0.05, 0.01} {
			p := math.Pow(beta, 1/float64(r))
			want := math.Log(p / (1 - p))
			if want < 0 {
				want = 0
			}
			got := EpsilonLower(r, r, r, 0, beta)
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("r=%d β=%v: ε = %v, want %v", r, beta, got, want)
			}
		}
	}
}

func TestPValueMonotoneAndDeltaTerm(t *testing.T) {
	prev := 0.0
	for _, eps := range []float64{0, 0.5, 1, 2, 4, 8} {
		p0 := PValue(1000, 200, 150, eps, 0)
		pd := PValue(1000, 200, 150, eps, 1e-5)
		if p0 < prev || pd < p0 {
			t.Errorf("ε=%v: p %v (δ=0) after %v, %v with δ", eps, p0, prev, pd)
		}
		prev = p0
	}
	// Half the guesses right is what a coin gives: nothing is rejected.
	if e := EpsilonLower(1000, 500, 250, 1e-5, 0.05); e != 0 {
		t.Errorf("coin-flip guesses: ε lower %v, want 0", e)
	}
}

func TestEpsilonLowerKeepsItsConfidence(t *testing.T) {
	// Monte Carlo of an exactly ε-DP guesser (randomised response: each guess right with
	// probability e^ε/(1+e^ε)); the audit must claim more than ε in at most β of the runs.
	const m, trials, beta, eps = 200, 400, 0.05, 1.0
	rng := rand.New(rand.NewPCG(1, 2))
	pRight := 1 / (1 + math.Exp(-eps))
	over := 0
	for range trials {
		v := 0
		for range m {
			if rng.Float64() < pRight {
				v++
			}
		}
		if EpsilonLower(m, m, v, 0, beta) > eps {
			over++
		}
	}
	if limit := beta*trials + 3*math.Sqrt(beta*(1-beta)*trials); float64(over) > limit {
		t.Errorf("ε lower above the true ε in %d of %d runs, more than β allows (%.0f)", over, trials, limit)
	}
}

func TestEvaluate(t *testing.T) {
	const m = 1000
	rng := rand.New(rand.NewPCG(3, 4))
	included := make([]bool, m)
	separated, noise := make([]float64, m), make([]float64, m)
	for i := range included {
		included[i] = rng.IntN(2) == 1
		noise[i] = rng.NormFloat64()
		separated[i] = noise[i]
		if included[i] {
			separated[i] += 100
		}
	}
	cases := []struct {
		name   string
		scores []float64
		lo, hi float64
	}{
		// Perfect separation: 700 guesses all right (about 500 canaries are in, so 1000
		// balanced guesses are not) give ε = log(p/(1−p)) with p = (0.05/24)^{1/700}, 4.73,
		// a little less with the δ term.
		{"separated", separated, 4, 5},
		{"noise", noise, 0, 0.5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Evaluate(tc.scores, included, 1e-5, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			if b.EpsilonLower < tc.lo || b.EpsilonLower > tc.hi || b.Candidates != 24 || len(b.Curve) != 24 {
				t.Errorf("ε lower %v (%d of %d right, %s), want in [%v, %v]; %d candidates", b.EpsilonLower, b.Correct, b.Guesses, b.Strategy, tc.lo, tc.hi, b.Candidates)
			}
			if b.Canaries != m || b.Included == 0 || b.Included == m {
				t.Errorf("canaries %d, included %d", b.Canaries, b.Included)
			}
		})
	}
	for _, bad := range []struct {
		scores   []float64
		included []bool
		conf     float64
	}{
		{nil, nil, 0.95},
		{[]float64{1, 2}, []bool{true}, 0.95},
		{[]float64{1, 2}, []bool{true, false}, 1},
		{[]float64{math.NaN(), 2}, []bool{true, false}, 0.95},
	} {
		if _, err := Evaluate(bad.scores, bad.included, 0, bad.conf); err == nil {
			t.Errorf("Evaluate(%v, %v, %v): want an error", bad.scores, bad.included, bad.conf)
		}
	}
}

func TestGuessCounts(t *testing.T) {
	for _, c := range []struct {
		m    int
		want string
	}{
		{1000, "[10 20 30 50 70 100 150 200 300 500 700 1000]"},
		{10, "[1 2 3 5 7 10]"},
		{1, "[1]"},
	} {
		if got := fmt.Sprint(GuessCounts(c.m)); got != c.want {
			t.Errorf("GuessCounts(%d) = %s, want %s", c.m, got, c.want)
		}
	}
}

// TestOneRunLimitOfGaussianScores is what an ideal one-run audit of 1,000 canaries can show
// of a Gaussian mechanism: scores N(μ, 1) for included canaries, N(0, 1) for the others.
// μ = √40/13.59 is the white-box sum of `confide audit --dp --target-epsilon 2 --batch 60000
// --epochs 40` (40 full-batch steps of σ = 13.59: exactly a Gaussian mechanism, claimed
// ε = 2 at δ = 1e-5), μ = q√T/σ = 0.01707·√2360/1.950 that of the default subsampled run.
// The README quotes the mean bounds (-v): the gap to the claimed ε is the method's.
func TestOneRunLimitOfGaussianScores(t *testing.T) {
	for _, mu := range []float64{math.Sqrt(40) / 13.592167146271095, 1024.0 / 60000 * math.Sqrt(2360) / 1.9504401524318382} {
		const trials = 40
		var sum float64
		for k := range trials {
			rng := rand.New(rand.NewPCG(uint64(k), 9))
			in := DrawInclusion(1000, rng)
			s := make([]float64, len(in))
			for i := range s {
				s[i] = rng.NormFloat64()
				if in[i] {
					s[i] += mu
				}
			}
			b, err := Evaluate(s, in, 1e-5, 0.95)
			if err != nil {
				t.Fatal(err)
			}
			sum += b.EpsilonLower
		}
		mean := sum / trials
		if mean < 0.2 || mean > 0.7 {
			t.Errorf("μ = %.3f: mean bound %.3f over %d runs, want about 0.4", mu, mean, trials)
		}
		t.Logf("μ = %.3f: mean ε lower bound %.3f over %d simulated runs", mu, mean, trials)
	}
}
