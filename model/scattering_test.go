package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func scatteringSpec(rows, cols, J, L int) FeatureSpec {
	return FeatureSpec{Type: FeaturesScattering, J: J, L: L, Shape: []int{rows, cols}}
}

// TestScatteringShape: Kymatio's channel count 1 + JL + L²J(J−1)/2 and output side M/2^J
// (81 × 7 × 7 = 3969 for MNIST with J = 2, L = 8, Tramèr & Boneh's K = 81).
func TestScatteringShape(t *testing.T) {
	for _, c := range []struct {
		rows, cols, J, L, channels, outM, outN int
	}{
		{28, 28, 2, 8, 81, 7, 7},
		{32, 32, 2, 8, 81, 8, 8},
		{8, 8, 1, 4, 5, 4, 4},
		{16, 12, 2, 4, 25, 4, 3},
		{30, 30, 2, 8, 81, 7, 7}, // not a multiple of 2^J: Kymatio's padding still gives ⌊M/2^J⌋
	} {
		t.Run(fmt.Sprintf("%dx%d_J%d_L%d", c.rows, c.cols, c.J, c.L), func(t *testing.T) {
			f := scatteringSpec(c.rows, c.cols, c.J, c.L)
			if err := f.Validate(c.rows * c.cols); err != nil {
				t.Fatal(err)
			}
			if got := f.Channels(); got != c.channels {
				t.Errorf("channels %d, want %d", got, c.channels)
			}
			if r, cc := f.OutShape(); r != c.outM || cc != c.outN {
				t.Errorf("out shape %d×%d, want %d×%d", r, cc, c.outM, c.outN)
			}
			s := newScattering(f)
			if s.OutDim() != c.channels*c.outM*c.outN || s.InDim() != c.rows*c.cols {
				t.Errorf("dims %d → %d", s.InDim(), s.OutDim())
			}
		})
	}
}

// TestScatteringFilters checks the filter bank's defining properties at every resolution it
// is used at: the low-pass φ sums to 1 (its spectrum is 1 at frequency 0), every Morlet
// wavelet has zero mean (spectrum 0 at frequency 0), Morlet ψ_{j,θ}'s spectrum peaks near
// ξ = 3π/4·2^−j in direction θ, and the unpadded filters are real in Fourier.
func TestScatteringFilters(t *testing.T) {
	for _, c := range []struct{ size, J, L int }{{8, 1, 4}, {16, 2, 8}, {28, 2, 8}} {
		t.Run(fmt.Sprintf("%d_J%d_L%d", c.size, c.J, c.L), func(t *testing.T) {
			s := newScattering(scatteringSpec(c.size, c.size, c.J, c.L))
			for r, p := range s.phi {
				if math.Abs(p[0]-1) > 1e-4 {
					t.Errorf("φ at resolution %d sums to %v, want 1", r, p[0])
				}
			}
			if len(s.psi) != c.J*c.L {
				t.Fatalf("%d wavelets, want J·L = %d", len(s.psi), c.J*c.L)
			}
			for _, w := range s.psi {
				for r, lv := range w.levels {
					if math.Abs(lv[0]) > 1e-12 {
						t.Errorf("ψ(j=%d, θ=%d) at resolution %d has mean %v, want 0", w.j, w.theta, r, lv[0])
					}
				}
				// The spectrum's peak: at frequency ξ·(cos θ, sin θ) in radians per sample.
				lv, M, N := w.levels[0], s.mp, s.np
				best, bi, bj := math.Inf(-1), 0, 0
				for i := 0; i < M; i++ {
					for j := 0; j < N; j++ {
						if lv[i*N+j] > best {
							best, bi, bj = lv[i*N+j], i, j
						}
					}
				}
				freq := func(k, n int) float64 {
					if k > n/2 {
						k -= n
					}
					return 2 * math.Pi * float64(k) / float64(n)
				}
				theta := float64(c.L-c.L/2-1-w.theta) * math.Pi / float64(c.L)
				xi := 3 * math.Pi / 4 / math.Exp2(float64(w.j))
				wx, wy := xi*math.Cos(theta), xi*math.Sin(theta)
				// One frequency bin is 2π/M; the Morlet correction shifts the peak a little.
				if d := math.Hypot(freq(bi, M)-wx, freq(bj, N)-wy); d > 2.5*2*math.Pi/float64(M) {
					t.Errorf("ψ(j=%d, θ=%d) peaks at (%.3f, %.3f), want near (%.3f, %.3f)", w.j, w.theta, freq(bi, M), freq(bj, N), wx, wy)
				}
			}
			// gabor2D/morlet2D spectra are real: the imaginary part realSpectrum drops is ~0.
			g := morlet2D(s.mp, s.np, 0.8, math.Pi/8, 3*math.Pi/4, 0.5)
			im := 0.0
			for _, v := range dft2(g, s.mp, s.np) {
				im = math.Max(im, math.Abs(imag(v)))
			}
			if im > 1e-12 {
				t.Errorf("Morlet spectrum has imaginary part %v", im)
			}
		})
	}
}

