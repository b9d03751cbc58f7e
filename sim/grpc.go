package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/server"
)

// runGRPC runs the federation through the real gRPC service (server.Service) and the real
// client loop (client.Run): every virtual client is a goroutine with its own connection,
// over an in-process listener (grpc) or loopback TCP (grpc-tcp), in real time. Clients are
// still materialised only for their tasks, on the worker pool. The connections are
// plaintext (client.Config.Insecure): they never leave the process or the loopback
// interface, and every virtual client is its own name.
func runGRPC(ctx context.Context, r *run) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	quiet := r.log
	svc := server.NewService(r.coord, server.ServiceConfig{
		TickInterval: 20 * time.Millisecond, HeartbeatInterval: time.Second, MaxPullWait: 2 * time.Second,
		MaxClients: r.pop.n + 1, Store: r.rec, Logger: quiet, Live: r.opts.Live,
	})
	var (
		lis  net.Listener
		addr string
		dial []grpc.DialOption
	)
	if r.cfg.Transport == TransportGRPCTCP {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("transport grpc-tcp: %w", err)
		}
		lis, addr = l, l.Addr().String()
	} else {
		bl := bufconn.Listen(4 << 20)
		lis, addr = bl, "passthrough:///confide-sim"
		dial = []grpc.DialOption{
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }),
		}
	}
	gs := svc.NewGRPCServer()
	go gs.Serve(lis)
	defer svc.Shutdown(gs, time.Second)
	svcErr := make(chan error, 1)
	go func() { svcErr <- svc.Run(ctx) }()

	var wg sync.WaitGroup
	errs := make([]error, r.pop.n)
	for k := range r.pop.n {
		st, err := r.state(k)
		if err != nil {
			return err
		}
		tr := &virtualTrainer{r: r, k: k, store: st.store}
		signer, err := r.signer(k)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = client.Run(ctx, client.Config{
				Server: addr, Name: r.id(k), CommitteeEligible: true, Insecure: true,
				Store: st.store, DialOptions: dial, PollWait: time.Second, Logger: quiet,
				BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
				// One party serves all of the client's tasks: one noise stream per client.
				Party: client.PartyConfig{Noise: r.clientNoise(k, 0), ShareStatistics: !r.cfg.SecureAggregation.Enabled, ForgetUpdates: true,
					Signer: signer, Verifier: r.verifier},
			}, tr)
		}()
	}
	// Report progress from the round records as they are persisted.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	reported := 0
	report := func() {
		rows := r.rec.close()
		for ; reported < len(rows); reported++ {
			if r.opts.OnRound != nil {
				r.opts.OnRound(rows[reported])
			}
		}
		if r.opts.OnProgress != nil {
			p := Progress{Round: len(rows) + 1, Rounds: r.cfg.Rounds, CompletedRounds: len(rows), Phase: "grpc", LastAccuracy: math.NaN()}
			if n := len(rows); n > 0 && rows[n-1].Accuracy != nil {
				p.LastAccuracy = *rows[n-1].Accuracy
			}
			r.opts.OnProgress(p)
		}
	}
	var runErr error
	svcDone := false
wait:
	for {
		select {
		case <-svc.Done():
			break wait
		case err := <-svcErr:
			svcDone = true
			runErr = fmt.Errorf("sim: gRPC service stopped: %w", err)
			break wait
		case <-ctx.Done():
			runErr = ctx.Err()
			break wait
		case <-tick.C:
			report()
			if r.eval.targetRound() > 0 {
				break wait
			}
		}
	}
	cancel()
	wg.Wait()
	if !svcDone {
		<-svcErr // the coordinator is ours again once the service stopped stepping it
	}
	report()
	r.grpcBytesUp, r.grpcBytesDown = serviceBytes(svc)
	if runErr != nil {
		return runErr
	}
	for k, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("client stopped with an error", slog.String("client", r.id(k)), slog.Any("err", err))
		}
	}
	return nil
}

// serviceBytes reads the service's payload counters (received, sent) from its metrics.
func serviceBytes(svc *server.Service) (up, down int64) {
	families, err := svc.Metrics().Registry.Gather()
	if err != nil {
		return 0, 0
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := int64(m.GetCounter().GetValue())
			switch f.GetName() {
			case "confide_received_bytes_total":
				up += v
			case "confide_sent_bytes_total":
				down += v
			}
		}
	}
	return up, down
}
