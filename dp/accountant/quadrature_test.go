package accountant

import (
	"fmt"
	"math"
	"testing"
)

// This file checks the series for log A_α against direct numerical integration of its
// definition, A_α = E_{z~N(0,σ²)}[(1 − q + q·e^{(2z−1)/(2σ²)})^α], with an adaptive
// Gauss–Kronrod (7, 15) rule written here so the reference shares no code with rdp.go.
//
// To keep full relative precision when A_α is close to 1, the quadrature integrates the
// non-negative excess h(z) = φ_σ(z)·[(1+u)^α − 1 − αu] with u = q·(e^{(2z−1)/(2σ²)} − 1):
// E[u] = 0, so A_α − 1 = ∫ h. h is integrated in scaled form exp(log h(z) − M) so that
// orders with astronomically large A_α do not overflow.

// Gauss–Kronrod (7, 15) nodes and weights on [−1, 1] (Piessens et al., QUADPACK qk15).
var (
	gkNodes = [8]float64{
		0.991455371120812639206854697526329,
		0.949107912342758524526189684047851,
		0.864864423359769072789712788640926,
		0.741531185599394439863864773280788,
		0.586087235467691130294144845693013,
		0.405845151377397166906606412076961,
		0.207784955007898467600689403773245,
		0.000000000000000000000000000000000,
	}
	gkKronrod = [8]float64{
		0.022935322010529224963732008058970,
		0.063092092629978553290700663189204,
		0.104790010322250183839876322541518,
		0.140653259715525918745189590510238,
		0.169004726639267902826583426598550,
		0.190350578064785409913256402421014,
		0.204432940075298892414161999234649,
		0.209482141084727828012999174891714,
	}
	gkGauss = [4]float64{ // weights of the 7-point Gauss rule at nodes 1, 3, 5, 7 (0-based)
		0.129484966168869693270611432679082,
		0.279705391489276667901467771423780,
		0.381830050505118944950369775488975,
		0.417959183673469387755102040816327,
	}
)

// gk15 returns the Kronrod and Gauss estimates of ∫_a^b f.
func gk15(f func(float64) float64, a, b float64) (kronrod, gauss float64) {
	c, h := (a+b)/2, (b-a)/2
	fc := f(c)
	kronrod = gkKronrod[7] * fc
	gauss = gkGauss[3] * fc
	for k := 0; k < 7; k++ {
		x := h * gkNodes[k]
		s := f(c-x) + f(c+x)
		kronrod += gkKronrod[k] * s
		if k%2 == 1 {
			gauss += gkGauss[k/2] * s
		}
	}
	return kronrod * h, gauss * h
}

// adaptiveIntegral integrates f over [a, b]: it splits [a, b] into pieces panels and then
// bisects any panel whose Kronrod and Gauss estimates differ by more than both its share of
// relTol·∫|f| and noise(midpoint) times its own value. The second floor is f's relative
// rounding noise, which no bisection removes (large where f is exp of a large number).
func adaptiveIntegral(f, noise func(float64) float64, a, b float64, pieces int, relTol float64) float64 {
	width := (b - a) / float64(pieces)
	rough := 0.0
	for i := 0; i < pieces; i++ {
		k, _ := gk15(f, a+float64(i)*width, a+float64(i+1)*width)
		rough += math.Abs(k)
	}
	absTol := relTol * rough
	var rec func(lo, hi float64, depth int) float64
	rec = func(lo, hi float64, depth int) float64 {
		k, g := gk15(f, lo, hi)
		mid := (lo + hi) / 2
		if math.Abs(k-g) <= math.Max(absTol*(hi-lo)/(b-a), noise(mid)*math.Abs(k)) || depth > 40 {
			return k
		}
		return rec(lo, mid, depth+1) + rec(mid, hi, depth+1)
	}
	total := 0.0
	for i := 0; i < pieces; i++ {
		total += rec(a+float64(i)*width, a+float64(i+1)*width, 0)
	}
	return total
}

// logExcessIntegrand returns log h(z) (see the file comment).
func logExcessIntegrand(q, sigma, alpha, z float64) float64 {
	logPdf := -z*z/(2*sigma*sigma) - math.Log(sigma) - 0.5*math.Log(2*math.Pi)
	u := q * math.Expm1((2*z-1)/(2*sigma*sigma))
	if math.Abs(u) < 0.1 {
		// (1+u)^α − 1 − αu = Σ_{k≥2} C(α,k) u^k, free of the cancellation of the closed
		// form; for |u| < 0.1 and α ≤ 64 the terms past k = 40 are below 1e-20 of the sum.
		sum, c, p := 0.0, alpha, u
		for k := 2; k <= 40+int(alpha); k++ {
			c *= (alpha - float64(k) + 1) / float64(k)
			p *= u
			sum += c * p
		}
		return logPdf + math.Log(sum)
	}
	if u > 1 {
		// Work with log u: u itself overflows for large z. With v = α log(1+u),
		// (1+u)^α − 1 − αu = e^v (1 − e^{−v} − α e^{log u − v}).
		logU := math.Log(q) + (2*z-1)/(2*sigma*sigma) + math.Log(-math.Expm1(-(2*z-1)/(2*sigma*sigma)))
		v := alpha * (logU + math.Log1p(math.Exp(-logU)))
		return logPdf + v + math.Log1p(-math.Exp(-v)-alpha*math.Exp(logU-v))
	}
	v := alpha * math.Log1p(u)
	return logPdf + math.Log(math.Expm1(v)-alpha*u)
}

