package accountant

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"sort"

	"gonum.org/v1/gonum/dsp/fourier"
)

// prvCurve is a composed, discretised PRV: mass pmf[j] at t_j = g.t(j) + shift, for j in
// [0, g.n).
type prvCurve struct {
	g     prvGrid
	pmf   []float64
	shift float64
	// nd[j] = e^{t_j}·Σ_{i≥j} p_i e^{−t_i} − Σ_{i≥j} p_i = −δ̃(t_j), non-decreasing in j
	// (up to rounding): Opacus' ndelta.
	nd []float64
}

func (c *prvCurve) t(j int) float64 { return c.g.t(j) + c.shift }

// composePRV discretises every entry of history (all with σ > 0, q > 0 and steps > 0) on g
// and composes them: the product of each PMF's transform raised to its step count, one
// inverse FFT (gonum's dsp/fourier), and a rotation that puts the sum of T variables back
// on the grid: the sum of indices J maps to t = T·t_min + J·Δ = t_min + (J − (T−1)·M₀)Δ with
// M₀ = −t_min/Δ (Opacus' _compose_fourier and compose_heterogeneous, which convolve the
// different entries pairwise instead).
func composePRV(history []Step, g prvGrid) (*prvCurve, error) {
	fft := fourier.NewFFT(g.n)
	buf := make([]float64, g.n)
	coef := make([]complex128, g.n/2+1)
	acc := make([]complex128, g.n/2+1)
	for j := range acc {
		acc[j] = 1
	}
	var shift float64
	total := 0
	for _, s := range history {
		p := sampledGaussianPRV{q: s.SampleRate, sigma: s.NoiseMultiplier}
		sh, err := p.discretize(g, buf)
		if err != nil {
			return nil, err
		}
		shift += float64(s.Steps) * sh
		total += s.Steps
		fft.Coefficients(coef, buf)
		k := float64(s.Steps)
		for j, c := range coef {
			acc[j] *= powPolar(c, k)
		}
	}
	out := fft.Sequence(buf, acc)
	pmf := make([]float64, g.n)
	n := int64(g.n)
	rot := (int64(total-1) % n) * int64(-g.iMin) % n
	scale := 1 / float64(g.n)
	for j := range pmf {
		pmf[j] = out[(int64(j)+rot)%n] * scale
	}
	c := &prvCurve{g: g, pmf: pmf, shift: shift, nd: out}
	// Suffix sums from the right, in the order Opacus' flipped cumsum adds them.
	var d1, d2 float64
	for j := g.n - 1; j >= 0; j-- {
		t := c.t(j)
		d1 += pmf[j]
		d2 += pmf[j] * math.Exp(-t)
		c.nd[j] = math.Exp(t)*d2 - d1
	}
	return c, nil
}

// powPolar is c^k for a real k, through |c|^k·e^{ik·arg c}; terms below the smallest
// float64 are 0 (the high frequencies of a composition of many steps).
func powPolar(c complex128, k float64) complex128 {
	r, theta := cmplx.Abs(c), cmplx.Phase(c)
	if r == 0 {
		return 0
	}
	lr := k * math.Log(r)
	if lr < -745 {
		return 0
	}
	m := math.Exp(lr)
	sin, cos := math.Sincos(k * theta)
	return complex(m*cos, m*sin)
}

// suffix returns Σ_{i≥j} p_i and Σ_{i≥j} p_i e^{−t_i}, summed as composePRV sums them.
func (c *prvCurve) suffix(j int) (d1, d2 float64) {
	for i := c.g.n - 1; i >= j; i-- {
		d1 += c.pmf[i]
		d2 += c.pmf[i] * math.Exp(-c.t(i))
	}
	return d1, d2
}

// epsilonAt returns the discretised curve's ε at δ: on the cell (t_{j−1}, t_j] where δ̃
// falls to δ, δ̃(ε) = d1_j − e^ε·d2_j, solved for ε (Opacus' find_epsilon). Below the grid
// it returns the grid's first point (the caller clamps at 0); past it, +Inf.
func (c *prvCurve) epsilonAt(delta float64) float64 {
	j := sort.Search(len(c.nd), func(i int) bool { return c.nd[i] >= -delta })
	switch {
	case j <= 0:
		return c.t(0)
	case j >= len(c.nd):
		return math.Inf(1)
	}
	d1, d2 := c.suffix(j)
	e := math.Log((d1 - delta) / d2)
	if math.IsNaN(e) || e < c.t(j-1) {
		// The mass at or beyond t_j is at most δ: every ε above t_{j−1} meets it.
		e = c.t(j - 1)
	}
	return e
}

// deltaAt is δ̃(ε) = Σ_{t_j ≥ ε} p_j (1 − e^{ε−t_j}) (Opacus' compute_delta_estimate).
func (c *prvCurve) deltaAt(eps float64) float64 {
	var d float64
	for j, p := range c.pmf {
		if t := c.t(j); t >= eps {
			d += p * (1 - math.Exp(eps-t))
		}
	}
	return d
}

// prvSetup is what a PRV computation shares between ε and δ queries.
type prvSetup struct {
	active   []Step
	total    int
	epsErr   float64
	deltaErr float64
}

