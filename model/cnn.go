package model

import (
	"fmt"
	"math/bits"

	"github.com/confide-fl/confide/internal/linalg"
)

// TypeCNN is a convolutional network over dense images: the Conv blocks, Flatten, hidden
// Linear layers of the Hidden widths and the output layer. With a feature stage (a greyscale
// image's scattering transform, Tramèr & Boneh 2021's ScatterNet CNN) the first block reads
// the features as a map of OutShape positions and Channels channels.
const TypeCNN = "cnn"

// ConvSpec is one block of a cnn: a Conv2D of Filters kernels of side Kernel, then a
// GroupNorm of Groups groups when Groups > 0, the spec's activation, and a Pool2D when Pool
// is set.
type ConvSpec struct {
	// Filters is the number of output channels.
	Filters int `json:"filters" yaml:"filters"`
	// Kernel is the side of the square kernels.
	Kernel int `json:"kernel" yaml:"kernel"`
	// Stride is the step between output positions (default 1).
	Stride int `json:"stride,omitempty" yaml:"stride,omitempty"`
	// Padding is the zeros added on every side of the map.
	Padding int `json:"padding,omitempty" yaml:"padding,omitempty"`
	// Dilation is the spacing of a kernel's taps (default 1).
	Dilation int `json:"dilation,omitempty" yaml:"dilation,omitempty"`
	// Groups is the number of channel groups of a GroupNorm after the convolution; it
	// divides Filters. 0: no normalisation.
	Groups int `json:"groups,omitempty" yaml:"groups,omitempty"`
	// Pool is max or avg to pool after the activation, "" for none.
	Pool string `json:"pool,omitempty" yaml:"pool,omitempty"`
	// PoolSize is the side of the pooling window (default 2).
	PoolSize int `json:"pool_size,omitempty" yaml:"pool_size,omitempty"`
	// PoolStride is the step between windows (default PoolSize).
	PoolStride int `json:"pool_stride,omitempty" yaml:"pool_stride,omitempty"`
}

func (c ConvSpec) withDefaults() ConvSpec {
	if c.Stride == 0 {
		c.Stride = 1
	}
	if c.Dilation == 0 {
		c.Dilation = 1
	}
	if c.Pool != "" {
		if c.PoolSize == 0 {
			c.PoolSize = 2
		}
		if c.PoolStride == 0 {
			c.PoolStride = c.PoolSize
		}
	}
	return c
}

// maxConvGeometry bounds a kernel's side, stride, padding and dilation, and a pooling
// window's side and stride: far beyond any image side (maxImageSide), small enough that no
// size computed from them overflows.
const maxConvGeometry = maxImageSide

// imageShape returns a cnn's input rows, cols and channels (Image with the default of one
// channel), or ok false when Image is not 2 or 3 sizes.
func (s Spec) imageShape() (h, w, c int, ok bool) {
	switch len(s.Image) {
	case 2:
		return s.Image[0], s.Image[1], 1, true
	case 3:
		return s.Image[0], s.Image[1], s.Image[2], true
	}
	return 0, 0, 0, false
}

// convInput returns the rows, cols and channels of the map the first conv block reads: the
// image, or with a feature stage its output (channels-last, see channelsLast).
func (s Spec) convInput() (h, w, c int, ok bool) {
	if s.Features != nil {
		r, cols := s.Features.OutShape()
		return r, cols, s.Features.Channels(), r > 0 && cols > 0
	}
	return s.imageShape()
}

// imageValues returns the product of the image shape, or 0 when it is not a valid shape
// within maxImageSide sides and maxWidth channels.
func (s Spec) imageValues(maxWidth int) int {
	h, w, c, ok := s.imageShape()
	if !ok || h <= 0 || w <= 0 || c <= 0 || h > maxImageSide || w > maxImageSide || c > maxWidth {
		return 0
	}
	hi, lo := bits.Mul64(uint64(h*w), uint64(c))
	if hi != 0 || lo > uint64(maxWidth) {
		return 0
	}
	return int(lo)
}

// cnnDefaults fills a cnn's input size from its image shape, its blocks' defaults and its
// feature stage's channels-last layout.
func (s Spec) cnnDefaults() Spec {
	if s.Features != nil && s.Features.Layout == "" {
		f := *s.Features
		f.Layout = FeatureLayoutChannelsLast
		s.Features = &f
	}
	if s.Input == 0 {
		s.Input = s.imageValues(1 << 62)
	}
	if len(s.Conv) > 0 {
		conv := make([]ConvSpec, len(s.Conv))
		for i, c := range s.Conv {
			conv[i] = c.withDefaults()
		}
		s.Conv = conv
	}
	return s
}

