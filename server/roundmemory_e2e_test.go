package server_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/internal/procmem"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// TestServerMemoryPerClient (issue 20 item 3: server memory independent of a round's
// clients) runs one round of the federation of scripts/large-model.sh — authenticated
// secure aggregation with the packed encoding (value_bits 11, LogN 14; K = 4, t = 3), mutual
// TLS, the uploads' commitment trees in a temporary file, a bound on the upload bytes held
// at once — at a smaller model (an MNIST MLP 784-1258-10 by default: 1,000,240 parameters,
// an upload of about 6.5 MB), with N clients for each N of CONFIDE_LOAD_MEMORY_CLIENTS
// (default "4 16 32"). The server runs in this process and the clients (client.Run with
// fakeTrainer, one connection each, all finishing training together as large-model.sh's
// do) in a child process, so this process's heap is the server's. It samples the Go heap
// every 20 ms (runtime/metrics: the live heap the last garbage collection marked, the heap
// objects including garbage not yet swept, the mapped heap less what was returned to the
// OS, the collector's goal) and VmHWM.
//
// The uploads held at once are bounded by ServiceConfig.MaxUploadBytes
// (CONFIDE_LOAD_MEMORY_UPLOAD_MB, default 24: 3.7 uploads, as large-model.sh's 256 MiB of
// 66 MiB uploads). More clients fill that bound more of the time and run more garbage
// collections while it is full, so the peak comes closer to the worst case (the fixed
// state, the bound, one upload being decoded and added); beyond that a client of the
// round costs a session, its connection's buffers (≈ 110 KB of TLS and HTTP/2 read
// buffers, and while its upload waits for room what its flow-control window let through)
// and a signed commitment (≈ 450 bytes). The test fails if the peak live heap of the
// largest N exceeds the smallest N's by more than the upload bound plus 0.5 MiB per
// client.
//
// CONFIDE_LOAD_HIDDEN sets the hidden width (13340: 10,605,310 parameters, large-model.sh's
// size); CONFIDE_LOAD_MEMORY_WINDOW sets static HTTP/2 flow-control windows on the server
// (bytes; default gRPC's BDP estimate), CONFIDE_LOAD_MEMORY_LIMIT_MB a soft memory limit
// (debug.SetMemoryLimit) on the server.
//
// Every client of the child process holds its fit task's model blob and the decoded model
// (2 × 8 bytes per parameter) from the task's arrival, and its update and its encryption
// (about 3 more copies) until its upload is sent: several hundred MB a client at 10⁷
// parameters, tens of GB for 100 clients at once. CONFIDE_LOAD_MEMORY_INFLIGHT=K (default 0: all at
// once, behind the fit barrier) lets at most K clients hold a fit task, from its header to
// the server's acceptance of the upload, without the barrier (fitGate): the others wait
// with their download stalled by flow control, and the server still serves all N sessions,
// downloads and signed uploads in one round (with K above the uploads max_upload_mb holds,
// uploads still wait for the server's room). CONFIDE_LOAD_MEMORY_CLIENT_LIMIT_MB sets a
// soft memory limit on the child process only (the test reports the child's VmHWM too).
// For 100 clients at 10⁷ parameters: CONFIDE_LOAD_MEMORY_INFLIGHT=6
// CONFIDE_LOAD_MEMORY_CLIENT_LIMIT_MB=6144 (docs/sweeps/large-model.md).
//
// With CONFIDE_LOAD_PROFILE=DIR it writes a heap profile DIR/round-N.pprof each time the
// live heap grows 5% past the last one (`go tool pprof -top -inuse_space`) and the samples
// to DIR/round-N.csv (seconds, live, objects, mapped, goal in MiB). Runs only with
// CONFIDE_LOAD=1 (minutes).
func TestServerMemoryPerClient(t *testing.T) {
	loadEnabled(t)
	var counts []int
	for _, f := range strings.Fields(envString("CONFIDE_LOAD_MEMORY_CLIENTS", "4 16 32")) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 4 {
			t.Fatalf("CONFIDE_LOAD_MEMORY_CLIENTS=%q: want client counts ≥ 4 (the committee)", f)
		}
		counts = append(counts, n)
	}
	hidden := envInt(t, "CONFIDE_LOAD_HIDDEN", 1258)
	uploadMB := envInt(t, "CONFIDE_LOAD_MEMORY_UPLOAD_MB", 24)
	if limit := envInt(t, "CONFIDE_LOAD_MEMORY_LIMIT_MB", 0); limit > 0 {
		// What-if: the server under a soft memory limit (GOMEMLIMIT), set here rather than
		// in the environment, which the clients' process inherits.
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(limit) << 20))
	}
	names := make([]string, 0, slices.Max(counts))
	for i := range cap(names) {
		names = append(names, fmt.Sprintf("mem-%03d", i))
	}
	dir := writeTestPKI(t, names...)
	var rows []roundMemory
	for _, n := range counts {
		m := runRoundMemory(t, dir, n, hidden, int64(uploadMB)<<20)
		rows = append(rows, m)
		t.Logf("%d clients: peak live heap %.1f MiB, heap objects %.1f MiB, heap mapped %.1f MiB, GC goal %.1f MiB, runtime %.1f MiB (stacks %.1f), VmHWM %.1f MiB; clients ran %.1f s, server CPU %.1f s; round %.1f s, sum per upload %.2f s (median), %.1f s (total), decrypt %.1f s; load average %s; the clients' process's VmHWM %.1f MiB",
			n, procmem.MiB(m.Live), procmem.MiB(m.Objects), procmem.MiB(m.Mapped), procmem.MiB(m.Goal), procmem.MiB(m.Runtime), procmem.MiB(m.Stacks), procmem.MiB(m.HWM), m.seconds, m.cpu, m.round, m.sumMedian, m.sumTotal, m.decrypt, m.load, procmem.MiB(m.clientHWM))
	}
	if len(rows) < 2 {
		return
	}
	per := func(a, b roundMemory, f func(roundMemory) uint64) float64 {
		return (float64(f(b)) - float64(f(a))) / float64(b.clients-a.clients) / (1 << 20)
	}
	live := func(m roundMemory) uint64 { return m.Live }
	hwm := func(m roundMemory) uint64 { return m.HWM }
	first, prev, last := rows[0], rows[len(rows)-2], rows[len(rows)-1]
	t.Logf("per client from %d to %d clients: peak live heap %+.2f MiB, VmHWM %+.2f MiB; from %d to %d: %+.2f MiB, %+.2f MiB",
		first.clients, last.clients, per(first, last, live), per(first, last, hwm), prev.clients, last.clients, per(prev, last, live), per(prev, last, hwm))
	// What more clients may add: a fuller upload bound, and per-client state.
	if grow, allowed := procmem.MiB(last.Live)-procmem.MiB(first.Live), float64(uploadMB)+0.5*float64(last.clients-first.clients); grow > allowed {
		t.Errorf("the server's peak live heap grows by %.1f MiB from %d to %d clients, more than the upload bound (%d MiB) and 0.5 MiB per client (%.1f MiB)", grow, first.clients, last.clients, uploadMB, allowed)
	}
}