// activeSteps drops the entries that spend nothing (no steps, q = 0) and reports whether
// some entry spends without noise (σ = 0: infinite ε).
func activeSteps(history []Step) (active []Step, total int, noNoise bool, err error) {
	for _, s := range history {
		if err := s.Validate(); err != nil {
			return nil, 0, false, err
		}
		if s.Steps == 0 || s.SampleRate == 0 {
			continue
		}
		if s.NoiseMultiplier == 0 {
			noNoise = true
		}
		if total > math.MaxInt-s.Steps {
			return nil, 0, false, errors.New("accountant: step count overflows")
		}
		active = append(active, s)
		total += s.Steps
	}
	return active, total, noNoise, nil
}

// prvCurveFor chooses the domain from RDP tail bounds (Opacus' compute_safe_domain_size:
// the whole composition at δ_err/4, each single step at δ_err/(8T)) and composes.
func prvCurveFor(su prvSetup, cfg Config) (*prvCurve, error) {
	rdpCfg := cfg
	rdpCfg.Method = MethodRDP
	l, err := Epsilon(su.active, su.deltaErr/4, rdpCfg)
	if err != nil {
		return nil, err
	}
	lMax := l.Epsilon
	for _, s := range su.active {
		one := s
		one.Steps = 1
		r, err := Epsilon([]Step{one}, su.deltaErr/(8*float64(su.total)), rdpCfg)
		if err != nil {
			return nil, err
		}
		lMax = math.Max(lMax, r.Epsilon)
	}
	g, err := newPRVGrid(lMax, su.epsErr, su.deltaErr, su.total)
	if err != nil {
		return nil, err
	}
	return composePRV(su.active, g)
}

// prvEpsilon is Epsilon for MethodPRV; cfg has its defaults.
func prvEpsilon(history []Step, delta float64, cfg Config) (Result, error) {
	active, total, noNoise, err := activeSteps(history)
	if err != nil {
		return Result{}, err
	}
	rdpCfg := cfg
	rdpCfg.Method = MethodRDP
	rdp, err := Epsilon(history, delta, rdpCfg)
	if err != nil {
		return Result{}, err
	}
	res := rdp
	res.Method = MethodPRV
	epsErr := cfg.PRV.EpsilonError
	if epsErr == 0 {
		epsErr = defaultPRVEpsilonError
	}
	deltaErr := cfg.PRV.DeltaError
	if deltaErr == 0 {
		deltaErr = delta * defaultPRVDeltaRatio
	}
	b := &PRVBounds{EpsilonError: epsErr, DeltaError: deltaErr, RDPEpsilon: rdp.Epsilon}
	res.PRV = b
	switch {
	case len(active) == 0:
		res.Epsilon = 0
		return res, nil
	case noNoise:
		b.Lower, b.Estimate, b.Upper = math.Inf(1), math.Inf(1), math.Inf(1)
		res.Epsilon = math.Inf(1)
		return res, nil
	case deltaErr >= delta:
		return Result{}, fmt.Errorf("accountant: PRV delta error %v: must be below delta %v", deltaErr, delta)
	}
	c, err := prvCurveFor(prvSetup{active: active, total: total, epsErr: epsErr, deltaErr: deltaErr}, cfg)
	if err == nil && 0x1p-52*float64(c.g.n) > delta-deltaErr {
		err = errPRVPrecision
	}
	if err != nil {
		// No PRV bound: the RDP one stands, and the result says why.
		b.Lower, b.Estimate, b.Upper = 0, math.Inf(1), math.Inf(1)
		b.Fallback = err.Error()
		return res, nil
	}
	b.Points, b.MeshSize = c.g.n, c.g.dt
	b.Upper = math.Max(0, c.epsilonAt(delta-deltaErr)+epsErr)
	b.Lower = math.Max(0, c.epsilonAt(delta+deltaErr)-epsErr)
	b.Estimate = math.Max(0, c.epsilonAt(delta))
	res.Epsilon = math.Min(b.Upper, rdp.Epsilon)
	return res, nil
}

// prvDelta is Delta for MethodPRV: δ ≤ δ̃(ε − ε_err) + δ_err (Gopi et al., Thm. 5.5), with
// δ_err = cfg.PRV.DeltaError or 1e-10; the smaller of it and the RDP δ.
func prvDelta(history []Step, eps float64, cfg Config) (Result, error) {
	active, total, noNoise, err := activeSteps(history)
	if err != nil {
		return Result{}, err
	}
	rdpCfg := cfg
	rdpCfg.Method = MethodRDP
	rdp, err := Delta(history, eps, rdpCfg)
	if err != nil {
		return Result{}, err
	}
	res := rdp
	res.Method = MethodPRV
	epsErr := cfg.PRV.EpsilonError
	if epsErr == 0 {
		epsErr = defaultPRVEpsilonError
	}
	deltaErr := cfg.PRV.DeltaError
	if deltaErr == 0 {
		deltaErr = defaultPRVDeltaErrorForDelta
	}
	b := &PRVBounds{EpsilonError: epsErr, DeltaError: deltaErr}
	res.PRV = b
	if len(active) == 0 || noNoise {
		return res, nil // RDP's answer is exact here: δ = 0, or 1 without noise
	}
	c, err := prvCurveFor(prvSetup{active: active, total: total, epsErr: epsErr, deltaErr: deltaErr}, cfg)
	if err != nil {
		b.Fallback = err.Error()
		return res, nil
	}
	b.Points, b.MeshSize = c.g.n, c.g.dt
	d := math.Min(1, c.deltaAt(eps-epsErr)+deltaErr)
	res.Delta = math.Min(d, rdp.Delta)
	return res, nil
}
