package linalg

// MaxArg32 folds one more window position x into a running max pool: for each i < len(x),
// where x[i] > y[i] it sets arg[i] = base + i, and it sets y[i] = max(y[i], x[i]) as Go's
// max computes it (NaN wins, +0 over −0). A tie keeps the earlier position, as PyTorch's
// max_pool2d does. y and arg must be at least as long as x.
func MaxArg32(y []float32, arg []int32, x []float32, base int32) {
	y, arg = y[:len(x)], arg[:len(x)]
	n := maxArg32Fast(y, arg, x, base)
	for i, v := range x[n:] {
		j := n + i
		if v > y[j] {
			arg[j] = base + int32(j)
		}
		y[j] = max(y[j], v)
	}
}
