package linalg

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Helpers do registered idle work while they poll for jobs, and none after it is removed.
func TestIdleWork(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("helpers poll only with two or more processors")
	}
	defer setWorkers(2)()
	var slices atomic.Int64
	remove := AddIdleWork(func() bool {
		slices.Add(1)
		for spin := time.Now(); time.Since(spin) < time.Microsecond; {
		}
		return true
	})
	// regions runs parallel regions with a busy caller between them, during which the
	// helper polls.
	regions := func(n int) {
		for range n {
			ParallelForChunks(2, MinParallelFor, 1, func(int, int, int) {
				for spin := time.Now(); time.Since(spin) < 20*time.Microsecond; {
				}
			})
			for spin := time.Now(); time.Since(spin) < 50*time.Microsecond; {
			}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); slices.Load() == 0; regions(10) {
		if time.Now().After(deadline) {
			t.Fatal("no idle work done in 10 s of parallel regions with a helper polling between them")
		}
	}
	remove()
	time.Sleep(time.Millisecond) // a slice that had started ends
	before := slices.Load()
	regions(200)
	if after := slices.Load(); after != before {
		t.Errorf("%d slices of idle work after it was removed", after-before)
	}
	remove() // twice is harmless
}
