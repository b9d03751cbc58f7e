package secagg

import (
	"sync"
	"sync/atomic"
)

// parallelFor runs f(worker, i) for i in [0, n) on up to workers goroutines. Worker w takes
// i = w, w+workers, …, in order, so which per-worker object (encoder, encryptor, buffer)
// handles which chunk does not depend on scheduling.
func parallelFor(workers, n int, f func(worker, i int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				f(w, i)
			}
		}(w)
	}
	wg.Wait()
}

// parallelDrain runs f(i) for i in [0, n) on up to workers goroutines, each taking the
// next i as it finishes one, until f returns false (the others then take no more): a
// worker that gets less of the CPU than the others (another process on the machine) runs
// fewer, instead of holding up the call with a fixed share. Which worker runs which i
// depends on scheduling, so f must not use per-worker objects.
func parallelDrain(workers, n int, f func(i int) bool) {
	var next atomic.Int64
	var stop atomic.Bool
	parallelFor(workers, workers, func(_, _ int) {
		for !stop.Load() {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if !f(i) {
				stop.Store(true)
			}
		}
	})
}

// firstError returns the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func clampWorkers(w int) int {
	if w < 1 {
		return 1
	}
	if w > 256 {
		return 256
	}
	return w
}
