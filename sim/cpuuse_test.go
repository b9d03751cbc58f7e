package sim

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// spin keeps g goroutines busy for d of wall time.
func spin(g int, d time.Duration) {
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 1.0
			for start := time.Now(); time.Since(start) < d; {
				for range 1000 {
					x = x*1.0000001 + 1e-9
				}
			}
			_ = x
		}()
	}
	wg.Wait()
}

// TestParallelEfficiency: with two processors, one busy goroutine uses about half of them
// and two use all, however loaded the machine is (a descheduled thread still counts as
// busy). The runtime's own work counts as busy too (the forced collections, a processor
// spinning for work after a preemption): one goroutine measures 0.6 on a 2-core machine.
func TestParallelEfficiency(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, tc := range []struct {
		busy     int
		min, max float64
	}{{1, 0.4, 0.7}, {2, 0.9, 1}} {
		t.Run(fmt.Sprintf("busy=%d", tc.busy), func(t *testing.T) {
			start := readCPUUse()
			spin(tc.busy, time.Second)
			if got := start.parallelEfficiency(readCPUUse()); got < tc.min || got > tc.max {
				t.Errorf("parallel efficiency of %d busy goroutines on 2 processors = %.3f, want in [%v, %v]", tc.busy, got, tc.min, tc.max)
			}
		})
	}
}
