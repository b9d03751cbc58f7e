package accountant

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Grid is a named set of Rényi orders α at which RDP is tracked. The (ε, δ) bound is the
// minimum over the grid, so the result depends on it (Opacus issue #186): every Result names
// the grid it was computed on. Any α > 1 gives a valid bound; a finer grid can only help.
type Grid struct {
	// Name labels the grid in reports: "default", "opacus", "tf-privacy", "dp-accounting",
	// "integer 2..32" or "custom".
	Name string
	// Orders are the α values, each ≥ 1 or +Inf, in the order given.
	Orders []float64
}

// Grid names accepted by GridByName.
const (
	GridDefault      = "default"
	GridOpacus       = "opacus"
	GridTFPrivacy    = "tf-privacy"
	GridDPAccounting = "dp-accounting"
)

// tenths returns 1 + x/10 for x = 1..99, computed exactly as Opacus and dp-accounting do
// (`[1 + x / 10.0 for x in range(1, 100)]`), so that 2.0, 3.0, … are exact integers and
// take the integer-order path.
func tenths() []float64 {
	out := make([]float64, 0, 99)
	for x := 1; x < 100; x++ {
		out = append(out, 1+float64(x)/10.0)
	}
	return out
}

func intRange(lo, hi int) []float64 {
	out := make([]float64, 0, hi-lo+1)
	for a := lo; a <= hi; a++ {
		out = append(out, float64(a))
	}
	return out
}

// OpacusOrders is Opacus' RDPAccountant.DEFAULT_ALPHAS: 1.1, 1.2, …, 10.9 and 12, 13, …, 63.
func OpacusOrders() Grid {
	return Grid{Name: GridOpacus, Orders: append(tenths(), intRange(12, 63)...)}
}

// TFPrivacyOrders is the grid of TF Privacy's compute_dp_sgd_privacy_lib and
// compute_noise_from_budget_lib: 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, 5, 6, …, 63,
// 128, 256, 512.
func TFPrivacyOrders() Grid {
	o := []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5}
	o = append(o, intRange(5, 63)...)
	o = append(o, 128, 256, 512)
	return Grid{Name: GridTFPrivacy, Orders: o}
}

// DPAccountingOrders is Google dp-accounting's DEFAULT_RDP_ORDERS: 1.1, 1.2, …, 10.9,
// 11, 12, …, 63 and 128, 256, 512, 1024.
func DPAccountingOrders() Grid {
	o := append(tenths(), intRange(11, 63)...)
	o = append(o, 128, 256, 512, 1024)
	return Grid{Name: GridDPAccounting, Orders: o}
}

// DefaultOrders is Confide's default grid: the sorted union of OpacusOrders,
// TFPrivacyOrders and DPAccountingOrders (1.1, 1.2, …, 10.9 with 1.25, 1.75 and 2.25
// added; 11, …, 63; 128, 256, 512, 1024). On the union the bound is never worse than on
// any of the three libraries' grids, and it equals theirs whenever their best order is
// in the union (which it always is).
func DefaultOrders() Grid {
	var o []float64
	o = append(o, OpacusOrders().Orders...)
	o = append(o, TFPrivacyOrders().Orders...)
	o = append(o, DPAccountingOrders().Orders...)
	slices.Sort(o)
	o = slices.Compact(o)
	return Grid{Name: GridDefault, Orders: o}
}

// IntegerOrders returns the orders lo, lo+1, …, hi (the grid of TF Privacy's original
// rdp_accountant examples is IntegerOrders(2, 32)).
func IntegerOrders(lo, hi int) (Grid, error) {
	if lo < 2 || hi < lo {
		return Grid{}, fmt.Errorf("accountant: integer orders %d..%d: need 2 ≤ lo ≤ hi", lo, hi)
	}
	return Grid{Name: fmt.Sprintf("integer %d..%d", lo, hi), Orders: intRange(lo, hi)}, nil
}

// CustomOrders validates a caller's orders and returns them as a grid named "custom".
// The slice is copied.
func CustomOrders(orders []float64) (Grid, error) {
	g := Grid{Name: "custom", Orders: slices.Clone(orders)}
	return g, g.Validate()
}

// Validate reports whether every order is ≥ 1 (or +Inf) and the grid is not empty.
func (g Grid) Validate() error {
	if len(g.Orders) == 0 {
		return fmt.Errorf("accountant: grid %q has no orders", g.Name)
	}
	for i, a := range g.Orders {
		if math.IsNaN(a) || a < 1 {
			return fmt.Errorf("accountant: order #%d of grid %q is %v: orders must be ≥ 1 (α > 1 for a useful bound)", i+1, g.Name, a)
		}
	}
	return nil
}

// GridByName returns a named grid: "default", "opacus", "tf-privacy" or "dp-accounting".
func GridByName(name string) (Grid, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case GridDefault, "":
		return DefaultOrders(), nil
	case GridOpacus:
		return OpacusOrders(), nil
	case GridTFPrivacy, "tfprivacy", "tf_privacy":
		return TFPrivacyOrders(), nil
	case GridDPAccounting, "dpaccounting", "dp_accounting":
		return DPAccountingOrders(), nil
	}
	return Grid{}, fmt.Errorf("accountant: unknown grid %q (want default, opacus, tf-privacy or dp-accounting)", name)
}

// ParseGrid reads a grid from text: a grid name (see GridByName), or a comma-separated
// list whose items are orders ("1.5") or inclusive integer-step ranges ("2:32", or
// "1.5:10:0.5" with an explicit step).
func ParseGrid(s string) (Grid, error) {
	s = strings.TrimSpace(s)
	if g, err := GridByName(s); err == nil {
		return g, nil
	}
	var orders []float64
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) == 1 {
			a, err := parseOrder(item)
			if err != nil {
				return Grid{}, err
			}
			orders = append(orders, a)
			continue
		}
		if len(parts) > 3 {
			return Grid{}, fmt.Errorf("accountant: order range %q: want lo:hi or lo:hi:step", item)
		}
		lo, err := parseOrder(parts[0])
		if err != nil {
			return Grid{}, err
		}
		hi, err := parseOrder(parts[1])
		if err != nil {
			return Grid{}, err
		}
		step := 1.0
		if len(parts) == 3 {
			if step, err = strconv.ParseFloat(strings.TrimSpace(parts[2]), 64); err != nil || !(step > 0) || math.IsInf(step, 0) {
				return Grid{}, fmt.Errorf("accountant: order range %q: step must be a positive number", item)
			}
		}
		if hi < lo || math.IsInf(hi, 0) || (hi-lo)/step > 1e6 {
			return Grid{}, fmt.Errorf("accountant: order range %q: need finite lo ≤ hi and at most 10^6 orders", item)
		}
		// lo + k·step rather than repeated addition, so 1.5:3:0.5 gives exactly 1.5, 2, 2.5, 3.
		for k := 0; ; k++ {
			a := lo + float64(k)*step
			if a > hi*(1+1e-12) {
				break
			}
			orders = append(orders, a)
		}
	}
	return CustomOrders(orders)
}

func parseOrder(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "inf") {
		return math.Inf(1), nil
	}
	a, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("accountant: order %q is not a number", s)
	}
	return a, nil
}
