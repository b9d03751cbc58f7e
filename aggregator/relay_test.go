package aggregator_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/aggregator"
	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// shiftTrainer adds Shift to every parameter and reports N examples.
type shiftTrainer struct {
	Shift float64
	N     int
}

func (f shiftTrainer) Fit(_ context.Context, global []float64, _ client.FitConfig) (client.FitResult, error) {
	p := slices.Clone(global)
	for i := range p {
		p[i] += f.Shift
	}
	return client.FitResult{Params: p, NumExamples: f.N, Metrics: map[string]float64{"loss": 1}}, nil
}

func (f shiftTrainer) Evaluate(context.Context, []float64, client.EvaluateConfig) (client.EvaluateResult, error) {
	return client.EvaluateResult{NumExamples: f.N, Loss: 0.5}, nil
}

// federationPKI holds the PEM files of a test federation: a CA, server certificates for
// 127.0.0.1 (the root's and the aggregators' listening side), and client certificates.
type federationPKI struct {
	dir string
}

func newFederationPKI(t *testing.T, clients ...string) federationPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := pki.NewCA("test CA", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(dir, "ca", ca.Credential); err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer("listener", []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFiles(dir, "listener", srv); err != nil {
		t.Fatal(err)
	}
	for _, name := range clients {
		c, err := ca.IssueClient(name, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteFiles(dir, name, c); err != nil {
			t.Fatal(err)
		}
	}
	return federationPKI{dir}
}

func (p federationPKI) ca() string { return filepath.Join(p.dir, "ca.crt") }

// listenerTLS is the server side (the root's or an aggregator's): its certificate, and
// client certificates of the CA required.
func (p federationPKI) listenerTLS(t *testing.T) *tls.Config {
	tc, err := server.TLSConfig(pki.CertFile(p.dir, "listener"), pki.KeyFile(p.dir, "listener"), p.ca())
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// clientTLS is the dialling side of identity name (a client's, or an aggregator's upstream).
func (p federationPKI) clientTLS(t *testing.T, name string) *tls.Config {
	tc, err := client.TLSConfig(p.ca(), pki.CertFile(p.dir, name), pki.KeyFile(p.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// plainConfig is a federation of n clients, every one sampled each round, without DP or
// secure aggregation, on a small MLP.
func plainConfig(rounds, n int) server.Config {
	return server.Config{
		Rounds: rounds, Model: model.Spec{Type: model.TypeMLP, Input: 4, Hidden: []int{3}, Output: 2},
		Sampling:  server.SamplingConfig{FractionFit: 1, MinFit: n, MinAvailable: n},
		Deadlines: server.DeadlineConfig{Fit: time.Minute, ClientTimeout: 30 * time.Second},
		Training:  server.TrainingConfig{Epochs: 1, BatchSize: 8},
	}
}

// root is a federation server on loopback, under mutual TLS, that admits aggregators.
type root struct {
	store *server.MemoryStore // what the root persisted
	svc   *server.Service
	coord *server.Coordinator
	addr  string
	done  chan error
}

func startRoot(t *testing.T, ctx context.Context, p federationPKI, cfg server.Config, aggregators []string) *root {
	t.Helper()
	return startRootWith(t, ctx, p, cfg, server.Options{}, aggregators)
}

func startRootWith(t *testing.T, ctx context.Context, p federationPKI, cfg server.Config, opts server.Options, aggregators []string) *root {
	t.Helper()
	coord, err := server.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	store := &server.MemoryStore{}
	svc := server.NewService(coord, server.ServiceConfig{RequireClientCertificate: true, Aggregators: aggregators,
		TickInterval: 20 * time.Millisecond, Store: store, Logger: quietLogger()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := svc.NewGRPCServer(grpc.Creds(svc.TLSCredentials(p.listenerTLS(t))))
	go g.Serve(lis)
	r := &root{store: store, svc: svc, coord: coord, addr: lis.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	t.Cleanup(func() { svc.Shutdown(g, time.Second) })
	return r
}

// startRelay runs an aggregator with identity name in front of the root, listening on
// listen, and returns the address its clients dial and a function that kills it (its
// listener and its connection to the root close at once, as when its process dies).
func startRelay(t *testing.T, p federationPKI, rootAddr, name, listen string) (*aggregator.Relay, string, func()) {
	t.Helper()
	up, err := grpc.NewClient(rootAddr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, name))))
	if err != nil {
		t.Fatal(err)
	}
	relay := aggregator.New(up, aggregator.Config{Logger: quietLogger()})
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	g := relay.NewGRPCServer(grpc.Creds(credentials.NewTLS(p.listenerTLS(t))))
	go g.Serve(lis)
	var once sync.Once
	kill := func() {
		once.Do(func() {
			g.Stop()
			up.Close()
		})
	}
	t.Cleanup(kill)
	return relay, lis.Addr().String(), kill
}

// TestRelayedFederationCompletesRounds: a root and two aggregators, each relaying two
// clients under mutual TLS (every hop verified against the federation's CA): the clients
// join, pull, train, push and heartbeat through their aggregator only, and every round
// averages all four updates.
func TestRelayedFederationCompletesRounds(t *testing.T) {
	for _, tc := range []struct{ aggregators, perAggregator, rounds int }{{1, 1, 1}, {2, 2, 3}} {
		t.Run(fmt.Sprintf("aggregators%d_clients%d_rounds%d", tc.aggregators, tc.perAggregator, tc.rounds), func(t *testing.T) {
			var aggs, clients []string
			for a := range tc.aggregators {
				aggs = append(aggs, fmt.Sprintf("agg-%d", a))
				for c := range tc.perAggregator {
					clients = append(clients, fmt.Sprintf("client-%d-%d", a, c))
				}
			}
			p := newFederationPKI(t, append(slices.Clone(aggs), clients...)...)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			n := len(clients)
			r := startRoot(t, ctx, p, plainConfig(tc.rounds, n), aggs)
			initial := r.coord.Global()
			relays := make([]*aggregator.Relay, len(aggs))
			addrs := make([]string, len(aggs))
			for i, a := range aggs {
				relays[i], addrs[i], _ = startRelay(t, p, r.addr, a, "127.0.0.1:0")
			}
			// Client i shifts the model by i+1; the example-weighted mean of the shifts
			// (all weights equal) is the mean of 1…n, times 1e-3.
			startClients(t, ctx, r, clients, func(i int) (client.Config, client.Trainer) {
				return client.Config{Server: addrs[i/tc.perAggregator], Name: clients[i], TLS: p.clientTLS(t, clients[i]),
					PollWait: 2 * time.Second, Logger: quietLogger()}, shiftTrainer{Shift: 1e-3 * float64(i+1), N: 10}
			})()
			cancel()
			if err := <-r.done; !errors.Is(err, context.Canceled) {
				t.Fatalf("root service: %v", err)
			}
			// Clients leave once the federation finishes; the relay forgets them as the root does.
			for i, relay := range relays {
				if got := relay.Sessions(); got != 0 {
					t.Errorf("aggregator %s holds %d sessions after its clients left, want 0", aggs[i], got)
				}
			}
			want := 1e-3 * float64(n+1) / 2 * float64(tc.rounds)
			got := r.coord.Global()
			for j := range got {
				if d := got[j] - initial[j]; math.Abs(d-want) > 1e-9 {
					t.Fatalf("parameter %d moved by %g after %d rounds, want %g (the mean of every client's shift each round)", j, d, tc.rounds, want)
				}
			}
		})
	}
}

// Only a listed aggregator may relay: a client that names another client in the relay
// key is refused, and so is an aggregator whose identity is not in the root's config,
// both before the coordinator hears of the call.
func TestRootRefusesUnlistedRelays(t *testing.T) {
	p := newFederationPKI(t, "agg-0", "agg-9", "client-a", "client-b")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := startRoot(t, ctx, p, plainConfig(1, 2), []string{"agg-0"})
	for _, tc := range []struct {
		caller, relayed string
		code            codes.Code
	}{
		{"client-a", "client-b", codes.PermissionDenied}, // a client passing for another
		{"agg-9", "client-b", codes.PermissionDenied},    // an aggregator not listed
		{"agg-0", "client-b", codes.OK},                  // the listed one
		{"agg-0", "bad name!", codes.InvalidArgument},
	} {
		t.Run(fmt.Sprintf("%s_for_%s", tc.caller, tc.relayed), func(t *testing.T) {
			conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, tc.caller))))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			callCtx := metadata.AppendToOutgoingContext(ctx, server.RelayedClientKey, tc.relayed)
			_, err = pb.NewFederationClient(conn).Join(callCtx, &pb.JoinRequest{ClientName: tc.relayed, ProtocolVersion: server.ProtocolVersion})
			if got := status.Code(err); got != tc.code {
				t.Fatalf("Join relayed by %s for %s: %v (code %v), want code %v", tc.caller, tc.relayed, err, got, tc.code)
			}
		})
	}
}

// A second process with the same certificate, through the same aggregator, is refused
// while the first one's session is live: the aggregator applies the server's
// one-live-session rule to the connections only it sees.
func TestRelayRefusesASecondLiveSession(t *testing.T) {
	p := newFederationPKI(t, "agg-0", "client-a")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r := startRoot(t, ctx, p, plainConfig(1, 2), []string{"agg-0"})
	_, addr, _ := startRelay(t, p, r.addr, "agg-0", "127.0.0.1:0")
	join := func() (*grpc.ClientConn, error) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, "client-a"))))
		if err != nil {
			t.Fatal(err)
		}
		_, err = pb.NewFederationClient(conn).Join(ctx, &pb.JoinRequest{ClientName: "client-a", ProtocolVersion: server.ProtocolVersion})
		return conn, err
	}
	first, err := join()
	if err != nil {
		t.Fatalf("first Join: %v", err)
	}
	second, err := join()
	second.Close()
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second Join while the first session is live: %v, want AlreadyExists", err)
	}
	// Once the first process's connection is gone, the identity may join again.
	first.Close()
	var third *grpc.ClientConn
	for deadline := time.Now().Add(10 * time.Second); ; {
		third, err = join()
		if err == nil || time.Now().After(deadline) {
			break
		}
		third.Close()
		time.Sleep(20 * time.Millisecond) // the relay learns of the closed connection asynchronously
	}
	if err != nil {
		t.Fatalf("Join after the first connection closed: %v", err)
	}
	third.Close()

}

