package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// MulQ equals the naive integer product of the quantised operands, scaled, on the AVX2
// kernels and on the portable ones, for shapes with and without padding, overwriting and
// accumulating.
func TestMulQMatchesNaive(t *testing.T) {
	kernels := map[string][2]func(x, w []int16, k int, out *[3 * QuantChannels]int32){
		"portable":              {dot3x4Go, dot1x4Go},
		"default-" + int8Kernel: {dot3x4, dot1x4},
	}
	if avx2Kernels[0] != nil {
		kernels["avx2"] = avx2Kernels
	}
	r := rand.New(rand.NewPCG(1, 2))
	for name, kern := range kernels {
		for _, sh := range [][3]int{{1, 1, 1}, {3, 16, 4}, {4, 17, 5}, {3, 64, 8}, {6, 48, 4}, {7, 784, 10}, {10, 33, 13}, {2, 100, 3}} {
			for _, acc := range []bool{false, true} {
				m, k, n := sh[0], sh[1], sh[2]
				t.Run(fmt.Sprintf("%s/%dx%dx%d/acc=%v", name, m, k, n, acc), func(t *testing.T) {
					saved3, saved1 := dot3x4, dot1x4
					dot3x4, dot1x4 = kern[0], kern[1]
					defer func() { dot3x4, dot1x4 = saved3, saved1 }()
					x, w := randSlice(r, m*k), randSlice(r, k*n)
					kp := PaddedDepth(k)
					xq, xs := make([]int16, m*kp), make([]float64, m)
					QuantizeRows(xq, xs, x, m, k, kp, 0)
					wq, ws := make([]int16, PaddedChannels(n)*kp), make([]float64, PaddedChannels(n))
					QuantizeChannels(wq, ws, w, k, n, kp)
					ldd := n + 2
					dst := make([]float64, m*ldd)
					for i := range dst {
						dst[i] = 0.5
					}
					MulQ(dst, ldd, xq, xs, wq, ws, m, n, kp, acc)
					ref, _ := naive(false, false, x, w, m, k, n)
					for i := range m {
						for j := range n {
							var s int64
							for p := range k {
								s += int64(xq[i*kp+p]) * int64(wq[j*kp+p])
							}
							want := xs[i] * ws[j] * float64(s)
							if acc {
								want += 0.5
							}
							if got := dst[i*ldd+j]; got != want {
								t.Fatalf("(%d,%d) = %v, want %v", i, j, got, want)
							}
							// The quantised product is close to the float one: each operand is
							// off by at most half a step.
							bound := 0.5*(xs[i]*sumAbs(w, p2(k, n, j))+ws[j]*sumAbs(x[i*k:(i+1)*k], nil)) + 0.25*xs[i]*ws[j]*float64(k) + 1e-9
							if d := math.Abs((want - boolF(acc)*0.5) - ref[i*n+j]); d > bound {
								t.Fatalf("(%d,%d): quantised error %v beyond %v", i, j, d, bound)
							}
						}
						for j := n; j < ldd && i*ldd+j < len(dst); j++ {
							if dst[i*ldd+j] != 0.5 {
								t.Fatalf("MulQ wrote outside the %d columns", n)
							}
						}
					}
				})
			}
		}
	}
}

func boolF(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// p2 lists column j of a k×n matrix's indices.
func p2(k, n, j int) []int {
	idx := make([]int, k)
	for p := range idx {
		idx[p] = p*n + j
	}
	return idx
}

func sumAbs(v []float64, idx []int) float64 {
	s := 0.0
	if idx == nil {
		for _, x := range v {
			s += math.Abs(x)
		}
		return s
	}
	for _, i := range idx {
		s += math.Abs(v[i])
	}
	return s
}

func TestQuantizeRowsStaticAndZero(t *testing.T) {
	x := []float64{0, 0, 0, 1, -2, 0.5}
	q, s := make([]int16, 2*16), make([]float64, 2)
	QuantizeRows(q, s, x, 2, 3, 16, 0)
	if s[0] != 0 || q[0] != 0 || s[1] != 2.0/127 || q[16] != 64 || q[17] != -127 || q[18] != 32 {
		t.Fatalf("dynamic: scales %v, row 1 %v", s, q[16:19])
	}
	QuantizeRows(q, s, x, 2, 3, 16, 1.0/127) // static scale: 1 maps to 127, −2 clamps
	if s[1] != 1.0/127 || q[16] != 127 || q[17] != -127 || q[18] != 64 {
		t.Fatalf("static: scales %v, row 1 %v", s, q[16:19])
	}
}

// BenchmarkMulQ compares the int8 product (with the rows' quantisation) with the float64
// multiply on the MNIST MLP's first layer (batch × 784 × 256) and at batch 1, and on the
// spam Transformer's QKV projection (16 e-mails of 256 tokens × 64 × 192).
func BenchmarkMulQ(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sh := range [][3]int{{1, 784, 256}, {32, 784, 256}, {256, 784, 256}, {4096, 64, 192}} {
		m, k, n := sh[0], sh[1], sh[2]
		x, w := randSlice(r, m*k), randSlice(r, k*n)
		kp := PaddedDepth(k)
		xq, xs := make([]int16, m*kp), make([]float64, m)
		wq, ws := make([]int16, PaddedChannels(n)*kp), make([]float64, PaddedChannels(n))
		QuantizeChannels(wq, ws, w, k, n, kp)
		dst := make([]float64, m*n)
		b.Run(fmt.Sprintf("int8-%s/%dx%dx%d", int8Kernel, m, k, n), func(b *testing.B) {
			for b.Loop() {
				QuantizeRows(xq, xs, x, m, k, kp, 0)
				MulQ(dst, n, xq, xs, wq, ws, m, n, kp, false)
			}
			b.ReportMetric(float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
		b.Run(fmt.Sprintf("float64/%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				gemmT(false, false, dst, x, w, m, k, n, false)
			}
			b.ReportMetric(float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
		})
	}
}
