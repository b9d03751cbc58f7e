package aggregator_test

import (
	"context"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/aggregator"
	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// startSummingRelay is startRelay with summing on: the aggregator checks and sums its
// clients' fit uploads (verifier: the federation's CA) and forwards partial sums.
func startSummingRelay(t *testing.T, ctx context.Context, p federationPKI, verifier *secagg.Verifier, rootAddr, name, listen string) (*aggregator.Relay, string, func()) {
	t.Helper()
	up, err := grpc.NewClient(rootAddr, grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(t, name))))
	if err != nil {
		t.Fatal(err)
	}
	relay := aggregator.New(up, aggregator.Config{Verifier: verifier, Name: name, Logger: quietLogger()})
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	g := relay.NewGRPCServer(grpc.Creds(credentials.NewTLS(p.listenerTLS(t))))
	go g.Serve(lis)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.Run(runCtx)
	}()
	var once sync.Once
	kill := func() {
		once.Do(func() {
			stop()
			g.Stop()
			up.Close()
			<-done
		})
	}
	t.Cleanup(kill)
	return relay, lis.Addr().String(), kill
}

// newSummingFederation starts the root of two aggregators agg-0 and agg-1 with two
// clients each (client-A-I) under authenticated secure aggregation (secureConfig).
func newSummingFederation(t *testing.T, rounds, minFit int) (context.Context, federationPKI, *secagg.Verifier, *root, []string, []string) {
	t.Helper()
	aggs := []string{"agg-0", "agg-1"}
	clients := []string{"client-0-0", "client-0-1", "client-1-0", "client-1-1"}
	p := newFederationPKI(t, append(slices.Clone(aggs), clients...)...)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	cfg, verifier := secureConfig(t, p, rounds, minFit)
	return ctx, p, verifier, startRootWith(t, ctx, p, cfg, server.Options{Verifier: verifier}, aggs), aggs, clients
}

// secureConfig is a federation of four clients under authenticated secure aggregation,
// every one sampled each round.
func secureConfig(t *testing.T, p federationPKI, rounds, minFit int) (server.Config, *secagg.Verifier) {
	t.Helper()
	caPEM, err := os.ReadFile(p.ca())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := secagg.NewVerifierFromPEM(caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := plainConfig(rounds, minFit)
	cfg.Sampling.MinAvailable = 4
	cfg.SecAgg = server.SecAggConfig{Enabled: true, CommitteeSize: 2, Threshold: 2, LogN: 12}
	cfg.DP.UpdateClipNorm = 5
	cfg.Training.WeightScale = 1000 // weights of 50…200 examples: 0.05…0.2
	cfg.Deadlines.KeySetup, cfg.Deadlines.Decrypt = time.Minute, time.Minute
	return cfg, verifier
}

// startSecureClients runs clients under authenticated secure aggregation, client i with
// what setup(i) gives it (the address it dials, its trainer, whether it offers itself for
// the key committee). finish waits until the root has run its rounds and every client
// has exited, and fails the test on any error.
func startSecureClients(t *testing.T, ctx context.Context, r *root, p federationPKI, verifier *secagg.Verifier, clients []string,
	setup func(i int) (addr string, tr client.Trainer, committee bool)) (finish func()) {
	t.Helper()
	return startClients(t, ctx, r, clients, func(i int) (client.Config, client.Trainer) {
		addr, tr, committee := setup(i)
		name := clients[i]
		return client.Config{Server: addr, Name: name, TLS: p.clientTLS(t, name), CommitteeEligible: committee,
			Party:    client.PartyConfig{Signer: p.identityOf(t, name), Verifier: verifier},
			PollWait: 2 * time.Second, BackoffMax: 500 * time.Millisecond, Logger: quietLogger()}, tr
	})
}

// startClients runs client.Run for every client with the configuration and trainer
// configOf(i) gives it. finish waits until the root has run its rounds and every client
// has exited, and fails the test on any error.
func startClients(t *testing.T, ctx context.Context, r *root, clients []string, configOf func(i int) (client.Config, client.Trainer)) (finish func()) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	for i := range clients {
		cfg, tr := configOf(i)
		wg.Go(func() { errs[i] = client.Run(ctx, cfg, tr) })
	}
	return func() {
		t.Helper()
		select {
		case <-r.svc.Done():
		case <-ctx.Done():
			t.Fatal("the federation did not finish its rounds")
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", clients[i], err)
			}
		}
	}
}

