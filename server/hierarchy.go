package server

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Relayed calls (hierarchical aggregation, issue 17 item 5). An intermediate aggregator
// (package aggregator) holds its clients' TLS connections and makes their calls to this
// server over one connection of its own, presenting its own certificate. Each relayed call
// carries the client's session token as usual and the client's identity in the metadata
// key RelayedClientKey; the aggregator puts it there only after verifying that client's
// certificate against the federation's CA on its own side. The server takes that identity
// as the caller's, in place of the certificate's, only when the certificate's identity is
// one of ServiceConfig.Aggregators; any other caller that names a relayed client is
// refused, so a client cannot pass for another by setting the key itself.
//
// What a listed aggregator is trusted with: to vouch for the identities of the clients it
// relays (as the CA vouches for certificates), and so to hold their sessions. It is not
// trusted with their data: uploads stay encrypted to the committee's key and signed with
// each client's own key, which the committee checks, so an aggregator that forges or
// alters an upload is caught as the server would be.
//
// One live session per identity (auth.go) applies to an aggregator's connection as a
// whole: every client relayed over it shares it, so a Join over it replaces the client's
// session there as a retry would. Whether that Join comes from the process that holds the
// session is for the aggregator to decide, as it alone sees its clients' connections; it
// applies the same rule to them (aggregator.Relay). A client relayed by one aggregator and
// joining directly, or through another, is refused while the first session is live. When
// an aggregator's connection closes, every client relayed over it goes offline at once:
// its subtree drops out of the round, and rejoins through the restarted aggregator.

// RelayedClientKey is the gRPC metadata key in which an aggregator names the client a
// relayed call is made for.
const RelayedClientKey = "confide-relayed-client"

// RelayedPeerKey is the metadata key in which an aggregator gives the address its client's
// call came from: the Join rate limit per peer address applies to it (keyed by aggregator
// and address), as to a direct client's, instead of to the aggregator's own address, which
// all its clients share.
const RelayedPeerKey = "confide-relayed-peer"

// joinPeer is the peer address a Join is rate-limited by: the relayed client's address
// behind its aggregator, or the caller's own.
func joinPeer(ctx context.Context, addr string) string {
	via, ok := relayOf(ctx)
	if !ok {
		return peerHost(addr)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RelayedPeerKey); len(v) == 1 && len(v[0]) <= 256 {
		return via + "/" + peerHost(v[0])
	}
	return via + "/" + peerHost(addr)
}

// CheckAggregators validates the certificate identities that may relay calls for clients:
// each must be a valid client name, listed once.
func CheckAggregators(names []string) error {
	for i, n := range names {
		if err := CheckClientName(n); err != nil {
			return fmt.Errorf("aggregator %d: %w", i, err)
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("aggregator %q is listed twice", n)
		}
	}
	return nil
}

type relayKey struct{}

// relayOf returns the aggregator that relayed the call, if one did.
func relayOf(ctx context.Context) (string, bool) {
	a, ok := ctx.Value(relayKey{}).(string)
	return a, ok
}

// relayed resolves the identity of a call that names a relayed client: that client's
// identity, certified by the aggregator whose certificate the call carries, and the
// context tagged with that aggregator. A call that names none is returned unchanged.
func (s *Service) relayed(ctx context.Context, id string, certified bool) (context.Context, string, bool, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(RelayedClientKey)
	if len(v) == 0 {
		return ctx, id, certified, nil
	}
	if !certified || !slices.Contains(s.cfg.Aggregators, id) {
		s.cfg.Metrics.rejected.WithLabelValues("relay_refused").Inc()
		who := "an uncertified caller"
		if certified {
			who = fmt.Sprintf("certificate %q, which is not a listed aggregator", id)
		}
		return nil, "", false, status.Errorf(codes.PermissionDenied, "a call relayed for client %q came from %s: only the aggregators named in the server's config (aggregators) may relay calls, over TLS with their own certificate", v[0], who)
	}
	if len(v) != 1 {
		return nil, "", false, status.Errorf(codes.InvalidArgument, "a relayed call names %d clients (%s), one expected", len(v), RelayedClientKey)
	}
	if err := CheckClientName(v[0]); err != nil {
		return nil, "", false, status.Errorf(codes.InvalidArgument, "relayed client: %v", err)
	}
	return context.WithValue(ctx, relayKey{}, id), v[0], true, nil
}
