package linalg

import "math"

// ReLU32 sets dst[i] = max(src[i], 0) as Go's max computes it (NaN stays NaN, −0 becomes
// +0); dst must be at least as long as src and may be src.
func ReLU32(dst, src []float32) {
	dst = dst[:len(src)]
	n := relu32Fast(dst, src)
	for i, v := range src[n:] {
		dst[n+i] = max(v, 0)
	}
}

// ReLUGrad32 sets dx[i] = dy[i] where y[i] is not +0 and +0 where it is: the input gradient
// of y = max(x, 0), selected by a bit mask (a branch on the sign of the activations is
// mispredicted about half the time). dx and dy must be at least as long as y; dx may be dy.
func ReLUGrad32(dx, dy, y []float32) {
	dx, dy = dx[:len(y)], dy[:len(y)]
	n := reluGrad32Fast(dx, dy, y)
	for i, v := range y[n:] {
		b := math.Float32bits(v)
		mask := uint32(int32(b|-b) >> 31) // all ones iff the bits of y are not those of +0
		dx[n+i] = math.Float32frombits(math.Float32bits(dy[n+i]) & mask)
	}
}