// Summing aggregators (issue 17, item 5): two aggregators of two clients each sum their
// clients' signed encrypted uploads and forward one partial sum a round; the root checks
// every listed commitment, decrypts the sum of the partial sums (the committee's spot
// checks opened by the aggregators), and each round's mean is the weighted mean of the
// four shifts, as in TestRelayedSecureAggregationRounds where every upload is relayed.
// The root's ingress is below what the four uploads alone would be.
func TestSummingAggregatorsForwardPartialSums(t *testing.T) {
	const rounds = 2
	ctx, p, verifier, r, aggs, clients := newSummingFederation(t, rounds, 4)
	initial := r.coord.Global()
	relays := make([]*aggregator.Relay, len(aggs))
	addrs := make([]string, len(aggs))
	for i, a := range aggs {
		relays[i], addrs[i], _ = startSummingRelay(t, ctx, p, verifier, r.addr, a, "127.0.0.1:0")
	}
	startSecureClients(t, ctx, r, p, verifier, clients, func(i int) (string, client.Trainer, bool) {
		return addrs[i/2], shiftTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)}, true
	})()
	for i, relay := range relays {
		if got := relay.Summed(); got != 2*rounds {
			t.Errorf("aggregator %s summed %d uploads, want %d (its two clients, %d rounds)", aggs[i], got, 2*rounds, rounds)
		}
	}
	// As TestRelayedSecureAggregationRounds: 0.03 a round within secure aggregation's error.
	want := 0.03 * rounds
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 1e-3*rounds {
			t.Fatalf("parameter %d moved by %g after %d rounds, want %g within %g", j, d, rounds, want, 1e-3*rounds)
		}
	}
}

// A summing aggregator killed after its clients' uploads are held, before its partial sum
// is asked for: the root drops that subtree from the round (its clients count as dropped)
// and decrypts the other aggregator's partial sum alone (min_fit 2); the clients rejoin
// through the restarted aggregator and the next round sums all four again.
func TestKilledSummingAggregatorDropsItsSubtreeForOneRound(t *testing.T) {
	ctx, p, verifier, r, aggs, clients := newSummingFederation(t, 3, 2)
	initial := r.coord.Global()
	_, addr0, _ := startSummingRelay(t, ctx, p, verifier, r.addr, aggs[0], "127.0.0.1:0")
	relay1, addr1, kill1 := startSummingRelay(t, ctx, p, verifier, r.addr, aggs[1], "127.0.0.1:0")
	entered, release := make(chan struct{}), make(chan struct{})
	// The first aggregator's clients (the key committee) hold round 2 back until the
	// second aggregator has held its clients' uploads and was killed.
	finish := startSecureClients(t, ctx, r, p, verifier, clients, func(i int) (string, client.Trainer, bool) {
		tr := shiftTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)}
		if i < 2 {
			return addr0, blockingTrainer{tr, 2, entered, release}, true
		}
		return addr1, tr, false
	})
	for range 2 {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("the first aggregator's clients never reached round 2")
		}
	}
	for relay1.Summed() < 4 { // round 1's two uploads and round 2's
		select {
		case <-ctx.Done():
			t.Fatal("the second aggregator never held its clients' round-2 uploads")
		case <-time.After(20 * time.Millisecond):
		}
	}
	kill1()
	close(release)
	startSummingRelay(t, ctx, p, verifier, r.addr, aggs[1], addr1)
	finish()
	// Rounds 1 and 3 move by 0.03 (all four); round 2 by the first two clients' weighted
	// mean, (0.05·0.01 + 0.1·0.02)/0.15.
	want := 0.03 + (0.05*0.01+0.1*0.02)/0.15 + 0.03
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 3e-3 {
			t.Fatalf("parameter %d moved by %g over 3 rounds, want %g (round 2 without the killed aggregator's subtree)", j, d, want)
		}
	}
}

