// Package server is Confide's aggregation server: the round coordinator and its
// configuration, the gRPC Service that drives it (chunked transfers, interceptors for
// panic recovery, authentication and logging, health, reflection, Prometheus metrics), and
// the Store the coordinator's records go to. Strategies live in server/strategy.
//
// The Service reads a pushed result's data only after the coordinator has confirmed that
// its task is outstanding and the caller's, and bounds it by what that task can produce
// (Coordinator.ResultLimit); buffers grow with the bytes received, and a client has one
// upload in flight at a time.
//
// # Transport security and client identity
//
// Deployed, the Service runs behind mutual TLS (TLSConfig, TLSCredentials,
// ServiceConfig.RequireClientCertificate): TLS 1.3, and a client must present a certificate
// of the federation's CA, whose subject common name is its identity. A Join must name that
// identity, later calls must carry the identity's session token over a connection with that
// certificate, and max_clients counts identities. An identity has one live session: a
// second Join is refused while the first session's connection is open and it was heard from
// within deadlines.client_timeout; a client that restarted (its old connection closed) or
// fell silent may join again, voiding the old token (see auth.go).
//
// This keeps out whoever holds no certificate of the CA, stops one client posing as
// another or running twice, makes a leaked session token useless without the key, and
// hides and protects the traffic from the network. It authenticates clients to the server,
// not to one another: a malicious server can still invent clients in what it relays, which
// the signed key material and uploads of secagg defend against. Out of scope: a malicious
// or compromised CA, Sybil identities the CA issued (it is trusted to issue one per real
// client), keys stolen from a client's machine, and revocation (no CRL or OCSP: a
// certificate is good until it expires, or until the server trusts another CA).
//
// # The coordinator
//
// Coordinator is a plain single-threaded state machine in the etcd raft style. Step takes
// one Event and returns a Ready:
//
//	events in:  Join, Leave, Heartbeat, ResultIn (a client's pushed result), Tick (time passed);
//	            from intermediate aggregators SourceResultIn and SourceGone (partials.go)
//	Ready out:  Persist  records to make durable first (ClientRecord, KeySetupRecord,
//	                     CommitteeRecord, RoundRecord with the new global model, PrivacyRecord,
//	                     UserLevelPrivacyRecord)
//	            Send     tasks for clients (fit, evaluate, key setup, decrypt)
//	            Revoke   queued tasks whose phase ended
//	            Notices  progress for metrics and logs (RoundStarted, RoundFinished, …)
//
// It reads no clock, starts no goroutine and touches no network or disk: time is the sum of
// the Tick events it has seen, randomness comes from Config.Seed, and DP noise from the
// injected Options.Noise. A refused event (unknown client or task, duplicate, late,
// malformed) returns a *RejectError naming the problem.
//
// A round: wait for Sampling.MinAvailable clients; under secure aggregation make sure a key
// committee is ready (else run a key setup: announce → roster/deal → deliver shares, each
// stage with a deadline; up to K−t members may miss dealing and receiving, a member missing
// the announcement restarts the setup without it); sample clients (FractionFit, at least
// MinFit); send each a fit task (global parameters, training and DP settings, strategy
// config, the collective public key); collect results until all answered or the fit deadline
// (stragglers count as dropped); with fewer than MinFit contributions the round fails and the
// model stays. Under secure aggregation the server only adds ciphertexts
// (secagg.Aggregator; behind intermediate aggregators, their partial sums too, see
// partials.go), asks the first t online committee members for decryption shares and
// obtains Σ w_i Δ_i and Σ w_i; otherwise it holds the plaintext updates. The strategy turns
// either into the next global model; then central evaluation (Options.Central), a
// RoundRecord checkpoint, and federated evaluation if configured. A round that fails still
// counts towards Config.Rounds.
//
// # User-level DP
//
// With Config.DP.UserLevel on, rounds run DP-FedAvg (McMahan et al. 2018): each online
// client is sampled independently with probability m / (clients online) for m =
// expected_clients; every fit task carries the round's clip norm S (update_clip_norm) and a
// UserLevelDPSpec; clients clip their update to S and weigh 1. The sum of the updates
// (decrypted, or added up in the clear) gets Gaussian noise of standard deviation z·S and is
// divided by m, not by the number that reported, before the strategy sees it as a
// WeightedSum; strategies that need individual updates are refused. In central mode the
// coordinator draws all of the noise, from Options.Noise (never from a global source), and
// is trusted with the un-noised sum. In distributed mode each client adds N(0, z²S²/m_min)
// before encrypting, where m_min is secure_aggregation.min_contributions (default
// ⌊m − 2√m⌋), the fewest updates the key committee decrypts a sum of: every sum that is
// ever decrypted already carries at least the accounted noise, so neither the server nor
// the committee ever sees less, and the coordinator adds nothing. A round with fewer than
// m_min updates fails unreleased (it still counts for the accountant). Adaptive clipping
// (Andrew et al. 2021) has clients append the centred indicator 1[‖Δ‖ ≤ S] − ½
// (sensitivity ½) to their encrypted vector, so only the noisy count is revealed; the clip
// moves geometrically towards the target quantile and the update's noise multiplier rises
// so that update and count together cost exactly z. After every round that sampled clients
// the coordinator persists a UserLevelPrivacyRecord: ε at dp.user_level.delta of the
// subsampled Gaussian with q = m / (fewest clients online at a sampling) and T = rounds so
// far; successful rounds also carry it in their metrics (user_epsilon, user_delta,
// update_clip, noise_std, server_noise_std, sum_noise_std — the least noise on any
// released sum — and with adaptive clipping count_noise_std, unclipped_fraction and
// next_update_clip).
//
// # The transport seam
//
// Anything that can deliver tasks and results drives the coordinator: the gRPC service of
// this package, or the simulator's in-memory network. A driver must
//
//  1. turn what it sees into events: Join on registration, Heartbeat on any call, ResultIn
//     with the blobs' data filled in, and Tick at a regular interval (in virtual time for
//     a simulation);
//  2. for every Ready, write Persist durably before delivering Send and Revoke, and keep
//     a per-client queue of tasks that the client pulls;
//  3. step the coordinator from one goroutine at a time;
//  4. run the central evaluations a Ready lists (Evaluate, with CentralEvaluator) outside
//     Step, one at a time, and answer each with an Evaluated event: the coordinator
//     persists it (EvaluationRecord) and finishes only once the last one is back. The
//     service runs them on a goroutine of their own, so a large test set never holds up
//     heartbeats; the simulator runs them at once.
//
// Both drivers apply every Ready through Driver.Apply, which keeps that order (persist,
// send, revoke, evaluations, notices) in one place; each supplies what delivering means for
// it (mailboxes clients pull, or virtual clients in simulated time).
//
// On the client side the same role is played by client.Party.Handle (task in, result out).
// The coordinator tests in this package are such a driver, with clients that drop out,
// straggle, replay and tamper.
package server
