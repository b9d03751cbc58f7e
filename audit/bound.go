package audit

import (
	"fmt"
	"math"
	"sort"
)

// The statistics of Steinke, Nasr, Jagielski 2023, "Privacy Auditing with One (1) Training
// Run" (NeurIPS; arXiv 2305.08846). m canaries are each included in the training data
// independently with probability ½ (S_i = ±1); after one training run the auditor guesses
// T_i ∈ {+1, −1, 0} (0: abstain) from what it sees. If the mechanism is (ε, δ)-DP, the number
// W of correct guesses among r made is stochastically dominated by Binomial(r, e^ε/(1+e^ε))
// up to a δ term (their main theorem, Thm. 3.2 with its δ > 0 extension in Sec. 5):
//
//	P[W ≥ v] ≤ f(v) + 2mδ · max_{i=1..v} (f(v−i) − f(v))/i,   f(v) = P[Binomial(r, p_ε) ≥ v].
//
// Observing v correct guesses whose bound is below β rejects (ε, δ)-DP at confidence 1 − β;
// the audit reports the largest ε it rejects (their Algorithm 2, "get_eps_audit", which
// bisects on the p-value above, "p_value_DP_audit").

// PValue returns the bound above on P[W ≥ v] for an (ε, δ)-DP mechanism audited with m
// canaries, r guesses and v correct ones, capped at 1.
func PValue(m, r, v int, eps, delta float64) float64 {
	if v <= 0 {
		return 1
	}
	// log p and log(1−p) for p = e^ε/(1+e^ε), without cancellation at large ε.
	lp, lq := -math.Log1p(math.Exp(-eps)), -math.Log1p(math.Exp(eps))
	lgr, _ := math.Lgamma(float64(r + 1))
	logPMF := func(k int) float64 {
		a, _ := math.Lgamma(float64(k + 1))
		b, _ := math.Lgamma(float64(r - k + 1))
		return lgr - a - b + float64(k)*lp + float64(r-k)*lq
	}
	// f(v): the tail summed from its far end, small terms first.
	var tail float64
	for k := r; k >= v; k-- {
		tail += math.Exp(logPMF(k))
	}
	p := tail
	if delta > 0 {
		var sum, alpha float64 // sum = f(v−i) − f(v) = P[v−i ≤ B < v]
		for i := 1; i <= v; i++ {
			sum += math.Exp(logPMF(v - i))
			alpha = math.Max(alpha, sum/float64(i))
		}
		p += alpha * delta * 2 * float64(m)
	}
	return math.Min(p, 1)
}

// maxEpsilon bounds the search: no finite audit rejects more than about log(r), and r is
// at most the number of canaries.
const maxEpsilon = 100

