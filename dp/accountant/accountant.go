package accountant

import (
	"fmt"
	"math"
	"slices"
)

// Step is one entry of an accountant's history: Steps applications of the
// Poisson-subsampled Gaussian mechanism with the same noise multiplier and sample rate.
type Step struct {
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Steps           int     `json:"steps"`
	// Shares > 1 records distributed noise: the party added noise of multiplier
	// NoiseMultiplier/√Shares and released its result only inside sums of at least Shares
	// such results (secure aggregation), so every released sum carries NoiseMultiplier's
	// noise. The accountant composes the step as NoiseMultiplier's; Shares documents the
	// assumption that ε rests on (at least Shares honest parties in every sum).
	Shares int `json:"shares,omitempty"`
}

// SameMechanism reports whether s and o are the same mechanism (noise multiplier, sample
// rate and shares), whose steps add up in one history entry.
func (s Step) SameMechanism(o Step) bool {
	return s.NoiseMultiplier == o.NoiseMultiplier && s.SampleRate == o.SampleRate && s.Shares == o.Shares
}

// Validate checks the ranges: σ finite and ≥ 0, q in [0, 1], Steps ≥ 0.
func (s Step) Validate() error {
	if err := validateMechanism(s.SampleRate, s.NoiseMultiplier); err != nil {
		return err
	}
	if s.Steps < 0 {
		return fmt.Errorf("accountant: steps %d: must be ≥ 0", s.Steps)
	}
	if s.Shares < 0 {
		return fmt.Errorf("accountant: shares %d: must be ≥ 0", s.Shares)
	}
	return nil
}

// Config selects the accountant and its settings. The zero Config is the RDP accountant
// with DefaultOrders, Improved and SignedSeries. The PRV accountant uses the RDP settings
// too: its domain comes from RDP tail bounds, and it never reports more than the RDP ε.
type Config struct {
	Method     Method
	Grid       Grid
	Conversion Conversion
	Series     Series
	PRV        PRVConfig
}

