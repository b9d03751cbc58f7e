package linalg

import (
	"math"

	"github.com/viterin/vek"
)

// Int8 inference (quantised weights, Jacob et al. 2018; per-channel symmetric scales as in
// PyTorch's dynamic quantisation): activations are quantised row by row, x_i ≈ s_i·q_i with
// integers q in [−127, 127], weights channel by channel, w_j ≈ t_j·v_j, and a product is
// s_i·t_j·Σ_p q_ip·v_jp, its sum exact in int32. The integers are held as int16 so the
// AVX2 kernel multiplies 16 pairs per instruction (VPMADDWD) against 4 float64 multiply-adds
// for the float64 kernel (with AVX-512 VNNI, VPDPWSSD multiplies and accumulates 32 pairs);
// |Σ| ≤ 127²·k stays inside int32 for k up to 133,000.

// QuantBlock is the depth granularity of the int8 kernels: rows of quantised values are
// padded with zeros to a multiple of it (one 512-bit vector of int16).
const QuantBlock = 32

// QuantChannels is the granularity of the weights' channels: a weight matrix holds a
// multiple of it rows, zero-padded.
const QuantChannels = 4

// PaddedDepth returns k rounded up to a multiple of QuantBlock.
func PaddedDepth(k int) int { return (k + QuantBlock - 1) / QuantBlock * QuantBlock }

// PaddedChannels returns n rounded up to a multiple of QuantChannels.
func PaddedChannels(n int) int { return (n + QuantChannels - 1) / QuantChannels * QuantChannels }

// QuantizeRows quantises the m rows of x (m×k, row-major) into dst (m×kpad, the values of
// row i at dst[i·kpad:], its tail after k zeroed) and scales: q = round(x/s) with
// s = max|x_row|/127 (dynamic; a zero row gets s = 0 and q = 0), or, when static > 0,
// s = static with q clamped to [−127, 127].
func QuantizeRows(dst []int16, scales []float64, x []float64, m, k, kpad int, static float64) {
	if kpad < k || len(dst) < m*kpad || len(scales) < m || len(x) < m*k {
		panic("linalg: QuantizeRows: buffers too small")
	}
	for i := range m {
		row := x[i*k : (i+1)*k]
		q := dst[i*kpad : (i+1)*kpad]
		s := static
		if s <= 0 {
			s = absMax(row) / 127
		}
		scales[i] = s
		if s == 0 {
			clear(q)
			continue
		}
		inv := 1 / s
		q = q[:len(row)]
		done := 0
		if useQuantizeAVX2 && len(row) >= 4 {
			done = len(row) &^ 3
			quantizeRowAVX2(&q[0], &row[0], done, inv, &quantizeConsts)
		}
		for p := done; p < len(row); p++ {
			v := row[p]
			// Plain comparisons and a truncation: the min/max builtins and math.Round
			// handle NaN, −0 and huge values at several times the cost, and x is finite.
			r := v * inv
			if r > 127 {
				r = 127
			} else if r < -127 {
				r = -127
			}
			q[p] = int16(r + math.Copysign(0.5, r)) // round half away from zero
		}
		clear(dst[i*kpad+k : (i+1)*kpad])
	}
}

// absMax is max |v| over v: the larger of vek's AVX2 maximum and −minimum for rows of 16
// or more (a Transformer's 64-wide rows spent more time here than in their products),
// else four running maxima at a time.
func absMax(v []float64) float64 {
	if useVek && len(v) >= 16 {
		return max(vek.Max(v), -vek.Min(v))
	}
	var m0, m1, m2, m3 float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		a, b, c, d := math.Abs(v[i]), math.Abs(v[i+1]), math.Abs(v[i+2]), math.Abs(v[i+3])
		if a > m0 {
			m0 = a
		}
		if b > m1 {
			m1 = b
		}
		if c > m2 {
			m2 = c
		}
		if d > m3 {
			m3 = d
		}
	}
	for ; i < len(v); i++ {
		if a := math.Abs(v[i]); a > m0 {
			m0 = a
		}
	}
	if m1 > m0 {
		m0 = m1
	}
	if m3 > m2 {
		m2 = m3
	}
	if m2 > m0 {
		m0 = m2
	}
	return m0
}

// QuantizeChannels quantises weight matrix w (k×n, row-major; channel j is column j) for
// MulQ: dst (PaddedChannels(n)×kpad) holds channel j's values v = round(w/t_j) at
// dst[j·kpad:], t_j = max_p |w_pj|/127 in scales[j] (0 for a zero channel); padding is zero.
func QuantizeChannels(dst []int16, scales []float64, w []float64, k, n, kpad int) {
	np := PaddedChannels(n)
	if kpad < k || len(dst) < np*kpad || len(scales) < np || len(w) < k*n {
		panic("linalg: QuantizeChannels: buffers too small")
	}
	clear(dst[:np*kpad])
	clear(scales[:np])
	for j := range n {
		mx := 0.0
		for p := range k {
			mx = max(mx, math.Abs(w[p*n+j]))
		}
		if mx == 0 {
			continue
		}
		t := mx / 127
		scales[j] = t
		for p := range k {
			dst[j*kpad+p] = int16(math.Round(w[p*n+j] / t))
		}
	}
}

