package sim

import (
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
// and two use nearly all. The runtime's own work counts as busy too (the forced
// collections, a processor spinning for work after a preemption, goroutines an earlier
// test left winding down): one goroutine measures 0.6 on an idle 2-core machine, up to 0.78
// on a loaded one; a loaded machine also delays the threads that pick up the spinning
// goroutines, so two measure from 0.87 there. The ranges allow for that; the ordering must
// hold whatever the load.
func TestParallelEfficiency(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var got [3]float64
	for _, tc := range []struct {
		busy     int
		min, max float64
	}{{1, 0.35, 0.85}, {2, 0.75, 1}} {
		start := readCPUUse()
		spin(tc.busy, 1500*time.Millisecond)
		got[tc.busy] = start.parallelEfficiency(readCPUUse())
		if g := got[tc.busy]; g < tc.min || g > tc.max {
			t.Errorf("parallel efficiency of %d busy goroutines on 2 processors = %.3f, want in [%v, %v]", tc.busy, g, tc.min, tc.max)
		}
	}
	if got[2] <= got[1]+0.1 {
		t.Errorf("parallel efficiency of 2 busy goroutines %.3f is not clearly above that of 1 (%.3f)", got[2], got[1])
	}
}
