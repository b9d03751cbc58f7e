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
