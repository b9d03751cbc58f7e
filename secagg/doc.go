// Package secagg is Confide's secure aggregation: the server learns only the weighted sum of
// the clients' update vectors, through threshold multiparty CKKS (lattigo v5: he/hefloat,
// core/rlwe, mhe). Every party is a single-threaded state machine with no I/O — structs in,
// structs out, every message marshals to bytes — so the federation runtime carries the
// messages over gRPC and the simulator in memory.
//
// # Parties and main types
//
//   - Parameters (from a ParametersLiteral via NewParameters): ring degree, the single
//     ciphertext prime, scale Δ, flooding noise σ, and the overflow budget (ClipBound,
//     MaxWeight, MaxContributors). CommitteeConfig: K members, threshold t, minimum m.
//   - Member: a key-committee member (ids 1…K). Holds an X25519 identity key and, after the
//     setup, a t-of-K Shamir share of the collective secret key.
//   - KeySetup: the server's side of the key setup.
//   - Encryptor: a client's encryption step.
//   - Aggregator: the server's side of a round: add, request shares, combine, decode.
//   - Messages: KeyAnnouncement, Roster, Dealing, ShareDelivery, PublicKey (setup);
//     EncryptedUpdate, DecryptionRequest, DecryptionShare (rounds). AggregateResult is the
//     output of a round.
//
// # Message flow
//
// Key setup (once per session; every member must be reachable at the start):
//
//	member  → server   KeyAnnouncement   Member.Announcement          KeySetup.AddAnnouncement
//	server  → members  Roster            KeySetup.Roster              Member.Deal
//	member  → server   Dealing           (returned by Deal)           KeySetup.AddDealing
//	server  → members  ShareDelivery     KeySetup.Finalize            Member.ReceiveShares
//	server  → clients  PublicKey         (returned by Finalize)       NewEncryptor
//
// In Deal each member draws a secret s_i, its share of the collective public key
// (mhe.PublicKeyGenProtocol, common polynomial from a seed hashed from the roster) and a
// Shamir polynomial of degree t−1 (mhe.Thresholdizer), and seals the share for member j to
// j's identity key (X25519 → HKDF-SHA256 → XChaCha20-Poly1305; the associated data binds
// session, parameters, dealer and recipient), itself included. Finalize needs at least t
// dealings: the collective key is Σ s_i over those dealers, and every member, even one that
// missed the dealing, receives the shares of exactly those dealers.
//
// Each round:
//
//	client  → server   EncryptedUpdate    Encryptor.EncryptUpdate       Aggregator.Add
//	server  → t members DecryptionRequest Aggregator.DecryptionRequest  Member.DecryptionShare
//	member  → server   DecryptionShare    (returned)                    Aggregator.Combine
//
// A client encodes the vector (w·u_1, …, w·u_d, w, 1) — its weighted update, its weight and a
// count of one — N values per ciphertext by coefficient encoding, and encrypts it under the
// collective key. The server validates each upload (session, round, client id, dimension, and
// every ciphertext's degree, level, ring, scale, encoding and domain flags; the decoder also
// checks byte lengths and that coefficients are below Q) and adds it into one running sum per
// chunk, in parallel over chunks. To open the sum it picks t online members and sends each
// the same request: the sorted member set, the reported count, the c1 polynomials and their
// AggregateID. Each member turns its Shamir share into a t-of-t additive share for that set
// (mhe.Combiner) and returns c1·s'_i + e_i per chunk with flooding noise e_i (σ =
// FloodingSigma). The server adds the shares to c0 and decodes Σw·u, Σw and the count; it
// refuses the result if the decrypted count is not the number of updates it added.
// AggregateResult.Mean gives the weighted mean.
//
// Dropouts: a client that never uploads costs nothing. Up to K−t members may be absent at
// decryption, and up to K−t at dealing. A member of the chosen set that disappears after
// the request stalls that aggregate: the members that answered will only answer the same
// set again (their answer is then byte-identical), so the server waits for the member or
// abandons the round's aggregate; it cannot switch to another set (see the invariants).
//
// # Trust model
//
// lattigo's multiparty protocols are secure against passive (honest-but-curious)
// adversaries only: parties follow the protocol and try to learn from what they see.
//
//   - The server sees uploads, sums, c1 polynomials and decryption shares. With fewer than t
//     colluding members it learns only the decrypted aggregates. It relays setup messages but
//     cannot read or forge sealed Shamir shares.
//   - Members decrypt only what the server asks. A member cannot check that a request's c1 is
//     really the sum of Count uploads: the "fewer than m contributions" refusal relies on the
//     server's report (DecryptionRequest.Count), as lattigo has no proofs of correct
//     aggregation. The decrypted count slot lets the server detect shares for another set
//     or aggregate (they garble every coefficient) and lets anyone who later sees the
//     decrypted result audit the report; a share corrupted only in chunks without the count
//     slot goes unnoticed, which the passive model accepts. An actively
//     malicious server (or t colluding members) is outside this model.
//   - Identity keys in the roster are relayed by the server; each member checks its own key
//     is there. Authenticating the others' keys (TLS identities, a PKI) is the runtime's job.
//   - Flooding noise σ = 2^30 hides the key-dependent noise of the aggregate with about
//     17–19 bits of statistical margin (lattigo notes); a larger σ costs precision.
//
// # Invariants
//
//   - Inputs are never modified. Messages decoded by UnmarshalBinary are checked for exact
//     length before any allocation; malformed input is an error, never a panic.
//   - An aggregate never overflows: NewParameters refuses budgets where MaxContributors ×
//     max(ClipBound·MaxWeight, MaxWeight, 1) × Δ could reach Q/8; the Encryptor refuses
//     |u_j| > ClipBound, non-finite values and weights outside (0, MaxWeight]; the Aggregator
//     refuses more than MaxContributors updates and a second update from a client id.
//   - A member never decrypts an aggregate (identified by its content) for two different
//     member sets, never for a set other than exactly t members including itself, and never
//     an aggregate reported to hold fewer than m or more than MaxContributors updates. Its
//     record of decrypted aggregates is part of its persisted state; the flooding noise is a
//     PRF of (member secret, aggregate, set, chunk), so a repeated request is answered
//     identically and averaging repeated answers gains nothing.
//   - State to persist: Member.MarshalBinary after NewMember, Deal, ReceiveShares and
//     DecryptionShare (before sending); for KeySetup the accepted messages (replay them).
//     Aggregator state lives for one round and is not persisted.
//   - Concurrency: Parameters and PublicKey are read-only and shareable; each party is used
//     by one goroutine at a time and parallelises internally with one lattigo encoder or
//     evaluator ShallowCopy and its own buffers per worker.
//   - Randomness comes from crypto/rand (directly or through lattigo's sampling.NewPRNG)
//     unless a party is given a Randomness (MemberConfig, EncryptorConfig,
//     LoadMemberWithRandomness). DeterministicRandomness, for tests and simulations only,
//     derives every draw from (seed, label) and its context, so that two runs are
//     byte-identical; it makes every secret recomputable from the seed. lattigo keeps the
//     samplers of key generation, public-key encryption and the Shamir polynomial
//     internal, so in deterministic mode only secagg re-derives those four steps on
//     lattigo's ring samplers (sampling.go, cross-checked against lattigo in the tests);
//     the default (production) path calls lattigo's KeyGenerator, PublicKeyGenProtocol,
//     Thresholdizer and Encryptor directly. The server's KeySetup and Aggregator draw
//     nothing secret.
//     Tests can also fix crypto/rand with testing/cryptotest.SetGlobalRandom.
//
// # Precision and cost
//
// With the defaults (LogN 14, one 60-bit prime, Δ = 2^45, σ = 2^30) each coordinate of the
// decrypted sum has error std Parameters.ErrorStd(t) ≈ 7.5e-5 at t = 6 (max ≈ 3.5e-4 over
// 10^5 coordinates), the sum stays exact up to |Σ| < 2^14, and an upload is 16 bytes per
// value (2.03× raw float64 at d = 10^6). `confide bench secagg` measures all of it.
//
// Ways to go lower. Writing coefficients in 60 bits instead of 64 saves 6% (1.91×). Packing
// several quantised values per coefficient: a coefficient must hold the flooding noise
// (log2(6·t·σ) ≈ 35 bits at the defaults), the sum's headroom (log2 M ≈ 10 bits) and the
// value bits, so one 60-bit prime fits one value, but a two-prime modulus (120 bits) fits
// three 18-bit values (≈ 1.3× raw float64) and three primes fit six 14-bit values (≈ 1.0×),
// at the cost of quantisation error and CRT decoding. The server's sum is memory-bound (it
// streams 16 bytes per value against 8 for float64; lazy modular reduction measured no
// gain), so its ratio to a plaintext sum falls with the bytes per value.
package secagg
