package accountant

import (
	"fmt"
	"math"
	"testing"
)

// ddgOrders is the grid of google-research/federated's distributed_dp/accounting_utils.py
// (RDP_ORDERS = 2…128 and 256).
func ddgOrders(t *testing.T) Grid {
	t.Helper()
	orders := make([]float64, 0, 128)
	for a := 2; a <= 128; a++ {
		orders = append(orders, float64(a))
	}
	g, err := CustomOrders(append(orders, 256))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestDistributedDiscreteGaussianPublished checks τ, ε(α) and the (ε, δ) of the
// distributed discrete Gaussian against the published formulas of Kairouz, Liu and Steinke
// 2021 (Theorem 1 for τ, Proposition 14 / Eq. 17 for ε(α)), as google-research/federated's
// distributed_dp/accounting_utils.py writes them (ddgauss_epsilon's τ loop,
// compute_rdp_dgaussian with q = 1), evaluated independently in Python 3.11 float64 with
// the improved conversion ε = min_α r(α) + log1p(−1/α) − (log δ + log α)/(α − 1) over the
// orders 2…128, 256. The three cases make each of the minimum's terms bind: a realistic
// round (τ underflows to 0: 1e6-scale local variance, d = 1000, Δ2 = 1000 + √1000 after
// rounding, Δ1 = √d·Δ2, where t2 = t3), a tiny variance where τ·d dominates (t1), and a
// small τ with Δ1 < √d·Δ2 (t2). Tolerance 1e-12 relative.
func TestDistributedDiscreteGaussianPublished(t *testing.T) {
	for _, tc := range []struct {
		variance   float64
		n, dim     int
		s          DDGSensitivity
		steps      int
		delta      float64
		tau        float64
		rdp        [3]float64 // at α = 2, 10, 64
		eps, order float64
	}{
		{12000, 100, 1000, DDGSensitivity{1031.6, 1031.6 * math.Sqrt(1000)}, 1, 1e-5, 0,
			[3]float64{0.8868321333333331, 4.434160666666665, 28.37862826666666}, 4.42240804235448, 6},
		{0.3, 10, 100, DDGSensitivity{5, 20}, 1, 1e-5, 1.2069028997011286,
			[3]float64{129.0236233034462, 162.35695663677953, 387.3569566367796}, 137.99198145015578, 3},
		{1, 1000, 10, DDGSensitivity{3, 6}, 10, 1e-6, 0.0005731282577500227,
			[3]float64{0.00922077164230561, 0.046103858211528057, 0.29373128257750025}, 1.4093179992951772, 16},
	} {
		t.Run(fmt.Sprintf("var%g_n%d_d%d", tc.variance, tc.n, tc.dim), func(t *testing.T) {
			close := func(got, want float64) bool {
				return math.Abs(got-want) <= 1e-12*math.Max(math.Abs(want), 1e-300)
			}
			tau, err := DistributedDiscreteGaussianTau(tc.variance, tc.n)
			if err != nil || !close(tau, tc.tau) {
				t.Errorf("τ = %.17g (%v), want %.17g", tau, err, tc.tau)
			}
			for i, a := range []float64{2, 10, 64} {
				r, err := DistributedDiscreteGaussianRDP(a, tc.s, tc.variance, tc.n, tc.dim)
				if err != nil || !close(r, tc.rdp[i]) {
					t.Errorf("ε(%g) = %.17g (%v), want %.17g", a, r, err, tc.rdp[i])
				}
			}
			eps, order, err := DistributedDiscreteGaussianEpsilon(tc.s, tc.variance, tc.n, tc.dim, tc.steps, tc.delta, ddgOrders(t), Improved)
			if err != nil || !close(eps, tc.eps) || order != tc.order {
				t.Errorf("ε = %.17g at α = %g (%v), want %.17g at %g", eps, order, err, tc.eps, tc.order)
			}
		})
	}
}

// TestDistributedDiscreteGaussianLimits: with τ = 0 the bound is the Gaussian's α·Δ²/(2nσ²)
// (the continuous Gaussian's RDP at the summed variance); τ decreases in the variance and
// grows with n; bad inputs are errors.
func TestDistributedDiscreteGaussianLimits(t *testing.T) {
	r, err := DistributedDiscreteGaussianRDP(8, DDGSensitivity{10, 10}, 400, 25, 1000)
	if want := 8 * 100.0 / (2 * 25 * 400); err != nil || math.Abs(r-want) > 1e-15 {
		t.Errorf("ε(8) = %v (%v), want the Gaussian's %v", r, err, want)
	}
	t1, _ := DistributedDiscreteGaussianTau(0.5, 10)
	t2, _ := DistributedDiscreteGaussianTau(0.6, 10)
	t3, _ := DistributedDiscreteGaussianTau(0.5, 20)
	if !(t2 < t1 && t1 < t3) {
		t.Errorf("τ(0.5, 10) = %g, τ(0.6, 10) = %g, τ(0.5, 20) = %g: want the second smallest and the third largest", t1, t2, t3)
	}
	if tau, _ := DistributedDiscreteGaussianTau(5, 1); tau != 0 {
		t.Errorf("τ for one client = %g, want 0 (a single discrete Gaussian)", tau)
	}
	// The early exit keeps τ an upper bound: compare with the plain sum.
	plain := 0.0
	for k := 1; k < 5000; k++ {
		plain += math.Exp(-2 * math.Pi * math.Pi * 10 * float64(k) / float64(k+1))
	}
	if tau, _ := DistributedDiscreteGaussianTau(10, 5000); tau < 10*plain || tau > 10*plain*(1+1e-12) {
		t.Errorf("τ(10, 5000) = %.17g, the plain sum gives %.17g", tau, 10*plain)
	}
	for _, bad := range []func() error{
		func() error { _, err := DistributedDiscreteGaussianTau(0, 3); return err },
		func() error { _, err := DistributedDiscreteGaussianTau(1, 0); return err },
		func() error { _, err := DistributedDiscreteGaussianRDP(0.5, DDGSensitivity{1, 1}, 1, 2, 3); return err },
		func() error { _, err := DistributedDiscreteGaussianRDP(2, DDGSensitivity{2, 1}, 1, 2, 3); return err },
		func() error { _, err := DistributedDiscreteGaussianRDP(2, DDGSensitivity{1, 1}, 1, 2, 0); return err },
		func() error {
			_, _, err := DistributedDiscreteGaussianEpsilon(DDGSensitivity{1, 1}, 1, 2, 3, -1, 1e-5, DefaultOrders(), Improved)
			return err
		},
	} {
		if bad() == nil {
			t.Errorf("invalid input accepted")
		}
	}
	if got := RoundedL2Bound(1000, 1_000_000); got != 2000 {
		t.Errorf("RoundedL2Bound(1000, 10^6) = %g, want 2000", got)
	}
}
