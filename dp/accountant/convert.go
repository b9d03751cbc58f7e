package accountant

import (
	"fmt"
	"math"
)

// Conversion selects the RDP → (ε, δ) conversion.
type Conversion int

const (
	// Improved is the conversion of Balle et al. 2020 (arXiv 1905.09982, Thm. 21) and
	// Canonne, Kamath, Steinke 2020 (arXiv 2004.00010, Prop. 12):
	//
	//	ε = min_α ε_RDP(α) + log((α−1)/α) − (log δ + log α)/(α−1).
	//
	// Opacus, TF Privacy and dp-accounting use it. The default. As in dp-accounting,
	// orders α ≤ 1.01 are skipped (the formula is unstable as α → 1), an order whose RDP
	// is below the KL bound δ ≥ sqrt(1 − e^{−ε_RDP}) gives ε = 0, and ε is clamped at 0.
	Improved Conversion = iota
	// Classic is the conversion of Mironov 2017 (arXiv 1702.07476, Prop. 3):
	//
	//	ε = min_α ε_RDP(α) + log(1/δ)/(α−1),
	//
	// used by the original TF Privacy rdp_accountant and Abadi et al.'s moments accountant.
	Classic
)

func (c Conversion) String() string {
	switch c {
	case Improved:
		return "improved"
	case Classic:
		return "classic"
	}
	return fmt.Sprintf("Conversion(%d)", int(c))
}

// Describe names the conversion with its source, for human-readable output.
func (c Conversion) Describe() string {
	switch c {
	case Improved:
		return "improved (Balle et al. 2020, Thm. 21)"
	case Classic:
		return "classic (Mironov 2017, Prop. 3)"
	}
	return c.String()
}

// ParseConversion reads "improved" or "classic".
func ParseConversion(s string) (Conversion, error) {
	switch s {
	case "improved", "":
		return Improved, nil
	case "classic":
		return Classic, nil
	}
	return 0, fmt.Errorf("accountant: unknown conversion %q (want improved or classic)", s)
}

func checkCurve(orders, rdp []float64, c Conversion) error {
	if len(orders) != len(rdp) {
		return fmt.Errorf("accountant: %d orders but %d RDP values", len(orders), len(rdp))
	}
	if len(orders) == 0 {
		return fmt.Errorf("accountant: no orders")
	}
	for i, a := range orders {
		if err := validateOrder(a); err != nil {
			return err
		}
		if math.IsNaN(rdp[i]) {
			return fmt.Errorf("accountant: RDP at order %v is NaN", a)
		}
	}
	if c != Improved && c != Classic {
		return fmt.Errorf("accountant: unknown conversion %d", int(c))
	}
	return nil
}

// EpsilonFromRDP converts an RDP curve (rdp[k] at orders[k]) to the smallest ε such that
// the mechanism is (ε, δ)-DP, and returns the order that attains it. The first order
// wins ties. ε is +Inf (with the first order) when no order gives a finite bound.
func EpsilonFromRDP(orders, rdp []float64, delta float64, c Conversion) (eps, order float64, err error) {
	if err := checkCurve(orders, rdp, c); err != nil {
		return 0, 0, err
	}
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return 0, 0, fmt.Errorf("accountant: delta %v: must be in (0, 1)", delta)
	}
	logDelta := math.Log(delta)
	best, bestOrder := math.Inf(1), orders[0]
	for k, a := range orders {
		r := rdp[k]
		var e float64
		switch {
		case math.IsInf(r, 1) || math.IsInf(a, 1) || a == 1:
			e = math.Inf(1)
		case c == Classic:
			e = r - logDelta/(a-1)
		case r < 0:
			e = 0 // only from rounding in extreme regimes; dp-accounting does the same
		case delta*delta+math.Expm1(-r) > 0:
			e = 0 // KL bound: δ ≥ sqrt(1 − e^{−D_KL}) already holds at ε = 0
		case a > 1.01:
			e = r + math.Log1p(-1/a) - (logDelta+math.Log(a))/(a-1)
		default:
			e = math.Inf(1)
		}
		if e < best {
			best, bestOrder = e, a
		}
	}
	return math.Max(best, 0), bestOrder, nil
}

// DeltaFromRDP converts an RDP curve to the smallest δ such that the mechanism is
// (ε, δ)-DP for the given ε ≥ 0, and returns the order that attains it.
//
// Classic: δ = min_α exp((α−1)(ε_RDP(α) − ε)). Improved (Canonne, Kamath, Steinke 2020,
// Prop. 12, as in dp-accounting's compute_delta): log δ = min over α > 1.01 of
// (α−1)(ε_RDP(α) − ε + log(1 − 1/α)) − log α, and also the KL bound
// ½ log(1 − e^{−ε_RDP(α)}) at every order. δ is capped at 1.
func DeltaFromRDP(orders, rdp []float64, eps float64, c Conversion) (delta, order float64, err error) {
	if err := checkCurve(orders, rdp, c); err != nil {
		return 0, 0, err
	}
	if math.IsNaN(eps) || eps < 0 {
		return 0, 0, fmt.Errorf("accountant: epsilon %v: must be ≥ 0", eps)
	}
	best, bestOrder := math.Inf(1), orders[0]
	for k, a := range orders {
		r := rdp[k]
		var ld float64
		switch {
		case math.IsInf(r, 1) || math.IsInf(a, 1):
			ld = math.Inf(1)
		case c == Classic:
			if a == 1 {
				ld = math.Inf(1)
			} else {
				ld = (a - 1) * (r - eps)
			}
		default:
			switch {
			case r <= 0:
				ld = math.Inf(-1)
			default:
				ld = 0.5 * math.Log1p(-math.Exp(-r))
			}
			if a > 1.01 {
				ld = math.Min(ld, (a-1)*(r-eps+math.Log1p(-1/a))-math.Log(a))
			}
		}
		if ld < best {
			best, bestOrder = ld, a
		}
	}
	return math.Min(math.Exp(best), 1), bestOrder, nil
}
