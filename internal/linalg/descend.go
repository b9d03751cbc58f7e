package linalg

// Descend sets p[i] −= lr·(g[i] + wd·p[i]) — a step of plain SGD with L2 weight decay, in
// PyTorch's order of operations — for i < len(g); p must be at least as long as g. Every
// value is rounded as the scalar expression rounds it (no fused multiply-adds), so the
// AVX kernel and the loop agree to the bit.
func Descend(p, g []float64, lr, wd float64) {
	p = p[:len(g)]
	n := descendFast(p, g, lr, wd)
	for i, v := range g[n:] {
		p[n+i] -= lr * (v + wd*p[n+i])
	}
}

// DescendNarrow is Descend that also sets low[i] = float32(p[i]) to each updated value, in
// the same pass: how an optimizer step refreshes a float32 network's copy of its float64
// master weights without reading them again (Narrow's pass). low must be at least as long
// as g. The results equal Descend's followed by Narrow's, to the bit.
func DescendNarrow(p, g []float64, low []float32, lr, wd float64) {
	p, low = p[:len(g)], low[:len(g)]
	n := descendNarrowFast(p, g, low, lr, wd)
	for i, v := range g[n:] {
		p[n+i] -= lr * (v + wd*p[n+i])
		low[n+i] = float32(p[n+i])
	}
}

// DescendDrain is a step of plain SGD from a float32 network's gradients src, in one pass:
// DescendNarrow(p, g, low, lr, wd) with g the float64 vector Drain would leave src in
// after clearing it, which is not formed. It replaces clearing g, Drain and DescendNarrow,
// three passes over float64 gradients, with one that has none and leaves src as it is: 24
// bytes moved a parameter instead of 60. p and low must be at least as long as src; the
// results equal those of the three, to the bit.
func DescendDrain(p []float64, src, low []float32, lr, wd float64) {
	p, low = p[:len(src)], low[:len(src)]
	n := descendDrainFast(p, src, low, lr, wd)
	for i, v := range src[n:] {
		g := 0 + float64(v) // Drain's sum in a cleared vector: −0 becomes +0
		p[n+i] -= lr * (g + wd*p[n+i])
		low[n+i] = float32(p[n+i])
	}
}

// DescendDrainNoise is DescendDrain from the gradients src plus std·z, DP-SGD's noise: the
// update of DescendNarrow(p, g, low, lr, wd) with g[i] = (0 + float64(src[i])) + std·z[i],
// the vector clearing g, Drain and adding std·z would leave, which is not formed. It sets
// each z[i] it reads to zero (noise that has been used is not kept). p, z and low must be
// at least as long as src; the results equal those of the four passes, to the bit.
func DescendDrainNoise(p []float64, src []float32, z []float64, std float64, low []float32, lr, wd float64) {
	p, z, low = p[:len(src)], z[:len(src)], low[:len(src)]
	n := descendDrainNoiseFast(p, src, z, std, low, lr, wd)
	for i, v := range src[n:] {
		g := 0 + float64(v)
		g += float64(std * z[n+i]) // the conversion keeps the compiler from fusing
		z[n+i] = 0
		p[n+i] -= lr * (g + wd*p[n+i])
		low[n+i] = float32(p[n+i])
	}
}
