package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// AttentionOf is multi-head scaled dot-product attention without parameters (Vaswani et al.
// 2017, Sec. 3.2): its input rows are [Q | K | V] (B·T × 3·Dim, head h owning columns
// h·d_k … (h+1)·d_k − 1 of each part, d_k = Dim/Heads) and its output rows are the heads'
// softmax(Q_h K_hᵀ/√d_k) V_h side by side (B·T × Dim).
//
// Keys at padded positions (t ≥ Lengths[i]) are masked out; with Causal, position t also
// ignores keys after t. Padded query rows output zeros, so only the L×L block of valid
// positions of each example is computed. Each (example, head) pair's Q, K, V are copied
// out as contiguous L×d_k blocks; the products with transposes (QKᵀ, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q)
// read them through linalg's transpose forms. The pairs are spread over the cores.
type AttentionOf[F linalg.Float] struct {
	Dim, Heads int
	Causal     bool

	// Per (example, head) blocks of T·d_k values, the first L·d_k used: Q, K, V as L×d_k.
	q, k, v []F
	p       []F // per (example, head) L×L attention weights (when Batch.Grad)
	y, dx   *TensorOf[F]
	T       int
	scratch [][]F // per worker
	kept    bool  // p holds the weights of the last Forward

	in, gy *TensorOf[F] // input of the running Forward, output gradient of the running Backward
	batch  *Batch       // batch of the running Forward or Backward
	// Method values made once: a closure passed to parallelFor on every call would be
	// allocated on every call.
	fwdPairs, bwdPairs func(w, lo, hi int)
}

// Attention is a float64 AttentionOf.
type Attention = AttentionOf[float64]

var (
	_ Layer            = (*Attention)(nil)
	_ LayerOf[float32] = (*AttentionOf[float32])(nil)
)

func (a *AttentionOf[F]) dk() int { return a.Dim / a.Heads }

func validLen(b *Batch, i int) int {
	if b.Lengths == nil {
		return b.T
	}
	return int(b.Lengths[i])
}

// splitHead copies head h of example i's valid rows out of x into the per-pair blocks.
func (a *AttentionOf[F]) splitHead(x *TensorOf[F], i, h, T, L int) {
	dk, D := a.dk(), a.Dim
	base := (i*a.Heads + h) * T * dk
	q, k, v := a.q[base:base+L*dk], a.k[base:base+L*dk], a.v[base:base+L*dk]
	for t := 0; t < L; t++ {
		row := x.Data[(i*T+t)*3*D : (i*T+t+1)*3*D]
		copy(q[t*dk:(t+1)*dk], row[h*dk:(h+1)*dk])
		copy(k[t*dk:(t+1)*dk], row[D+h*dk:D+(h+1)*dk])
		copy(v[t*dk:(t+1)*dk], row[2*D+h*dk:2*D+(h+1)*dk])
	}
}

func (a *AttentionOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if x.Cols != 3*a.Dim || a.Dim%a.Heads != 0 {
		panic("model: Attention input must be [Q|K|V] of 3·Dim columns, Dim divisible by Heads")
	}
	T, H, dk, D := b.T, a.Heads, a.dk(), a.Dim
	a.T = T
	n := b.B * T * D
	for _, s := range []*[]F{&a.q, &a.k, &a.v} {
		*s = grow(*s, n)
	}
	a.y = ensure(a.y, b.B*T, D)
	clearPadded(a.y, b, T)
	a.kept = b.Grad
	if a.kept {
		a.p = grow(a.p, b.B*H*T*T)
	}
	a.ensureScratch(T*T + T*dk)
	a.in, a.batch = x, b
	if a.fwdPairs == nil {
		a.fwdPairs = a.forwardPairs
	}
	parallelFor(b.B*H, 2*T*T*dk, a.fwdPairs)
	a.in, a.batch = nil, nil
	return a.y
}

