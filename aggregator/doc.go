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
// Stateless: a Relay keeps only its clients' session tokens and connections, which a
// restart loses together with those connections; the clients rejoin, through it or
// another aggregator, as after any lost connection.
//
// Not built yet (see the "Hierarchical aggregation" section of secagg/doc.go for the
// secure-aggregation layer that is): summing the uploads of a round into a secagg.Subtotal
// and forwarding one PartialSum, and answering opening challenges. Until then every upload
// is relayed on its own, so the server's ingress bytes are those of a flat federation.
package aggregator
