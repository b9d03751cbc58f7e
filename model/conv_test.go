package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convGeometry is a Conv2D test case: an h×w×c map of b examples, f filters of side k.
type convGeometry struct {
	h, w, c, f, k, stride, pad, dil, b int
}

func (g convGeometry) String() string {
	return fmt.Sprintf("%dx%dx%d_f%d_k%d_s%d_p%d_d%d_b%d", g.h, g.w, g.c, g.f, g.k, g.stride, g.pad, max(g.dil, 1), g.b)
}

func (g convGeometry) layer() *Conv2D {
	return NewConv2D(g.h, g.w, g.c, g.f, g.k, g.stride, g.pad, g.dil, InitHe)
}

// convGeometries cover the edge cases of unfolding: padding, strides that skip input
// (stride > kernel), dilation, receptive fields wholly in the padding (padding > kernel),
// a 1×1 kernel (the input rows are the unfolded rows), non-square maps, one output position,
// and both per-example norm methods (T = OutH·OutW against K = k²c and f).
var convGeometries = []convGeometry{
	{h: 5, w: 5, c: 2, f: 3, k: 3, stride: 1, b: 3},                 // T 9, K 18, f 3: formed
	{h: 6, w: 5, c: 2, f: 3, k: 3, stride: 2, pad: 1, b: 2},         // odd padded sides
	{h: 7, w: 6, c: 2, f: 2, k: 3, stride: 1, pad: 2, dil: 2, b: 2}, // dilation
	{h: 8, w: 7, c: 1, f: 2, k: 3, stride: 2, pad: 1, dil: 3, b: 2}, // dilation and stride
	{h: 3, w: 3, c: 1, f: 2, k: 2, stride: 1, pad: 3, b: 2},         // outputs in the padding only
	{h: 7, w: 7, c: 2, f: 2, k: 2, stride: 3, b: 2},                 // stride > kernel
	{h: 4, w: 3, c: 3, f: 4, k: 1, stride: 1, b: 2},                 // 1×1: no unfolding
	{h: 5, w: 4, c: 3, f: 2, k: 1, stride: 2, pad: 1, b: 2},         // 1×1 with stride and padding
	{h: 4, w: 4, c: 3, f: 8, k: 3, stride: 1, b: 3},                 // T 4, K 27, f 8: Gram
	{h: 3, w: 3, c: 2, f: 4, k: 3, stride: 1, b: 3},                 // one output position
	{h: 10, w: 10, c: 1, f: 4, k: 4, stride: 2, pad: 1, b: 2},       // an MNIST-like first layer
}

// naiveConv is the convolution by its definition, on channels-last maps.
func naiveConv(c *Conv2D, x []float64, B int) []float64 {
	F := c.Filters
	w, bias := c.lin.w, c.lin.b
	y := make([]float64, B*c.OutH*c.OutW*F)
	for i := range B {
		for oh := range c.OutH {
			for ow := range c.OutW {
				out := y[((i*c.OutH+oh)*c.OutW+ow)*F:][:F]
				copy(out, bias)
				for kh := range c.Kernel {
					for kw := range c.Kernel {
						ih := oh*c.Stride - c.Padding + kh*c.Dilation
						iw := ow*c.Stride - c.Padding + kw*c.Dilation
						if ih < 0 || ih >= c.InH || iw < 0 || iw >= c.InW {
							continue
						}
						for ch := range c.InC {
							v := x[((i*c.InH+ih)*c.InW+iw)*c.InC+ch]
							row := (kh*c.Kernel+kw)*c.InC + ch
							for f := range F {
								out[f] += v * w[row*F+f]
							}
						}
					}
				}
			}
		}
	}
	return y
}

func TestConv2DMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	for _, g := range convGeometries {
		t.Run(g.String(), func(t *testing.T) {
			c := g.layer()
			bindFresh(c, rng)
			if want := ConvOutSize(g.h, g.k, g.stride, g.pad, max(g.dil, 1)); c.OutH != want {
				t.Fatalf("OutH %d, want %d", c.OutH, want)
			}
			x := randTensor(rng, g.b*g.h*g.w, g.c)
			y := c.Forward(x, &Batch{B: g.b, T: 1})
			if y.Rows != g.b*c.OutH*c.OutW || y.Cols != g.f {
				t.Fatalf("output %d×%d, want %d×%d", y.Rows, y.Cols, g.b*c.OutH*c.OutW, g.f)
			}
			if e := relErr(y.Data, naiveConv(c, x.Data, g.b)); e > 1e-13 {
				t.Fatalf("relative error %.3g against the definition", e)
			}
		})
	}
}

func TestConv2DGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 2))
	for _, g := range convGeometries {
		t.Run(g.String(), func(t *testing.T) {
			b := Batch{B: g.b, T: 1}
			checkLayerGradients(t, g.layer(), randTensor(rng, g.b*g.h*g.w, g.c), b, 1e-6)
			checkPerExample(t, g.layer(), randTensor(rng, g.b*g.h*g.w, g.c), b)
		})
	}
	t.Run("dense_input_rows", func(t *testing.T) {
		// A model's first convolution reads B rows of H·W·C values; its input gradient
		// has that shape too.
		g := convGeometries[1]
		x := randTensor(rng, g.b, g.h*g.w*g.c)
		checkLayerGradients(t, g.layer(), x, Batch{B: g.b, T: 1}, 1e-6)
		c := g.layer()
		bindFresh(c, rng)
		y := c.Forward(x, &Batch{B: g.b, T: 1})
		dx := c.Backward(randTensor(rng, y.Rows, y.Cols), &Batch{B: g.b, T: 1}, true)
		if dx.Rows != x.Rows || dx.Cols != x.Cols {
			t.Fatalf("input gradient %d×%d, input %d×%d", dx.Rows, dx.Cols, x.Rows, x.Cols)
		}
	})
}

