// Package dp owns Confide's differential-privacy mechanisms and bookkeeping: clipping,
// calibrated Gaussian noise, the privacy budget and its durable ledger, and the pieces of
// user-level DP for federated rounds (DP-FedAvg with central or distributed noise and
// adaptive clipping). The accounting mathematics lives in the subpackage dp/accountant.
//
// Main types and functions:
//   - NoiseSource, with SecureNoise (production: ChaCha8 keyed from crypto/rand) and
//     DeterministicNoise (tests and reproducible simulations only; Secure reports false);
//     AddGaussianNoise adds N(0, std²) to a vector. Both sources have the AddGaussian
//     method of dpsgd.Noise. SecureRand is a crypto-keyed *rand.Rand for Poisson sampling.
//   - L2Norm, ClipFactor, ClipL2: per-example clipping to an L2 norm C.
//   - Budget, Ledger (OpenLedger, Charge, Spent), ErrBudgetExceeded: a crash-safe,
//     per-data-owner record of the ε spent, refusing steps that would exceed the budget.
//   - ClipUpdate, CentralNoiseStd, DistributedNoiseStd, AdaptiveClipper,
//     UpdateNoiseMultiplier, UserLevelEpsilon: DP-FedAvg (McMahan et al. 2018; Andrew et
//     al. 2021).
//
// Invariants:
//   - Charge before release: a noised result leaves a data owner only after
//     Ledger.Charge for its steps returned nil, and Charge returns nil only once the step
//     is on stable storage. A crash can over-count ε, never under-count it.
//   - Every vector is the model's flat []float64; functions modify only the slice they are
//     documented to modify (dst, or the vector being clipped) and never retain it.
//   - Production noise comes from SecureNoise; a NoiseSource reports whether it is secure,
//     so callers can refuse a deterministic one outside tests and simulations.
//   - Invalid parameters (negative noise, NaN, a δ outside (0, 1), a non-finite update)
//     give errors naming the parameter. The only panic is ClipL2 with an invalid clip norm,
//     which the caller validates once with ValidateClipNorm.
//
// A DP-SGD step for an optimizer wrapper, with per-example gradients g_i from a batch drawn
// by Poisson sampling at rate q:
//
//	sum := make([]float64, len(params))
//	for each example i: dp.ClipL2(g_i, C); add g_i to sum   (or weights dp.ClipFactor(norm_i, C))
//	dp.AddGaussianNoise(sum, σ*C, noise)                     // noise, _ := dp.NewSecureNoise()
//	divide sum by q·n (the expected batch size, not the realised one)
//
// and, before the trained update leaves the client:
//
//	if err := ledger.Charge(dp.StepRecord{NoiseMultiplier: σ, SampleRate: q, Steps: T}); err != nil {
//		return err // errors.Is(err, dp.ErrBudgetExceeded): stop training, release nothing
//	}
package dp
