package model

import (
	"errors"
	"fmt"
	"math"
)

// Feature transform types accepted in specs.
const (
	// FeaturesScattering is the 2-D wavelet scattering transform of Mallat (2012), with the
	// Morlet filter bank and the subsampling of Kymatio's Scattering2D (Andreux et al. 2020).
	FeaturesScattering = "scattering"
)

// Feature normalisations.
const (
	// FeatureNormGroup normalises each example's features within groups of channels to zero
	// mean and unit variance (GroupNorm without the affine part, Wu & He 2018), as Tramèr &
	// Boneh (ICLR 2021) do after ScatterNet. It reads one example at a time, so it costs no
	// privacy.
	FeatureNormGroup = "group"
)

// Features is a fixed, parameter-free first stage of a model: a transform of each raw input
// row (InDim values) to a feature row (OutDim values) that the trainable layers read. It uses
// no data to build, so it costs no privacy, and being deterministic it can be computed once
// per dataset (train does so) instead of in every forward pass.
type Features interface {
	InDim() int
	OutDim() int
	// Transform writes the features of the n rows of x (n×InDim, row-major) to dst (n×OutDim).
	// It is safe for concurrent use and spreads the rows over the cores.
	Transform(dst, x []float64, n int)
}

// FeatureSpec declares a model's feature stage. Only the 2-D scattering transform exists.
type FeatureSpec struct {
	// Type is scattering.
	Type string `json:"type" yaml:"type"`
	// J is the scattering scale: wavelets at scales 2^0 … 2^(J−1), outputs subsampled by 2^J.
	J int `json:"j" yaml:"j"`
	// L is the number of wavelet orientations (default 8).
	L int `json:"l,omitempty" yaml:"l,omitempty"`
	// Shape is the image's [rows, cols]; its product is the spec's input.
	Shape []int `json:"shape" yaml:"shape"`
	// Norm is the per-example normalisation of the features: "" (none) or group.
	Norm string `json:"norm,omitempty" yaml:"norm,omitempty"`
	// Groups is the number of channel groups of group normalisation; it divides the channel
	// count (81 for J = 2, L = 8).
	Groups int `json:"groups,omitempty" yaml:"groups,omitempty"`
	// Layout is the order of the features of an example: "" (channel-major: each channel's
	// map in turn, an mlp's default) or channels_last (each position's channels in turn, the
	// map a conv layer reads; a cnn's, filled in for it).
	Layout string `json:"layout,omitempty" yaml:"layout,omitempty"`
}

// FeatureLayoutChannelsLast is the feature layout a cnn's conv blocks read.
const FeatureLayoutChannelsLast = "channels_last"

// Limits on a feature spec read from a file or the network: the filter bank of the largest
// allowed spec still fits in memory.
const (
	maxScatteringJ = 6
	maxScatteringL = 32
	maxImageSide   = 4096
)

func (f FeatureSpec) withDefaults() FeatureSpec {
	if f.L == 0 {
		f.L = 8
	}
	return f
}

// Channels is the number of scattering paths: 1 + J·L + L²·J(J−1)/2 (zeroth, first and
// second order).
func (f FeatureSpec) Channels() int {
	f = f.withDefaults()
	return 1 + f.J*f.L + f.L*f.L*f.J*(f.J-1)/2
}

// OutShape is the spatial size of every output channel: Kymatio pads each side to
// ((M + 2^J)/2^J + 1)·2^J, subsamples by 2^J and drops one row and column at each border.
func (f FeatureSpec) OutShape() (rows, cols int) {
	if len(f.Shape) != 2 {
		return 0, 0
	}
	mp, np := scatteringPadded(f.Shape[0], f.J), scatteringPadded(f.Shape[1], f.J)
	return mp>>f.J - 2, np>>f.J - 2
}

// OutDim is the number of features per example: Channels × OutShape.
func (f FeatureSpec) OutDim() int {
	r, c := f.OutShape()
	return f.Channels() * r * c
}

// String describes the feature stage in one line, e.g. for the CLI's output.
func (f FeatureSpec) String() string {
	f = f.withDefaults()
	r, c := f.OutShape()
	s := fmt.Sprintf("%s J=%d L=%d on %v (%d channels × %d×%d = %d features)", f.Type, f.J, f.L, f.Shape, f.Channels(), r, c, f.OutDim())
	if f.Norm == FeatureNormGroup {
		s += fmt.Sprintf(", GroupNorm %d groups", f.Groups)
	}
	return s
}

// Validate checks the feature spec against the model's input width (the product of the
// shape) and DefaultLimits, naming each bad field as features.KEY and the fix. An input of 0
// means the width is not known yet (a simulator fills it from the dataset): the checks that
// need it are skipped, and so are those of an empty shape, which the dataset's image shape
// will fill.
func (f FeatureSpec) Validate(input int) error { return f.validate(input, DefaultLimits()) }

