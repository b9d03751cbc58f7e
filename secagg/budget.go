package secagg

import "math"

// MaxContributorsFor returns the largest MaxContributors that the other fields of lit
// allow, at most 2^30: for the float encoding the most updates whose largest possible sum
// stays within the overflow budget (checkOverflowBudget), for the packed one the most its
// headroom bits hold. It fails as NewParameters does when the other fields are invalid or
// not even one update fits. A configuration that leaves the count open takes min(default,
// this) instead of a bound worked out for the default parameters only.
func MaxContributorsFor(lit ParametersLiteral) (int, error) {
	lit.MaxContributors = 1
	p, err := NewParameters(lit)
	if err != nil {
		return 0, err
	}
	const most = 1 << 30
	if p.Packed() {
		// Validity is monotone in the count: search for the last valid one.
		lo, hi := 1, most
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			lit.MaxContributors = mid
			if _, err := NewParameters(lit); err == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		return lo, nil
	}
	// checkOverflowBudget: n·slotBound·2^LogScale + noise ≤ Q/2 / 2^overflowMarginBits.
	limit := float64(p.Modulus()) / 2 / math.Exp2(overflowMarginBits)
	noise := MaxCommitteeSize * 6 * p.floodingSigmaEffective()
	n := math.Floor((limit - noise) / (p.slotBound() * math.Exp2(float64(p.lit.LogScale))))
	return int(min(n, most)), nil
}