// roundMemory is the server's peak memory over one round.
type roundMemory struct {
	clients int
	procmem.Peaks
	// the clients' process's VmHWM (all its clients)
	clientHWM uint64
	// seconds from the clients' start to their end, the server's CPU seconds (user and
	// system) over them, and the load average (1, 5, 15 min) at the start and the end
	seconds, cpu float64
	load         string
	// from the server's log: the median and total of the uploads' aggregation work
	// (decode, signature and commitment checks, the commitment tree's store, the
	// addition), from the last upload added to the round's end (decryption), and from the
	// round's start to its end
	sumMedian, sumTotal, decrypt, round float64
}

// roundTimer is a countingHandler that also times the round from the server's log.
type roundTimer struct {
	countingHandler
	tmu                  sync.Mutex
	started, added, done time.Time
	sums                 []float64
}

func (h *roundTimer) Handle(ctx context.Context, r slog.Record) error {
	h.tmu.Lock()
	switch r.Message {
	case "round started":
		h.started = r.Time
	case "round finished":
		h.done = r.Time
	case "work done":
		var work string
		var secs float64
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "work":
				work = a.Value.String()
			case "seconds":
				secs = a.Value.Float64()
			}
			return true
		})
		if work == "server.AggregationWork" {
			h.sums, h.added = append(h.sums, secs), r.Time
		}
	}
	h.tmu.Unlock()
	return h.countingHandler.Handle(ctx, r)
}