// Both per-example methods are exercised: the table holds layers on either side of the
// mixed-clipping choice.
func TestConvGeometriesCoverBothNormMethods(t *testing.T) {
	var gram, formed bool
	for _, g := range convGeometries {
		c := g.layer()
		T := c.OutH * c.OutW
		if T == 1 {
			continue
		}
		if gramCheaper(T, c.lin.In, c.lin.Out) {
			gram = true
		} else {
			formed = true
		}
	}
	if !gram || !formed {
		t.Fatalf("gram %v, formed %v: the table misses a method", gram, formed)
	}
}

func TestPool2DGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	for _, tc := range []struct {
		mode                 string
		h, w, c, size, strid int
	}{
		{Pool2DMax, 4, 4, 3, 2, 2},
		{Pool2DMax, 5, 4, 2, 2, 1}, // overlapping windows (the reference CNN's)
		{Pool2DMax, 7, 6, 2, 3, 2},
		{Pool2DAvg, 4, 4, 3, 2, 2},
		{Pool2DAvg, 5, 5, 2, 3, 1},
		{Pool2DAvg, 6, 5, 1, 2, 3}, // stride > window: some inputs unused
	} {
		t.Run(fmt.Sprintf("%s_%dx%dx%d_size%d_stride%d", tc.mode, tc.h, tc.w, tc.c, tc.size, tc.strid), func(t *testing.T) {
			const B = 2
			p := NewPool2D(tc.mode, tc.h, tc.w, tc.c, tc.size, tc.strid)
			x := randTensor(rng, B*tc.h*tc.w, tc.c)
			y := p.Forward(x, &Batch{B: B, T: 1})
			// The definition: max or mean of each window, per channel.
			for i := range B {
				for oh := range p.OutH {
					for ow := range p.OutW {
						for ch := range tc.c {
							want := math.Inf(-1)
							if tc.mode == Pool2DAvg {
								want = 0
							}
							for kh := range tc.size {
								for kw := range tc.size {
									v := x.Data[((i*tc.h+oh*tc.strid+kh)*tc.w+ow*tc.strid+kw)*tc.c+ch]
									if tc.mode == Pool2DAvg {
										want += v / float64(tc.size*tc.size)
									} else {
										want = math.Max(want, v)
									}
								}
							}
							if got := y.Data[((i*p.OutH+oh)*p.OutW+ow)*tc.c+ch]; math.Abs(got-want) > 1e-14 {
								t.Fatalf("example %d (%d, %d) channel %d: %v, want %v", i, oh, ow, ch, got, want)
							}
						}
					}
				}
			}
			checkLayerGradients(t, NewPool2D(tc.mode, tc.h, tc.w, tc.c, tc.size, tc.strid), x, Batch{B: B, T: 1}, 1e-6)
		})
	}
}

func TestGroupNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	for _, tc := range []struct{ positions, channels, groups, b int }{
		{6, 4, 1, 3}, // LayerNorm over the whole map
		{5, 6, 2, 2},
		{4, 4, 4, 3}, // InstanceNorm
		{1, 6, 3, 2}, // one position
	} {
		t.Run(fmt.Sprintf("T%d_C%d_G%d", tc.positions, tc.channels, tc.groups), func(t *testing.T) {
			b := Batch{B: tc.b, T: 1}
			x := randTensor(rng, tc.b*tc.positions, tc.channels)
			checkLayerGradients(t, NewGroupNorm(tc.channels, tc.groups), x, b, 1e-6)
			checkPerExample(t, NewGroupNorm(tc.channels, tc.groups), x, b)

			// Each example's groups come out with mean β̄ and variance of γ-scaled unit
			// variance: with γ = 1, β = 0, mean 0 and variance 1 (up to ε).
			l := NewGroupNorm(tc.channels, tc.groups)
			p := make([]float64, l.NumParams())
			l.Bind(p, make([]float64, len(p)))
			l.Init(nil)
			y := l.Forward(x, &b)
			cg := tc.channels / tc.groups
			for i := range tc.b {
				for g := range tc.groups {
					var s, ss float64
					for t := range tc.positions {
						for _, v := range y.Data[(i*tc.positions+t)*tc.channels+g*cg:][:cg] {
							s += v
							ss += v * v
						}
					}
					n := float64(tc.positions * cg)
					if mean, variance := s/n, ss/n-(s/n)*(s/n); math.Abs(mean) > 1e-12 || math.Abs(variance-1) > 1e-3 {
						t.Fatalf("example %d group %d: mean %v variance %v", i, g, mean, variance)
					}
				}
			}
		})
	}
}

func TestFlattenIsAView(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	x := randTensor(rng, 2*6, 3)
	f := &Flatten{}
	y := f.Forward(x, &Batch{B: 2, T: 1})
	if y.Rows != 2 || y.Cols != 18 || &y.Data[0] != &x.Data[0] {
		t.Fatalf("flattened to %d×%d (same data: %v)", y.Rows, y.Cols, &y.Data[0] == &x.Data[0])
	}
	checkLayerGradients(t, &Flatten{}, x, Batch{B: 2, T: 1}, 1e-9)
}