// dft2 is the naive 2-D DFT, the reference for the FFT paths.
func dft2(g []complex128, M, N int) []complex128 {
	out := make([]complex128, M*N)
	for k := 0; k < M; k++ {
		for l := 0; l < N; l++ {
			var s complex128
			for i := 0; i < M; i++ {
				for j := 0; j < N; j++ {
					ph := -2 * math.Pi * (float64(i*k)/float64(M) + float64(j*l)/float64(N))
					s += g[i*N+j] * complex(math.Cos(ph), math.Sin(ph))
				}
			}
			out[k*N+l] = s
		}
	}
	return out
}

// naiveScattering computes the transform in space by the definition: circular convolutions
// with the filters' spatial kernels on the padded image, moduli, and subsampling by plain
// decimation — no Fourier-domain periodisation. It is the reference for the fast path.
func naiveScattering(s *Scattering, x []float64) []float64 {
	M, N, J := s.mp, s.np, s.spec.J
	pad := make([]complex128, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			pad[i*N+j] = complex(x[reflectIndex(i-s.top, s.m)*s.n+reflectIndex(j-s.left, s.n)], 0)
		}
	}
	// Spatial kernels at full resolution: the inverse DFT of the level-0 spectra.
	kernel := func(spec []float64) []complex128 {
		c := make([]complex128, len(spec))
		for i, v := range spec {
			c[i] = complex(v, 0)
		}
		k := dft2(c, M, N) // the DFT of a real even-in-frequency spectrum, up to reflection
		out := make([]complex128, M*N)
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				out[i*N+j] = k[((M-i)%M)*N+(N-j)%N] / complex(float64(M*N), 0)
			}
		}
		return out
	}
	conv := func(a, k []complex128) []complex128 {
		out := make([]complex128, M*N)
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s complex128
				for p := 0; p < M; p++ {
					for q := 0; q < N; q++ {
						s += a[p*N+q] * k[((i-p+M)%M)*N+(j-q+N)%N]
					}
				}
				out[i*N+j] = s
			}
		}
		return out
	}
	abs := func(a []complex128) []complex128 {
		out := make([]complex128, len(a))
		for i, v := range a {
			out[i] = complex(math.Hypot(real(v), imag(v)), 0)
		}
		return out
	}
	phi := kernel(s.phi[0])
	psi := make([][]complex128, len(s.psi))
	for i, w := range s.psi {
		psi[i] = kernel(w.levels[0])
	}
	out := make([]float64, 0, s.OutDim())
	emit := func(a []complex128) {
		step := 1 << J
		for i := 0; i < s.outM; i++ {
			for j := 0; j < s.outN; j++ {
				out = append(out, real(a[(i+1)*step*N+(j+1)*step]))
			}
		}
	}
	emit(conv(pad, phi))
	var second [][]complex128
	for n1, w1 := range s.psi {
		u1 := abs(conv(pad, psi[n1]))
		emit(conv(u1, phi))
		for n2, w2 := range s.psi {
			if w2.j > w1.j {
				second = append(second, conv(abs(conv(u1, psi[n2])), phi))
			}
		}
	}
	for _, a := range second {
		emit(a)
	}
	return out
}

// TestScatteringMatchesNaive compares the fast transform (Fourier products, subsampling as
// soon as the band allows) with the definition computed in space at full resolution. They
// differ only by the aliasing the early subsampling admits, which the filters keep small.
func TestScatteringMatchesNaive(t *testing.T) {
	for _, c := range []struct{ rows, cols, J, L int }{{8, 8, 1, 4}, {8, 8, 2, 4}} {
		t.Run(fmt.Sprintf("%dx%d_J%d_L%d", c.rows, c.cols, c.J, c.L), func(t *testing.T) {
			s := newScattering(scatteringSpec(c.rows, c.cols, c.J, c.L))
			rng := rand.New(rand.NewPCG(3, 1))
			x := make([]float64, c.rows*c.cols)
			for i := range x {
				x[i] = rng.Float64()
			}
			got := make([]float64, s.OutDim())
			s.Transform(got, x, 1)
			want := naiveScattering(s, x)
			t.Logf("relative error %.3g", relErr(got, want))
			if e := relErr(got, want); e > 0.02 {
				t.Errorf("relative error %.3g against the spatial definition", e)
			}
			// Order 0 and 1 at J = 1 involve no early subsampling: they agree to rounding.
			if c.J == 1 {
				k := (1 + len(s.psi)) * s.outM * s.outN
				if e := relErr(got[:k], want[:k]); e > 1e-10 {
					t.Errorf("orders 0–1: relative error %.3g", e)
				}
			}
		})
	}
}

