package data

import (
	"fmt"
	"iter"
	"math/rand/v2"
)

// BatchIterator deals the indices [0, n) out in batches, one epoch at a time. It owns one
// permutation buffer, reused across epochs, so iterating allocates nothing.
type BatchIterator struct {
	order    []int
	size     int
	dropLast bool
	pos      int
}

// NewBatchIterator returns an iterator over n examples in batches of batchSize, in index
// order until the first Reset. With dropLast the final short batch of an epoch is skipped.
func NewBatchIterator(n, batchSize int, dropLast bool) (*BatchIterator, error) {
	if n < 0 {
		return nil, fmt.Errorf("data: batch iterator over %d examples: count must be ≥ 0", n)
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("data: batch size %d: must be > 0", batchSize)
	}
	it := &BatchIterator{order: make([]int, n), size: batchSize, dropLast: dropLast}
	it.Reset(nil)
	return it, nil
}

// Reset starts a new epoch. With a non-nil rng the order is a fresh uniform permutation
// drawn from rng (so an epoch's order depends only on rng's state, not on earlier epochs);
// with nil it is 0, 1, …, n-1.
func (it *BatchIterator) Reset(rng *rand.Rand) {
	for i := range it.order {
		it.order[i] = i
	}
	if rng != nil {
		rng.Shuffle(len(it.order), func(i, j int) { it.order[i], it.order[j] = it.order[j], it.order[i] })
	}
	it.pos = 0
}

// Next returns the next batch of indices and true, or nil and false at the end of the
// epoch. The slice aliases the iterator's buffer: it is valid until the next Reset and
// must not be modified.
func (it *BatchIterator) Next() ([]int, bool) {
	rest := len(it.order) - it.pos
	if rest <= 0 || (it.dropLast && rest < it.size) {
		return nil, false
	}
	end := it.pos + min(it.size, rest)
	b := it.order[it.pos:end:end]
	it.pos = end
	return b, true
}

// NumBatches returns the number of batches in one epoch.
func (it *BatchIterator) NumBatches() int {
	n := len(it.order)
	if it.dropLast {
		return n / it.size
	}
	return (n + it.size - 1) / it.size
}

// Batches returns one epoch of index batches over [0, n), shuffled by rng (index order
// when rng is nil), the final short batch dropped when dropLast. Each yielded slice is
// valid for the duration of its loop iteration. It panics if batchSize ≤ 0 or n < 0,
// which are programming errors; use NewBatchIterator to get an error instead.
func Batches(n, batchSize int, dropLast bool, rng *rand.Rand) iter.Seq[[]int] {
	it, err := NewBatchIterator(n, batchSize, dropLast)
	if err != nil {
		panic(err)
	}
	it.Reset(rng)
	return func(yield func([]int) bool) {
		for b, ok := it.Next(); ok; b, ok = it.Next() {
			if !yield(b) {
				return
			}
		}
	}
}

// Batch holds the rows of one batch, gathered by Dataset.Gather into buffers that are
// reused from batch to batch. Only the fields of the dataset's feature and label forms
// are set; the others are nil.
type Batch struct {
	N       int       // number of rows
	X       []float64 // N×Dim (dense datasets)
	Tokens  []int32   // N×SeqLen (text datasets)
	Lengths []int32   // N (text datasets)
	Y       []int32   // N (classification)
	Targets []int32   // N×SeqLen (next-token prediction)
	Values  []float64 // N×NumValues (regression)
}

// Gather copies rows idx of d into b, growing b's buffers only when they are too small,
// so a loop over batches of at most the same size allocates nothing after the first.
// An index outside [0, N) is a programming error and panics.
func (d *Dataset) Gather(b *Batch, idx []int) {
	b.N = len(idx)
	b.X, b.Tokens, b.Lengths, b.Y, b.Targets, b.Values = b.X[:0], b.Tokens[:0], b.Lengths[:0], b.Y[:0], b.Targets[:0], b.Values[:0]
	if d.X != nil {
		b.X = resize(b.X, len(idx)*d.Dim)
		d.GatherX(b.X, idx)
	} else {
		b.X = nil
	}
	if d.Tokens != nil {
		b.Tokens = resize(b.Tokens, len(idx)*d.SeqLen)
		b.Lengths = resize(b.Lengths, len(idx))
		d.GatherTokens(b.Tokens, b.Lengths, idx)
	} else {
		b.Tokens, b.Lengths = nil, nil
	}
	if d.Y != nil {
		b.Y = resize(b.Y, len(idx))
		d.GatherY(b.Y, idx)
	} else {
		b.Y = nil
	}
	if d.Targets != nil {
		b.Targets = resize(b.Targets, len(idx)*d.SeqLen)
		d.GatherTargets(b.Targets, idx)
	} else {
		b.Targets = nil
	}
	if d.Values != nil {
		b.Values = resize(b.Values, len(idx)*d.NumValues)
		checkGather("Gather values", len(b.Values), len(idx), d.NumValues, d.N, idx)
		gatherRows(b.Values, d.Values, idx, d.NumValues)
	} else {
		b.Values = nil
	}
}

// GatherX copies the dense feature rows idx into dst, which must have length
// len(idx)×Dim (a caller-owned buffer, e.g. the backing array of a batch matrix).
func (d *Dataset) GatherX(dst []float64, idx []int) {
	checkGather("GatherX", len(dst), len(idx), d.Dim, d.N, idx)
	gatherRows(dst, d.X, idx, d.Dim)
}

// GatherTokens copies the token rows idx into dst (length len(idx)×SeqLen) and their
// lengths into dstLengths (length len(idx)).
func (d *Dataset) GatherTokens(dst, dstLengths []int32, idx []int) {
	checkGather("GatherTokens", len(dst), len(idx), d.SeqLen, d.N, idx)
	checkGather("GatherTokens lengths", len(dstLengths), len(idx), 1, d.N, nil)
	gatherRows(dst, d.Tokens, idx, d.SeqLen)
	gatherRows(dstLengths, d.Lengths, idx, 1)
}

// GatherY copies the class labels idx into dst (length len(idx)).
func (d *Dataset) GatherY(dst []int32, idx []int) {
	checkGather("GatherY", len(dst), len(idx), 1, d.N, idx)
	gatherRows(dst, d.Y, idx, 1)
}

// GatherTargets copies the next-token target rows idx into dst (length len(idx)×SeqLen).
func (d *Dataset) GatherTargets(dst []int32, idx []int) {
	checkGather("GatherTargets", len(dst), len(idx), d.SeqLen, d.N, idx)
	gatherRows(dst, d.Targets, idx, d.SeqLen)
}

func checkGather(op string, dstLen, rows, width, n int, idx []int) {
	if dstLen != rows*width {
		panic(fmt.Sprintf("data: %s: destination has length %d, want %d rows × %d = %d", op, dstLen, rows, width, rows*width))
	}
	for _, i := range idx {
		if uint(i) >= uint(n) {
			panic(fmt.Sprintf("data: %s: index %d out of range [0, %d)", op, i, n))
		}
	}
}

// resize returns s with length n, reusing its array when the capacity suffices.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
