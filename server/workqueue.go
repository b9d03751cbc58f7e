package server

import (
	"context"
	"sync"

	pb "github.com/confide-fl/confide/proto/confide/v1"
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

// uploadShare is a received upload's share of ServiceConfig.MaxUploadBytes. Its PushResult
// releases it, unless the coordinator queued the upload's aggregation work (queued): the
// work releases it when it has run, so uploads waiting to be added count against the budget.
type uploadShare struct {
	weight int64
	key    *pb.Blob // the upload's first blob, which its work carries
	queued bool
}

// uploadWork is work that adds a received upload (AggregationWork, PlainUpdateWork).
type uploadWork interface{ upload() *pb.Blob }

// queueWork queues the coordinator's work; an upload's work takes its upload's share of
// the budget.
func (s *Service) queueWork(items []Work) error {
	s.mu.Lock()
	for _, w := range items {
		if u, ok := w.(uploadWork); ok {
			if h := s.held[u.upload()]; h != nil {
				h.queued = true
			}
		}
	}
	s.mu.Unlock()
	return s.work.push(items)
}

// workDone releases the share of the upload that w added.
func (s *Service) workDone(w Work) {
	u, ok := w.(uploadWork)
	if !ok {
		return
	}
	s.mu.Lock()
	h := s.held[u.upload()]
	if h != nil && h.queued {
		delete(s.held, h.key)
	} else {
		h = nil
	}
	s.mu.Unlock()
	if h != nil {
		s.uploadBytes.Release(h.weight)
	}
}

// releaseUpload releases a PushResult's share unless its work took it.
func (s *Service) releaseUpload(h *uploadShare) {
	s.mu.Lock()
	queued := h.queued
	if !queued && h.key != nil {
		delete(s.held, h.key)
	}
	s.mu.Unlock()
	if !queued {
		s.uploadBytes.Release(h.weight)
	}
}