// cnnBlock is the geometry of one block of a valid cnn spec.
type cnnBlock struct {
	ConvSpec
	inH, inW, inC int
	convH, convW  int // after the convolution
	outH, outW    int // after pooling
}

// cnnBlocks returns the geometry of a cnn's blocks, stopping at the first one whose
// convolution or pooling does not fit its input (ok false).
func (s Spec) cnnBlocks() (blocks []cnnBlock, ok bool) {
	h, w, c, ok := s.convInput()
	if !ok {
		return nil, false
	}
	for _, cs := range s.Conv {
		cs = cs.withDefaults()
		b := cnnBlock{ConvSpec: cs, inH: h, inW: w, inC: c}
		b.convH = ConvOutSize(h, cs.Kernel, cs.Stride, cs.Padding, cs.Dilation)
		b.convW = ConvOutSize(w, cs.Kernel, cs.Stride, cs.Padding, cs.Dilation)
		if b.convH <= 0 || b.convW <= 0 {
			return blocks, false
		}
		b.outH, b.outW = b.convH, b.convW
		if cs.Pool != "" {
			b.outH = ConvOutSize(b.convH, cs.PoolSize, cs.PoolStride, 0, 1)
			b.outW = ConvOutSize(b.convW, cs.PoolSize, cs.PoolStride, 0, 1)
			if b.outH <= 0 || b.outW <= 0 {
				return blocks, false
			}
		}
		blocks = append(blocks, b)
		h, w, c = b.outH, b.outW, cs.Filters
	}
	return blocks, true
}

// validateCNN checks the fields of a cnn spec (defaults filled in).
func (s Spec) validateCNN(bad func(string, ...any), atMost func(string, int, int, string), l Limits) {
	h, w, c, ok := s.imageShape()
	if !ok {
		bad("image = %v: give the input image's [rows, cols] or [rows, cols, channels]", s.Image)
		return
	}
	if h <= 0 || w <= 0 || h > maxImageSide || w > maxImageSide {
		bad("image = %v: rows and cols must be in [1, %d]", s.Image, maxImageSide)
		return
	}
	if c <= 0 {
		bad("image = %v: channels must be > 0", s.Image)
		return
	}
	n := s.imageValues(l.MaxWidth)
	if n == 0 {
		bad("image = %v holds more than %d values (model.Limits.MaxWidth): downscale the images", s.Image, l.MaxWidth)
		return
	}
	if s.Input != n {
		bad("input = %d but image %v holds %d values: omit input, or make them agree", s.Input, s.Image, n)
	}
	if len(s.Conv) == 0 {
		bad("conv is empty: list the convolution blocks, e.g. [{filters: 16, kernel: 5, pool: max}]")
		return
	}
	atMost("len(conv)", len(s.Conv), l.MaxLayers, "MaxLayers")
	atMost("len(hidden)", len(s.Hidden), l.MaxLayers, "MaxLayers")
	for i, hw := range s.Hidden {
		if hw <= 0 {
			bad("hidden[%d] = %d: layer widths must be > 0", i, hw)
		}
		atMost(fmt.Sprintf("hidden[%d]", i), hw, l.MaxWidth, "MaxWidth")
	}
	if s.Features != nil {
		if c != 1 {
			bad("features: the scattering transform reads greyscale images, but image = %v has %d channels: give image [rows, cols], or remove features", s.Image, c)
			return
		}
		if err := s.Features.validate(s.Input, l); err != nil {
			badEach(bad, err)
			return
		}
		// The conv blocks read the features' map.
		h, w = s.Features.OutShape()
	}
	if len(s.Embeddings) > 0 {
		bad("embeddings: embedded categorical columns are a stage of an mlp; remove them for type cnn")
	}
	for i, cs := range s.Conv {
		key := fmt.Sprintf("conv[%d]", i)
		good := true
		check := func(name string, v, lo int) {
			if v < lo || v > maxConvGeometry {
				bad("%s.%s = %d: must be in [%d, %d]", key, name, v, lo, maxConvGeometry)
				good = false
			}
		}
		if cs.Filters <= 0 {
			bad("%s.filters = %d: must be the number of output channels (> 0)", key, cs.Filters)
			good = false
		}
		atMost(key+".filters", cs.Filters, l.MaxWidth, "MaxWidth")
		check("kernel", cs.Kernel, 1)
		check("stride", cs.Stride, 1)
		check("padding", cs.Padding, 0)
		check("dilation", cs.Dilation, 1)
		if cs.Groups < 0 || (cs.Groups > 0 && cs.Filters > 0 && cs.Filters%cs.Groups != 0) {
			bad("%s.groups = %d: must divide filters = %d (or be 0: no GroupNorm)", key, cs.Groups, cs.Filters)
		}
		switch cs.Pool {
		case "":
			if cs.PoolSize != 0 || cs.PoolStride != 0 {
				bad("%s.pool_size and pool_stride need pool: max or avg (or remove them)", key)
			}
		case Pool2DMax, Pool2DAvg:
			check("pool_size", cs.PoolSize, 1)
			check("pool_stride", cs.PoolStride, 1)
		default:
			bad("%s.pool %q unknown (use max or avg, or omit it)", key, cs.Pool)
			good = false
		}
		if !good {
			return
		}
	}
	blocks, fits := s.cnnBlocks()
	if !fits {
		b := len(blocks)
		cs := s.Conv[b]
		in := []int{h, w}
		if b > 0 {
			in = []int{blocks[b-1].outH, blocks[b-1].outW}
		}
		bad("conv[%d]: kernel %d (dilation %d, padding %d) or pool window %d does not fit its %d×%d input: lower them, or the blocks' strides",
			b, cs.Kernel, cs.Dilation, cs.Padding, cs.PoolSize, in[0], in[1])
		return
	}
	for i, b := range blocks {
		// Training holds every example's unfolded input (positions × kernel² × channels) and
		// feature maps: bound them per example.
		var unfolded, maps paramCount
		unfolded.add(b.convH, b.convW, b.Kernel, b.Kernel, b.inC)
		maps.add(b.convH, b.convW, b.Filters)
		for _, v := range []paramCount{unfolded, maps} {
			if v.overflow || v.n > uint64(l.MaxActivation) {
				bad("conv[%d]: %d×%d positions of %d×%d×%d inputs and %d filters exceed the limit of %d values an example (model.Limits.MaxActivation): lower the kernel or filters, or raise the stride",
					i, b.convH, b.convW, b.Kernel, b.Kernel, b.inC, b.Filters, l.MaxActivation)
				return
			}
		}
	}
	last := blocks[len(blocks)-1]
	atMost("the flattened maps (rows × cols × filters of the last block)", last.outH*last.outW*last.Filters, l.MaxWidth, "MaxWidth")
}