// An aggregator that lies about its partial sum (it lists one of its two uploads but sums
// both) is caught before any member decrypts: the root checks the aggregator's opening
// against the listed uploads (secagg.PartialSourceError), the round's aggregate is
// abandoned and the model stays. The root then refuses the liar's held uploads, so it
// relays its clients' uploads whole: the rounds before and after average all four.
func TestLyingAggregatorFailsTheRound(t *testing.T) {
	ctx, p, verifier, r, aggs, clients := newSummingFederation(t, 3, 2)
	initial := r.coord.Global()
	_, addr0, _ := startSummingRelay(t, ctx, p, verifier, r.addr, aggs[0], "127.0.0.1:0")
	liar, addr1, _ := startSummingRelay(t, ctx, p, verifier, r.addr, aggs[1], "127.0.0.1:0")
	aggregator.SetTamper(liar, func(round uint64, ps *secagg.PartialSum) *secagg.PartialSum {
		if round != 2 {
			return ps
		}
		return &secagg.PartialSum{Sum: ps.Sum, Commitments: ps.Commitments[:len(ps.Commitments)-1]}
	})
	startSecureClients(t, ctx, r, p, verifier, clients, func(i int) (string, client.Trainer, bool) {
		tr := shiftTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)}
		if i < 2 {
			return addr0, tr, true
		}
		return addr1, tr, false
	})()
	rounds := 0
	for _, rec := range r.store.Records() {
		rr, ok := rec.(server.RoundRecord)
		if !ok {
			continue
		}
		rounds++
		if rr.Failed {
			t.Logf("round %d failed: %s", rr.Round, rr.Reason)
		}
		if failed := rr.Round == 2; rr.Failed != failed || (failed && !strings.Contains(rr.Reason, "aggregator agg-1")) {
			t.Errorf("round %d: failed %v (%s); want round 2 alone failed, naming aggregator agg-1", rr.Round, rr.Failed, rr.Reason)
		}
	}
	if rounds != 3 {
		t.Errorf("the root persisted %d round records, want 3", rounds)
	}
	// From round 3 on the root takes the liar's clients' uploads only whole.
	if got := liar.Summed(); got != 4 {
		t.Errorf("the lying aggregator summed %d uploads, want 4 (rounds 1 and 2 only)", got)
	}
	want := 0.03 * 2 // rounds 1 and 3; round 2 failed
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 2e-3 {
			t.Fatalf("parameter %d moved by %g over 3 rounds, want %g (round 2's aggregate abandoned)", j, d, want)
		}
	}
}

// uploadTamperer is a client's stream interceptor that alters its first encrypted fit
// upload after the client signed it: one ciphertext byte flipped and the blob's digest
// recomputed, so that only secure aggregation's checks can tell.
type uploadTamperer struct{ done atomic.Bool }

func (u *uploadTamperer) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || !strings.HasSuffix(method, "/PushResult") || u.done.Load() {
		return s, err
	}
	return &tamperingStream{ClientStream: s, u: u}, nil
}

// tamperingStream holds back a fit result with an encrypted upload until CloseSend, then
// sends it altered.
type tamperingStream struct {
	grpc.ClientStream
	u      *uploadTamperer
	header *pb.Result
	data   []byte
}

func (s *tamperingStream) SendMsg(m any) error {
	c := m.(*pb.ResultChunk)
	if r := c.GetResult(); r != nil && r.GetKind() == pb.TaskKind_TASK_KIND_FIT && len(r.GetBlobs()) == 1 && r.GetBlobs()[0].GetName() == blob.EncryptedUpdate {
		s.header = proto.CloneOf(r)
		return nil
	}
	if s.header != nil && c.GetResult() == nil {
		s.data = append(s.data, c.GetData()...)
		return nil
	}
	return s.ClientStream.SendMsg(m)
}