// forwardPairs computes the heads of (example, head) pairs [lo, hi), ih = i·Heads + h.
func (a *AttentionOf[F]) forwardPairs(w, lo, hi int) {
	x, b := a.in, a.batch
	T, H, dk, D := a.T, a.Heads, a.dk(), a.Dim
	scale := F(1 / math.Sqrt(float64(dk)))
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
		linalg.MulNT(p, a.q[base:base+L*dk], a.k[base:base+L*dk], L, dk, L, false)
		softmaxRows(p, L, scale, a.Causal)
		o := sc[T*T : T*T+L*dk]
		linalg.MulNN(o, p, a.v[base:base+L*dk], L, L, dk, false)
		for t := 0; t < L; t++ {
			copy(a.y.Data[(i*T+t)*D+h*dk:(i*T+t)*D+(h+1)*dk], o[t*dk:(t+1)*dk])
		}
	}
}

// softmaxRows replaces each row s of the L×L matrix p by softmax(scale·s), masking the
// entries after the diagonal when causal.
func softmaxRows[F linalg.Float](p []F, L int, scale F, causal bool) {
	for t := 0; t < L; t++ {
		n := L
		if causal {
			n = t + 1
		}
		softmaxPrefix(p[t*L:(t+1)*L], n, scale)
	}
}

// softmaxPrefix replaces row[:n] by softmax(scale·row[:n]) and zeroes row[n:], the masked
// keys. The incremental decoder (Decoder) uses it too, so both compute the same weights.
func softmaxPrefix[F linalg.Float](full []F, n int, scale F) {
	row := full[:n]
	// Four independent maxima and partial sums: one chain would wait on each compare
	// (or add) in turn.
	m0, m1, m2, m3 := row[0], row[0], row[0], row[0]
	j := 0
	for ; j+4 <= n; j += 4 {
		r := row[j : j+4 : j+4]
		m0, m1, m2, m3 = max(m0, r[0]), max(m1, r[1]), max(m2, r[2]), max(m3, r[3])
	}
	for ; j < n; j++ {
		m0 = max(m0, row[j])
	}
	// exp(scale·(v − max)), its argument as one multiply-add per entry.
	shift := -scale * max(max(m0, m1), max(m2, m3))
	for j, v := range row {
		row[j] = scale*v + shift
	}
	linalg.Exp(row, row)
	var s0, s1, s2, s3 F
	for j = 0; j+4 <= n; j += 4 {
		r := row[j : j+4 : j+4]
		s0, s1, s2, s3 = s0+r[0], s1+r[1], s2+r[2], s3+r[3]
	}
	for ; j < n; j++ {
		s0 += row[j]
	}
	sum := (s0 + s1) + (s2 + s3)
	inv := 1 / sum
	for j := range row {
		row[j] *= inv
	}
	clear(full[n:])
}

func (a *AttentionOf[F]) ensureScratch(n int) {
	if len(a.scratch) < numWorkers() {
		a.scratch = make([][]F, numWorkers())
	}
	for w := range a.scratch {
		a.scratch[w] = grow(a.scratch[w], n)
	}
}

// Backward, per example and head, with O = P·V and P = softmax(S·scale):
// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = scale·P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dK = dSᵀ·Q.
func (a *AttentionOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	if !a.kept {
		panic("model: Attention.Backward needs a Forward with Batch.Grad set")
	}
	T, H, dk, D := a.T, a.Heads, a.dk(), a.Dim
	a.dx = ensure(a.dx, b.B*T, 3*D)
	clearPadded(a.dx, b, T)
	a.ensureScratch(T*T + 4*T*dk)
	a.gy, a.batch = dy, b
	if a.bwdPairs == nil {
		a.bwdPairs = a.backwardPairs
	}
	parallelFor(b.B*H, 4*T*T*dk, a.bwdPairs)
	a.gy, a.batch = nil, nil
	return a.dx
}

