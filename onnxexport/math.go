package onnxexport

import "math"

// Functions that opset 13 has as single operators (Exp, Log, Sqrt, Erf, ReduceMean, Min,
// Max, Where, Less) but that gonnx v1.1 does not implement, written with the operators it
// does. Each is exact up to float32 rounding except erf, whose approximation error is
// below 1.5e-7.

// expNonNeg is e^y for y ≥ 0: cosh y + sinh y, two positive terms (for y < 0 they would
// cancel). It overflows to +Inf beyond y ≈ 88, as Exp does in float32.
func (g *graph) expNonNeg(y string) string {
	return g.add(g.op("Cosh", []string{y}), g.op("Sinh", []string{y}))
}

// exp is e^w for any w: e^{relu(w)} / e^{relu(−w)}, both exponents ≥ 0.
func (g *graph) exp(w string) string {
	pos := g.relu(w)
	neg := g.relu(g.mul(w, g.scalar("minus_one", -1)))
	return g.div(g.expNonNeg(pos), g.expNonNeg(neg))
}

// log is ln v for v > 0: sinh(ln v) = (v − 1/v)/2, so ln v = asinh((v − 1/v)/2).
func (g *graph) log(v string) string {
	inv := g.div(g.scalar("one", 1), v)
	return g.op("Asinh", []string{g.mul(g.sub(v, inv), g.scalar("half", 0.5))})
}

// rsqrt is 1/√v for v > 0: e^{−ln(v)/2}.
func (g *graph) rsqrt(v string) string {
	return g.exp(g.mul(g.log(v), g.scalar("minus_half", -0.5)))
}

// minOne is min(a, 1) for a ≥ 0 that are whole numbers (lengths, positions): a − relu(a − 1).
func (g *graph) minOne(a string) string {
	return g.sub(a, g.relu(g.sub(a, g.scalar("one", 1))))
}

// Abramowitz & Stegun 1964, formula 7.1.26: erf(a) = 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵)·e^{−a²}
// with t = 1/(1 + p·a), for a ≥ 0, |error| ≤ 1.5·10⁻⁷.
var erfAS = struct{ p, a1, a2, a3, a4, a5 float64 }{
	0.3275911, 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429,
}

// erfNonNeg is erf(a) for a ≥ 0 (A&S 7.1.26).
func (g *graph) erfNonNeg(a string) string {
	c := erfAS
	t := g.div(g.scalar("one", 1), g.add(g.scalar("one", 1), g.mul(a, g.scalar("erf_p", c.p))))
	// Horner: t·(a₁ + t·(a₂ + t·(a₃ + t·(a₄ + t·a₅)))).
	poly := g.mul(t, g.scalar("erf_a5", c.a5))
	for _, k := range []float64{c.a4, c.a3, c.a2} {
		poly = g.mul(t, g.add(poly, g.scalar("erf_a", k)))
	}
	poly = g.mul(t, g.add(poly, g.scalar("erf_a1", c.a1)))
	expNegSq := g.div(g.scalar("one", 1), g.expNonNeg(g.mul(a, a))) // e^{−a²}; 1/+Inf = 0
	return g.sub(g.scalar("one", 1), g.mul(poly, expNegSq))
}

// gelu is the exact GELU x·Φ(x) = x/2·(1 + erf(x/√2)) (Hendrycks & Gimpel 2016), as
// model.ActGELU computes it. erf is odd, so x·erf(x/√2) = |x|·erf(|x|/√2) and
// GELU(x) = x/2 + |x|/2·erf(|x|/√2): erf is needed for arguments ≥ 0 only.
func (g *graph) gelu(x string) string {
	ax := g.op("Abs", []string{x})
	e := g.erfNonNeg(g.mul(ax, g.scalar("inv_sqrt2", 1/math.Sqrt2)))
	half := g.scalar("half", 0.5)
	return g.add(g.mul(x, half), g.mul(g.mul(ax, half), e))
}
