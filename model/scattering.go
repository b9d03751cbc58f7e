package model

import (
	"math"
	"math/cmplx"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Scattering is the 2-D wavelet scattering transform of order 2 (Mallat 2012; Bruna & Mallat
// 2013) as Kymatio's Scattering2D computes it (Andreux et al. 2020), the ScatterNet whose
// features Tramèr & Boneh (ICLR 2021) feed to DP-SGD:
//
//	S0 x = x ⋆ φ_J,  S1 x = |x ⋆ ψ_λ1| ⋆ φ_J,  S2 x = ||x ⋆ ψ_λ1| ⋆ ψ_λ2| ⋆ φ_J  (j2 > j1),
//
// with Morlet wavelets ψ_{j,θ} (σ = 0.8·2^j, ξ = 3π/4·2^−j, slant 4/L, θ = (L/2 − 1 − l)·π/L)
// and a Gaussian low-pass φ_J (σ = 0.8·2^(J−1)). The image is reflect-padded to Kymatio's
// padded size, convolutions are products in the Fourier domain (gonum's FFT), and every
// intermediate signal is subsampled by 2^j as soon as its band allows: in the Fourier domain
// by averaging the spectrum's 2^j×2^j periodised blocks, which equals subsampling in space.
// Outputs are channel-major: channel 0 is S0, then the J·L first-order paths in (j, θ)
// order, then the second-order paths in (λ1, λ2) order, each OutShape() in size.
type Scattering struct {
	spec     FeatureSpec
	m, n     int // image rows and columns
	mp, np   int // padded size
	top      int // padding rows above the image
	left     int // padding columns left of the image
	outM     int
	outN     int
	channels int

	// phi[r] is the low-pass filter's real spectrum at resolution r (size (mp>>r)×(np>>r)),
	// periodised from the full-resolution one, for r = 0 … J−1.
	phi [][]float64
	psi []wavelet

	work sync.Pool // *scatterWork
}

var _ Features = (*Scattering)(nil)

// wavelet is one Morlet filter ψ_{j,θ}: its real spectrum at the resolutions it is applied at.
type wavelet struct {
	j, theta int
	levels   [][]float64
}

// scatteringPadded is Kymatio's padded length of a side of length m (compute_padding):
// the next multiple of 2^J after m + 2^J.
func scatteringPadded(m, J int) int { return ((m+1<<J)>>J + 1) << J }

// newScattering returns the scattering transform of a valid feature spec: the filter bank at
// the padded size, every wavelet at each resolution it is applied at.
func newScattering(f FeatureSpec) *Scattering {
	J, L := f.J, f.L
	s := &Scattering{spec: f, m: f.Shape[0], n: f.Shape[1], channels: f.Channels()}
	s.mp, s.np = scatteringPadded(s.m, J), scatteringPadded(s.n, J)
	// Kymatio pads ⌊pad/2⌋ before and ⌈pad/2⌉ after.
	s.top, s.left = (s.mp-s.m)/2, (s.np-s.n)/2
	s.outM, s.outN = f.OutShape()

	for j := 0; j < J; j++ {
		for t := 0; t < L; t++ {
			theta := float64(L-L/2-1-t) * math.Pi / float64(L)
			spatial := morlet2D(s.mp, s.np, 0.8*math.Exp2(float64(j)), theta, 3*math.Pi/4/math.Exp2(float64(j)), 4/float64(L))
			spec := realSpectrum(spatial, s.mp, s.np)
			w := wavelet{j: j, theta: t}
			for r := 0; r < min(j+1, max(J-1, 1)); r++ {
				w.levels = append(w.levels, periodizeSpectrum(spec, s.mp, s.np, r))
			}
			s.psi = append(s.psi, w)
		}
	}
	lp := realSpectrum(gabor2D(s.mp, s.np, 0.8*math.Exp2(float64(J-1)), 0, 0, 1), s.mp, s.np)
	for r := 0; r < J; r++ {
		s.phi = append(s.phi, periodizeSpectrum(lp, s.mp, s.np, r))
	}
	s.work.New = func() any { return s.newWork() }
	return s
}

func (s *Scattering) InDim() int  { return s.m * s.n }
func (s *Scattering) OutDim() int { return s.channels * s.outM * s.outN }

// Transform computes the scattering coefficients of n images, in parallel over the cores.
func (s *Scattering) Transform(dst, x []float64, n int) {
	in, out := s.InDim(), s.OutDim()
	if len(x) != n*in || len(dst) != n*out {
		panic("model: Scattering.Transform: wrong buffer lengths")
	}
	// About 4 million multiply-adds per 28×28 image: parallel from two images on.
	parallelFor(n, minParallelWork, func(_, lo, hi int) {
		w := s.work.Get().(*scatterWork)
		defer s.work.Put(w)
		for i := lo; i < hi; i++ {
			s.transformOne(w, dst[i*out:(i+1)*out], x[i*in:(i+1)*in])
		}
	})
}

// scatterWork holds one goroutine's FFT plans (stateful in gonum) and buffers.
type scatterWork struct {
	rows, cols []*fourier.CmplxFFT // plans by resolution r = 0 … J: lengths np>>r and mp>>r
	u0         []complex128
	u1, u2     [2][]complex128 // spectra of a pair of first- and second-order paths
	z          []complex128    // two real signals packed as one complex one
	low, pend  []complex128    // low-pass spectra at resolution J
	pendCh     int             // channel of pend, or −1
	col        []complex128
}

func (s *Scattering) newWork() *scatterWork {
	J := s.spec.J
	w := &scatterWork{pendCh: -1}
	for r := 0; r <= J; r++ {
		w.rows = append(w.rows, fourier.NewCmplxFFT(s.np>>r))
		w.cols = append(w.cols, fourier.NewCmplxFFT(s.mp>>r))
	}
	full := s.mp * s.np
	w.u0 = make([]complex128, full)
	for i := range w.u1 {
		w.u1[i] = make([]complex128, full)
		w.u2[i] = make([]complex128, full)
	}
	w.z = make([]complex128, full)
	w.low = make([]complex128, (s.mp>>J)*(s.np>>J))
	w.pend = make([]complex128, (s.mp>>J)*(s.np>>J))
	w.col = make([]complex128, s.mp)
	return w
}

// fft2 transforms the (mp>>r)×(np>>r) array a in place: forward, or inverse without the
// 1/size factor (callers fold it into their next step).
func (s *Scattering) fft2(w *scatterWork, a []complex128, r int, inverse bool) {
	rows, cols := s.mp>>r, s.np>>r
	rp, cp := w.rows[r], w.cols[r]
	for i := 0; i < rows; i++ {
		row := a[i*cols : (i+1)*cols]
		if inverse {
			rp.Sequence(row, row)
		} else {
			rp.Coefficients(row, row)
		}
	}
	if inverse {
		transformColumns(a, cols, w.col[:rows], cp.Sequence)
	} else {
		transformColumns(a, cols, w.col[:rows], cp.Coefficients)
	}
}

// transformColumns applies the 1-D transform f to every column of the row-major array a
// with cols columns and len(col) rows, in place, through the column buffer col.
func transformColumns(a []complex128, cols int, col []complex128, f func(dst, src []complex128) []complex128) {
	for j := 0; j < cols; j++ {
		for i := range col {
			col[i] = a[i*cols+j]
		}
		f(col, col)
		for i, v := range col {
			a[i*cols+j] = v
		}
	}
}

// filterSubsample sets dst to the spectrum of (u ⋆ f) subsampled by k in space: the product
// of u's and f's spectra (rows×cols) averaged over the k×k blocks of its periodisation
// (Kymatio's cdgmm then subsample_fourier).
func filterSubsample(dst, u []complex128, f []float64, rows, cols, k int) {
	rs, cs := rows/k, cols/k
	if k == 1 {
		for i, v := range u[:rows*cols] {
			dst[i] = complex(real(v)*f[i], imag(v)*f[i])
		}
		return
	}
	inv := 1 / float64(k*k)
	for m := 0; m < rs; m++ {
		for n := 0; n < cs; n++ {
			var re, im float64
			for a := 0; a < k; a++ {
				base := (m+a*rs)*cols + n
				for b := 0; b < k; b++ {
					idx := base + b*cs
					re += real(u[idx]) * f[idx]
					im += imag(u[idx]) * f[idx]
				}
			}
			dst[m*cs+n] = complex(re*inv, im*inv)
		}
	}
}

// modulusSpectra replaces each spectrum u (one or two, at resolution r) by the spectrum of
// the modulus of its inverse transform: U ↦ FFT(|IFFT(U)|). Two moduli, being real, share
// one forward transform: with z = a + i·b, A(k) = (Z(k) + Z̄(−k))/2 and B(k) = (Z(k) − Z̄(−k))/2i.
func (s *Scattering) modulusSpectra(w *scatterWork, us [][]complex128, r int) {
	rows, cols := s.mp>>r, s.np>>r
	n := rows * cols
	inv := 1 / float64(n)
	for _, u := range us {
		s.fft2(w, u, r, true)
	}
	if len(us) == 1 {
		u := us[0]
		for i, v := range u {
			u[i] = complex(cmplx.Abs(v)*inv, 0)
		}
		s.fft2(w, u, r, false)
		return
	}
	a, b, z := us[0], us[1], w.z[:n]
	for i := range z {
		z[i] = complex(cmplx.Abs(a[i])*inv, cmplx.Abs(b[i])*inv)
	}
	s.fft2(w, z, r, false)
	for i := 0; i < rows; i++ {
		ni := (rows - i) % rows
		for j := 0; j < cols; j++ {
			zk, zc := z[i*cols+j], cmplx.Conj(z[ni*cols+(cols-j)%cols])
			d := zk - zc
			a[i*cols+j] = (zk + zc) / 2
			b[i*cols+j] = complex(imag(d)/2, -real(d)/2)
		}
	}
}

// emit writes channel ch of dst: the signal with spectrum u (resolution r) convolved with
// φ_J, subsampled to resolution J, real part (Kymatio's irfft), with Kymatio's one-sample
// border removed. Channels are inverted in pairs — the real part of one is the inverse of
// the spectrum's Hermitian part, so two fit one complex transform — and flush writes the
// last one left over.
func (s *Scattering) emit(w *scatterWork, dst []float64, ch int, u []complex128, r int) {
	J := s.spec.J
	rows, cols := s.mp>>J, s.np>>J
	t := w.low
	filterSubsample(t, u, s.phi[r], s.mp>>r, s.np>>r, 1<<(J-r))
	if w.pendCh < 0 {
		hermitianPart(w.pend, t, rows, cols, false)
		w.pendCh = ch
		return
	}
	hermitianPart(w.pend, t, rows, cols, true)
	s.invertLowpass(w, dst, w.pendCh, ch)
	w.pendCh = -1
}

// flush writes the channel left in w.pend, if any.
func (s *Scattering) flush(w *scatterWork, dst []float64) {
	if w.pendCh >= 0 {
		s.invertLowpass(w, dst, w.pendCh, -1)
		w.pendCh = -1
	}
}

// hermitianPart sets dst to the Hermitian part (T(k) + T̄(−k))/2 of t, whose inverse
// transform is the real part of t's; with add, it adds i times it to dst instead.
func hermitianPart(dst, t []complex128, rows, cols int, add bool) {
	for i := 0; i < rows; i++ {
		ni := (rows - i) % rows
		for j := 0; j < cols; j++ {
			h := (t[i*cols+j] + cmplx.Conj(t[ni*cols+(cols-j)%cols])) / 2
			if add {
				dst[i*cols+j] += complex(-imag(h), real(h))
			} else {
				dst[i*cols+j] = h
			}
		}
	}
}

// invertLowpass inverts w.pend (resolution J) and writes its real part to channel re and its
// imaginary part to channel im (if im ≥ 0). Only the unpadded rows are transformed.
func (s *Scattering) invertLowpass(w *scatterWork, dst []float64, re, im int) {
	J := s.spec.J
	rows, cols := s.mp>>J, s.np>>J
	a := w.pend
	cp, rp := w.cols[J], w.rows[J]
	transformColumns(a, cols, w.col[:rows], cp.Sequence)
	inv := 1 / float64(rows*cols)
	per := s.outM * s.outN
	for i := 0; i < s.outM; i++ {
		row := a[(i+1)*cols : (i+2)*cols]
		rp.Sequence(row, row)
		for j := 0; j < s.outN; j++ {
			v := row[j+1]
			dst[re*per+i*s.outN+j] = real(v) * inv
			if im >= 0 {
				dst[im*per+i*s.outN+j] = imag(v) * inv
			}
		}
	}
}

// transformOne computes the features of one image x (m×n) into dst (OutDim). Paths of the
// same scale go through the modulus two at a time (modulusSpectra).
func (s *Scattering) transformOne(w *scatterWork, dst, x []float64) {
	u0 := w.u0
	for i := 0; i < s.mp; i++ {
		src := x[reflectIndex(i-s.top, s.m)*s.n:]
		row := u0[i*s.np : (i+1)*s.np]
		for j := range row {
			row[j] = complex(src[reflectIndex(j-s.left, s.n)], 0)
		}
	}
	s.fft2(w, u0, 0, false)
	s.emit(w, dst, 0, u0, 0)
	next := 1 + len(s.psi) // the next second-order channel
	for n1 := 0; n1 < len(s.psi); {
		j1, k1 := s.psi[n1].j, s.pairAt(n1)
		var buf [2][]complex128
		us := buf[:k1]
		for t := range us {
			us[t] = w.u1[t][:(s.mp>>j1)*(s.np>>j1)]
			filterSubsample(us[t], u0, s.psi[n1+t].levels[0], s.mp, s.np, 1<<j1)
		}
		s.modulusSpectra(w, us, j1)
		for t, u1 := range us {
			s.emit(w, dst, 1+n1+t, u1, j1)
			for n2 := 0; n2 < len(s.psi); {
				j2, k2 := s.psi[n2].j, s.pairAt(n2)
				if j2 <= j1 {
					n2 += k2
					continue
				}
				var buf2 [2][]complex128
				vs := buf2[:k2]
				for q := range vs {
					vs[q] = w.u2[q][:(s.mp>>j2)*(s.np>>j2)]
					filterSubsample(vs[q], u1, s.psi[n2+q].levels[j1], s.mp>>j1, s.np>>j1, 1<<(j2-j1))
				}
				s.modulusSpectra(w, vs, j2)
				for _, u2 := range vs {
					s.emit(w, dst, next, u2, j2)
					next++
				}
				n2 += k2
			}
		}
		n1 += k1
	}
	s.flush(w, dst)
	if s.spec.Norm == FeatureNormGroup {
		groupNorm(dst, s.spec.Groups)
	}
}

// pairAt is 2 when wavelets n and n+1 have the same scale (their paths share transforms),
// else 1.
func (s *Scattering) pairAt(n int) int {
	if n+1 < len(s.psi) && s.psi[n+1].j == s.psi[n].j {
		return 2
	}
	return 1
}

// reflectIndex maps i to [0, n) by reflection about the edges without repeating them
// (numpy's "reflect" padding, which Kymatio uses): −1 → 1, n → n−2.
func reflectIndex(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// gabor2D is Kymatio's gabor_2d: g(u) = e^{−uᵀAu} e^{i ξ (u₁cos θ + u₂sin θ)} / (2πσ²/slant)
// with A = R_θ diag(1, slant²) R_θᵀ / (2σ²), periodised over 5×5 copies of the M×N grid
// (Kymatio divides by 2·3.1415·σ²/slant; we use π, 3·10⁻⁵ apart).
func gabor2D(M, N int, sigma, theta, xi, slant float64) []complex128 {
	c, s := math.Cos(theta), math.Sin(theta)
	sl2 := slant * slant
	d := 2 * sigma * sigma
	a00 := (c*c + sl2*s*s) / d
	a01 := c * s * (1 - sl2) / d
	a11 := (s*s + sl2*c*c) / d
	g := make([]complex128, M*N)
	for ex := -2; ex <= 2; ex++ {
		for ey := -2; ey <= 2; ey++ {
			for i := 0; i < M; i++ {
				x := float64(i + ex*M)
				for j := 0; j < N; j++ {
					y := float64(j + ey*N)
					g[i*N+j] += cmplx.Rect(math.Exp(-(a00*x*x + 2*a01*x*y + a11*y*y)), xi*(x*c+y*s))
				}
			}
		}
	}
	norm := complex(slant/(2*math.Pi*sigma*sigma), 0)
	for i := range g {
		g[i] *= norm
	}
	return g
}

// morlet2D is Kymatio's morlet_2d: the Gabor filter minus the multiple of its envelope that
// makes its sum (its spectrum at 0) exactly zero.
func morlet2D(M, N int, sigma, theta, xi, slant float64) []complex128 {
	wv := gabor2D(M, N, sigma, theta, xi, slant)
	env := gabor2D(M, N, sigma, theta, 0, slant)
	var sw, se complex128
	for i := range wv {
		sw += wv[i]
		se += env[i]
	}
	k := sw / se
	for i := range wv {
		wv[i] -= k * env[i]
	}
	return wv
}

// realSpectrum returns the real part of the 2-D DFT of the M×N filter g; the imaginary part
// vanishes because the filters are centred at the origin (g(−u) = conj g(u)).
func realSpectrum(g []complex128, M, N int) []float64 {
	a := append([]complex128(nil), g...)
	rp, cp := fourier.NewCmplxFFT(N), fourier.NewCmplxFFT(M)
	for i := 0; i < M; i++ {
		rp.Coefficients(a[i*N:(i+1)*N], a[i*N:(i+1)*N])
	}
	transformColumns(a, N, make([]complex128, M), cp.Coefficients)
	out := make([]float64, M*N)
	for i, v := range a {
		out[i] = real(v)
	}
	return out
}

// periodizeSpectrum is Kymatio's periodize_filter_fft: the spectrum x (M×N) with its
// frequencies above the band of resolution res zeroed, folded to (M/2^res)×(N/2^res) by
// summing its 2^res×2^res blocks, for filtering signals already subsampled by 2^res.
func periodizeSpectrum(x []float64, M, N, res int) []float64 {
	k := 1 << res
	mr, nr := M/k, N/k
	sx, lx := int(float64(M)*math.Exp2(float64(-res-1))), int(float64(M)*(1-math.Exp2(float64(-res))))
	sy, ly := int(float64(N)*math.Exp2(float64(-res-1))), int(float64(N)*(1-math.Exp2(float64(-res))))
	masked := func(i, j int) bool { return (i >= sx && i < sx+lx) || (j >= sy && j < sy+ly) }
	out := make([]float64, mr*nr)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			if !masked(i, j) {
				out[(i%mr)*nr+j%nr] += x[i*N+j]
			}
		}
	}
	return out
}