// backwardPairs accumulates the input gradients of (example, head) pairs [lo, hi).
func (a *AttentionOf[F]) backwardPairs(w, lo, hi int) {
	dy, b := a.gy, a.batch
	T, H, dk, D := a.T, a.Heads, a.dk(), a.Dim
	scale := F(1 / math.Sqrt(float64(dk)))
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
		do, dq, dkh, dv := sc[T*T:T*T+m], sc[T*T+m:T*T+2*m], sc[T*T+2*m:T*T+3*m], sc[T*T+3*m:T*T+4*m]
		for t := 0; t < L; t++ {
			copy(do[t*dk:(t+1)*dk], dy.Data[(i*T+t)*D+h*dk:(i*T+t)*D+(h+1)*dk])
		}
		linalg.MulTN(dv, p, do, L, L, dk, false)
		linalg.MulNT(dp, do, a.v[base:base+m], L, dk, L, false)
		for t := 0; t < L; t++ {
			pr, dr := p[t*L:(t+1)*L], dp[t*L:(t+1)*L]
			s := linalg.Dot(pr, dr)
			for j, pv := range pr {
				dr[j] = scale * pv * (dr[j] - s)
			}
		}
		linalg.MulNN(dq, dp, a.k[base:base+m], L, L, dk, false)
		linalg.MulTN(dkh, dp, a.q[base:base+m], L, L, dk, false)
		for t := 0; t < L; t++ {
			row := a.dx.Data[(i*T+t)*3*D : (i*T+t+1)*3*D]
			copy(row[h*dk:(h+1)*dk], dq[t*dk:(t+1)*dk])
			copy(row[D+h*dk:D+(h+1)*dk], dkh[t*dk:(t+1)*dk])
			copy(row[2*D+h*dk:2*D+(h+1)*dk], dv[t*dk:(t+1)*dk])
		}
	}
}

// clearPadded zeroes the rows of x (B·T rows) at padded positions, the only ones the heads
// do not write.
func clearPadded[F linalg.Float](x *TensorOf[F], b *Batch, T int) {
	if b.Lengths == nil {
		return
	}
	for i := 0; i < b.B; i++ {
		clear(x.Data[(i*T+validLen(b, i))*x.Cols : (i+1)*T*x.Cols])
	}
}

// MultiHeadAttentionOf is self-attention with learned projections: [Q|K|V] = x·W_qkv + b_qkv
// (one Dim×3Dim multiply), Attention, then an output projection Dim×Dim. Its parameters are
// the two projections' (W_qkv, b_qkv, W_o, b_o), in that order.
type MultiHeadAttentionOf[F linalg.Float] struct {
	*SequentialOf[F]
	QKV, Out *LinearOf[F]
	Core     *AttentionOf[F]
}

// MultiHeadAttention is a float64 MultiHeadAttentionOf.
type MultiHeadAttention = MultiHeadAttentionOf[float64]

var (
	_ ParamLayer            = (*MultiHeadAttention)(nil)
	_ ParamLayerOf[float32] = (*MultiHeadAttentionOf[float32])(nil)
)

// NewMultiHeadAttention returns self-attention over rows of width dim with heads heads.
func NewMultiHeadAttention(dim, heads int, causal bool) *MultiHeadAttention {
	return newMultiHeadAttention[float64](dim, heads, causal)
}

func newMultiHeadAttention[F linalg.Float](dim, heads int, causal bool) *MultiHeadAttentionOf[F] {
	m := &MultiHeadAttentionOf[F]{
		QKV:  newLinear[F](dim, 3*dim, InitXavier),
		Core: &AttentionOf[F]{Dim: dim, Heads: heads, Causal: causal},
		Out:  newLinear[F](dim, dim, InitXavier),
	}
	m.SequentialOf = newSequential[F](m.QKV, m.Core, m.Out)
	return m
}

// Init uses Xavier-uniform projections with zero biases, as PyTorch's MultiheadAttention.
func (m *MultiHeadAttentionOf[F]) Init(rng *rand.Rand) { m.SequentialOf.Init(rng) }
