// Package client is Confide's client SDK: the per-round logic of a federation client
// (Party), the Trainer interface through which any Go program brings its local training, a
// built-in trainer for Confide models with DP-SGD and a persistent privacy ledger
// (ModelTrainer), and Run, which joins a server over gRPC and serves its tasks.
//
// # Round logic without a transport
//
// Party.Handle takes a task (confidev1.Task with its blobs) and returns the result to push:
//
//	fit        train through the Trainer with the server's DP-SGD schedule (σ, q, steps),
//	           form Δ = local − global, clip ‖Δ‖₂ to the task's bound (DP-FedAvg user-level
//	           clipping), and send Δ in the clear, or under secure aggregation only the
//	           encryption of (w·Δ, [centred clip indicator], [w·statistics], w, 1) under the
//	           committee's key
//	evaluate   Trainer.Evaluate on local test data (never the training data), at most
//	           MaxEvaluationsPerRound times a round; under secure aggregation only the
//	           encryption of (w·statistics, w, 1)
//	key setup  as a key-committee member: announce, deal, receive Shamir shares (secagg.Member)
//	decrypt    answer a decryption request for an aggregate with a decryption share
//	statistics the dataset's column sums over the client's own file (ColumnStatistician),
//	           with Gaussian noise over one row's sensitivity charged to the ledger first:
//	           all of it in the clear, the client's share encrypted under secure aggregation
//
// Nothing computed from the local data leaves in the clear. Under secure aggregation the
// loss and accuracy travel as bounded slots of the encrypted vector (a StatisticsSpec says
// how) and the example count only inside the encrypted weight; the one clear-text metric is
// "epsilon", which follows from the tasks the client took. Without secure aggregation a
// fit result holds only the update, and evaluate tasks are refused, unless the operator
// opts in (PartyConfig.ShareStatistics): then a noised example count and noised
// evaluation sums, each a Gaussian mechanism the Trainer charges to its ledger first
// (StatisticsAccountant). A Trainer's error reaches the server only as a generic reason
// unless it is a privacy refusal or wrapped in TaskError (computed from the task alone);
// the detail goes to PartyConfig.Logger.
//
// A refusal on privacy grounds (the Trainer returns an error wrapping ErrBudgetExceeded)
// becomes a result with status REFUSED_PRIVACY_BUDGET, so the server knows why. The client's
// floors are its own: fit tasks whose DP-SGD noise multiplier is below
// PartyConfig.MinNoiseMultiplier are refused before training (with 0 as the floor, tasks
// without DP-SGD are accepted: only for a client without a budget), and so are DP tasks
// without a server-fixed schedule. A client that requires secure aggregation
// (PartyConfig.RequireSecureAggregation, the default of `confide client`) refuses fit tasks
// without it before training, with status FAILED and ErrPlaintextRefused as the reason.
// Members and encrypting clients never take part in a committee weaker than t = 2, m = 2,
// K = 2 or flooding noise 2^30 (PartyConfig.MinThreshold, MinContributions,
// MinCommitteeSize, MinFloodingSigma raise the floors). Member states are written to the
// Store before their messages are returned.
//
// # The transport seam
//
// RunWith is a thin loop around Party (join, pull, handle, push, heartbeat; reconnect with
// exponential backoff and jitter; join again when the session is lost; push a finished
// result again until the server takes it or says its task is gone, since its privacy is
// already spent; stop when the client's own state cannot be saved) over a Transport,
// a five-method interface (Join, Pull, Push, Heartbeat, Leave). Run uses GRPCTransport,
// which streams payloads in chunks; a simulator either implements Transport in memory over a
// server.Coordinator, or, for thousands of virtual clients, calls Party.Handle directly
// (see package server for the coordinator's side of the seam). RunVirtual hosts a fleet of
// such clients in one process against a real server (confide client --virtual N), each a
// Run of its own with its own name, identity, Store, ledger and Trainer.
//
// # Privacy
//
// ModelTrainer trains with DP-SGD (train.Trainer with DP enabled: Poisson sampling,
// per-example clipping, Gaussian noise from a cryptographically secure source). Given a
// budget (ModelTrainerConfig.Budget, a dp.Budget) it keeps the client's privacy ledger, a
// dp.Ledger opened by OpenLedger: the file LedgerName of a DirStore's directory (durable,
// checksummed, its budget pinned, locked against a second process until
// ModelTrainer.Close), or the same content as an entry of any other Store (MemoryStore in
// the simulator). Before training it checks that the planned steps keep ε within the
// budget, refusing the task otherwise (and refusing tasks without DP-SGD noise outright);
// it charges the steps before it releases the parameters. A larger budget than the
// ledger's is refused unless ModelTrainerConfig.RaiseBudget asks for it, and the raise is
// recorded. Without a budget the trainer keeps no ledger and refuses nothing on privacy
// grounds: its updates carry no record-level DP guarantee that the client accounts for.
//
// # Bringing your own model
//
// A Trainer with its own model and loop reuses the same pieces: PrivacyAccount (the
// ledger, Admit before training, Charge before the update leaves; what ModelTrainer
// itself uses), dpsgd.PoissonSample and dpsgd.Gradients for DP-SGD on per-example
// gradients it computes, and Run, whose Party encrypts the update for secure aggregation
// whatever the Trainer (examples/sdk/customtrainer). A client that brings its own files
// reads them with the federation's dataset schema (ModelTrainerConfig.Source, DataSource).
package client
