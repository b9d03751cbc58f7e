// Package aggregator is the intermediate node of hierarchical aggregation (issue 17,
// item 5): it sits between a subtree of clients and the federation's server, so that the
// server holds one connection per aggregator instead of one per client.
//
// What is built: Relay, the relay of the federation's calls. Clients dial the aggregator
// as they would the server (the same confide.v1.Federation service, the same TLS); the
// aggregator makes each call upstream over its own connection, presenting its own
// certificate and naming the client whose certificate it verified in the metadata key
// server.RelayedClientKey. The server accepts that only from the aggregator identities in
// its config (server.ServiceConfig.Aggregators; see server/hierarchy.go for the trust
// model). Join, PullTask, PushResult, Heartbeat and Leave are forwarded unchanged, chunk
// by chunk, so the wire format between client and server is the same as without an
// aggregator, and a client needs no change to use one.
//
// Sessions: the server applies its one-live-session-per-identity rule to the aggregator's
// connection as a whole; the aggregator applies it to its own clients' connections (a Join
// for an identity whose session is live on another open downstream connection is
// refused), since only it sees them.
//
// Stateless: a Relay keeps only its clients' session tokens and connections, and the
// subtotals of the running round, which a restart loses; the clients rejoin, through it or
// another aggregator, as after any lost connection, and the server drops the uploads the
// aggregator held from that round only.
//
// Summing (summing.go; Config.Verifier and Name): under authenticated secure aggregation
// the relay keeps its clients' fit uploads instead of relaying them. It checks each as the
// server's Aggregator would (secagg.Subtotal.Check), forwards the client's result with the
// upload's commitment root in its place, adds the upload to the round's secagg.Subtotal
// once the server accepted that result, and forwards one secagg.PartialSum with every
// summed client's signed commitment when the server asks for it (Run pulls the server's
// tasks for the aggregator over the Aggregation service); it opens its uploads for the key
// committee's spot checks the server relays. Only sums leave it, so the server's ingress
// is one upload per aggregator and round (server/partials.go has the server's side).
// Evaluation and statistics uploads are still relayed one by one. It also relays the
// closing of a client's connection (ClientsDisconnected), which the server would see
// itself for a direct client.
package aggregator