// blockingTrainer shifts the model by Shift; in round BlockRound it tells entered and
// then waits for release before it answers.
type blockingTrainer struct {
	shiftTrainer
	BlockRound uint64
	entered    chan<- struct{}
	release    <-chan struct{}
}

func (b blockingTrainer) Fit(ctx context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	if cfg.Round == b.BlockRound {
		b.entered <- struct{}{}
		select {
		case <-b.release:
		case <-ctx.Done():
			return client.FitResult{}, ctx.Err()
		}
	}
	return b.shiftTrainer.Fit(ctx, global, cfg)
}

// TestKilledAggregatorDropsItsSubtreeForOneRound (issue 17, item 5's acceptance): two
// aggregators of two clients each; the second is killed while its clients train in round
// 2 and started again on the same address. Round 2 closes at once with the first
// aggregator's two updates (the root sees the relayed clients go offline with its
// connection, and min_fit is 2), the clients rejoin through the restarted aggregator, and
// round 3 averages all four again: the global model moves by the mean of all four shifts
// in rounds 1 and 3 and of the first two in round 2.
func TestKilledAggregatorDropsItsSubtreeForOneRound(t *testing.T) {
	aggs := []string{"agg-0", "agg-1"}
	clients := []string{"client-0-0", "client-0-1", "client-1-0", "client-1-1"}
	p := newFederationPKI(t, append(slices.Clone(aggs), clients...)...)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := plainConfig(3, 2)
	cfg.Sampling.MinAvailable = 4 // every round starts with all four clients online
	r := startRoot(t, ctx, p, cfg, aggs)
	initial := r.coord.Global()
	_, addr0, _ := startRelay(t, p, r.addr, aggs[0], "127.0.0.1:0")
	_, addr1, kill1 := startRelay(t, p, r.addr, aggs[1], "127.0.0.1:0")
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, name := range clients {
		var tr client.Trainer = shiftTrainer{Shift: 1e-3 * float64(i+1), N: 10}
		addr := addr0
		if i >= 2 {
			tr, addr = blockingTrainer{shiftTrainer{Shift: 1e-3 * float64(i+1), N: 10}, 2, entered, release}, addr1
		}
		wg.Go(func() {
			errs[i] = client.Run(ctx, client.Config{Server: addr, Name: name, TLS: p.clientTLS(t, name),
				PollWait: 2 * time.Second, BackoffMax: 500 * time.Millisecond, Logger: quietLogger()}, tr)
		})
	}
	for range 2 {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("the second aggregator's clients never reached round 2")
		}
	}
	kill1()
	close(release)
	startRelay(t, p, r.addr, aggs[1], addr1)
	select {
	case <-r.svc.Done():
	case <-ctx.Done():
		t.Fatal("the federation did not finish after the aggregator was restarted")
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", clients[i], err)
		}
	}
	// Shifts 1…4 (×1e-3), equal weights: rounds 1 and 3 move by 2.5e-3, round 2 by 1.5e-3
	// (rounds number from 1, so round 2 is the middle one: a round 2 that waited for the
	// killed subtree would give 7.5e-3, a round 3 without it 5.5e-3).
	want := 2.5e-3 + 1.5e-3 + 2.5e-3
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 1e-9 {
			t.Fatalf("parameter %d moved by %g over 3 rounds, want %g (round 2 without the killed aggregator's subtree, round 3 with it again)", j, d, want)
		}
	}
}