// quadratureLogA returns log A_α by numerical integration.
func quadratureLogA(q, sigma, alpha float64) float64 {
	// The integrand is a mixture of bumps of width σ around 0 (from the (1−q)^α part)
	// and around α (from the (q·e^L)^α part); 14σ on either side leaves out < e^{−98}.
	a, b := -14*sigma-1, alpha+14*sigma+1
	const n = 2000
	m := math.Inf(-1)
	for i := 0; i <= n; i++ {
		m = math.Max(m, logExcessIntegrand(q, sigma, alpha, a+(b-a)*float64(i)/n))
	}
	f := func(z float64) float64 { return math.Exp(logExcessIntegrand(q, sigma, alpha, z) - m) }
	// log h carries an absolute rounding error of a few ulps of |log h|, which f shows as
	// relative noise of that size.
	noise := func(z float64) float64 { return 1e-13 * (1 + math.Abs(logExcessIntegrand(q, sigma, alpha, z))) }
	logExcess := m + math.Log(adaptiveIntegral(f, noise, a, b, 400, 1e-12))
	return log1pExpRef(logExcess)
}

func log1pExpRef(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func TestQuadratureReferenceOnGaussian(t *testing.T) {
	// Sanity check of the reference itself: with q = 1, A_α = e^{α(α−1)/(2σ²)} exactly
	// (the excess integrand is exact here too, u = e^L − 1).
	for _, tc := range []struct{ sigma, alpha float64 }{{1, 2}, {2.5, 7.5}, {0.8, 3.3}} {
		got := quadratureLogA(1, tc.sigma, tc.alpha)
		want := tc.alpha * (tc.alpha - 1) / (2 * tc.sigma * tc.sigma)
		if math.Abs(got-want) > 1e-10*want {
			t.Errorf("σ=%v α=%v: quadrature log A = %.15g, want %.15g", tc.sigma, tc.alpha, got, want)
		}
	}
}

func TestRDPMatchesNumericalIntegration(t *testing.T) {
	qs := []float64{1e-5, 1e-3, 0.01, 0.04, 0.2, 0.5, 0.8, 0.99}
	sigmas := []float64{0.3, 0.7, 1, 2.5, 8, 30}
	alphas := []float64{1.1, 1.5, 2, 2.5, 3.7, 8, 16.5, 32, 63.9}
	worst := 0.0
	for _, q := range qs {
		for _, sigma := range sigmas {
			for _, alpha := range alphas {
				name := fmt.Sprintf("q=%g/σ=%g/α=%g", q, sigma, alpha)
				want := quadratureLogA(q, sigma, alpha) / (alpha - 1)
				got, err := SampledGaussianRDP(q, sigma, alpha, SignedSeries)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				rel := math.Abs(got-want) / want
				worst = math.Max(worst, rel)
				if !(rel <= 1e-8) {
					t.Errorf("%s: series RDP %.15g, integral %.15g (relative difference %.2g)", name, got, want, rel)
				}
				abs, err := SampledGaussianRDP(q, sigma, alpha, AbsoluteSeries)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				// The absolute series sums A_α itself (not A_α − 1), as dp-accounting does, so
				// near log A_α = 0 it is only good to ~1e-16 absolute in log A_α.
				if abs < want*(1-1e-8)-1e-15/(alpha-1) {
					t.Errorf("%s: absolute-value series %.15g is below the true RDP %.15g; it must be an upper bound", name, abs, want)
				}
			}
		}
	}
	t.Logf("worst relative difference between series and integral: %.3g", worst)
}

func TestLogAMatchesIntegrationAtPublishedParameters(t *testing.T) {
	// The (q, σ, α) of dp_accounting rdp_privacy_accountant_test.py and tensorflow_privacy
	// rdp_accountant_test.py test_compute_log_a_equals_mp, which compare against mpmath
	// quadrature at rtol 1e-4; here the tolerance is 1e-8.
	params := []struct{ q, sigma, alpha float64 }{
		{1e-7, .1, 1.01}, {1e-6, .1, 256}, {1e-5, .1, 256.1}, {1e-6, 1, 27}, {1e-4, 1, 1.5},
		{1e-3, 1, 2}, {.01, 10, 20}, {.1, 100, 20.5}, {.99, .1, 256}, {.999, 100, 256.1},
	}
	for _, p := range params {
		want := quadratureLogA(p.q, p.sigma, p.alpha)
		got, err := LogA(p.q, p.sigma, p.alpha, SignedSeries)
		if err != nil {
			t.Fatal(err)
		}
		if rel := math.Abs(got-want) / want; !(rel <= 1e-8) {
			t.Errorf("q=%g σ=%g α=%g: series log A = %.15g, integral %.15g (relative difference %.2g)", p.q, p.sigma, p.alpha, got, want, rel)
		}
	}
}