// EpsilonLower returns the largest ε such that v correct guesses out of r (with m
// canaries) reject (ε, δ)-DP at significance beta, i.e. PValue < beta; 0 when even ε = 0
// is not rejected. The bisection keeps PValue(lo) < beta ≤ PValue(hi), as Steinke et al.'s
// get_eps_audit does, to a precision of 1e-9.
func EpsilonLower(m, r, v int, delta, beta float64) float64 {
	if v <= 0 || PValue(m, r, v, 0, delta) >= beta {
		return 0
	}
	lo, hi := 0.0, 1.0
	for PValue(m, r, v, hi, delta) < beta {
		lo, hi = hi, 2*hi
		if hi > maxEpsilon {
			return lo
		}
	}
	for hi-lo > 1e-9 {
		mid := (lo + hi) / 2
		if PValue(m, r, v, mid, delta) < beta {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Strategy is how the auditor turns ranked scores into k guesses.
type Strategy string

const (
	// TopOnly guesses "included" for the k highest scores and abstains on the rest: what a
	// membership signal that only fires on members (a memorised canary) supports.
	TopOnly Strategy = "top"
	// TopAndBottom guesses "included" for the ⌈k/2⌉ highest and "excluded" for the ⌊k/2⌋
	// lowest scores: what a symmetric signal (a gradient canary's noisy sum) supports.
	TopAndBottom Strategy = "top-and-bottom"
)

// Point is one candidate of an audit's guess sweep.
type Point struct {
	Strategy Strategy `json:"strategy"`
	Guesses  int      `json:"guesses"`
	Correct  int      `json:"correct"`
	// EpsilonLower is the bound this candidate gives at the sweep's corrected significance.
	EpsilonLower float64 `json:"epsilon_lower"`
}

// Bound is the outcome of the statistics: the best candidate of the sweep, and the sweep.
type Bound struct {
	EpsilonLower float64 `json:"epsilon_lower"`
	Confidence   float64 `json:"confidence"`
	Canaries     int     `json:"canaries"`
	// Included counts the canaries that were in the training data.
	Included int      `json:"included"`
	Guesses  int      `json:"guesses"`
	Correct  int      `json:"correct"`
	Strategy Strategy `json:"strategy"`
	// Candidates is the number of (strategy, guesses) pairs tried; each was tested at
	// significance (1 − Confidence)/Candidates (Bonferroni), so the reported bound holds at
	// Confidence whichever candidate it came from.
	Candidates int     `json:"candidates"`
	Curve      []Point `json:"curve"`
}

// GuessCounts are the numbers of guesses an audit of m canaries tries, fixed before the
// scores are seen: about 1%, 2%, 3%, 5%, 7%, 10%, 15%, 20%, 30%, 50%, 70% and all of them
// (at least one guess, without repeats).
func GuessCounts(m int) []int {
	var out []int
	for _, f := range []float64{0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1} {
		k := max(1, int(math.Round(f*float64(m))))
		if len(out) == 0 || k > out[len(out)-1] {
			out = append(out, k)
		}
	}
	return out
}

// Evaluate ranks the canaries by score (higher: more likely included), tries every
// strategy with every count of GuessCounts(len(scores)), and returns the largest ε any of
// them rejects at the Bonferroni-corrected significance (1 − confidence)/candidates.
// included[i] says whether canary i was in the training data; ties in score are broken by
// canary index, which is independent of inclusion.
func Evaluate(scores []float64, included []bool, delta, confidence float64) (Bound, error) {
	m := len(scores)
	if m == 0 || len(included) != m {
		return Bound{}, fmt.Errorf("audit: %d scores for %d canaries", m, len(included))
	}
	if !(confidence > 0 && confidence < 1) {
		return Bound{}, fmt.Errorf("audit: confidence %v: must be in (0, 1)", confidence)
	}
	if math.IsNaN(delta) || delta < 0 || delta >= 1 {
		return Bound{}, fmt.Errorf("audit: delta %v: must be in [0, 1)", delta)
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return Bound{}, fmt.Errorf("audit: score of canary %d is NaN", i)
		}
	}
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return scores[order[a]] > scores[order[b]] })
	// correctTop[k]: included among the k highest; correctBottom[k]: excluded among the k lowest.
	correctTop, correctBottom := make([]int, m+1), make([]int, m+1)
	for k := 1; k <= m; k++ {
		correctTop[k] = correctTop[k-1]
		if included[order[k-1]] {
			correctTop[k]++
		}
		correctBottom[k] = correctBottom[k-1]
		if !included[order[m-k]] {
			correctBottom[k]++
		}
	}
	counts := GuessCounts(m)
	strategies := []Strategy{TopOnly, TopAndBottom}
	b := Bound{Confidence: confidence, Canaries: m, Candidates: len(counts) * len(strategies), Strategy: TopOnly}
	for _, in := range included {
		if in {
			b.Included++
		}
	}
	beta := (1 - confidence) / float64(b.Candidates)
	for _, s := range strategies {
		for _, k := range counts {
			v := correctTop[k]
			if s == TopAndBottom {
				top := (k + 1) / 2
				v = correctTop[top] + correctBottom[k-top]
			}
			p := Point{Strategy: s, Guesses: k, Correct: v, EpsilonLower: EpsilonLower(m, k, v, delta, beta)}
			b.Curve = append(b.Curve, p)
			if p.EpsilonLower > b.EpsilonLower || b.Guesses == 0 {
				b.EpsilonLower, b.Guesses, b.Correct, b.Strategy = p.EpsilonLower, k, v, s
			}
		}
	}
	return b, nil
}
