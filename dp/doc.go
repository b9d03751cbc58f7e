// Package dp owns Confide's differential-privacy mechanisms and bookkeeping: clipping,
// calibrated Gaussian noise, the privacy budget and its durable ledger, and the pieces of
// user-level DP for federated rounds (DP-FedAvg with central or distributed noise and
// adaptive clipping). The accounting mathematics lives in the subpackage dp/accountant.
//
// Main types and functions:
//   - NoiseSource, with SecureNoise (production: AES-128-CTR keyed from crypto/rand) and
//     DeterministicNoise (tests and reproducible simulations only; Secure reports false);
//     AddGaussianNoise adds N(0, std²) to a vector. Both sources have the AddGaussian
//     method of dpsgd.Noise. SecureRand is a crypto-keyed *rand.Rand for Poisson sampling.
//   - L2Norm, ClipFactor, ClipL2: per-example clipping to an L2 norm C.
//   - Budget, Ledger (OpenLedger for a file of its own, OpenLedgerIn for a caller's
//     store; Check, Charge, Spent, Close), ErrBudgetExceeded: a crash-safe, checksummed,
//     per-data-owner record of the ε spent, refusing steps that would exceed the budget.
//     The budget is pinned in the ledger (raised only with WithRaiseBudget, and the raise
//     recorded); a ledger file is locked against a second process (ErrLedgerInUse).
//     A ledger keeps one accountant, chosen at creation (WithAccountant: RDP by default,
//     or PRV) and recorded in it; reopening it with another is refused
//     (ErrAccountantMismatch), and ledgers older than version 3 are RDP ledgers.
//     ReadLedger audits a ledger without opening it.
//   - DiscreteGaussian (NewDiscreteGaussian): exact N_Z(0, σ²) for an integer σ²
//     (Canonne, Kamath and Steinke 2020), the noise of integer-encoded updates; each
//     client's share of the distributed discrete Gaussian (Kairouz, Liu and Steinke 2021),
//     accounted by accountant.DistributedDiscreteGaussianRDP.
//   - ClipUpdate, CentralNoiseStd, DistributedNoiseStd, AdaptiveClipper,
//     UpdateNoiseMultiplier, UserLevelEpsilon: DP-FedAvg (McMahan et al. 2018; Andrew et
//     al. 2021).
//
// Invariants:
//   - Charge before release: a noised result leaves a data owner only after
//     Ledger.Charge for its steps returned nil, and Charge returns nil only once the steps
//     are stored (for a ledger file: on stable storage). A crash can over-count ε, never
//     under-count it.
//   - A budget is finite: ε > 0 and δ in (0, 1). There is no "unlimited" ledger; a data
//     owner without a budget keeps no ledger.
//   - Every vector is the model's flat []float64; functions modify only the slice they are
//     documented to modify (dst, or the vector being clipped) and never retain it.
//   - Production noise comes from SecureNoise; a NoiseSource reports whether it is secure,
//     so callers can refuse a deterministic one outside tests and simulations.
//   - Invalid parameters (negative noise, NaN, a δ outside (0, 1), a non-finite update)
//     give errors naming the parameter. The only panic is ClipL2 with an invalid clip norm,
//     which the caller validates once with ValidateClipNorm.
//
// Using it from DP-SGD (package dp/dpsgd does the per-step part):
//
//	noise, err := dp.NewSecureNoise()   // a dpsgd.Noise: AddGaussian(sum, σ·C)
//	sampler, err := dp.SecureRand()     // Poisson sampling of batches at rate q
//	ledger, err := dp.OpenLedger(path, dp.Budget{Epsilon: 8, Delta: 1e-5})
//	defer ledger.Close()
//	// Before training: refuse a task whose planned steps would not fit.
//	if err := ledger.Check(dp.StepRecord{NoiseMultiplier: σ, SampleRate: q, Steps: T}); err != nil {
//		return err
//	}
//	// ... train T steps: clip each example (ClipL2 or ClipFactor), sum, add noise,
//	// divide by the expected batch size q·n ...
//	// Before the trained update leaves the client:
//	if err := ledger.Charge(dp.StepRecord{NoiseMultiplier: σ, SampleRate: q, Steps: T}); err != nil {
//		return err // errors.Is(err, dp.ErrBudgetExceeded): release nothing
//	}
//	eps, delta := ledger.Spent()
package dp
