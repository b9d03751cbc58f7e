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
// positions of each example is computed.
type Attention struct {
	Dim, Heads int
	Causal     bool

	q, k, v  []float64 // per (example, head) blocks of T×d_k, copied out of the input
	p        []float64 // per (example, head) T×T attention weights (training passes)
	y, dx    *Tensor
	T        int
	lengths  []int32
	scratch  [][]float64 // per worker
	trainSet bool        // p holds the weights of the last Forward
}

var _ Layer = (*Attention)(nil)

func (a *Attention) dk() int { return a.Dim / a.Heads }

func (a *Attention) validLen(b *Batch, i int) int {
	if b.Lengths == nil {
		return b.T
	}
	return int(b.Lengths[i])
}

// splitHeads copies the input's Q, K and V columns into per-(example, head) T×d_k blocks.
func (a *Attention) splitHeads(x *Tensor, b *Batch) {
	T, H, dk, D := b.T, a.Heads, a.dk(), a.Dim
	n := b.B * T * D
	a.q, a.k, a.v = growFloats(a.q, n), growFloats(a.k, n), growFloats(a.v, n)
	for r := 0; r < b.B*T; r++ {
		i, t := r/T, r%T
		row := x.Data[r*3*D : (r+1)*3*D]
		for h := 0; h < H; h++ {
			off := ((i*H+h)*T + t) * dk
			copy(a.q[off:off+dk], row[h*dk:(h+1)*dk])
			copy(a.k[off:off+dk], row[D+h*dk:D+(h+1)*dk])
			copy(a.v[off:off+dk], row[2*D+h*dk:2*D+(h+1)*dk])
		}
	}
}

func (a *Attention) Forward(x *Tensor, b *Batch) *Tensor {
	if x.Cols != 3*a.Dim || a.Dim%a.Heads != 0 {
		panic("model: Attention input must be [Q|K|V] of 3·Dim columns, Dim divisible by Heads")
	}
	T, H, dk, D := b.T, a.Heads, a.dk(), a.Dim
	a.T, a.lengths = T, b.Lengths
	a.splitHeads(x, b)
	a.y = ensure(a.y, b.B*T, D)
	clear(a.y.Data)
	keep := b.Grad // a Backward follows: keep the weights
	if keep {
		a.p = growFloats(a.p, b.B*H*T*T)
	}
	a.trainSet = keep
	a.ensureScratch(T*T + T*dk)
	scale := 1 / math.Sqrt(float64(dk))
	parallelFor(b.B*H, T*T*dk, func(w, lo, hi int) {
		sc := a.scratch[w]
		for ih := lo; ih < hi; ih++ {
			i, h := ih/H, ih%H
			L := a.validLen(b, i)
			if L == 0 {
				continue
			}
			base := ih * T * dk
			q, k, v := a.q[base:base+L*dk], a.k[base:base+L*dk], a.v[base:base+L*dk]
			p := sc[:L*L]
			if keep {
				p = a.p[ih*T*T : ih*T*T+L*L]
			}
			linalg.MulNT(p, q, k, L, dk, L, false)
			softmaxRows(p, L, scale, a.Causal)
			o := sc[T*T : T*T+L*dk]
			linalg.MulNN(o, p, v, L, L, dk, false)
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
		row := p[t*L : (t+1)*L]
		n := L
		if causal {
			n = t + 1
		}
		mx := math.Inf(-1)
		for _, v := range row[:n] {
			mx = max(mx, v)
		}
		sum := 0.0
		for j, v := range row[:n] {
			e := math.Exp(scale * (v - mx))
			row[j] = e
			sum += e
		}
		inv := 1 / sum
		for j := range row[:n] {
			row[j] *= inv
		}
		clear(row[n:])
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
// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dK = dSᵀ·Q.
func (a *Attention) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	if !a.trainSet {
		panic("model: Attention.Backward after an evaluation-mode Forward")
	}
	T, H, dk, D := a.T, a.Heads, a.dk(), a.Dim
	a.dx = ensure(a.dx, b.B*T, 3*D)
	clear(a.dx.Data)
	a.ensureScratch(T*T + 4*T*dk)
	scale := 1 / math.Sqrt(float64(dk))
	parallelFor(b.B*H, T*T*dk, func(w, lo, hi int) {
		sc := a.scratch[w]
		for ih := lo; ih < hi; ih++ {
			i, h := ih/H, ih%H
			L := a.validLen(b, i)
			if L == 0 {
				continue
			}
			base := ih * T * dk
			q, k, v := a.q[base:base+L*dk], a.k[base:base+L*dk], a.v[base:base+L*dk]
			p := a.p[ih*T*T : ih*T*T+L*L]
			dp := sc[:L*L]
			do := sc[T*T : T*T+L*dk]
			dq := sc[T*T+T*dk : T*T+T*dk+L*dk]
			dkk := sc[T*T+2*T*dk : T*T+2*T*dk+L*dk]
			dv := sc[T*T+3*T*dk : T*T+3*T*dk+L*dk]
			for t := 0; t < L; t++ {
				copy(do[t*dk:(t+1)*dk], dy.Data[(i*T+t)*D+h*dk:(i*T+t)*D+(h+1)*dk])
			}
			linalg.MulTN(dv, p, do, L, L, dk, false)
			linalg.MulNT(dp, do, v, L, dk, L, false)
			for t := 0; t < L; t++ {
				pr, dr := p[t*L:(t+1)*L], dp[t*L:(t+1)*L]
				s := linalg.Dot(pr, dr)
				for j, pv := range pr {
					dr[j] = scale * pv * (dr[j] - s)
				}
			}
			linalg.MulNN(dq, dp, k, L, L, dk, false)
			linalg.MulTN(dkk, dp, q, L, L, dk, false)
			for t := 0; t < L; t++ {
				row := a.dx.Data[(i*T+t)*3*D : (i*T+t+1)*3*D]
				copy(row[h*dk:(h+1)*dk], dq[t*dk:(t+1)*dk])
				copy(row[D+h*dk:D+(h+1)*dk], dkk[t*dk:(t+1)*dk])
				copy(row[2*D+h*dk:2*D+(h+1)*dk], dv[t*dk:(t+1)*dk])
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