// identityOf is the secure-aggregation identity of name: its certificate and key sign its
// key material and uploads.
func (p federationPKI) identityOf(t *testing.T, name string) *secagg.Signer {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(pki.CertFile(p.dir, name), pki.KeyFile(p.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	key, ok := kp.PrivateKey.(crypto.Signer)
	if !ok {
		t.Fatalf("%s's key cannot sign", name)
	}
	s, err := secagg.NewSigner(kp.Certificate[0], key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Authenticated secure aggregation through aggregators: the key committee is drawn from
// relayed clients, its key setup, the encrypted and signed uploads, the spot checks and the
// decryption shares all pass through the relays unchanged, and each round's decrypted mean
// is the weighted mean of the four shifts within secure aggregation's error.
func TestRelayedSecureAggregationRounds(t *testing.T) {
	aggs := []string{"agg-0", "agg-1"}
	clients := []string{"client-0-0", "client-0-1", "client-1-0", "client-1-1"}
	p := newFederationPKI(t, append(slices.Clone(aggs), clients...)...)
	caPEM, err := os.ReadFile(p.ca())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := secagg.NewVerifierFromPEM(caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const rounds = 2
	cfg := plainConfig(rounds, 4)
	cfg.SecAgg = server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12}
	cfg.DP.UpdateClipNorm = 5
	cfg.Training.WeightScale = 1000 // weights of 50…200 examples: 0.05…0.2, below the default max_weight 1
	cfg.Deadlines.KeySetup, cfg.Deadlines.Decrypt = time.Minute, time.Minute
	r := startRootWith(t, ctx, p, cfg, server.Options{Verifier: verifier}, aggs)
	initial := r.coord.Global()
	addrs := make([]string, len(aggs))
	for i, a := range aggs {
		_, addrs[i], _ = startRelay(t, p, r.addr, a, "127.0.0.1:0")
	}
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i, name := range clients {
		wg.Go(func() {
			errs[i] = client.Run(ctx, client.Config{Server: addrs[i/2], Name: name, TLS: p.clientTLS(t, name), CommitteeEligible: true,
				Party:    client.PartyConfig{Signer: p.identityOf(t, name), Verifier: verifier},
				PollWait: 2 * time.Second, Logger: quietLogger()}, shiftTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)})
		})
	}
	select {
	case <-r.svc.Done():
	case <-ctx.Done():
		t.Fatal("the relayed federation with secure aggregation did not finish")
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", clients[i], err)
		}
	}
	// Weights 0.05…0.2 (examples / weight_scale): each round moves by
	// (0.05·0.01 + 0.1·0.02 + 0.15·0.03 + 0.2·0.04) / 0.5 = 0.03; the tolerance is
	// server.TestAuthenticatedSecureAggregationRounds' (CKKS and the smudging noise of the
	// decryption shares, divided by the summed weight).
	want := 0.03 * rounds
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 1e-3*rounds {
			t.Fatalf("parameter %d moved by %g after %d rounds, want %g within %g", j, d, rounds, want, 1e-3*rounds)
		}
	}
}
