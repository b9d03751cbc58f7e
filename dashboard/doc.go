// Package dashboard serves a read-only web page that shows a running federation at a
// glance: its state and round, clients online, the ε spent (worst client and mean) and the
// DP settings; charts per round of accuracy, loss, ε, bytes, round time and dropouts; a
// table of clients (last seen, rounds, ε, refusals); the key committee (session, holders
// online against the threshold t); and the checkpoints, for download. `confide server
// --dashboard ADDR` and `confide sim --serve ADDR` serve it.
//
// It reads a Source: a Snapshot of the state and a signal after each change. The server
// package implements it (server.Live, fed by a gRPC Service or the simulator's in-memory
// network); this package imports only the standard library, so the runtime can feed it
// without depending on anything above it.
//
// # What it shows
//
// Only what the aggregation server holds anyway: its configuration, its round records
// (the released aggregates: evaluation metrics, the contributors' mean training loss,
// counts of contributors, dropouts and refusals), its registry of clients with their
// liveness, its own privacy accounting of each client (from the DP-SGD tasks it issued,
// whose schedule does not depend on the client's data, or what the client reported) and
// the committee's membership. No statistic of an individual client's data appears.
//
// # HTTP surface
//
//	GET /                    the page (assets embedded with go:embed, no external requests)
//	GET /static/…            its script, styles and icon
//	GET /api/status          the snapshot as JSON, with every round's record
//	GET /api/events          server-sent events: "status" (the snapshot without the rounds)
//	                         on connecting, after changes and every Refresh; "round" for
//	                         every round record new or changed since last sent
//	GET /checkpoints/NAME    a *.confide file of the checkpoint directory
//
// Every other method is refused (the dashboard changes nothing). With Config.Token set,
// every request must carry the operator token, as a bearer token or as the password of
// HTTP basic authentication; Listen serves over TLS when given a configuration. The page
// allows scripts, styles and connections from its own origin only (Content-Security-Policy)
// and builds its DOM from text, never from markup it received.
//
// Main types: Source, Snapshot, Handler (New), Server (Listen), Broadcast.
package dashboard