func (h *roundTimer) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *roundTimer) WithGroup(string) slog.Handler      { return h }

// times returns the uploads' median and total aggregation seconds, the seconds from the
// last upload added to the round's end, and the round's seconds.
func (h *roundTimer) times() (median, total, decrypt, round float64) {
	h.tmu.Lock()
	defer h.tmu.Unlock()
	if len(h.sums) > 0 {
		s := slices.Sorted(slices.Values(h.sums))
		median = s[len(s)/2]
		for _, v := range s {
			total += v
		}
	}
	if !h.done.IsZero() {
		decrypt, round = h.done.Sub(h.added).Seconds(), h.done.Sub(h.started).Seconds()
	}
	return median, total, decrypt, round
}

// processCPU is this process's user and system CPU seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return cpuSeconds(&ru)
}

func envString(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// memoryRoundConfig is scripts/large-model.sh's federation for n clients at hidden width h.
func memoryRoundConfig(n, h int) server.Config {
	bits := 11
	return server.Config{
		Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{h}, Output: 10},
		Sampling:  server.SamplingConfig{NumFit: n, MinFit: n, MinAvailable: n},
		Deadlines: server.DeadlineConfig{Fit: 30 * time.Minute, KeySetup: 10 * time.Minute, Decrypt: 30 * time.Minute, ClientTimeout: 10 * time.Minute},
		Training:  server.TrainingConfig{Epochs: 1, BatchSize: 16, Optimizer: "sgd", LR: 0.05, WeightScale: 10000},
		DP:        server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, Delta: 1e-5, SampleRate: 0.001, Steps: 1, UpdateClipNorm: 1},
		SecAgg:    server.SecAggConfig{Enabled: true, CommitteeSize: 4, Threshold: 3, ValueBits: &bits},
	}
}

