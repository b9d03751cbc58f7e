//go:build amd64 && !purego

package linalg

// descendAVX does Descend's update of the first n values, n a multiple of 8
// (descend_amd64.s).
//
//go:noescape
func descendAVX(p, grad *float64, n int, lr, wd float64)

// descendNarrowAVX is descendAVX that also stores the updated values rounded to float32.
//
//go:noescape
func descendNarrowAVX(p, grad *float64, low *float32, n int, lr, wd float64)

// descendDrainAVX is descendNarrowAVX taking the gradients from float32 ones (DescendDrain).
//
//go:noescape
func descendDrainAVX(p *float64, src, low *float32, n int, lr, wd float64)

// descendDrainNoiseAVX is descendDrainAVX adding std·z to the gradients and zeroing z
// (DescendDrainNoise).
//
//go:noescape
func descendDrainNoiseAVX(p *float64, src *float32, z *float64, std float64, low *float32, n int, lr, wd float64)

// descendFast handles the longest prefix of whole groups of 8 values and returns its length
// (0 without AVX); the lengths were checked by the caller.
func descendFast(p, g []float64, lr, wd float64) int {
	n := len(g) &^ 7
	if !hasAVX || n == 0 {
		return 0
	}
	descendAVX(&p[0], &g[0], n, lr, wd)
	return n
}

// descendNarrowFast is descendFast for DescendNarrow.
func descendNarrowFast(p, g []float64, low []float32, lr, wd float64) int {
	n := len(g) &^ 7
	if !hasAVX || n == 0 {
		return 0
	}
	descendNarrowAVX(&p[0], &g[0], &low[0], n, lr, wd)
	return n
}

// descendDrainFast is descendFast for DescendDrain.
func descendDrainFast(p []float64, src, low []float32, lr, wd float64) int {
	n := len(src) &^ 7
	if !hasAVX || n == 0 {
		return 0
	}
	descendDrainAVX(&p[0], &src[0], &low[0], n, lr, wd)
	return n
}

// descendDrainNoiseFast is descendFast for DescendDrainNoise.
func descendDrainNoiseFast(p []float64, src []float32, z []float64, std float64, low []float32, lr, wd float64) int {
	n := len(src) &^ 7
	if !hasAVX || n == 0 {
		return 0
	}
	descendDrainNoiseAVX(&p[0], &src[0], &z[0], std, &low[0], n, lr, wd)
	return n
}
