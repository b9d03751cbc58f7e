package model

import "github.com/confide-fl/confide/internal/linalg"

// Pooling modes of Pool2D.
const (
	Pool2DMax = "max" // the largest value of each window, per channel
	Pool2DAvg = "avg" // the mean of each window, per channel
)

// Pool2DOf pools every Size×Size window, Stride positions apart, of a channels-last
// InH×InW×C map (see Conv2D), without padding, as PyTorch's max_pool2d and avg_pool2d do
// with padding 0: an OutH×OutW×C map. It has no parameters. A max window passes its
// gradient to the first of its largest values (PyTorch picks one too).
type Pool2DOf[F linalg.Float] struct {
	Mode                  string
	InH, InW, C           int
	Size, Stride          int
	OutH, OutW            int
	x, y, dx, dy          *TensorOf[F]
	arg                   []int32 // max: the input position (within its example) each output value came from
	fwdRange, bwdRange    func(w, lo, hi int)
	inPerEx, outPositions int
}

// Pool2D is a float64 Pool2DOf.
type Pool2D = Pool2DOf[float64]

var (
	_ Layer            = (*Pool2D)(nil)
	_ LayerOf[float32] = (*Pool2DOf[float32])(nil)
)

// NewPool2D returns a pooling layer of mode (max or avg) over an inH×inW×c map; stride 0
// means size. The windows must fit (the spec checks it).
func NewPool2D(mode string, inH, inW, c, size, stride int) *Pool2D {
	return newPool2D[float64](mode, inH, inW, c, size, stride)
}

func newPool2D[F linalg.Float](mode string, inH, inW, c, size, stride int) *Pool2DOf[F] {
	if stride <= 0 {
		stride = size
	}
	p := &Pool2DOf[F]{Mode: mode, InH: inH, InW: inW, C: c, Size: size, Stride: stride,
		OutH: ConvOutSize(inH, size, stride, 0, 1), OutW: ConvOutSize(inW, size, stride, 0, 1)}
	if p.OutH <= 0 || p.OutW <= 0 {
		panic("model: Pool2D window larger than its input")
	}
	if mode != Pool2DMax && mode != Pool2DAvg {
		panic("model: unknown Pool2D mode " + mode)
	}
	p.inPerEx, p.outPositions = inH*inW*c, p.OutH*p.OutW
	return p
}

func (p *Pool2DOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if len(x.Data) != b.B*p.inPerEx {
		panic("model: Pool2D input size mismatch")
	}
	p.x = x
	p.y = ensure(p.y, b.B*p.outPositions, p.C)
	if p.Mode == Pool2DMax {
		if cap(p.arg) < len(p.y.Data) {
			p.arg = make([]int32, len(p.y.Data))
		}
		p.arg = p.arg[:len(p.y.Data)]
	}
	if p.fwdRange == nil {
		p.fwdRange, p.bwdRange = p.forwardRange, p.backwardRange
	}
	parallelFor(b.B, p.outPositions*p.Size*p.Size*p.C, p.fwdRange)
	return p.y
}

func (p *Pool2DOf[F]) forwardRange(_, lo, hi int) {
	C, W, k := p.C, p.InW, p.Size
	inv := F(1 / float64(k*k))
	for i := lo; i < hi; i++ {
		x := p.x.Data[i*p.inPerEx : (i+1)*p.inPerEx]
		for oh := range p.OutH {
			for ow := range p.OutW {
				o := (i*p.outPositions + oh*p.OutW + ow) * C
				y := p.y.Data[o : o+C]
				first := (oh*p.Stride*W + ow*p.Stride) * C
				copy(y, x[first:first+C])
				if p.Mode == Pool2DAvg {
					for kh := range k {
						for kw := range k {
							if kh == 0 && kw == 0 {
								continue
							}
							s := first + (kh*W+kw)*C
							addTo(y, x[s:s+C])
						}
					}
					for j := range y {
						y[j] *= inv
					}
					continue
				}
				arg := p.arg[o : o+C]
				for j := range arg {
					arg[j] = int32(first + j)
				}
				for kh := range k {
					for kw := range k {
						s := first + (kh*W+kw)*C
						// Branch-free: which value is larger is a coin flip on real maps, and
						// mispredicted branches took three times as long.
						xs, ys, as := x[s:s+C], y[:C], arg[:C]
						if y32, ok := any(ys).([]float32); ok {
							linalg.MaxArg32(y32, as, any(xs).([]float32), int32(s))
							continue
						}
						for j, v := range xs {
							as[j] += b2i(v > ys[j]) * (int32(s+j) - as[j])
							ys[j] = max(ys[j], v)
						}
					}
				}
			}
		}
	}
}

func (p *Pool2DOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	p.dx = ensure(p.dx, p.x.Rows, p.x.Cols)
	p.dy = dy
	parallelFor(b.B, p.outPositions*p.Size*p.Size*p.C, p.bwdRange)
	p.dy = nil
	return p.dx
}

func (p *Pool2DOf[F]) backwardRange(_, lo, hi int) {
	C, W, k := p.C, p.InW, p.Size
	inv := F(1 / float64(k*k))
	for i := lo; i < hi; i++ {
		dx := p.dx.Data[i*p.inPerEx : (i+1)*p.inPerEx]
		clear(dx)
		out := p.dy.Data[i*p.outPositions*C : (i+1)*p.outPositions*C]
		if p.Mode == Pool2DMax {
			for o, g := range out {
				dx[p.arg[i*p.outPositions*C+o]] += g
			}
			continue
		}
		for oh := range p.OutH {
			for ow := range p.OutW {
				g := out[(oh*p.OutW+ow)*C:][:C]
				first := (oh*p.Stride*W + ow*p.Stride) * C
				for kh := range k {
					for kw := range k {
						d := dx[first+(kh*W+kw)*C:][:C]
						for j, v := range g {
							d[j] += v * inv
						}
					}
				}
			}
		}
	}
}

// b2i is 1 for true and 0 for false (compiled without a branch).
func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}
