// Package sim runs federated experiments with many virtual clients in one process, on the
// code a deployment runs (DESIGN.md, invariant 4): the round coordinator of package server
// with its strategies, deadlines and secure-aggregation committee, and for every client the
// round logic and trainer of package client (client.Party, client.ModelTrainer: DP-SGD,
// privacy ledger, secagg member and encryptor). Only the transport is simulated.
//
// # Transports
//
// The memory transport (the default) drives server.Coordinator through the seam described
// in server/doc.go, in virtual time: tasks are delivered at once, a client works on one task
// at a time, and its result arrives after a virtual duration (latency plus examples ×
// epochs × example time, times the client's speed factor); ticks jump from event to
// event, never past the coordinator's next deadline, with a heartbeat from every connected
// client every half client timeout. Who is late, who drops out and who is available are
// decided by the virtual clock and the seed, never by how fast the machine is, so a run is
// reproducible. The grpc and grpc-tcp transports run the real gRPC service
// (server.Service) and client loop (client.Run) over an in-process or loopback connection
// in real time, for full fidelity at small scale (up to 2,000 clients, every one connected:
// heterogeneity needs the memory transport). They see the coordinator through its records
// only: per-round sample sizes and failure kinds are not reported, and traffic is the
// service's total.
//
// # Clients are materialised only while they work
//
// Between tasks a virtual client is its partition's indices (or nothing, for sample:N
// populations) and its store: privacy ledger and, for key-committee members, the secagg
// member state (in memory, or on disk under the results directory). For a task it is
// materialised on one of a pool of GOMAXPROCS workers: a dataset view gathered into the
// worker's buffers, a client.ModelTrainer over its ledger that borrows the worker's model
// (client.Models), and a client.Party; all are dropped after the task. A model with a
// fixed feature stage (model.Spec.Features, e.g. the scattering transform) has it computed
// once per run, on the whole training and test sets (train.Featurize): views gather the
// client's rows of the features, the client trains only the layers after the stage (all
// the parameter vector holds), and the central evaluation reads the test set's features;
// the saved model keeps the stage, so it reads raw inputs.
//
// # Heterogeneity
//
// Per-client speed factors are log-normal (HeterogeneityConfig.SpeedSigma); a sampled
// client crashes during its fit task with probability Dropout (it stops answering and
// heartbeating, and restarts before the next round); each client is available in a round
// with probability Availability (idle clients disconnect and reconnect accordingly). Every
// draw is a hash of (seed, client, round, purpose).
//
// # Privacy and determinism
//
// Each client's ε is its own ledger's: record-level DP of its data under DP-SGD, composed
// over the rounds it trained in by the accountant of dp.accountant (RDP by default, or
// PRV; the ledgers record it and the server accounts with it too); the summary reports the
// worst case and the mean over clients, at Config.DP.Delta. DP noise and Poisson sampling come from
// crypto/rand unless DP.DeterministicNoise asks for generators seeded from the run's seed,
// which the summary then states; without DP-SGD, local shuffling is always seeded. Secure
// aggregation draws its keys, encryption randomness and flooding noise from crypto/rand
// too, unless DP.DeterministicNoise is set: then each client's come from
// secagg.DeterministicRandomness(seed, client id) (memory transport), and runs with secure
// aggregation on are bit-for-bit identical as well. Otherwise metrics agree across runs
// only to the precision of the CKKS decryption (about 1e-4 per coordinate of the
// aggregate).
//
// With DP.UserLevel on, the rounds also run DP-FedAvg (see server.UserLevelDPConfig):
// clients_per_round is the expected cohort of Poisson sampling, updates are clipped on the
// clients, and the coordinator (central mode) or the clients (distributed mode) add the
// Gaussian noise from crypto/rand, or from generators seeded by the run's seed under
// DP.DeterministicNoise. The summary's Privacy.UserLevel reports the federation's
// user-level ε (q = clients_per_round / clients, T = rounds) beside the record-level ε of
// DP-SGD; each round's row carries the user-level ε so far and the round's clip norm.
//
// # Canary clients
//
// Options.Canaries adds clients after the partition's whose trainer answers their fit
// tasks with an update of the caller's choosing, through the real round logic (clipping,
// noise, secure aggregation), and Options.OnModel hands the caller every round's released
// model (the global model, or its average under strategy.ema_decay): what package audit needs to measure a federation's user-level DP empirically.
//
// # Output
//
// Run returns a Report (Summary and per-round RoundMetrics) and writes into the results
// directory summary.json, rounds.json, rounds.csv, config.yaml (the effective
// configuration), model.confide (the final global model) and PNG plots of accuracy, loss,
// ε and bytes per round. Options.OnProgress and OnRound feed live displays, and
// Options.Live the web dashboard (package dashboard; confide sim --serve).
//
// Main types: Config (with Default, WithDefaults, Validate), Options, Report, Summary,
// RoundMetrics, Progress; functions Run and LoadDataset.
package sim
