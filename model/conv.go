package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Image layout. A convolutional layer's activations are channels-last: example i's feature
// map of H×W positions and C channels is H·W rows of C values (position (h, w) at row
// i·H·W + h·W + w), so a batch is a B·H·W × C tensor, example-major like a sequence batch of
// T = H·W. A dense input row of H·W·C values is the same map (a greyscale image is its
// pixels row by row). Flatten turns the map into one row of H·W·C values per example
// without moving anything.

// Conv2DOf is a 2-D convolution (cross-correlation, as in PyTorch's nn.Conv2d) of a
// channels-last feature map with Filters square kernels of side Kernel, applied every
// Stride positions over the map zero-padded by Padding on every side, the kernel's taps
// Dilation apart. It is computed as im2col + GEMM: every output position's receptive field
// is unfolded into one row of K = Kernel²·InC values ((kh, kw, c) order), and the
// convolution is then a Linear layer K → Filters applied to all B·OutH·OutW rows at once,
// one multiply in each direction. The parameters are that layer's: the K×Filters kernel
// matrix, then Filters biases.
//
// Per-example gradient norms are the Linear layer's over T = OutH·OutW rows per example:
// ‖Σ_t u_t g_tᵀ‖² from the Gram matrices of the unfolded rows u and the output gradients g
// when T²(K+Filters) is smaller, else from the formed K×Filters gradient — mixed ghost
// clipping (Bu et al. 2022), chosen once per layer since T, K and Filters are fixed.
type Conv2DOf[F linalg.Float] struct {
	InH, InW, InC                              int
	Filters, Kernel, Stride, Padding, Dilation int
	OutH, OutW                                 int
	InitName                                   string

	lin *LinearOf[F] // the kernel matrix as a Linear layer over unfolded rows
	x   *TensorOf[F] // input of the last Forward
	// cols is the unfolded input, B·OutH·OutW × K: colsBuf, or for a 1×1 kernel a view of
	// the input (colsView); dx likewise.
	cols, colsBuf, dx, dxBuf *TensorOf[F]
	colsView, dxView         TensorOf[F]

	dcols *TensorOf[F] // gradient of the unfolded rows, during col2im
	// Method values made once: a closure passed to parallelFor on every call would be
	// allocated on every call.
	unfoldRange, foldRange func(w, lo, hi int)
}

// Conv2D is a float64 Conv2DOf.
type Conv2D = Conv2DOf[float64]

var (
	_ ParamLayer            = (*Conv2D)(nil)
	_ ParamLayerOf[float32] = (*Conv2DOf[float32])(nil)
	_ weightLayer           = (*Conv2D)(nil)
	_ quantLayer            = (*Conv2D)(nil)
)

// ConvOutSize is the output length of a convolution or pooling along a side of n values:
// ⌊(n + 2·padding − dilation·(kernel − 1) − 1)/stride⌋ + 1, or ≤ 0 when the kernel does not
// fit.
func ConvOutSize(n, kernel, stride, padding, dilation int) int {
	span := dilation*(kernel-1) + 1
	if n+2*padding < span {
		return 0
	}
	return (n+2*padding-span)/stride + 1
}

// NewConv2D returns a convolution of an inH×inW×inC map with the given geometry; stride
// and dilation of 0 mean 1. The output size must be positive (the spec checks it).
func NewConv2D(inH, inW, inC, filters, kernel, stride, padding, dilation int, init string) *Conv2D {
	return newConv2D[float64](inH, inW, inC, filters, kernel, stride, padding, dilation, init)
}

func newConv2D[F linalg.Float](inH, inW, inC, filters, kernel, stride, padding, dilation int, init string) *Conv2DOf[F] {
	stride, dilation = max(stride, 1), max(dilation, 1)
	c := &Conv2DOf[F]{InH: inH, InW: inW, InC: inC, Filters: filters, Kernel: kernel, Stride: stride,
		Padding: padding, Dilation: dilation, InitName: init,
		OutH: ConvOutSize(inH, kernel, stride, padding, dilation), OutW: ConvOutSize(inW, kernel, stride, padding, dilation)}
	if c.OutH <= 0 || c.OutW <= 0 {
		panic("model: Conv2D kernel larger than its padded input")
	}
	c.lin = newLinear[F](kernel*kernel*inC, filters, init)
	return c
}