// TestScatteringInvariances: a constant image has S0 = the constant and no higher-order
// energy (zero-mean wavelets); the transform is positively homogeneous (S(a·x) = a·S(x),
// a > 0); and a translation by 2^J pixels moves the coefficients by one output position,
// away from the borders.
func TestScatteringInvariances(t *testing.T) {
	const size, J, L = 16, 1, 4
	s := newScattering(scatteringSpec(size, size, J, L))
	per := s.outM * s.outN
	out := make([]float64, s.OutDim())

	x := make([]float64, size*size)
	for i := range x {
		x[i] = 0.7
	}
	s.Transform(out, x, 1)
	for k, v := range out {
		// φ's discrete samples sum to 1 + O(e^{−2π²σ²}): 1 + 1.3·10⁻⁵ at σ = 0.8.
		want, tol := 0.0, 1e-9
		if k < per {
			want, tol = 0.7, 1e-4
		}
		if math.Abs(v-want) > tol {
			t.Fatalf("constant image: coefficient %d (channel %d) = %v, want %v", k, k/per, v, want)
		}
	}

	rng := rand.New(rand.NewPCG(5, 5))
	blob := func(ci, cj float64) []float64 {
		img := make([]float64, size*size)
		for i := 0; i < size; i++ {
			for j := 0; j < size; j++ {
				d2 := (float64(i)-ci)*(float64(i)-ci) + (float64(j)-cj)*(float64(j)-cj)
				img[i*size+j] = math.Exp(-d2 / 2)
			}
		}
		return img
	}
	for i := range x {
		x[i] = rng.Float64()
	}
	a := make([]float64, s.OutDim())
	s.Transform(a, x, 1)
	scaled := make([]float64, len(x))
	for i, v := range x {
		scaled[i] = 2.5 * v
	}
	b := make([]float64, s.OutDim())
	s.Transform(b, scaled, 1)
	for i := range a {
		a[i] *= 2.5
	}
	if e := relErr(a, b); e > 1e-12 {
		t.Errorf("S(2.5·x) ≠ 2.5·S(x): relative error %v", e)
	}

	step := 1 << J
	s.Transform(a, blob(7, 6), 1)
	s.Transform(b, blob(7+float64(step), 6), 1)
	// Compare output row r of a with row r+1 of b in the interior rows.
	var num, den float64
	for ch := 0; ch < s.channels; ch++ {
		for r := 2; r < s.outM-3; r++ {
			for c := 0; c < s.outN; c++ {
				va := a[ch*per+r*s.outN+c]
				vb := b[ch*per+(r+1)*s.outN+c]
				num += (va - vb) * (va - vb)
				den += va * va
			}
		}
	}
	if e := math.Sqrt(num / den); e > 1e-3 {
		t.Errorf("translation by 2^J: relative change %v, want ≈ 0", e)
	}
}

// TestScatteringDeterministicAndParallel: the same images give bit-identical features
// whether transformed one at a time or as a batch spread over the cores.
func TestScatteringDeterministicAndParallel(t *testing.T) {
	const size, n = 16, 9
	f := scatteringSpec(size, size, 2, 4)
	f.Norm, f.Groups = FeatureNormGroup, 5
	s := newScattering(f)
	rng := rand.New(rand.NewPCG(8, 8))
	x := make([]float64, n*size*size)
	for i := range x {
		// Large pixel values, so GroupNorm's ε = 1e-5 is negligible next to the variances.
		x[i] = 1000 * rng.Float64()
	}
	batch := make([]float64, n*s.OutDim())
	s.Transform(batch, x, n)
	for i := 0; i < n; i++ {
		one := make([]float64, s.OutDim())
		s.Transform(one, x[i*size*size:(i+1)*size*size], 1)
		for k, v := range one {
			if batch[i*s.OutDim()+k] != v {
				t.Fatalf("image %d feature %d: %v in a batch, %v alone", i, k, batch[i*s.OutDim()+k], v)
			}
		}
	}
	// Group normalisation: every group of 5 channels has mean 0 and variance ≈ 1.
	per := 5 * s.outM * s.outN
	for g := 0; g < s.channels/5; g++ {
		v := batch[g*per : (g+1)*per]
		var m, q float64
		for _, a := range v {
			m += a
			q += a * a
		}
		m /= float64(per)
		q = q/float64(per) - m*m
		if math.Abs(m) > 1e-9 || math.Abs(q-1) > 1e-3 {
			t.Errorf("group %d: mean %v variance %v", g, m, q)
		}
	}
}

func TestReflectIndex(t *testing.T) {
	// numpy.pad(range(4), 5, mode="reflect") = 1 2 3 2 1 | 0 1 2 3 | 2 1 0 1 2
	want := []int{1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2}
	for k, w := range want {
		if got := reflectIndex(k-5, 4); got != w {
			t.Errorf("reflectIndex(%d, 4) = %d, want %d", k-5, got, w)
		}
	}
	if reflectIndex(-3, 1) != 0 {
		t.Error("a side of length 1 reflects to 0")
	}
}

func BenchmarkScattering28(b *testing.B) {
	s := newScattering(scatteringSpec(28, 28, 2, 8))
	x := make([]float64, 28*28)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = rng.Float64()
	}
	out := make([]float64, s.OutDim())
	w := s.newWork()
	b.ResetTimer()
	for range b.N {
		s.transformOne(w, out, x)
	}
}
