// Package accountant computes the privacy spent by the Poisson-subsampled Gaussian
// mechanism (DP-SGD steps, DP-FedAvg rounds) with Rényi differential privacy (the default)
// or with privacy loss random variables (PRV, Gopi, Lee, Wutschitz 2021), which is tighter.
//
// It owns the mathematics only, as pure functions in separate files, plus small
// history-keeping accountants in the style of Opacus:
//
//   - rdp.go: SampledGaussianRDP, log A_α at integer orders (a finite sum) and fractional
//     orders (the two signed series of Mironov, Talwar and Zhang 2019, Sec. 3.3, with a
//     stable log-erfc), reformulated to sum A_α − 1 so small RDP values keep their
//     relative precision. AbsoluteSeries reproduces dp-accounting's looser variant.
//   - convert.go: EpsilonFromRDP and DeltaFromRDP with the Classic (Mironov 2017) and
//     Improved (Balle et al. 2020) conversions.
//   - ddg.go: the distributed discrete Gaussian (Kairouz, Liu and Steinke 2021): τ of
//     Theorem 1, ε(α) of Proposition 14 for L2 and L1 sensitivities in integer units, its
//     (ε, δ) over steps without subsampling, and RoundedL2Bound for stochastic rounding.
//   - inverse.go: NoiseMultiplier, bisection for the σ that meets a target ε.
//   - orders.go: the named grids of orders (DefaultOrders, OpacusOrders, TFPrivacyOrders,
//     DPAccountingOrders, IntegerOrders) and custom ones.
//   - accountant.go: RDP, a history of Step entries composed by adding RDP order by order;
//     PRV, the same surface over the PRV accountant; Epsilon, Delta and Config.Method
//     choose between them.
//   - prv.go and compose.go: the PRV of one step (its CDF in whichever tail is accurate, its
//     truncated mean), the domain from RDP tail bounds, the mean-preserving discretisation,
//     composition by FFT (gonum's dsp/fourier) and the read-out of ε or δ with Gopi et al.'s
//     error bounds (ε_err = 0.01, δ_err = δ/1000 by default, as in Opacus). A PRV result
//     carries its interval [Lower, Upper] ∋ exact ε, and reports min(Upper, RDP ε): both are
//     valid bounds. A history too long for MaxPRVPoints falls back to RDP and says why.
//   - method.go: Method (rdp or prv), parsed from flags and configs and written to ledgers.
//
// Invariants: inputs are never modified; every function validates its inputs and returns
// an error naming the offending parameter instead of panicking; +Inf stands for "no
// privacy" (σ = 0) and is never an error. Every Result names the grid, conversion and
// series it was computed with, because reported ε values differ between libraries exactly
// through these choices. Results are reproducible bit for bit: there is no randomness and
// no global state.
//
// Costs: RDP takes microseconds per (σ, q); PRV grows with √steps and with ε (a
// 14,000-step DP-SGD run about 0.1 s, 10⁶ steps under a second: BenchmarkPRV…).
//
// The default grid is the union of the three libraries' grids, so a default ε is never
// larger than any of theirs; pass OpacusOrders, TFPrivacyOrders or DPAccountingOrders (and
// for dp-accounting at fractional orders, AbsoluteSeries) to reproduce their numbers.
package accountant