func (c Config) withDefaults() (Config, error) {
	if c.Grid.Orders == nil {
		name := c.Grid.Name
		g, err := GridByName(name)
		if err != nil {
			return c, err
		}
		c.Grid = g
	}
	if c.Grid.Name == "" {
		c.Grid.Name = "custom"
	}
	if err := c.Grid.Validate(); err != nil {
		return c, err
	}
	if c.Conversion != Improved && c.Conversion != Classic {
		return c, fmt.Errorf("accountant: unknown conversion %d", int(c.Conversion))
	}
	if c.Series != SignedSeries && c.Series != AbsoluteSeries {
		return c, fmt.Errorf("accountant: unknown series %d", int(c.Series))
	}
	if c.Method != MethodRDP && c.Method != MethodPRV {
		return c, fmt.Errorf("accountant: unknown accountant %d", int(c.Method))
	}
	if err := c.PRV.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// Result is an (ε, δ) guarantee together with what it was computed with.
type Result struct {
	Epsilon float64
	Delta   float64
	// Method is the accountant that produced the guarantee.
	Method Method
	// Order is the Rényi order α at which the RDP bound is attained (for MethodPRV, that of
	// the RDP bound it was compared with).
	Order float64
	// Grid names the grid of orders; Conversion and Series say how the RDP bound was
	// obtained.
	Grid       string
	Conversion Conversion
	Series     Series
	// PRV holds the PRV accountant's interval and settings (MethodPRV only).
	PRV *PRVBounds
}

// clone returns r with its own copy of the PRV bounds.
func (r Result) clone() Result {
	if r.PRV != nil {
		b := *r.PRV
		r.PRV = &b
	}
	return r
}

// Describe says in one line how the guarantee was computed, for reports: the accountant
// and its settings.
func (r Result) Describe() string {
	if r.Method == MethodPRV && r.PRV != nil {
		b := r.PRV
		switch {
		case b.Fallback != "":
			return fmt.Sprintf("PRV accountant (Gopi, Lee, Wutschitz 2021) not computable here (%s): RDP bound, %s orders (best α = %g), %s conversion", b.Fallback, r.Grid, r.Order, r.Conversion)
		case r.Epsilon < b.Upper:
			return fmt.Sprintf("PRV accountant (Gopi, Lee, Wutschitz 2021; ε error %g, δ error %g): its bound %.6g exceeds the RDP bound here, which is reported (%s orders, best α = %g)", b.EpsilonError, b.DeltaError, b.Upper, r.Grid, r.Order)
		}
		return fmt.Sprintf("PRV accountant (Gopi, Lee, Wutschitz 2021; ε error %g, δ error %g; exact ε in [%.4g, %.4g])", b.EpsilonError, b.DeltaError, b.Lower, b.Upper)
	}
	return fmt.Sprintf("RDP of the Poisson-subsampled Gaussian, %s orders (best α = %g), %s conversion", r.Grid, r.Order, r.Conversion)
}

// RDP is the Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism, in the
// style of Opacus' RDPAccountant: it keeps only a history of (σ, q, steps) entries and
// computes the guarantee from it on demand; composition adds RDP order by order, so
// heterogeneous steps compose exactly. The per-step RDP curve of each distinct (σ, q) is
// cached. An RDP is not safe for concurrent use.
type RDP struct {
	cfg     Config
	history []Step
	curves  map[[2]float64][]float64
}

// NewRDP returns an empty accountant.
func NewRDP(cfg Config) (*RDP, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Method = MethodRDP
	cfg.Grid.Orders = slices.Clone(cfg.Grid.Orders)
	return &RDP{cfg: cfg, curves: map[[2]float64][]float64{}}, nil
}

// Config returns the accountant's configuration (with defaults filled in).
func (a *RDP) Config() Config {
	c := a.cfg
	c.Grid.Orders = slices.Clone(c.Grid.Orders)
	return c
}

// Compose appends s to the history, merging it into the last entry when σ and q are the
// same. Steps = 0 is a no-op.
func (a *RDP) Compose(s Step) error {
	if err := s.Validate(); err != nil {
		return err
	}
	h, err := AppendStep(a.history, s)
	if err != nil {
		return err
	}
	a.history = h
	return nil
}

// AppendStep appends s to the history h, adding its steps to the last entry when σ, q (and
// shares) match (as Opacus' RDPAccountant.step does), and returns the new history. h may be
// modified in place.
func AppendStep(h []Step, s Step) ([]Step, error) {
	if s.Steps == 0 {
		return h, nil
	}
	if n := len(h); n > 0 && h[n-1].SameMechanism(s) {
		if h[n-1].Steps > math.MaxInt-s.Steps {
			return h, fmt.Errorf("accountant: step count overflows")
		}
		h[n-1].Steps += s.Steps
		return h, nil
	}
	return append(h, s), nil
}

// History returns a copy of the history.
func (a *RDP) History() []Step { return slices.Clone(a.history) }

// curve returns the cached one-step RDP curve of (σ, q).
func (a *RDP) curve(sigma, q float64) ([]float64, error) {
	key := [2]float64{sigma, q}
	if c, ok := a.curves[key]; ok {
		return c, nil
	}
	c, err := SampledGaussianRDPCurve(q, sigma, a.cfg.Grid.Orders, a.cfg.Series)
	if err != nil {
		return nil, err
	}
	a.curves[key] = c
	return c, nil
}

// RDPCurve returns the total RDP of the history at each order of the grid:
// Σ_entries steps · ε_RDP(α; σ, q). With extra steps it returns the curve the history
// would have after composing them (computed exactly as after Compose, so a what-if check
// and the later commit agree to the last bit); the history itself is not changed.
func (a *RDP) RDPCurve(extra ...Step) ([]float64, error) {
	history := slices.Clone(a.history)
	for _, s := range extra {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		var err error
		if history, err = AppendStep(history, s); err != nil {
			return nil, err
		}
	}
	total := make([]float64, len(a.cfg.Grid.Orders))
	for _, s := range history {
		if s.Steps == 0 || s.SampleRate == 0 {
			continue
		}
		c, err := a.curve(s.NoiseMultiplier, s.SampleRate)
		if err != nil {
			return nil, err
		}
		for k, r := range c {
			total[k] += float64(s.Steps) * r
		}
	}
	return total, nil
}

// Epsilon returns the ε spent by the history at the given δ, and the best order.
func (a *RDP) Epsilon(delta float64, extra ...Step) (Result, error) {
	rdp, err := a.RDPCurve(extra...)
	if err != nil {
		return Result{}, err
	}
	eps, order, err := EpsilonFromRDP(a.cfg.Grid.Orders, rdp, delta, a.cfg.Conversion)
	if err != nil {
		return Result{}, err
	}
	return a.result(eps, delta, order), nil
}

// Delta returns the δ of the history at the given ε, and the best order.
func (a *RDP) Delta(eps float64) (Result, error) {
	rdp, err := a.RDPCurve()
	if err != nil {
		return Result{}, err
	}
	delta, order, err := DeltaFromRDP(a.cfg.Grid.Orders, rdp, eps, a.cfg.Conversion)
	if err != nil {
		return Result{}, err
	}
	return a.result(eps, delta, order), nil
}

func (a *RDP) result(eps, delta, order float64) Result {
	return Result{Epsilon: eps, Delta: delta, Method: MethodRDP, Order: order, Grid: a.cfg.Grid.Name, Conversion: a.cfg.Conversion, Series: a.cfg.Series}
}

// Epsilon is the one-shot form: the ε at δ of the given history under cfg, by the
// accountant cfg.Method selects.
func Epsilon(history []Step, delta float64, cfg Config) (Result, error) {
	if cfg.Method == MethodPRV {
		c, err := cfg.withDefaults()
		if err != nil {
			return Result{}, err
		}
		if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
			return Result{}, fmt.Errorf("accountant: delta %v: must be in (0, 1)", delta)
		}
		return prvEpsilon(history, delta, c)
	}
	a, err := NewRDP(cfg)
	if err != nil {
		return Result{}, err
	}
	for _, s := range history {
		if err := a.Compose(s); err != nil {
			return Result{}, err
		}
	}
	return a.Epsilon(delta)
}

