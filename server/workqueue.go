package server

import (
	"context"
	"sync"
)

// workQueue hands the driver's work (central evaluations, uploads to add) from the
// goroutine that steps the coordinator to one worker goroutine that does it in order, so
// a large test set or model never holds up the events behind it.
type workQueue[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

func newWorkQueue[T any]() *workQueue[T] { return &workQueue[T]{wake: make(chan struct{}, 1)} }

// push queues items; it never blocks.
func (q *workQueue[T]) push(items []T) error {
	q.mu.Lock()
	q.items = append(q.items, items...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// run calls do on each queued item, one at a time in order, until ctx ends.
func (q *workQueue[T]) run(ctx context.Context, do func(context.Context, T)) {
	for {
		q.mu.Lock()
		var item T
		ok := len(q.items) > 0
		if ok {
			item = q.items[0]
			var zero T
			q.items[0] = zero // let the item's memory go
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		do(ctx, item)
	}
}
