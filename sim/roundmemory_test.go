package sim_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/internal/procmem"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/sim"
)

// TestSimMemoryPerClient (issue 20 item 3: memory independent of the clients per round)
// runs one round of scripts/large-model.sh's sim federation — DP-SGD (one step), secure
// aggregation with the packed encoding (value_bits 11; K = 4, t = 3), every client sampled,
// workers: 1 — at a smaller model (an MLP 784-H-10 on random inputs, H from
// CONFIDE_SIM_MEMORY_HIDDEN, default 1258: 1,000,240 parameters), for each N of
// CONFIDE_SIM_MEMORY_CLIENTS (default "8 16 32"). It samples the Go heap every 20 ms
// (runtime/metrics: the live heap the last garbage collection marked, the heap objects) and
// VmHWM, and fails if the peak live heap of the largest N exceeds the smallest N's by more
// than 1 MiB per client plus 2 uploads' worth (8 bytes per parameter: what the garbage
// collector's timing may add). With CONFIDE_SIM_MEMORY_PROFILE=DIR it writes a heap profile
// DIR/sim-N.pprof each time the live heap grows 5% past the last one (`go tool pprof -top
// -inuse_space`), and the samples to DIR/sim-N.csv. Runs only with CONFIDE_LOAD=1 (a
// minute or two).
//
// Before the event and job queues cleared the slots container/heap's Pop leaves behind
// (TestQueuesLetPoppedJobsGo), every upload of the round stayed reachable until the round's
// end: 187, 265 and 369 MiB of peak live heap for 8, 16 and 32 clients (+7.6 MiB a client,
// an upload and a bit); after, 170, 172 and 173 MiB (+0.16 MiB a client).
func TestSimMemoryPerClient(t *testing.T) {
	if os.Getenv("CONFIDE_LOAD") != "1" {
		t.Skip("set CONFIDE_LOAD=1 to run the sim's memory measurement (minutes)")
	}
	var counts []int
	for _, f := range strings.Fields(envOr("CONFIDE_SIM_MEMORY_CLIENTS", "8 16 32")) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 4 {
			t.Fatalf("CONFIDE_SIM_MEMORY_CLIENTS=%q: want client counts ≥ 4 (the committee)", f)
		}
		counts = append(counts, n)
	}
	hidden, err := strconv.Atoi(envOr("CONFIDE_SIM_MEMORY_HIDDEN", "1258"))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("CONFIDE_SIM_MEMORY_PROFILE")
	params := 784*hidden + hidden + hidden*10 + 10
	var rows []simMemory
	for _, n := range counts {
		m := runSimMemory(t, n, hidden, dir)
		rows = append(rows, m)
		t.Logf("%d clients: peak live heap %.1f MiB, heap objects %.1f MiB, VmHWM %.1f MiB, %.1f s", n, procmem.MiB(m.Live), procmem.MiB(m.Objects), procmem.MiB(m.HWM), m.seconds)
	}
	if len(rows) < 2 {
		return
	}
	first, last := rows[0], rows[len(rows)-1]
	per := func(f func(simMemory) uint64) float64 {
		return (float64(f(last)) - float64(f(first))) / float64(last.clients-first.clients) / (1 << 20)
	}
	t.Logf("per client from %d to %d clients: peak live heap %+.2f MiB, VmHWM %+.2f MiB (an upload is about %.1f MiB)",
		first.clients, last.clients, per(func(m simMemory) uint64 { return m.Live }), per(func(m simMemory) uint64 { return m.HWM }), float64(params)*8/(1<<20)*0.8)
	grow := procmem.MiB(last.Live) - procmem.MiB(first.Live)
	allowed := float64(last.clients-first.clients) + 2*float64(params)*8/(1<<20)
	if grow > allowed {
		t.Errorf("the sim's peak live heap grows by %.1f MiB from %d to %d clients, more than 1 MiB per client and 2 uploads (%.1f MiB)", grow, first.clients, last.clients, allowed)
	}
}

type simMemory struct {
	clients int
	procmem.Peaks
	seconds float64
}

// randomImages is n examples of 784 uniform features in 10 classes.
func randomImages(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	ds := &data.Dataset{Name: "random", N: n, Dim: 784, X: make([]float64, 784*n), Y: make([]int32, n), NumClasses: 10}
	for i := range ds.X {
		ds.X[i] = rng.Float64()
	}
	for i := range ds.Y {
		ds.Y[i] = int32(rng.IntN(10))
	}
	return ds
}

func runSimMemory(t *testing.T, n, hidden int, dir string) simMemory {
	t.Helper()
	bits := 11
	no := false
	c := sim.Config{
		Name: "memory", Seed: 1, Rounds: 1, Clients: n, ClientsPerRound: n, MinFit: n,
		Partition:         "iid",
		Model:             model.Spec{Type: model.TypeMLP, Hidden: []int{hidden}},
		Training:          sim.TrainingConfig{Epochs: 1, BatchSize: 4, Optimizer: "sgd", LR: 0.01},
		DP:                sim.DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, Delta: 1e-5, Steps: 1, UpdateClipNorm: 1}},
		SecureAggregation: server.SecAggConfig{Enabled: true, CommitteeSize: 4, Threshold: 3, ValueBits: &bits},
		Workers:           1,
		ResultsDir:        "-",
		Plots:             &no,
	}
	train, test := randomImages(8*n, 1), randomImages(16, 2)
	runtime.GC()
	runtime.GC()
	procmem.ResetPeak()
	sampler := procmem.Sample(dir, fmt.Sprintf("sim-%d.pprof", n))
	start := time.Now()
	_, err := sim.Run(t.Context(), c, sim.Options{Train: train, Test: test})
	m := simMemory{Peaks: sampler.Stop()}
	if err != nil {
		t.Fatal(err)
	}
	m.clients, m.seconds = n, time.Since(start).Seconds()
	return m
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
