// Package accountant computes the privacy spent by the Poisson-subsampled Gaussian
// mechanism (DP-SGD steps, DP-FedAvg rounds) with Rényi differential privacy.
//
// It owns the mathematics only, as pure functions in separate files, plus a small
// history-keeping accountant in the style of Opacus:
//
//   - rdp.go: SampledGaussianRDP, log A_α at integer orders (a finite sum) and fractional
//     orders (the two signed series of Mironov, Talwar and Zhang 2019, Sec. 3.3, with a
//     stable log-erfc), reformulated to sum A_α − 1 so small RDP values keep their
//     relative precision. AbsoluteSeries reproduces dp-accounting's looser variant.
//   - convert.go: EpsilonFromRDP and DeltaFromRDP with the Classic (Mironov 2017) and
//     Improved (Balle et al. 2020) conversions.
//   - inverse.go: NoiseMultiplier, bisection for the σ that meets a target ε.
//   - orders.go: the named grids of orders (DefaultOrders, OpacusOrders, TFPrivacyOrders,
//     DPAccountingOrders, IntegerOrders) and custom ones.
//   - accountant.go: RDP, a history of Step entries composed by adding RDP order by order.
//
// Invariants: inputs are never modified; every function validates its inputs and returns
// an error naming the offending parameter instead of panicking; +Inf stands for "no
// privacy" (σ = 0) and is never an error. Every Result names the grid, conversion and
// series it was computed with, because reported ε values differ between libraries exactly
// through these choices. Results are reproducible bit for bit: there is no randomness and
// no global state.
//
// The default grid is the union of the three libraries' grids, so a default ε is never
// larger than any of theirs; pass OpacusOrders, TFPrivacyOrders or DPAccountingOrders (and
// for dp-accounting at fractional orders, AbsoluteSeries) to reproduce their numbers.
package accountant
