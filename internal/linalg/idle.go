package linalg

import (
	"sync"
	"sync/atomic"
)

// Idle work: a helper that has finished a job polls for the next one for spinWait before it
// blocks (nextJob), and in a training step that polling is a large share of a helper's time
// — it waits while the caller runs the step's serial parts (on the float32 MLP's DP-SGD step
// at batch 256 on two cores, about 0.5 ms a step). Work that can be done ahead, such as
// drawing the next step's noise (dp.SecureNoise), is registered here and done in that time,
// in slices of about a microsecond, so that a job still finds its helper within a slice.
// Only helpers do idle work, never a caller waiting for its chunks, and only while they
// poll: a blocked helper does none.

var (
	idleMu    sync.Mutex
	idleSeq   uint64
	idleFuncs atomic.Pointer[[]idleEntry] // copy on write, guarded by idleMu
)

type idleEntry struct {
	id uint64
	f  func() bool
}

// AddIdleWork registers f to be called by helpers while they poll for jobs: each call does
// one slice of work of at most a few microseconds and reports whether there was any (false
// lets the helper go on to the next registered function). Calls of f never overlap when
// there is one helper; with more, f must exclude itself (a TryLock is enough). remove
// unregisters f; a call already started may still finish after it returns.
func AddIdleWork(f func() bool) (remove func()) {
	idleMu.Lock()
	defer idleMu.Unlock()
	idleSeq++
	id := idleSeq
	var cur []idleEntry
	if p := idleFuncs.Load(); p != nil {
		cur = *p
	}
	next := append(append(make([]idleEntry, 0, len(cur)+1), cur...), idleEntry{id, f})
	idleFuncs.Store(&next)
	return func() {
		idleMu.Lock()
		defer idleMu.Unlock()
		p := idleFuncs.Load()
		if p == nil {
			return
		}
		var kept []idleEntry
		for _, e := range *p {
			if e.id != id {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			idleFuncs.Store(nil)
			return
		}
		idleFuncs.Store(&kept)
	}
}

// idleSlice runs one slice of registered idle work and reports whether there was any.
func idleSlice() bool {
	p := idleFuncs.Load()
	if p == nil {
		return false
	}
	for _, e := range *p {
		if e.f() {
			return true
		}
	}
	return false
}
