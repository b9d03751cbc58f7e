package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/confide-fl/confide/aggregator"
	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/wire"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

func init() { registerCommand(newAggregatorCmd) }

type aggregatorOptions struct {
	upstream, listen           string
	ca, tlsCert, tlsKey        string
	upstreamCert, upstreamKey  string
	insecure, relayOnly        bool
	clientTimeout, drainPeriod time.Duration
}

func newAggregatorCmd(g *globalOptions) *cobra.Command {
	var o aggregatorOptions
	cmd := &cobra.Command{
		Use:   "aggregator",
		Short: "Relay a subtree of clients to a federation's server (hierarchical aggregation)",
		Long: `Run an intermediate aggregator: clients dial it (confide client --server ADDR) as
they would the server, and it makes their calls to the server (--upstream) over one
connection of its own, presenting its own certificate (--upstream-cert, --upstream-key)
and vouching for each client's identity, which it verifies against the federation's CA
(--ca). The server accepts relayed calls only from the aggregator identities listed in
its config (aggregators, --aggregators). Clients need no change; the wire format is the
server's.

Under secure aggregation with TLS the aggregator sums its clients' fit uploads: it
checks each (certificate against --ca, signature, commitment) as the server would,
forwards the client's result with the upload's commitment in its place, and sends the
server one partial sum of the round with every summed client's signed commitment when the
server asks for it; it opens its uploads for the key committee's spot checks. Only sums
leave it, so the server receives one upload per aggregator instead of one per client.
--relay-only relays every upload as it is instead.

The aggregator keeps nothing across restarts: its clients rejoin, and the uploads it held
for the running round are lost from that round only (the server counts those clients as
dropped).

Every flag can also come from the config file or CONFIDE_<FLAG> (CONFIDE_UPSTREAM).`,
		Example: `  confide ca issue --dir pki --name agg-0            # the aggregator's identity, for the server
  confide ca issue --dir pki --server --name agg-0-listen --host 127.0.0.1
  confide aggregator --upstream 127.0.0.1:7070 --listen 127.0.0.1:7071 --ca pki/ca.crt \
    --tls-cert pki/agg-0-listen.crt --tls-key pki/agg-0-listen.key \
    --upstream-cert pki/agg-0.crt --upstream-key pki/agg-0.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAggregator(ctx, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.upstream, "upstream", "", "address of the federation's server (host:port)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7071", "address clients dial")
	f.StringVar(&o.ca, "ca", "", "the federation's CA certificate, PEM: verifies the clients and the server")
	f.StringVar(&o.tlsCert, "tls-cert", "", "the certificate clients see, PEM (a server certificate from 'confide ca issue --server')")
	f.StringVar(&o.tlsKey, "tls-key", "", "the key of --tls-cert, PEM")
	f.StringVar(&o.upstreamCert, "upstream-cert", "", "the aggregator's own certificate, PEM, presented to the server (its name must be in the server's aggregators)")
	f.StringVar(&o.upstreamKey, "upstream-key", "", "the key of --upstream-cert, PEM")
	f.BoolVar(&o.relayOnly, "relay-only", false, "relay every upload as it is instead of summing the round's uploads (the server's ingress is then a flat federation's)")
	f.BoolVar(&o.insecure, "insecure", false, "plaintext on both sides, identities unauthenticated (tests on a trusted network only)")
	f.DurationVar(&o.clientTimeout, "client-timeout", 30*time.Second, "a client not heard from for this long may join again over another connection (use the server's deadlines.client_timeout)")
	f.DurationVar(&o.drainPeriod, "drain", 5*time.Second, "on shutdown, how long calls in flight may finish")
	return cmd
}

// aggregatorCredentials checks the aggregator's transport flags and returns the
// credentials of its two sides: the listener's and the upstream dial's.
func aggregatorCredentials(o aggregatorOptions) (listen, upstream credentials.TransportCredentials, err error) {
	flags := []struct{ flag, val string }{
		{"--ca", o.ca}, {"--tls-cert", o.tlsCert}, {"--tls-key", o.tlsKey}, {"--upstream-cert", o.upstreamCert}, {"--upstream-key", o.upstreamKey},
	}
	set := false
	for _, f := range flags {
		set = set || f.val != ""
	}
	switch {
	case o.insecure && set:
		return nil, nil, &exitError{code: exitUsage, err: errors.New("--insecure with --ca, --tls-cert, --tls-key, --upstream-cert or --upstream-key: choose TLS or plaintext")}
	case o.insecure:
		slog.Warn("--insecure: plaintext gRPC on both sides; clients are whoever they say they are (for tests on a trusted network only)")
		return insecure.NewCredentials(), insecure.NewCredentials(), nil
	}
	for _, f := range flags {
		if f.val == "" {
			return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("%s is not set: the aggregator needs --ca, --tls-cert and --tls-key (its side towards the clients) and --upstream-cert and --upstream-key (its identity towards the server), or --insecure for tests", f.flag)}
		}
	}
	lt, err := server.TLSConfig(o.tlsCert, o.tlsKey, o.ca)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("%w (check --tls-cert, --tls-key and --ca)", err)}
	}
	ut, err := client.TLSConfig(o.ca, o.upstreamCert, o.upstreamKey)
	if err != nil {
		return nil, nil, &exitError{code: exitUsage, err: fmt.Errorf("%w (check --ca, --upstream-cert and --upstream-key)", err)}
	}
	return credentials.NewTLS(lt), credentials.NewTLS(ut), nil
}

func runAggregator(ctx context.Context, g *globalOptions, o aggregatorOptions) error {
	if o.upstream == "" {
		return &exitError{code: exitUsage, err: errors.New("--upstream is not set: give the federation server's address (host:port)")}
	}
	if o.clientTimeout <= 0 {
		return &exitError{code: exitUsage, err: fmt.Errorf("--client-timeout %v: must be positive", o.clientTimeout)}
	}
	listenCreds, upCreds, err := aggregatorCredentials(o)
	if err != nil {
		return err
	}
	up, err := grpc.NewClient(o.upstream, append(wire.DialOptions(), grpc.WithTransportCredentials(upCreds))...)
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("--upstream %s: %w", o.upstream, err)}
	}
	defer up.Close()
	cfg := aggregator.Config{ClientTimeout: o.clientTimeout, Logger: slog.Default()}
	if !o.insecure && !o.relayOnly {
		if cfg.Verifier, cfg.Name, err = aggregatorIdentity(o); err != nil {
			return err
		}
	}
	relay := aggregator.New(up, cfg)
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	go relay.Run(workCtx)
	gs := relay.NewGRPCServer(grpc.Creds(listenCreds))
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	slog.Info("aggregator listening", "addr", lis.Addr().String(), "upstream", o.upstream)
	g.announce(os.Stderr, "confide aggregator listening on %s, relaying to %s", lis.Addr(), o.upstream)
	select {
	case err := <-served:
		return fmt.Errorf("aggregator: serve: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(o.drainPeriod):
		gs.Stop()
	}
	return nil
}

// aggregatorIdentity returns what summing needs: a verifier of the clients' uploads (the
// federation's CA, --ca) and the aggregator's name at the server (--upstream-cert's
// subject).
func aggregatorIdentity(o aggregatorOptions) (*secagg.Verifier, string, error) {
	caPEM, err := os.ReadFile(o.ca)
	if err != nil {
		return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("--ca: %w", err)}
	}
	v, err := secagg.NewVerifierFromPEM(caPEM, nil)
	if err != nil {
		return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("--ca %s: %w", o.ca, err)}
	}
	kp, err := tls.LoadX509KeyPair(o.upstreamCert, o.upstreamKey)
	if err != nil {
		return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("--upstream-cert, --upstream-key: %w", err)}
	}
	return v, kp.Leaf.Subject.CommonName, nil
}