// runRoundMemory serves one round for n clients of the child process and returns the
// server's peak memory.
func runRoundMemory(t *testing.T, dir string, n, hidden int, uploadBytes int64) roundMemory {
	t.Helper()
	fed := filepath.Join(dir, "fed")
	coord, err := server.New(memoryRoundConfig(n, hidden), server.Options{Verifier: caVerifierIn(t, fed), UploadStore: server.TempUploadStore(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.TLSConfig(pki.CertFile(fed, "server"), pki.KeyFile(fed, "server"), pki.CertFile(fed, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &roundTimer{}
	svc := server.NewService(coord, server.ServiceConfig{RequireClientCertificate: true, MaxClients: n, MaxUploadBytes: uploadBytes,
		Store: discardStore{}, Logger: slog.New(logs)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gopts := []grpc.ServerOption{grpc.Creds(svc.TLSCredentials(tc))}
	if w := envInt(t, "CONFIDE_LOAD_MEMORY_WINDOW", 0); w > 0 {
		// What-if: static flow-control windows instead of gRPC's BDP estimate.
		gopts = append(gopts, grpc.InitialWindowSize(int32(w)), grpc.InitialConnWindowSize(int32(w)))
	}
	g := svc.NewGRPCServer(gopts...)
	go g.Serve(lis)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.Run(ctx) }()

	runtime.GC()
	debug.FreeOSMemory()
	procmem.ResetPeak()
	sampler := procmem.Sample(os.Getenv("CONFIDE_LOAD_PROFILE"), fmt.Sprintf("round-%d.pprof", n))
	start, cpu0 := time.Now(), processCPU()
	load0 := loadAverage()
	gen := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestServerMemoryClients$", "-test.v")
	gen.Env = append(os.Environ(), "CONFIDE_MEMORY_SERVER="+lis.Addr().String(), "CONFIDE_MEMORY_PKI="+fed, "CONFIDE_MEMORY_CLIENTS="+strconv.Itoa(n))
	out, genErr := gen.CombinedOutput()
	m := roundMemory{Peaks: sampler.Stop()}
	m.clients, m.seconds, m.cpu = n, time.Since(start).Seconds(), processCPU()-cpu0
	m.load = load0 + " → " + loadAverage()
	m.sumMedian, m.sumTotal, m.decrypt, m.round = logs.times()
	svc.Shutdown(g, time.Second)
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("service: %v", err)
	}
	if genErr != nil {
		t.Fatalf("clients: %v\n%s", genErr, tail(string(out), 3000))
	}
	if _, after, ok := strings.Cut(string(out), "clients' process VmHWM: "); ok {
		fmt.Sscan(after, &m.clientHWM)
	}
	select {
	case <-svc.Done():
	default:
		t.Fatalf("the clients returned before the federation finished:\n%s", tail(string(out), 3000))
	}
	if w := logs.warnings(); w > 0 {
		t.Errorf("%d clients: the service logged %d warnings or errors", n, w)
	}
	return m
}

// TestServerMemoryClients is the client side of TestServerMemoryPerClient: it runs
// CONFIDE_MEMORY_CLIENTS clients (mem-000…) against CONFIDE_MEMORY_SERVER with the
// certificates in CONFIDE_MEMORY_PKI until the federation finishes.
func TestServerMemoryClients(t *testing.T) {
	addr, dir := os.Getenv("CONFIDE_MEMORY_SERVER"), os.Getenv("CONFIDE_MEMORY_PKI")
	if addr == "" || dir == "" {
		t.Skip("the client side of TestServerMemoryPerClient (CONFIDE_MEMORY_SERVER, CONFIDE_MEMORY_PKI, CONFIDE_MEMORY_CLIENTS)")
	}
	n := envInt(t, "CONFIDE_MEMORY_CLIENTS", 4)
	if limit := envInt(t, "CONFIDE_LOAD_MEMORY_CLIENT_LIMIT_MB", 0); limit > 0 {
		debug.SetMemoryLimit(int64(limit) << 20) // this process (the clients) only
	}
	verifier := caVerifierIn(t, dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The clients finish training together, as large-model.sh's do (one DP-SGD step each,
	// at once), so their uploads arrive together and wait for the server's upload budget;
	// with CONFIDE_LOAD_MEMORY_INFLIGHT at most that many at a time receive their fit task,
	// train, encrypt and upload, without a barrier.
	var (
		together *fitBarrier
		gate     *fitGate
	)
	if k := envInt(t, "CONFIDE_LOAD_MEMORY_INFLIGHT", 0); k > 0 {
		gate = &fitGate{slots: make(chan struct{}, k)}
	} else {
		together = &fitBarrier{n: n, all: make(chan struct{})}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("mem-%03d", i)
		tc, err := client.TLSConfig(pki.CertFile(dir, "ca"), pki.CertFile(dir, name), pki.KeyFile(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verifier.Certify(cert.Raw); err != nil {
			t.Fatal(err)
		}
		key, ok := tc.Certificates[0].PrivateKey.(crypto.Signer)
		if !ok {
			t.Fatalf("%s: the key cannot sign", name)
		}
		signer, err := secagg.NewSigner(cert.Raw, key)
		if err != nil {
			t.Fatal(err)
		}
		var dial []grpc.DialOption
		if gate != nil {
			dial = append(dial, gate.dialOption())
		}
		wg.Go(func() {
			errs[i] = client.Run(t.Context(), client.Config{
				Server: addr, Name: name, CommitteeEligible: true, TLS: tc, PollWait: 20 * time.Second, Logger: quiet, DialOptions: dial,
				Party: client.PartyConfig{Signer: signer, Verifier: verifier, ForgetUpdates: true},
			}, &barrierTrainer{fakeTrainer: &fakeTrainer{Shift: 1e-4, N: 100}, b: together})
		})
	}
	wg.Wait()
	fmt.Printf("clients' process VmHWM: %d bytes\n", procmem.Peak()) // read by runRoundMemory
	if gate != nil && gate.taken.Load() != int64(n) {
		t.Errorf("%d clients took %d fit slots, want one each", n, gate.taken.Load())
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("client mem-%03d: %v", i, err)
		}
	}
}

// caVerifierIn is the Verifier of the CA in dir.
func caVerifierIn(t *testing.T, dir string) *secagg.Verifier {
	t.Helper()
	caPEM, err := os.ReadFile(pki.CertFile(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := secagg.NewVerifierFromPEM(caPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fitBarrier releases the fits of n clients once all of them have started one.
type fitBarrier struct {
	mu  sync.Mutex
	n   int
	all chan struct{}
}

func (b *fitBarrier) wait(ctx context.Context) error {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// barrierTrainer is a fakeTrainer whose first fit waits for every client's.
type barrierTrainer struct {
	*fakeTrainer
	b    *fitBarrier
	once sync.Once
}

func (t *barrierTrainer) Fit(ctx context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	var err error
	if t.b != nil {
		t.once.Do(func() { err = t.b.wait(ctx) })
	}
	if err != nil {
		return client.FitResult{}, err
	}
	return t.fakeTrainer.Fit(ctx, global, cfg)
}

// fitGate bounds the clients of the child process that hold a fit task: a client takes a
// slot when the header of its fit task arrives, before the task's blobs (the global model),
// and gives it back when the server has taken its upload (its PushResult call returned
// without error; an upload the server refused for want of room keeps the slot while the
// client retries). The clients waiting for a slot hold nothing of the task but what their
// connection's flow-control window let through, and the server's stream of the model to
// them waits for the window (the chunks are slices of the one encoded model). That keeps
// the clients' process at the slots × (task, model, update, encryption) instead of every
// client's at once; the server still sees every session, every download and every signed
// upload of the round.
type fitGate struct {
	slots chan struct{}
	taken atomic.Int64 // slots taken
}

// dialOption is the stream interceptor of one client's connection.
func (g *fitGate) dialOption() grpc.DialOption {
	var held atomic.Bool // this client holds a slot
	return grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return s, err
		}
		switch method {
		case pb.Federation_PullTask_FullMethodName:
			return &gatedStream{ClientStream: s, recv: func(m any) error {
				if c, ok := m.(*pb.TaskChunk); ok && c.GetTask().GetFit() != nil && !held.Load() {
					select {
					case g.slots <- struct{}{}:
						held.Store(true)
						g.taken.Add(1)
					case <-s.Context().Done():
						return s.Context().Err()
					}
				}
				return nil
			}}, nil
		case pb.Federation_PushResult_FullMethodName:
			return &gatedStream{ClientStream: s, recv: func(any) error {
				if held.CompareAndSwap(true, false) {
					<-g.slots
				}
				return nil
			}}, nil
		}
		return s, nil
	})
}

// gatedStream calls recv after every message its stream received.
type gatedStream struct {
	grpc.ClientStream
	recv func(m any) error
}

func (s *gatedStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	return s.recv(m)
}