// patch is K, the length of an unfolded row.
func (c *Conv2DOf[F]) patch() int { return c.Kernel * c.Kernel * c.InC }

func (c *Conv2DOf[F]) NumParams() int         { return c.lin.NumParams() }
func (c *Conv2DOf[F]) Bind(params, grads []F) { c.lin.Bind(params, grads) }

// Init draws the kernels with the fans of a convolution (fan_in = Kernel²·InC, fan_out =
// Kernel²·Filters, as Glorot & Bengio and He et al. count them for convolutions): He
// N(0, 2/fan_in) or Xavier U(±√(6/(fan_in + fan_out))). Biases start at zero.
func (c *Conv2DOf[F]) Init(rng *rand.Rand) {
	w := c.lin.w
	fanIn, fanOut := float64(c.patch()), float64(c.Kernel*c.Kernel*c.Filters)
	if c.InitName == InitXavier {
		lim := math.Sqrt(6 / (fanIn + fanOut))
		for i := range w {
			w[i] = F((2*rng.Float64() - 1) * lim)
		}
	} else {
		std := math.Sqrt(2 / fanIn)
		for i := range w {
			w[i] = F(rng.NormFloat64() * std)
		}
	}
	clear(c.lin.b)
}

// Forward accepts the map as B·InH·InW × InC rows or as B rows of InH·InW·InC values (a
// dense input) and returns B·OutH·OutW × Filters rows.
func (c *Conv2DOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if len(x.Data) != b.B*c.InH*c.InW*c.InC {
		panic("model: Conv2D input size mismatch")
	}
	c.x = x
	rows := b.B * c.OutH * c.OutW
	if c.identityUnfold() {
		c.colsView = TensorOf[F]{Data: x.Data, Rows: rows, Cols: c.InC}
		c.cols = &c.colsView
		return c.lin.Forward(c.cols, b)
	}
	c.colsBuf = ensure(c.colsBuf, rows, c.patch())
	c.cols = c.colsBuf
	if c.unfoldRange == nil {
		c.unfoldRange, c.foldRange = c.unfold, c.fold
	}
	parallelFor(b.B, rows/b.B*c.patch(), c.unfoldRange)
	return c.lin.Forward(c.cols, b)
}

// identityUnfold reports whether the unfolded rows are the input rows themselves (a 1×1
// kernel, stride 1, no padding).
func (c *Conv2DOf[F]) identityUnfold() bool {
	return c.Kernel == 1 && c.Stride == 1 && c.Padding == 0
}

// taps returns the range [lo, hi) of kernel offsets k whose input coordinate
// o·Stride − Padding + k·Dilation lies in [0, n).
func (c *Conv2DOf[F]) taps(o, n int) (lo, hi int) {
	start, d := o*c.Stride-c.Padding, c.Dilation
	lo, hi = 0, c.Kernel
	if start < 0 {
		lo = (-start + d - 1) / d
	}
	if last := start + (c.Kernel-1)*d; last >= n {
		hi = c.Kernel - (last-n+d)/d
	}
	lo = min(lo, c.Kernel)
	return lo, max(lo, hi)
}

// unfold writes the unfolded rows of examples [lo, hi).
func (c *Conv2DOf[F]) unfold(_, lo, hi int) {
	H, W, C, k, K := c.InH, c.InW, c.InC, c.Kernel, c.patch()
	d := c.Dilation
	for i := lo; i < hi; i++ {
		x := c.x.Data[i*H*W*C : (i+1)*H*W*C]
		for oh := range c.OutH {
			h0, h1 := c.taps(oh, H)
			for ow := range c.OutW {
				w0, w1 := c.taps(ow, W)
				row := c.cols.Data[((i*c.OutH+oh)*c.OutW+ow)*K:][:K]
				if w0 == w1 { // the receptive field lies in the padding
					clear(row)
					continue
				}
				clear(row[:h0*k*C])
				clear(row[h1*k*C:])
				iw0 := ow*c.Stride - c.Padding + w0*d // first valid column
				for kh := h0; kh < h1; kh++ {
					seg := row[kh*k*C : (kh+1)*k*C]
					clear(seg[:w0*C])
					clear(seg[w1*C:])
					src := x[((oh*c.Stride-c.Padding+kh*d)*W+iw0)*C:]
					if d == 1 { // the taps of a kernel row are adjacent in the input
						copy(seg[w0*C:w1*C], src)
						continue
					}
					for kw := w0; kw < w1; kw++ {
						o := (kw - w0) * d * C
						copy(seg[kw*C:(kw+1)*C], src[o:o+C])
					}
				}
			}
		}
	}
}

