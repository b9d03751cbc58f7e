package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
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
type GroupNormOf[F linalg.Float] struct {
	Channels, Groups int
	Eps              float64

	affine[F]
	rstd  []F // 1/σ per example and group
	y, dx *TensorOf[F]

	in, gy             *TensorOf[F] // operands of the running Forward or Backward
	rows               int          // positions per example of the running pass
	fwdRange, bwdRange func(w, lo, hi int)
}

// GroupNorm is a float64 GroupNormOf.
type GroupNorm = GroupNormOf[float64]

var (
	_ ParamLayer            = (*GroupNorm)(nil)
	_ ParamLayerOf[float32] = (*GroupNormOf[float32])(nil)
)

// NewGroupNorm returns a group norm over channels split into groups (which must divide it).
func NewGroupNorm(channels, groups int) *GroupNorm { return newGroupNorm[float64](channels, groups) }

func newGroupNorm[F linalg.Float](channels, groups int) *GroupNormOf[F] {
	if groups <= 0 || channels%groups != 0 {
		panic("model: GroupNorm groups must divide the channels")
	}
	return &GroupNormOf[F]{Channels: channels, Groups: groups, Eps: 1e-5, affine: affine[F]{dim: channels}}
}

// Init sets γ = 1 and β = 0.
func (l *GroupNormOf[F]) Init(*rand.Rand) { l.affine.init() }

func (l *GroupNormOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	C := l.Channels
	if len(x.Data)%(b.B*C) != 0 {
		panic("model: GroupNorm input size mismatch")
	}
	rows := len(x.Data) / C
	l.xhat = ensure(l.xhat, rows, C)
	l.y = ensure(l.y, rows, C)
	l.rstd = grow(l.rstd, b.B*l.Groups)
	l.in, l.rows = x, rows/b.B
	if l.fwdRange == nil {
		l.fwdRange, l.bwdRange = l.forwardRange, l.backwardRange
	}
	parallelFor(b.B, 6*l.rows*C, l.fwdRange)
	l.in = nil
	return l.y
}

func (l *GroupNormOf[F]) forwardRange(_, lo, hi int) {
	C, G, T := l.Channels, l.Groups, l.rows
	cg := C / G
	n := float64(T * cg)
	for i := lo; i < hi; i++ {
		x := l.in.Data[i*T*C : (i+1)*T*C]
		xh, y := l.xhat.Data[i*T*C:(i+1)*T*C], l.y.Data[i*T*C:(i+1)*T*C]
		for g := range G {
			// The group's statistics are summed in float64 whatever F is: a group spans
			// all positions of the map.
			sum := 0.0
			for t := range T {
				for _, v := range x[t*C+g*cg : t*C+(g+1)*cg] {
					sum += float64(v)
				}
			}
			mean := F(sum / n)
			ss := 0.0
			for t := range T {
				row := xh[t*C+g*cg : t*C+(g+1)*cg]
				for k, v := range x[t*C+g*cg : t*C+(g+1)*cg] {
					d := v - mean
					row[k] = d
					ss += float64(d) * float64(d)
				}
			}
			rs := F(1 / math.Sqrt(ss/n+l.Eps))
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
func (l *GroupNormOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
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

func (l *GroupNormOf[F]) backwardRange(_, lo, hi int) {
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
					s1 += float64(gh)
					s2 += float64(gh * h[k])
				}
			}
			m1, m2 := F(s1/n), F(s2/n)
			rs := l.rstd[i*G+g]
			for t := range T {
				h := xh[t*C+g*cg : t*C+(g+1)*cg]
				d := dx[t*C+g*cg : t*C+(g+1)*cg]
				for k, gh := range d {
					d[k] = rs * (gh - m1 - h[k]*m2)
				}
			}
		}
	}
}
