package model

import (
	"math"
	"math/rand/v2"
)

// GroupNorm normalises each example's channels-last map (see Conv2D) within groups of
// Channels/Groups consecutive channels, over all positions, to zero mean and unit variance,
// then applies a per-channel gain and bias (Wu & He 2018; PyTorch's nn.GroupNorm, ε = 1e-5):
// y = γ_c·(x − μ_{i,g})/√(σ²_{i,g} + ε) + β_c. Its statistics are per example, so unlike
// BatchNorm it mixes no examples and suits per-example clipping (Tramèr & Boneh 2021 use it
// in DP-SGD CNNs). The parameters are γ (Channels), then β (Channels).
//
// Per-example gradients are two Channels-vectors (Σ_t dy_t ⊙ x̂_t and Σ_t dy_t over the
// example's positions), formed directly as LayerNorm does: as cheap as any identity.
type GroupNorm struct {
	Channels, Groups int
	Eps              float64

	affine
	rstd  []float64 // 1/σ per example and group
	y, dx *Tensor

	in, gy             *Tensor // operands of the running Forward or Backward
	rows               int     // positions per example of the running pass
	fwdRange, bwdRange func(w, lo, hi int)
}

var _ ParamLayer = (*GroupNorm)(nil)

// NewGroupNorm returns a group norm over channels split into groups (which must divide it).
func NewGroupNorm(channels, groups int) *GroupNorm {
	if groups <= 0 || channels%groups != 0 {
		panic("model: GroupNorm groups must divide the channels")
	}
	return &GroupNorm{Channels: channels, Groups: groups, Eps: 1e-5, affine: affine{dim: channels}}
}

// Init sets γ = 1 and β = 0.
func (l *GroupNorm) Init(*rand.Rand) { l.affine.init() }

func (l *GroupNorm) Forward(x *Tensor, b *Batch) *Tensor {
	C := l.Channels
	if len(x.Data)%(b.B*C) != 0 {
		panic("model: GroupNorm input size mismatch")
	}
	rows := len(x.Data) / C
	l.xhat = ensure(l.xhat, rows, C)
	l.y = ensure(l.y, rows, C)
	l.rstd = growFloats(l.rstd, b.B*l.Groups)
	l.in, l.rows = x, rows/b.B
	if l.fwdRange == nil {
		l.fwdRange, l.bwdRange = l.forwardRange, l.backwardRange
	}
	parallelFor(b.B, 6*l.rows*C, l.fwdRange)
	l.in = nil
	return l.y
}

func (l *GroupNorm) forwardRange(_, lo, hi int) {
	C, G, T := l.Channels, l.Groups, l.rows
	cg := C / G
	n := float64(T * cg)
	for i := lo; i < hi; i++ {
		x := l.in.Data[i*T*C : (i+1)*T*C]
		xh, y := l.xhat.Data[i*T*C:(i+1)*T*C], l.y.Data[i*T*C:(i+1)*T*C]
		for g := range G {
			mean := 0.0
			for t := range T {
				for _, v := range x[t*C+g*cg : t*C+(g+1)*cg] {
					mean += v
				}
			}
			mean /= n
			ss := 0.0
			for t := range T {
				row := xh[t*C+g*cg : t*C+(g+1)*cg]
				for k, v := range x[t*C+g*cg : t*C+(g+1)*cg] {
					d := v - mean
					row[k] = d
					ss += d * d
				}
			}
			rs := 1 / math.Sqrt(ss/n+l.Eps)
			l.rstd[i*G+g] = rs
			gain, bias := l.g[g*cg:(g+1)*cg], l.b[g*cg:(g+1)*cg]
			for t := range T {
				row, out := xh[t*C+g*cg:t*C+(g+1)*cg], y[t*C+g*cg:t*C+(g+1)*cg]
				for k, d := range row {
					h := d * rs
					row[k] = h
					out[k] = gain[k]*h + bias[k]
				}
			}
		}
	}
}

// Backward: with ĝ = dy ⊙ γ, dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)), the means over the
// example's group.
func (l *GroupNorm) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	l.affine.backward(dy, b)
	if !needInput {
		return nil
	}
	l.dx = ensure(l.dx, dy.Rows, dy.Cols)
	l.gy = dy
	parallelFor(b.B, 6*l.rows*l.Channels, l.bwdRange)
	l.gy = nil
	return l.dx
}

func (l *GroupNorm) backwardRange(_, lo, hi int) {
	C, G, T := l.Channels, l.Groups, l.rows
	cg := C / G
	n := float64(T * cg)
	for i := lo; i < hi; i++ {
		dy := l.gy.Data[i*T*C : (i+1)*T*C]
		xh, dx := l.xhat.Data[i*T*C:(i+1)*T*C], l.dx.Data[i*T*C:(i+1)*T*C]
		for g := range G {
			gain := l.g[g*cg : (g+1)*cg]
			s1, s2 := 0.0, 0.0
			for t := range T {
				h := xh[t*C+g*cg : t*C+(g+1)*cg]
				d := dx[t*C+g*cg : t*C+(g+1)*cg]
				for k, v := range dy[t*C+g*cg : t*C+(g+1)*cg] {
					gh := v * gain[k]
					d[k] = gh
					s1 += gh
					s2 += gh * h[k]
				}
			}
			s1, s2 = s1/n, s2/n
			rs := l.rstd[i*G+g]
			for t := range T {
				h := xh[t*C+g*cg : t*C+(g+1)*cg]
				d := dx[t*C+g*cg : t*C+(g+1)*cg]
				for k, gh := range d {
					d[k] = rs * (gh - s1 - h[k]*s2)
				}
			}
		}
	}
}
