package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Attention is multi-head scaled dot-product attention without parameters (Vaswani et al.
// 2017, Sec. 3.2): its input rows are [Q | K | V] (B·T × 3·Dim, head h owning columns
// h·d_k … (h+1)·d_k − 1 of each part, d_k = Dim/Heads) and its output rows are the heads'
// softmax(Q_h K_hᵀ/√d_k) V_h side by side (B·T × Dim).
//
// Keys at padded positions (t ≥ Lengths[i]) are masked out; with Causal, position t also
// ignores keys after t. Padded query rows output zeros, so only the L×L block of valid
// positions of each example is computed. Each (example, head) pair's Q, K, V are copied
// out in both layouts (L×d_k and d_k×L) so that every product is a plain multiply, and the
// pairs are spread over the cores.
type Attention struct {
	Dim, Heads int
	Causal     bool

	// Per (example, head) blocks of T·d_k values, the first L·d_k used: Q, K, V as L×d_k
	// and their transposes as d_k×L.
	q, k, v, qt, kt, vt []float64
	p                   []float64 // per (example, head) L×L attention weights (when Batch.Grad)
	y, dx               *Tensor
	T                   int
	scratch             [][]float64 // per worker
	kept                bool        // p holds the weights of the last Forward
}

var _ Layer = (*Attention)(nil)

func (a *Attention) dk() int { return a.Dim / a.Heads }

func validLen(b *Batch, i int) int {
	if b.Lengths == nil {
		return b.T
	}
	return int(b.Lengths[i])
}

// splitHead copies head h of example i's valid rows out of x into the per-pair blocks.
func (a *Attention) splitHead(x *Tensor, i, h, T, L int) {
	dk, D := a.dk(), a.Dim
	base := (i*a.Heads + h) * T * dk
	q, k, v := a.q[base:base+L*dk], a.k[base:base+L*dk], a.v[base:base+L*dk]
	qt, kt, vt := a.qt[base:base+L*dk], a.kt[base:base+L*dk], a.vt[base:base+L*dk]
	for t := 0; t < L; t++ {
		row := x.Data[(i*T+t)*3*D : (i*T+t+1)*3*D]
		qs, ks, vs := row[h*dk:(h+1)*dk], row[D+h*dk:D+(h+1)*dk], row[2*D+h*dk:2*D+(h+1)*dk]
		copy(q[t*dk:(t+1)*dk], qs)
		copy(k[t*dk:(t+1)*dk], ks)
		copy(v[t*dk:(t+1)*dk], vs)
		for j := 0; j < dk; j++ {
			qt[j*L+t], kt[j*L+t], vt[j*L+t] = qs[j], ks[j], vs[j]
		}
	}
}

func (a *Attention) Forward(x *Tensor, b *Batch) *Tensor {
	if x.Cols != 3*a.Dim || a.Dim%a.Heads != 0 {
		panic("model: Attention input must be [Q|K|V] of 3·Dim columns, Dim divisible by Heads")
	}
	T, H, dk, D := b.T, a.Heads, a.dk(), a.Dim
	a.T = T
	n := b.B * T * D
	for _, s := range []*[]float64{&a.q, &a.k, &a.v, &a.qt, &a.kt, &a.vt} {
		*s = growFloats(*s, n)
	}
	a.y = ensure(a.y, b.B*T, D)
	clear(a.y.Data)
	a.kept = b.Grad
	if a.kept {
		a.p = growFloats(a.p, b.B*H*T*T)
	}
	a.ensureScratch(T*T + T*dk)
	scale := 1 / math.Sqrt(float64(dk))
	parallelFor(b.B*H, 2*T*T*dk, func(w, lo, hi int) {
		sc := a.scratch[w]
		for ih := lo; ih < hi; ih++ {
			i, h := ih/H, ih%H
			L := validLen(b, i)
			if L == 0 {
				continue
			}
			a.splitHead(x, i, h, T, L)
			base := ih * T * dk
			p := sc[:L*L]
			if a.kept {
				p = a.p[ih*T*T : ih*T*T+L*L]
			}
			linalg.MulNN(p, a.q[base:base+L*dk], a.kt[base:base+L*dk], L, dk, L, false)
			softmaxRows(p, L, scale, a.Causal)
			o := sc[T*T : T*T+L*dk]
			linalg.MulNN(o, p, a.v[base:base+L*dk], L, L, dk, false)
			for t := 0; t < L; t++ {
				copy(a.y.Data[(i*T+t)*D+h*dk:(i*T+t)*D+(h+1)*dk], o[t*dk:(t+1)*dk])
			}
		}
	})
	return a.y
}

// softmaxRows replaces each row s of the L×L matrix p by softmax(scale·s), masking the
// entries after the diagonal when causal.
func softmaxRows(p []float64, L int, scale float64, causal bool) {
	for t := 0; t < L; t++ {
		n := L
		if causal {
			n = t + 1
		}
		row := p[t*L : t*L+n]
		mx := row[0]
		for _, v := range row[1:] {
			if v > mx {
				mx = v
			}
		}
		// exp(scale·(v − max)), its argument as one multiply-add per entry.
		shift := -scale * mx
		for j, v := range row {
			row[j] = scale*v + shift
		}
		linalg.Exp(row, row)
		sum := 0.0
		for _, e := range row {
			sum += e
		}
		inv := 1 / sum
		for j := range row {
			row[j] *= inv
		}
		clear(p[t*L+n : (t+1)*L])
	}
}

func (a *Attention) ensureScratch(n int) {
	if len(a.scratch) < numWorkers() {
		a.scratch = make([][]float64, numWorkers())
	}
	for w := range a.scratch {
		a.scratch[w] = growFloats(a.scratch[w], n)
	}
}

// Backward, per example and head, with O = P·V and P = softmax(S·scale):
// dVᵀ = dOᵀ·P, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dKᵀ = Qᵀ·dS.
func (a *Attention) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	if !a.kept {
		panic("model: Attention.Backward needs a Forward with Batch.Grad set")
	}
	T, H, dk, D := a.T, a.Heads, a.dk(), a.Dim
	a.dx = ensure(a.dx, b.B*T, 3*D)
	clear(a.dx.Data)
	a.ensureScratch(T*T + 5*T*dk)
	scale := 1 / math.Sqrt(float64(dk))
	parallelFor(b.B*H, 4*T*T*dk, func(w, lo, hi int) {
		sc := a.scratch[w]
		for ih := lo; ih < hi; ih++ {
			i, h := ih/H, ih%H
			L := validLen(b, i)
			if L == 0 {
				continue
			}
			base := ih * T * dk
			p := a.p[ih*T*T : ih*T*T+L*L]
			dp := sc[:L*L]
			m := L * dk
			do, dot, dq, dkt, dvt := sc[T*T:T*T+m], sc[T*T+m:T*T+2*m], sc[T*T+2*m:T*T+3*m], sc[T*T+3*m:T*T+4*m], sc[T*T+4*m:T*T+5*m]
			for t := 0; t < L; t++ {
				src := dy.Data[(i*T+t)*D+h*dk : (i*T+t)*D+(h+1)*dk]
				copy(do[t*dk:(t+1)*dk], src)
				for j, g := range src {
					dot[j*L+t] = g
				}
			}
			linalg.MulNN(dvt, dot, p, dk, L, L, false)
			linalg.MulNN(dp, do, a.vt[base:base+m], L, dk, L, false)
			for t := 0; t < L; t++ {
				pr, dr := p[t*L:(t+1)*L], dp[t*L:(t+1)*L]
				s := linalg.Dot(pr, dr)
				for j, pv := range pr {
					dr[j] = scale * pv * (dr[j] - s)
				}
			}
			linalg.MulNN(dq, dp, a.k[base:base+m], L, L, dk, false)
			linalg.MulNN(dkt, a.qt[base:base+m], dp, dk, L, L, false)
			for t := 0; t < L; t++ {
				row := a.dx.Data[(i*T+t)*3*D : (i*T+t+1)*3*D]
				copy(row[h*dk:(h+1)*dk], dq[t*dk:(t+1)*dk])
				kr, vr := row[D+h*dk:D+(h+1)*dk], row[2*D+h*dk:2*D+(h+1)*dk]
				for j := 0; j < dk; j++ {
					kr[j], vr[j] = dkt[j*L+t], dvt[j*L+t]
				}
			}
		}
	})
	return a.dx
}

// MultiHeadAttention is self-attention with learned projections: [Q|K|V] = x·W_qkv + b_qkv
// (one Dim×3Dim multiply), Attention, then an output projection Dim×Dim. Its parameters are
// the two projections' (W_qkv, b_qkv, W_o, b_o), in that order.
type MultiHeadAttention struct {
	*Sequential
	QKV, Out *Linear
	Core     *Attention
}

var _ ParamLayer = (*MultiHeadAttention)(nil)

// NewMultiHeadAttention returns self-attention over rows of width dim with heads heads.
func NewMultiHeadAttention(dim, heads int, causal bool) *MultiHeadAttention {
	m := &MultiHeadAttention{
		QKV:  NewLinear(dim, 3*dim, InitXavier),
		Core: &Attention{Dim: dim, Heads: heads, Causal: causal},
		Out:  NewLinear(dim, dim, InitXavier),
	}
	m.Sequential = NewSequential(m.QKV, m.Core, m.Out)
	return m
}

// Init uses Xavier-uniform projections with zero biases, as PyTorch's MultiheadAttention.
func (m *MultiHeadAttention) Init(rng *rand.Rand) { m.Sequential.Init(rng) }
