// Package strategy holds the federated aggregation strategies, with Flower's seam: a
// Strategy configures the clients' fit and evaluate tasks of a round and aggregates their
// results, failures included; it never does I/O, so the coordinator of a deployment and the
// simulator run the same code.
//
// Strategies work on the model's flat parameter vector and on client updates
// Δ_i = local_i − global. Aggregation sees either every update (FitResults.Updates, secure
// aggregation off) or only their decrypted weighted sum (FitResults.Sum, secure aggregation
// on); MeanUpdate turns either into Σ w_i Δ_i / Σ w_i.
//
//   - FedAvg (McMahan et al. 2017) and FedProx (Li et al. 2020; μ is sent to the clients,
//     aggregation is FedAvg's).
//   - FedAvgM (Hsu et al. 2019): server momentum on the mean update.
//   - FedAdagrad, FedAdam, FedYogi (Reddi et al. 2021, Algorithm 2): adaptive server
//     optimizers on the mean update.
//   - FedMedian (Yin et al. 2018), TrimmedMean (Yin et al. 2018) and Krum (Blanchard et al.
//     2017): robust aggregators that need every individual update, so they cannot run under
//     secure aggregation; Config.Validate says so.
//
// The server step of every non-robust strategy can decay over the rounds (LRSchedule:
// cosine or linear to a final fraction, Config.ServerLRDecay), so that the noise of the
// last rounds (DP noise, client sampling) moves the final model little.
//
// Any of them can release the exponential moving average of its global models instead of
// the latest one (EMA, Config.EMADecay; De et al. 2022): the clients train from the
// iterate, the server evaluates and saves the average (Averaging), which keeps less of the
// last rounds' noise and, being post-processing, costs no privacy; and the server can
// shrink the global model each round (WeightDecay, Config.WeightDecay), which bounds the
// random walk DP noise makes in the parameters the data hardly moves.
//
// Invariants: inputs are never modified (the global vector and the updates are read only;
// AggregateFit returns a new vector). Strategies with server-side state (momentum, moments)
// implement Stateful so a restarted server resumes them. A Strategy is used by one goroutine.
package strategy