func (s *tamperingStream) CloseSend() error {
	if s.header != nil && s.u.done.CompareAndSwap(false, true) {
		s.data[len(s.data)-8*5] ^= 1 // a coefficient of the last chunk's c1, as server/aggregate_test.go
		b := blob.New(blob.EncryptedUpdate, s.data)
		s.header.Blobs = []*pb.Blob{{Name: b.Name, Size: b.Size, Sha256: b.Sha256}}
		if err := s.ClientStream.SendMsg(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: s.header}}); err != nil {
			return err
		}
		for off := 0; off < len(s.data); off += 256 << 10 {
			if err := s.ClientStream.SendMsg(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: s.data[off:min(off+256<<10, len(s.data))]}}); err != nil {
				return err
			}
		}
	}
	return s.ClientStream.CloseSend()
}

// A client's upload altered after it was signed: its summing aggregator's checks
// (secagg.Subtotal.CheckBinary on the upload's bytes) refuse it, so it relays the upload
// whole; the root refuses it too, and the round's sum is the three other clients' alone
// (weighted shifts 0.02·100, 0.03·150, 0.04·200 over 450 examples), the aggregator having
// summed only its other client.
func TestSummingAggregatorRelaysATamperedUploadForTheRootToRefuse(t *testing.T) {
	ctx, p, verifier, r, aggs, clients := newSummingFederation(t, 1, 3)
	initial := r.coord.Global()
	relays := make([]*aggregator.Relay, len(aggs))
	addrs := make([]string, len(aggs))
	for i, a := range aggs {
		relays[i], addrs[i], _ = startSummingRelay(t, ctx, p, verifier, r.addr, a, "127.0.0.1:0")
	}
	tamperer := &uploadTamperer{}
	startClients(t, ctx, r, clients, func(i int) (client.Config, client.Trainer) {
		name := clients[i]
		cfg := client.Config{Server: addrs[i/2], Name: name, TLS: p.clientTLS(t, name), CommitteeEligible: true,
			Party:    client.PartyConfig{Signer: p.identityOf(t, name), Verifier: verifier},
			PollWait: 2 * time.Second, BackoffMax: 500 * time.Millisecond, Logger: quietLogger()}
		if i == 0 {
			cfg.DialOptions = []grpc.DialOption{grpc.WithChainStreamInterceptor(tamperer.intercept)}
		}
		return cfg, shiftTrainer{Shift: 0.01 * float64(i+1), N: 50 * (i + 1)}
	})()
	if !tamperer.done.Load() {
		t.Fatal("the tampering client pushed no encrypted upload")
	}
	if got := relays[0].Summed(); got != 1 {
		t.Errorf("aggregator %s summed %d uploads, want 1 (its untampered client's)", aggs[0], got)
	}
	if got := relays[1].Summed(); got != 2 {
		t.Errorf("aggregator %s summed %d uploads, want 2", aggs[1], got)
	}
	var rounds int
	for _, rec := range r.store.Records() {
		if rr, ok := rec.(server.RoundRecord); ok {
			rounds++
			if rr.Failed || slices.Contains(rr.Contributors, clients[0]) || len(rr.Contributors) != 3 {
				t.Errorf("round %d: failed %v (%s), contributors %v; want the three untampered clients", rr.Round, rr.Failed, rr.Reason, rr.Contributors)
			}
		}
	}
	if rounds != 1 {
		t.Fatalf("the root persisted %d round records, want 1", rounds)
	}
	want := (0.02*100 + 0.03*150 + 0.04*200) / 450 // 0.0322; with the tampered client's 0.01·50 it would be 0.03
	for j, got := range r.coord.Global() {
		if d := got - initial[j]; math.Abs(d-want) > 1e-3 {
			t.Fatalf("parameter %d moved by %g, want %g within 1e-3", j, d, want)
		}
	}
}