// validate is Validate under the limits l (with defaults filled in).
func (f FeatureSpec) validate(input int, l Limits) error {
	f = f.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("features."+format, a...)) }
	if f.Type != FeaturesScattering {
		bad("type = %q: unknown (use scattering)", f.Type)
		return errors.Join(errs...)
	}
	if f.J < 1 || f.J > maxScatteringJ {
		bad("j = %d: must be in [1, %d]", f.J, maxScatteringJ)
	}
	if f.L < 1 || f.L > maxScatteringL {
		bad("l = %d: must be in [1, %d]", f.L, maxScatteringL)
	}
	switch f.Norm {
	case "":
		if f.Groups != 0 {
			bad("groups = %d without norm: group (set norm: group, or remove groups)", f.Groups)
		}
	case FeatureNormGroup:
		if k := f.Channels(); f.Groups <= 0 || k%f.Groups != 0 {
			bad("groups = %d: must divide the %d channels (e.g. %d)", f.Groups, k, k)
		}
	default:
		bad("norm = %q: unknown (use group, or omit it)", f.Norm)
	}
	if f.Layout != "" && f.Layout != FeatureLayoutChannelsLast {
		bad("layout = %q: unknown (use %s, or omit it for channel-major)", f.Layout, FeatureLayoutChannelsLast)
	}
	if len(f.Shape) == 0 && input == 0 {
		return errors.Join(errs...)
	}
	if len(f.Shape) != 2 {
		bad("shape = %v: give the image's [rows, cols]", f.Shape)
		return errors.Join(errs...)
	}
	for _, s := range f.Shape {
		if s <= 0 || s > maxImageSide {
			bad("shape = %v: sides must be in [1, %d]", f.Shape, maxImageSide)
			return errors.Join(errs...)
		}
	}
	if f.J >= 1 && f.J <= maxScatteringJ && (1<<f.J > f.Shape[0] || 1<<f.J > f.Shape[1]) {
		bad("j = %d: 2^j = %d exceeds the image shape %v (lower j)", f.J, 1<<f.J, f.Shape)
	}
	if input != 0 && f.Shape[0]*f.Shape[1] != input {
		bad("shape = %v has %d pixels but the model's input is %d (give the image's [rows, cols])", f.Shape, f.Shape[0]*f.Shape[1], input)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if f.OutDim() > l.MaxFeatureDim {
		bad("l = %d, j = %d: %d features per example (%d channels of %v) exceed the limit %d (model.Limits.MaxFeatureDim; lower l or j)", f.L, f.J, f.OutDim(), f.Channels(), f.Shape, l.MaxFeatureDim)
	}
	if n := f.filterBankValues(); n > uint64(l.MaxFilterBank) {
		bad("shape = %v, j = %d, l = %d: the filter bank holds %d values, beyond the limit %d (model.Limits.MaxFilterBank; lower j or l, or downscale the images)", f.Shape, f.J, f.L, n, l.MaxFilterBank)
	}
	return errors.Join(errs...)
}

// filterBankValues is the number of float64 values newScattering allocates for a valid spec:
// every wavelet's real spectrum at each resolution it is applied at, and the low-pass
// filter's at resolutions 0 … J−1. Sides ≤ maxImageSide, J ≤ maxScatteringJ and
// L ≤ maxScatteringL keep it far below 2^64.
func (f FeatureSpec) filterBankValues() uint64 {
	if len(f.Shape) != 2 {
		return 0
	}
	f = f.withDefaults()
	mp, np := uint64(scatteringPadded(f.Shape[0], f.J)), uint64(scatteringPadded(f.Shape[1], f.J))
	at := func(r int) uint64 { return (mp >> r) * (np >> r) }
	var n uint64
	for j := range f.J {
		for r := range min(j+1, max(f.J-1, 1)) {
			n += uint64(f.L) * at(r)
		}
	}
	for r := range f.J {
		n += at(r)
	}
	return n
}

// MaxFeatureDim is the default of Limits.MaxFeatureDim, the features per example a feature
// spec may produce, so that a spec from a file or a server cannot ask for more memory than a
// linear layer on it could use (MNIST's J = 2, L = 8 scattering gives 3,969).
const MaxFeatureDim = 1 << 18

// build returns the feature stage of a valid spec, in its layout.
func (f FeatureSpec) build() Features {
	f = f.withDefaults()
	s := newScattering(f)
	if f.Layout == FeatureLayoutChannelsLast {
		r, c := f.OutShape()
		return &channelsLast{Features: s, channels: f.Channels(), positions: r * c}
	}
	return s
}

// channelsLast is a channel-major feature stage (channels × positions values an example)
// with its output transposed to channels-last (positions × channels), the map a Conv2D reads.
type channelsLast struct {
	Features
	channels, positions int
}

// Transform computes the inner stage's features one example at a time and transposes each.
func (t *channelsLast) Transform(dst, x []float64, n int) {
	in, out := t.InDim(), t.OutDim()
	if len(x) != n*in || len(dst) != n*out {
		panic("model: channelsLast.Transform: wrong buffer lengths")
	}
	parallelFor(n, minParallelWork, func(_, lo, hi int) {
		buf := make([]float64, out)
		for i := lo; i < hi; i++ {
			t.Features.Transform(buf, x[i*in:(i+1)*in], 1)
			d := dst[i*out : (i+1)*out]
			for c := range t.channels {
				for p, v := range buf[c*t.positions : (c+1)*t.positions] {
					d[p*t.channels+c] = v
				}
			}
		}
	})
}

// groupNorm normalises x (channels × spatial values, channel-major) in place within groups
// of consecutive channels: (x − μ_g)/√(σ²_g + ε) with ε = 1e-5, PyTorch's GroupNorm default.
func groupNorm(x []float64, groups int) {
	size := len(x) / groups
	for g := 0; g < groups; g++ {
		v := x[g*size : (g+1)*size]
		mean := 0.0
		for _, a := range v {
			mean += a
		}
		mean /= float64(size)
		variance := 0.0
		for _, a := range v {
			variance += (a - mean) * (a - mean)
		}
		variance /= float64(size)
		inv := 1 / math.Sqrt(variance+1e-5)
		for i, a := range v {
			v[i] = (a - mean) * inv
		}
	}
}
