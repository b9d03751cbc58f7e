package model

import "github.com/confide-fl/confide/internal/linalg"

// affine is the per-channel gain and bias of a normalisation layer (LayerNorm, GroupNorm):
// y = γ ⊙ x̂ + β, applied to rows of dim values. It owns the parameters (γ, then β), the
// normalised input x̂ its layer's Forward writes, and the parameter gradients:
// ∇γ = Σ_r dy_r ⊙ x̂_r and ∇β = Σ_r dy_r over the rows.
type affine[F linalg.Float] struct {
	dim          int
	g, b, gg, gb []F
	xhat         *TensorOf[F]
	dy           *TensorOf[F] // output gradient kept in ghost mode
	perExample   []F          // per example, Σ_t dy_t ⊙ x̂_t then Σ_t dy_t (ghost mode)
	perExampleOf *TensorOf[F] // the dy perExample was formed from
	normRange    func(w, lo, hi int)
	normDst      []float64
	normRows     int
}

func (a *affine[F]) NumParams() int { return 2 * a.dim }

func (a *affine[F]) Bind(params, grads []F) {
	D := a.dim
	a.g, a.b, a.gg, a.gb = params[:D], params[D:2*D], grads[:D], grads[D:2*D]
}

// init sets γ = 1 and β = 0.
func (a *affine[F]) init() {
	for i := range a.g {
		a.g[i] = 1
	}
	clear(a.b)
}

// backward handles the parameter side of its layer's Backward: in ghost mode it keeps dy
// for the per-example methods, otherwise it accumulates the gradients.
func (a *affine[F]) backward(dy *TensorOf[F], b *Batch) {
	if b.Ghost {
		a.dy, a.perExampleOf = dy, nil
		return
	}
	a.accumulate(dy, nil, b)
}

// accumulate adds Σ_r w_{i(r)}·(dy_r ⊙ x̂_r) to ∇γ and Σ_r w_{i(r)}·dy_r to ∇β (w nil: all 1).
func (a *affine[F]) accumulate(dy *TensorOf[F], w []float64, b *Batch) {
	D := a.dim
	T := dy.Rows * dy.Cols / D / b.B
	for r := 0; r < b.B*T; r++ {
		wi := F(1)
		if w != nil {
			wi = F(w[r/T])
		}
		g, xh := dy.Data[r*D:(r+1)*D], a.xhat.Data[r*D:(r+1)*D]
		for k, v := range g {
			a.gg[k] += wi * v * xh[k]
			a.gb[k] += wi * v
		}
	}
}

// AddPerExampleSqNorms forms each example's gain and bias gradients (two dim-vectors:
// Σ_t dy_t ⊙ x̂_t and Σ_t dy_t), which is as cheap as any identity, and keeps them for
// AccumulateWeighted.
func (a *affine[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	D := a.dim
	a.perExample = grow(a.perExample, b.B*2*D)
	a.normDst, a.normRows = dst, len(a.dy.Data)/D/b.B
	if a.normRange == nil {
		a.normRange = a.perExampleNorms
	}
	parallelFor(b.B, 3*a.normRows*D, a.normRange)
	a.normDst, a.perExampleOf = nil, a.dy
}

func (a *affine[F]) perExampleNorms(_, lo, hi int) {
	D, T := a.dim, a.normRows
	for i := lo; i < hi; i++ {
		sg, sb := a.perExample[2*i*D:(2*i+1)*D], a.perExample[(2*i+1)*D:(2*i+2)*D]
		clear(sg)
		clear(sb)
		for r := i * T; r < (i+1)*T; r++ {
			g, xh := a.dy.Data[r*D:(r+1)*D], a.xhat.Data[r*D:(r+1)*D]
			for k, v := range g {
				sg[k] += v * xh[k]
				sb[k] += v
			}
		}
		a.normDst[i] += float64(linalg.SumSq(sg)) + float64(linalg.SumSq(sb))
	}
}

// AccumulateWeighted adds Σ_i w_i·(∇γ_i, ∇β_i), from the per-example gradients when
// AddPerExampleSqNorms formed them for this pass.
func (a *affine[F]) AccumulateWeighted(w []float64, b *Batch) {
	if a.perExampleOf != a.dy || a.dy == nil {
		a.accumulate(a.dy, w, b)
		return
	}
	D := a.dim
	for i, wi := range w[:b.B] {
		sg, sb := a.perExample[2*i*D:(2*i+1)*D], a.perExample[(2*i+1)*D:(2*i+2)*D]
		linalg.Axpy(F(wi), sg, a.gg)
		linalg.Axpy(F(wi), sb, a.gb)
	}
}
