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
//   - Signer, Verifier: a party's identity (its X.509 certificate from the federation's CA
//     and the key, Ed25519 or ECDSA P-256) and the CA's trust anchor; package identitytest
//     makes a CA and identities in memory for tests and simulations.
//   - Member: a key-committee member (ids 1…K). Holds an X25519 identity key and, after the
//     setup, a t-of-K Shamir share of the collective secret key.
//   - KeySetup: the server's side of the key setup.
//   - Encryptor: a client's encryption step (VerifyPublicKey: its check of the key).
//   - Aggregator: the server's side of a round: add, request shares, open spot checks,
//     combine, decode.
//   - Messages: KeyAnnouncement, Roster, Dealing, ShareDelivery, PublicKey (setup);
//     EncryptedUpdate, DecryptionRequest, Challenge, Opening, DecryptionShare (rounds).
//     AggregateResult is the output of a round.
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
// missed the dealing, receives the shares of exactly those dealers. The PublicKey message
// carries the roster and the dealers' public-key shares; a client recomputes the key from
// them (p0 = Σ shares, p1 = the roster's common polynomial).
//
// Each round, for each aggregate (a round has at most one per Purpose: fit updates,
// evaluation statistics):
//
//	client  → server    EncryptedUpdate    Encryptor.Encrypt             Aggregator.Add
//	server  → t members DecryptionRequest  Aggregator.DecryptionRequest  Member.Challenge
//	member  → server    Challenge          (returned by Challenge)       Aggregator.Open
//	server  → member    Opening            (returned by Open)            Member.DecryptionShare
//	member  → server    DecryptionShare    (returned)                    Aggregator.Combine
//
// (Without identities — the passive model below — there is no Challenge or Opening and a
// member answers the request with DecryptionShare(req) alone.)
//
// A client encodes the vector (w·u_1, …, w·u_d, w, 1) — its weighted update, its weight and a
// count of one — N values per ciphertext by coefficient encoding, encrypts it under the
// collective key, commits to the ciphertexts (a Merkle root, commitment.go) and signs the
// root with the round, purpose and task. The server validates each upload (session, round,
// purpose, client id, dimension, signature, commitment, and every ciphertext's degree,
// level, ring, scale, encoding and domain flags; the decoder also checks byte lengths and
// that coefficients are below Q) and adds it into one running sum per chunk, in parallel
// over chunks. To open the sum it picks t online members and sends each the same request:
// the sorted member set, the c1 polynomials and their AggregateID, and the signed
// commitments of the uploads it summed. Each member checks the request, records it as the
// one aggregate it decrypts for that round and purpose, and challenges s random leaves of
// the commitments; the server opens them; the member checks that the aggregate's c1 is the
// sum of the listed uploads' c1 there (spotcheck.go). It then turns its Shamir share into a
// t-of-t additive share for the set (mhe.Combiner) and returns c1·s'_i + e_i per chunk with
// flooding noise e_i (σ = FloodingSigma). The server adds the shares to c0 and decodes Σw·u,
// Σw and the count; it refuses the result if the decrypted count is not the number of
// updates it added. AggregateResult.Mean gives the weighted mean.
//
// Dropouts: a client that never uploads costs nothing. Up to K−t members may be absent at
// decryption, and up to K−t at dealing. A member of the chosen set that disappears after
// the request stalls that aggregate: the members that answered will only answer the same
// aggregate and set again (their answer is then byte-identical), so the server waits for
// the member or abandons the round's aggregate of that purpose; it cannot switch to another
// set or aggregate (see the invariants).
//
// # Trust model
//
// The aggregation server and the network are active adversaries: they may drop, replay,
// reorder, forge or substitute any message they relay. Fewer than t committee members
// collude with the server. The federation's certificate authority (an X.509 CA the operator
// runs) issues one identity per real client and is trusted. lattigo's multiparty protocols
// are secure only against passive adversaries, and the server relays every message, so
// secagg adds the checks below; a party given a Signer and a Verifier (MemberConfig,
// EncryptorConfig, AggregatorConfig.Verifier, NewAuthenticatedKeySetup) makes them. All
// signatures cover a SHA-256 digest of a domain-separated, length-prefixed encoding of the
// fields (identity.go), so a signature for one message, session, round or purpose is
// worthless for another.
//
//   - Signed announcements, over (session, parameters digest, committee, member id, X25519
//     key); a member checks every roster entry against the CA before dealing, a client the
//     roster of the key, KeySetup each announcement. Against: an X25519 key substituted in
//     the roster (the server would read every sealed Shamir share to it), a seat moved to
//     another identity, session or committee, a lowered threshold or minimum.
//   - Distinct identities in the roster (member, client, KeySetup). Against: one client
//     holding several seats.
//   - Signed dealings, over (session, roster digest, dealer id, its public-key share, the
//     digest of its sealed shares) (KeySetup, client). Against: a forged or altered
//     public-key share, a dealing moved to another dealer or roster.
//   - A verifiable public key: the client recomputes it from the signed shares of at least
//     t distinct roster members and checks the committee against its own floors
//     (VerifyPublicKey, NewEncryptor). Against: a substituted collective key, one whose
//     secret the server or fewer than t members know, a weakened committee.
//   - Signed uploads, over (session, round, purpose, task id, dimension, commitment to c1
//     and c0) (Aggregator, member). Against: forged uploads, an upload replayed into another
//     round, purpose or session, uploads altered in transit.
//   - A request lists the signed commitments of ≥ m uploads by distinct certified
//     identities, each signed for this session, round and purpose, and Count is their
//     number (member). Against: an "aggregate" of fewer than m clients (one client's
//     update), a client counted twice, a stale or foreign upload.
//   - One aggregate and one member set per (round, purpose), rounds strictly increasing per
//     purpose, recorded durably before the challenge leaves the member. Against: decrypting
//     A and then A minus one client (their difference is that client's update), re-adding
//     an upload into a second aggregate, going back to an earlier round.
//   - Spot checks: the aggregate's c1 equals the sum of the listed uploads' c1 at s random
//     leaves, each covering a position of every chunk (member). Against: an aggregate of
//     one honest upload and ciphertexts the server encrypted itself (or with unlisted
//     uploads added, or listed ones left out) presented with m genuine commitments.
//
// Sealed Shamir shares need no signature: once the roster's X25519 keys are authenticated,
// the static-static X25519 key agreement plus the AEAD (whose associated data binds session,
// parameters, dealer and recipient) authenticates each share's dealer; the server can
// neither read nor forge one.
//
// Spot checks: detection. A member draws its s leaves (MemberConfig.SpotChecks, default 8)
// by a PRF of its secret noise key over the aggregate's binding (content, commitments,
// round, purpose, count) only after recording the aggregate, so the server commits before
// it can know them, and each member's leaves are independent. A leaf covers w coefficients
// (NTT slots) of every chunk's c1, w·chunks ≥ 32, so every chunk is checked at every leaf. A
// manipulation that makes the aggregate differ from the listed uploads' sum at a fraction f
// of the leaves goes unnoticed by one member with probability at most (1−f)^s, and by all
// t' honest members of the set (t' ≥ 1, as fewer than t collude) with (1−f)^(s·t'); one
// refusal stops the decryption. Replacing, adding or dropping an upload, even in one chunk
// only, changes that chunk's c1 at almost every slot (f ≈ 1), so it is caught for certain.
// A server that alters only a few slots (f = 1/N per slot) can learn the NTT evaluations
// of the collective secret at those slots from the decrypted result (a hidden-number
// computation, as the sum is small next to Q); a key or an individual update would need
// most of the N slots, and we know of no way to exploit fewer, but the protocol does not
// prove that: detection compounds over rounds as 1 − exp(−s·t'·Σf).
//
//	f       s = 1, t' = 1   s = 8, t' = 1   s = 8, t' = 6   s = 32, t' = 6
//	1/2     0.5             0.996           1 − 2^−48       1 − 2^−192
//	1/16    0.063           0.40            0.95            1 − 4·10^−6
//	1/256   0.0039          0.031           0.17            0.53
//
// A server that can challenge ⌊K/t⌋ disjoint sets on the same aggregate (each member binds
// itself to the first set it is challenged with) gets that many tries per round and
// purpose. A refusal with ErrSpotCheck, ErrUnauthenticated, ErrDuplicate or ErrStaleRound is
// the server misbehaving: the runtime should report it, not retry it.
//
// Costs, measured at d = 10^6 (62 ciphertexts at LogN 14; leaf width 1, 16384 leaves, depth
// 14), one goroutine, CPU time on a loaded 2-vCPU VM (`go test ./secagg -run - -bench
// 'EncryptAuthenticated|CommitUpload|SignUpload|AggregateAuthenticated|SpotCheck'`):
//
//   - Upload: +398 bytes with an Ed25519 identity (certificate 327 B from identitytest,
//     signature 64 B, a 6-byte task id) over the 16,253,708 of an unsigned one, 0.0024%;
//     an ECDSA P-256 identity (certificate 373 B from identitytest, signature ≤ 72 B) adds
//     about 450 B. Format version 2 added 39 bytes of fixed fields (purpose, task id,
//     commitment and length prefixes) to every upload.
//   - Client time: the commitment hashes c0 (in the encryption loop, while in cache) and
//     c1 (the leaves) with SHA-256, 19.6 MB of blocks: 18.6–19.8 ms of CPU (SHA-NI runs
//     at about 1 GB/s on this VM); signing 28 µs (Ed25519) or 44 µs (ECDSA). Encrypt with
//     a Signer took 1.09–1.13× the CPU time of Encrypt without (185–240 ms, interleaved
//     runs), so the 10% target is met only narrowly; the commitment is a fixed 16 bytes of
//     hashing per value, and a faster hash than SHA-256 would be the way down. Checking a
//     key (VerifyPublicKey) costs up to 2K signature checks (≈ 80 µs each) and K chain
//     verifications (≈ 150 µs, then cached), once per session.
//   - Public key: K dealers' shares, 8N bytes each: 1.32 MB at K = 10, LogN 14 (it was
//     0.26 MB with p0 and p1 only); a client needs it once per session. Announcement ≈ 450 B
//     (certificate and signature), dealing +64–72 B.
//   - Server: Add with a Verifier takes 20–44 ms of CPU per upload at d = 10^6 (signature
//     check, commitment recomputed, c1 copied) against 1.6–7.5 ms without, and keeps
//     8.19 bytes per value and upload to answer spot checks (8,191,968 bytes per upload at
//     d = 10^6: 0.82 GB for 100 uploads, 8.2 GB for 1000; Aggregator.KeptBytes). Open:
//     ≈ 160 µs per upload and member (5.0–5.2 ms for 32 uploads, s = 8).
//   - Member: the request grows by ≈ 450 bytes per listed upload (certificate, task id,
//     root, signature; 0.55% of its 8.1 MB c1 at 100 uploads); Challenge verifies one
//     signature per upload (≈ 80 µs; 7.1–7.3 ms for 32 uploads including the aggregate's
//     digest); the challenge is 65 + 4s bytes; the opening is 32 + s·(8·chunks·w +
//     32·log2(N/w)) bytes per upload, 7,584 at s = 8 (976 at s = 1, 30 kB at s = 32), so
//     0.76 MB for 100 uploads and 7.6 MB for 1000; checking it ≈ 23 µs per upload.
//
// What stays out of scope: a malicious or compromised CA (it could issue the server any
// number of identities); Sybils the CA issued, and clients colluding with the server (m
// counts certified identities, not honest ones: m−1 colluding uploaders and one honest one
// make an aggregate of m); range proofs on inputs (a certified client may encrypt any value
// below Q, including a count other than 1, or overflow the sum); t or more colluding
// members (they hold the key); revocation (a certificate is valid until it expires);
// availability (the server may drop anything, and a member that disappears after its
// challenge loses that round's aggregate). The decrypted count slot is checked by the
// server only, and is the number of listed uploads only if every uploader encrypted a
// count of one.
//
// Passive model. Without Signer and Verifier (nil, the zero config) every party behaves as
// before the active-server checks: messages carry no certificates or signatures, the
// Encryptor trusts the server's key, the Aggregator accepts any well-formed upload, and a
// member decrypts any aggregate the server reports to hold ≥ m updates (DecryptionShare
// alone) and refuses only a second member set for the same aggregate. This is secure only
// against a server that follows the protocol (honest-but-curious), and is kept for callers
// not yet migrated.
//
// Flooding noise σ = 2^30 hides the key-dependent noise of the aggregate with about 17–19
// bits of statistical margin (lattigo notes); a larger σ costs precision.
//
// # Invariants
//
//   - Inputs are never modified (an Aggregator with a Verifier keeps a copy of what it
//     needs). UnmarshalBinary never allocates more than the message's own length and checks
//     exact lengths before reading polynomials; malformed input is an error, never a panic.
//   - An aggregate never overflows: NewParameters refuses budgets where MaxContributors ×
//     max(ClipBound·MaxWeight, MaxWeight, 1) × Δ could reach Q/8; the Encryptor refuses
//     |u_j| > ClipBound, non-finite values and weights outside (0, MaxWeight]; the Aggregator
//     refuses more than MaxContributors updates and a second update from a client id.
//   - A member never decrypts an aggregate (identified by its content) for two different
//     member sets, never for a set other than exactly t members including itself, and never
//     an aggregate reported to hold fewer than m or more than MaxContributors updates. A
//     verifying member also decrypts at most one aggregate per (round, purpose), never one
//     of an earlier round than it already agreed to, and only of ≥ m uploads of distinct
//     certified identities signed for it, after its spot checks pass. Its records are part
//     of its persisted state; the flooding noise is a PRF of (member secret, aggregate, set,
//     chunk) and the spot-check leaves a PRF of (member secret, binding), so a repeated
//     request is answered identically and averaging repeated answers gains nothing.
//   - State to persist: Member.MarshalBinary after NewMember, Deal, ReceiveShares,
//     Challenge and DecryptionShare (before sending); for KeySetup the accepted messages
//     (replay them). Aggregator state lives for one round and is not persisted. A member
//     state of format version 1 (before the active-server model) still loads, as a passive
//     member; it is written back as version 2.
//   - Concurrency: Parameters, PublicKey, Signer and Verifier are read-only (the Verifier's
//     cache is locked) and shareable; each party is used by one goroutine at a time and
//     parallelises internally with one lattigo encoder or evaluator ShallowCopy and its own
//     buffers per worker.
//   - Randomness comes from crypto/rand (directly or through lattigo's sampling.NewPRNG)
//     unless a party is given a Randomness (MemberConfig, EncryptorConfig,
//     LoadMemberWithConfig). DeterministicRandomness, for tests and simulations only,
//     derives every draw from (seed, label) and its context, so that two runs are
//     byte-identical; it makes every secret recomputable from the seed. lattigo keeps the
//     samplers of key generation, public-key encryption and the Shamir polynomial
//     internal, so in deterministic mode only secagg re-derives those four steps on
//     lattigo's ring samplers (sampling.go, cross-checked against lattigo in the tests);
//     the default (production) path calls lattigo's KeyGenerator, PublicKeyGenProtocol,
//     Thresholdizer and Encryptor directly. The server's KeySetup and Aggregator draw
//     nothing secret. Ed25519 signatures are deterministic, so a simulation with
//     identitytest identities stays byte-identical; ECDSA signatures are not.
//     Tests can also fix crypto/rand with testing/cryptotest.SetGlobalRandom.
//   - Time: a Verifier checks certificates against the clock it was given (NewVerifier;
//     nil is time.Now), the only clock secagg reads.
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
