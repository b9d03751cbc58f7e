package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// checkRNG rejects a nil generator with an error naming the operation, rather than a
// nil-pointer panic deep inside it.
func checkRNG(op string, rng *rand.Rand) error {
	if rng == nil {
		return fmt.Errorf("data: %s: nil *rand.Rand; pass rand.New(rand.NewPCG(seed, 0))", op)
	}
	return nil
}

// logGamma returns the logarithm of a Gamma(a, 1) variate. Working in logs keeps tiny
// shapes usable: for a = 0.01 the variate itself underflows to 0 most of the time, which
// would make a Dirichlet draw 0/0.
func logGamma(rng *rand.Rand, a float64) float64 {
	if a < 1 {
		// Marsaglia & Tsang 2000, Sec. 6: Gamma(a) = Gamma(a+1)·U^(1/a).
		u := 1 - rng.Float64() // (0, 1]
		return logGamma(rng, a+1) + math.Log(u)/a
	}
	// Marsaglia & Tsang 2000, "A simple method for generating gamma variables".
	d := a - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := 1 - rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return math.Log(d * v)
		}
	}
}

// symmetricDirichlet fills p with a draw from Dirichlet(α, …, α) restricted to the
// components where keep is true (the others get 0). By the aggregation property this is
// the same as drawing over all components and renormalising the kept ones.
func symmetricDirichlet(rng *rand.Rand, alpha float64, keep []bool, p []float64) {
	m := math.Inf(-1)
	for i := range p {
		if keep[i] {
			p[i] = logGamma(rng, alpha)
			m = max(m, p[i])
		}
	}
	var sum float64
	for i := range p {
		if keep[i] {
			p[i] = math.Exp(p[i] - m)
			sum += p[i]
		} else {
			p[i] = 0
		}
	}
	for i := range p {
		p[i] /= sum
	}
}
