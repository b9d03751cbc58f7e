// Package dpsgd implements DP-SGD (Abadi et al. 2016) as a wrapper around any model
// optimizer: Poisson sampling of batches, per-example clipping to norm C through the model's
// ghost per-example gradients (never B materialised gradient vectors), Gaussian noise of
// standard deviation σ·C added to the clipped sum, normalisation by the expected batch size
// q·N (not the realised one, which would leak the batch size), then the wrapped optimizer's
// update. Every step is reported to an accounting hook before the step's result is used.
//
// Clipping is flat (each example's whole gradient to norm C) or per layer (Config.Clipping =
// per-layer; McMahan et al. 2018, Opacus' per_layer): the gradient of each parametrised layer
// l of the model is clipped to its own threshold C_l, from the model's per-layer ghost norms
// (model.PerExampleLayerNorms) and per-layer weighted sums (AccumulateWeightedPerLayer). The
// thresholds satisfy Σ_l C_l² = C² — given explicitly (LayerMaxGradNorms) or split equally,
// C_l = C/√L — so an example's clipped gradient still has norm at most C, the sensitivity the
// noise σ·C and the accountant assume: per-layer clipping changes utility, never ε.
//
// Invariants: the noise comes from the Noise the caller injects — cryptographically secure
// in production (dp.NewSecureNoise), seeded only in tests and reproducible simulations; an
// empty Poisson batch is a valid step (noise only); the model's layers must all support
// per-example gradients (checked up front by New, as Opacus' validator does).
//
// Main types: Config, Optimizer, and the PoissonSample helper.
package dpsgd