// MulQ sets dst[i·ldd + j] = xs[i]·ws[j]·Σ_p xq[i·kpad+p]·wq[j·kpad+p] for i < m, j < n
// (acc: adds it). xq is m×kpad (QuantizeRows), wq PaddedChannels(n)×kpad with scales ws
// of the same length (QuantizeChannels); kpad is a multiple of QuantBlock. It runs on the
// calling goroutine: callers split m (ParallelFor) when the product is large.
func MulQ(dst []float64, ldd int, xq []int16, xs []float64, wq []int16, ws []float64, m, n, kpad int, acc bool) {
	np := PaddedChannels(n)
	if kpad%QuantBlock != 0 || len(xq) < m*kpad || len(wq) < np*kpad || len(ws) < np || len(xs) < m || (m > 0 && len(dst) < (m-1)*ldd+n) {
		panic("linalg: MulQ: bad dimensions")
	}
	if kpad == 0 {
		if !acc {
			for i := range m {
				clear(dst[i*ldd : i*ldd+n])
			}
		}
		return
	}
	var out [3 * QuantChannels]int32
	store := func(i, rows, j int) {
		if j+QuantChannels <= n {
			storeTile(dst, ldd, i, rows, j, xs, (*[QuantChannels]float64)(ws[j:j+QuantChannels]), &out, acc)
			return
		}
		for r := range rows {
			row := dst[(i+r)*ldd:]
			s := xs[i+r]
			for c := range min(QuantChannels, n-j) {
				v := s * ws[j+c] * float64(out[r*QuantChannels+c])
				if acc {
					row[j+c] += v
				} else {
					row[j+c] = v
				}
			}
		}
	}
	// A block of weight channels (16 KiB) stays in L1 while every row of x passes over it.
	block := max(QuantChannels, (16<<10)/(2*kpad)/QuantChannels*QuantChannels)
	for j0 := 0; j0 < np; j0 += block {
		j1 := min(np, j0+block)
		i := 0
		for ; i+3 <= m; i += 3 {
			for j := j0; j < j1; j += QuantChannels {
				dot3x4(xq[i*kpad:], wq[j*kpad:], kpad, &out)
				store(i, 3, j)
			}
		}
		for ; i < m; i++ {
			for j := j0; j < j1; j += QuantChannels {
				dot1x4(xq[i*kpad:], wq[j*kpad:], kpad, &out)
				store(i, 1, j)
			}
		}
	}
}

// storeTile stores (or with acc adds) the rows×4 tile out of integer dot products,
// scaled by row scales xs[i:] and channel scales w, at dst[(i+r)·ldd + j …]: fixed-size
// arrays, no bounds checks inside and one branch per row. A loop over the channels with
// min(4, n − j) and the acc test per element cost several times the dot products they
// store when k is small (a Transformer's 64-wide rows).
func storeTile(dst []float64, ldd, i, rows, j int, xs []float64, w *[QuantChannels]float64, out *[3 * QuantChannels]int32, acc bool) {
	if useQuantizeAVX2 && rows > 0 {
		_, _ = dst[(i+rows-1)*ldd+j+QuantChannels-1], xs[i+rows-1] // bounds: the kernel writes and reads these
		storeTileAVX2(&dst[i*ldd+j], ldd, rows, &xs[i], &w[0], &out[0], acc)
		return
	}
	for r := range rows {
		s := xs[i+r]
		o := (*[QuantChannels]int32)(out[r*QuantChannels:])
		d := (*[QuantChannels]float64)(dst[(i+r)*ldd+j:])
		v0, v1, v2, v3 := s*w[0]*float64(o[0]), s*w[1]*float64(o[1]), s*w[2]*float64(o[2]), s*w[3]*float64(o[3])
		if acc {
			d[0], d[1], d[2], d[3] = d[0]+v0, d[1]+v1, d[2]+v2, d[3]+v3
		} else {
			d[0], d[1], d[2], d[3] = v0, v1, v2, v3
		}
	}
}

// dot3x4 writes the dot products of 3 rows of x with 4 rows of w, each row k values (a
// multiple of QuantBlock) and rows k apart, into out[r·4 + c].
var dot3x4 = dot3x4Go

// dot1x4 writes the dot products of x's first k values with 4 rows of w into out[0:4].
var dot1x4 = dot1x4Go

func dot3x4Go(x, w []int16, k int, out *[3 * QuantChannels]int32) {
	for r := range 3 {
		xr := x[r*k : r*k+k]
		for c := range QuantChannels {
			wc := w[c*k : c*k+k]
			var s int32
			for p, v := range xr {
				s += int32(v) * int32(wc[p])
			}
			out[r*QuantChannels+c] = s
		}
	}
}

func dot1x4Go(x, w []int16, k int, out *[3 * QuantChannels]int32) {
	xr := x[:k]
	for c := range QuantChannels {
		wc := w[c*k : c*k+k]
		var s int32
		for p, v := range xr {
			s += int32(v) * int32(wc[p])
		}
		out[c] = s
	}
}

// int8Kernel names the kernels in use (for benchmarks and tests).
var int8Kernel = "portable"

// avx2Kernels are the AVX2 kernels when the machine has them and a wider set is the
// default (tests check them too); nil otherwise.
var avx2Kernels [2]func(x, w []int16, k int, out *[3 * QuantChannels]int32)
