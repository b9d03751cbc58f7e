// Package procmem measures the process's memory for the load tests' memory measurements
// (server and sim): the peak resident set (VmHWM) from Linux's /proc, and a Sampler that
// follows the Go heap through runtime/metrics and keeps its peaks.
package procmem

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// ResetPeak resets the process's VmHWM to its current RSS (Linux; elsewhere a no-op).
func ResetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// Peak returns the process's VmHWM in bytes (0 where /proc is missing).
func Peak() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			k, _ := strconv.ParseUint(f[1], 10, 64)
			return k << 10
		}
	}
	return 0
}

// Peaks are the highest values a Sampler saw, in bytes: the live heap the last garbage
// collection marked, the heap objects (garbage not yet swept included), the heap spans in
// use or free, the collector's goal, everything the runtime maps less what it returned,
// goroutine stacks, and the process's VmHWM when the sampler stopped.
type Peaks struct {
	Live, Objects, Mapped, Goal, Runtime, Stacks, HWM uint64
}

// Sampler follows the process's heap every 20 ms until Stop.
type Sampler struct {
	stopc chan struct{}
	done  chan Peaks
}

// MiB is b in mebibytes.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }

// Sample starts a Sampler. With a directory it writes a heap profile dir/file (`go tool
// pprof -top -inuse_space`) each time the live heap grows 5% past the last profile's, and
// the samples to dir/file with .csv for .pprof (seconds, live, objects, mapped, goal in MiB).
func Sample(dir, file string) *Sampler {
	s := &Sampler{stopc: make(chan struct{}), done: make(chan Peaks)}
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	var trace *os.File
	if dir != "" {
		trace, _ = os.Create(filepath.Join(dir, strings.TrimSuffix(file, ".pprof")+".csv"))
	}
	start := time.Now()
	go func() {
		var p Peaks
		var profiled uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(samples)
			live, objects := samples[0].Value.Uint64(), samples[1].Value.Uint64()
			mapped := objects + samples[2].Value.Uint64() + samples[3].Value.Uint64()
			p.Live, p.Objects, p.Mapped = max(p.Live, live), max(p.Objects, objects), max(p.Mapped, mapped)
			p.Goal = max(p.Goal, samples[4].Value.Uint64())
			p.Runtime = max(p.Runtime, samples[5].Value.Uint64()-samples[6].Value.Uint64())
			p.Stacks = max(p.Stacks, samples[7].Value.Uint64())
			if trace != nil {
				fmt.Fprintf(trace, "%.2f,%.1f,%.1f,%.1f,%.1f\n", time.Since(start).Seconds(), MiB(live), MiB(objects), MiB(mapped), MiB(samples[4].Value.Uint64()))
			}
			if dir != "" && live > profiled+profiled/20 {
				profiled = live
				if f, err := os.Create(filepath.Join(dir, file)); err == nil {
					_ = pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
			select {
			case <-s.stopc:
				p.HWM = Peak()
				if trace != nil {
					trace.Close()
				}
				s.done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the peaks.
func (s *Sampler) Stop() Peaks { close(s.stopc); return <-s.done }