// Delta is the one-shot form: the δ at ε of the given history under cfg, by the
// accountant cfg.Method selects.
func Delta(history []Step, eps float64, cfg Config) (Result, error) {
	if cfg.Method == MethodPRV {
		c, err := cfg.withDefaults()
		if err != nil {
			return Result{}, err
		}
		if math.IsNaN(eps) || eps < 0 {
			return Result{}, fmt.Errorf("accountant: epsilon %v: must be ≥ 0", eps)
		}
		return prvDelta(history, eps, c)
	}
	a, err := NewRDP(cfg)
	if err != nil {
		return Result{}, err
	}
	for _, s := range history {
		if err := a.Compose(s); err != nil {
			return Result{}, err
		}
	}
	return a.Delta(eps)
}

// PRV is the PRV accountant of the Poisson-subsampled Gaussian mechanism (Gopi, Lee,
// Wutschitz 2021; see prv.go), with the same history-keeping surface as RDP. Every query
// composes the whole history anew (by FFT, in time growing with √steps); the last few
// answers are remembered, so a Check followed by the Charge of the same steps composes
// once. A PRV is not safe for concurrent use.
type PRV struct {
	cfg     Config
	history []Step
	memo    []prvMemo
}

type prvMemo struct {
	history []Step
	delta   float64
	res     Result
}

const prvMemoSize = 4

// NewPRV returns an empty PRV accountant.
func NewPRV(cfg Config) (*PRV, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Method = MethodPRV
	cfg.Grid.Orders = slices.Clone(cfg.Grid.Orders)
	return &PRV{cfg: cfg}, nil
}

// Config returns the accountant's configuration (with defaults filled in).
func (a *PRV) Config() Config {
	c := a.cfg
	c.Grid.Orders = slices.Clone(c.Grid.Orders)
	return c
}

// Compose appends s to the history, merging it into the last entry when σ and q are the
// same. Steps = 0 is a no-op.
func (a *PRV) Compose(s Step) error {
	if err := s.Validate(); err != nil {
		return err
	}
	h, err := AppendStep(a.history, s)
	if err != nil {
		return err
	}
	a.history = h
	return nil
}

// History returns a copy of the history.
func (a *PRV) History() []Step { return slices.Clone(a.history) }

// Epsilon returns the ε spent by the history at the given δ; with extra steps, the ε the
// history would have after composing them (the history itself is not changed).
func (a *PRV) Epsilon(delta float64, extra ...Step) (Result, error) {
	h := slices.Clone(a.history)
	for _, s := range extra {
		if err := s.Validate(); err != nil {
			return Result{}, err
		}
		var err error
		if h, err = AppendStep(h, s); err != nil {
			return Result{}, err
		}
	}
	for _, m := range a.memo {
		if m.delta == delta && slices.Equal(m.history, h) {
			return m.res.clone(), nil
		}
	}
	r, err := Epsilon(h, delta, a.cfg)
	if err != nil {
		return Result{}, err
	}
	if len(a.memo) == prvMemoSize {
		a.memo = a.memo[1:]
	}
	a.memo = append(a.memo, prvMemo{history: h, delta: delta, res: r.clone()})
	return r, nil
}

// Delta returns the δ of the history at the given ε.
func (a *PRV) Delta(eps float64) (Result, error) { return Delta(a.history, eps, a.cfg) }
