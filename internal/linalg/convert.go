package linalg

// Narrow sets dst[i] = float32(src[i]), rounded to nearest (ties to even) as Go's
// conversion rounds; dst must be at least as long as src. It is how a float32 network
// takes its float64 master weights (AVX2's VCVTPD2PS four values at a time where the
// platform has it: the scalar loop converts one value a cycle at best).
func Narrow(dst []float32, src []float64) {
	dst = dst[:len(src)]
	n := narrowFast(dst, src)
	for i, v := range src[n:] {
		dst[n+i] = float32(v)
	}
}

// Drain adds float64(src[i]) to dst[i] (exact: every float32 is a float64) and sets src[i]
// to zero, in one pass; dst must be at least as long as src. It is how a float32 network's
// gradients move to the float64 ones, leaving its own zeroed for the next pass.
func Drain(dst []float64, src []float32) {
	dst = dst[:len(src)]
	n := drainFast(dst, src)
	for i, v := range src[n:] {
		dst[n+i] += float64(v)
	}
	clear(src[n:])
}