// fold adds the unfolded-row gradients of examples [lo, hi) back onto their input
// positions (col2im, the adjoint of unfold).
func (c *Conv2DOf[F]) fold(_, lo, hi int) {
	H, W, C, k, K := c.InH, c.InW, c.InC, c.Kernel, c.patch()
	d := c.Dilation
	for i := lo; i < hi; i++ {
		dx := c.dx.Data[i*H*W*C : (i+1)*H*W*C]
		clear(dx)
		for oh := range c.OutH {
			h0, h1 := c.taps(oh, H)
			for ow := range c.OutW {
				w0, w1 := c.taps(ow, W)
				if w0 == w1 {
					continue
				}
				row := c.dcols.Data[((i*c.OutH+oh)*c.OutW+ow)*K:][:K]
				iw0 := ow*c.Stride - c.Padding + w0*d
				for kh := h0; kh < h1; kh++ {
					seg := row[kh*k*C : (kh+1)*k*C]
					dst := dx[((oh*c.Stride-c.Padding+kh*d)*W+iw0)*C:]
					if d == 1 {
						addTo(dst[:(w1-w0)*C], seg[w0*C:w1*C])
						continue
					}
					for kw := w0; kw < w1; kw++ {
						o := (kw - w0) * d * C
						addTo(dst[o:o+C], seg[kw*C:(kw+1)*C])
					}
				}
			}
		}
	}
}

// addTo sets dst += src (short runs: a loop beats a kernel call).
func addTo[F linalg.Float](dst, src []F) {
	dst = dst[:len(src)]
	for j, v := range src {
		dst[j] += v
	}
}

// Backward returns the input gradient in the shape the input had.
func (c *Conv2DOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	dcols := c.lin.Backward(dy, b, needInput)
	if !needInput {
		return nil
	}
	if c.identityUnfold() {
		c.dxView = TensorOf[F]{Data: dcols.Data, Rows: c.x.Rows, Cols: c.x.Cols}
		return &c.dxView
	}
	c.dxBuf = ensure(c.dxBuf, c.x.Rows, c.x.Cols)
	c.dx, c.dcols = c.dxBuf, dcols
	if c.foldRange == nil {
		c.unfoldRange, c.foldRange = c.unfold, c.fold
	}
	parallelFor(b.B, c.OutH*c.OutW*c.patch(), c.foldRange)
	c.dcols = nil
	return c.dx
}

func (c *Conv2DOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	c.lin.AddPerExampleSqNorms(dst, b)
}
func (c *Conv2DOf[F]) AccumulateWeighted(w []float64, b *Batch) { c.lin.AccumulateWeighted(w, b) }

func (c *Conv2DOf[F]) weights(name string, off int, dst []WeightTensor) []WeightTensor {
	return c.lin.weights(name, off, dst)
}

func (c *Conv2DOf[F]) bindQuant(off int, by map[int]*QuantizedTensor) { c.lin.bindQuant(off, by) }

func (c *Conv2DOf[F]) observeActivations(off int, obs map[int]*actObserver) {
	c.lin.observeActivations(off, obs)
}

// FlattenOf turns each example's channels-last map (B·H·W rows of C values) into one row of
// H·W·C values, a view of the same data: what a Linear layer after the convolutions reads.
// Its order is (h, w, c), not PyTorch's (c, h, w); the two differ by a fixed permutation of
// the next layer's weights.
type FlattenOf[F linalg.Float] struct {
	y, dx TensorOf[F]
}

// Flatten is a float64 FlattenOf.
type Flatten = FlattenOf[float64]

var (
	_ Layer            = (*Flatten)(nil)
	_ LayerOf[float32] = (*FlattenOf[float32])(nil)
)

func (f *FlattenOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	f.y = TensorOf[F]{Data: x.Data, Rows: b.B, Cols: len(x.Data) / b.B}
	f.dx = TensorOf[F]{Rows: x.Rows, Cols: x.Cols}
	return &f.y
}

func (f *FlattenOf[F]) Backward(dy *TensorOf[F], _ *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	f.dx.Data = dy.Data
	return &f.dx
}
