package secagg

import "sync"

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