// buildCNN returns the layers of a valid cnn spec in precision F.
func buildCNN[F linalg.Float](s Spec) ([]LayerOf[F], error) {
	blocks, _ := s.cnnBlocks()
	var layers []LayerOf[F]
	for _, b := range blocks {
		layers = append(layers, newConv2D[F](b.inH, b.inW, b.inC, b.Filters, b.Kernel, b.Stride, b.Padding, b.Dilation, s.Init))
		if b.Groups > 0 {
			layers = append(layers, newGroupNorm[F](b.Filters, b.Groups))
		}
		act, err := newActivation[F](s.Activation)
		if err != nil {
			return nil, err
		}
		layers = append(layers, act)
		if b.Pool != "" {
			layers = append(layers, newPool2D[F](b.Pool, b.convH, b.convW, b.Filters, b.PoolSize, b.PoolStride))
		}
	}
	last := blocks[len(blocks)-1]
	layers = append(layers, &FlattenOf[F]{})
	in := last.outH * last.outW * last.Filters
	for _, h := range s.Hidden {
		act, err := newActivation[F](s.Activation)
		if err != nil {
			return nil, err
		}
		layers = append(layers, newLinear[F](in, h, s.Init), act)
		if s.Dropout > 0 {
			layers = append(layers, &DropoutOf[F]{P: s.Dropout})
		}
		in = h
	}
	return append(layers, newLinear[F](in, s.Output, InitXavier)), nil
}

// countCNN adds the parameters of a valid cnn spec to c, in the order buildCNN lays them out.
func (s Spec) countCNN(c *paramCount) {
	blocks, _ := s.cnnBlocks()
	for _, b := range blocks {
		c.add(b.Kernel, b.Kernel, b.inC, b.Filters)
		c.add(b.Filters)
		if b.Groups > 0 {
			c.add(2, b.Filters)
		}
	}
	last := blocks[len(blocks)-1]
	in := last.outH * last.outW * last.Filters
	for _, h := range s.Hidden {
		c.add(in, h)
		c.add(h)
		in = h
	}
	c.add(in, s.Output)
	c.add(s.Output)
}
