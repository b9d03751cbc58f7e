package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Recurrent cells.
const (
	CellVanilla = "vanilla" // h_t = act(x_t W_ih + h_{t−1} W_hh + b) (Elman 1990)
	CellLSTM    = "lstm"    // Hochreiter & Schmidhuber 1997 with forget gate, PyTorch's gate order i, f, g, o
	CellGRU     = "gru"     // Cho et al. 2014, PyTorch's formulation (r applied to h·W_hn + b_hn)
)

// RecurrentOf is one recurrent layer over a batch of sequences (rows B·T, example-major),
// run by backpropagation through time over the full sequence. Its output row (i, t) is
// h_t of example i; at padded positions (t ≥ Lengths[i]) the state stops changing and the
// output is zero, so padding influences nothing and gets no gradient. Stack layers by
// feeding one's output to the next.
//
// Parameters, in order: W_ih (In × G·Hidden), W_hh (Hidden × G·Hidden), b (G·Hidden) and,
// for the GRU only, b_hn (Hidden), with G = 1, 4, 3 gates for vanilla, lstm, gru. The input
// projection of all B·T rows is one multiply; each step then multiplies only h·W_hh.
//
// LSTM:  [i f g o] = [σ σ tanh σ](x W_ih + h W_hh + b); c' = f⊙c + i⊙g; h' = o⊙tanh(c')
// GRU:   r, z = σ(x W_i{r,z} + h W_h{r,z} + b_{r,z}); n = tanh(x W_in + b_n + r⊙(h W_hn + b_hn));
//
//	h' = (1−z)⊙n + z⊙h
type RecurrentOf[F linalg.Float] struct {
	Cell       string
	In, Hidden int
	// Activation of the vanilla RNN: tanh (default) or relu.
	Activation string

	wih, whh, bias, bhn     []F
	gwih, gwhh, gbias, gbhn []F

	// Caches, time-major (row t·B + i), valid until the next Forward.
	B, T   int
	xt     []F    // T·B × In: the input
	gates  []F    // T·B × G·H: activated gates (vanilla: h_t)
	hs     []F    // (T+1)·B × H: states, h_{−1} = 0 first
	cs     []F    // (T+1)·B × H: LSTM cell states
	tc     []F    // T·B × H: tanh(c_t) (LSTM) or h·W_hn + b_hn (GRU)
	gx, gh []F    // T·B × G·H: gradients of the gate pre-activations (input and recurrent side)
	valid  []bool // T·B: position t of example i is valid

	whhP, whhTP linalg.PackedB[F] // W_hh and W_hhᵀ laid out for the per-step multiplies
	dh, dc      []F
	y, dx       *TensorOf[F]
	dxt, scaled []F
	scratch     [][]F

	// An int8 model's W_ih and W_hh in the layout of the int8 kernels (nil: float64),
	// shared by clones; per-worker scratch; observers of the inputs during calibration.
	// Only the float64 network is quantised.
	qih, qhh    *quantKernel
	qs          []quantScratch
	obsX, obsH  *actObserver
	quantActive bool // the running Forward multiplies in int8

	gy *TensorOf[F] // output gradient of the running Backward
	// Method values made once: a closure passed to a parallel loop on every call would be
	// allocated on every call.
	fwdRange, bwdRange func(w, lo, hi int)
}

// Recurrent is a float64 RecurrentOf.
type Recurrent = RecurrentOf[float64]

var (
	_ ParamLayer            = (*Recurrent)(nil)
	_ ParamLayerOf[float32] = (*RecurrentOf[float32])(nil)
)

// NewRecurrent returns a recurrent layer of the given cell.
func NewRecurrent(cell string, in, hidden int) *Recurrent {
	return newRecurrent[float64](cell, in, hidden)
}

func newRecurrent[F linalg.Float](cell string, in, hidden int) *RecurrentOf[F] {
	return &RecurrentOf[F]{Cell: cell, In: in, Hidden: hidden, Activation: ActTanh}
}

func (r *RecurrentOf[F]) numGates() int {
	switch r.Cell {
	case CellLSTM:
		return 4
	case CellGRU:
		return 3
	case CellVanilla:
		return 1
	}
	panic("model: unknown recurrent cell " + r.Cell)
}

func (r *RecurrentOf[F]) NumParams() int {
	GH := r.numGates() * r.Hidden
	n := r.In*GH + r.Hidden*GH + GH
	if r.Cell == CellGRU {
		n += r.Hidden
	}
	return n
}

func (r *RecurrentOf[F]) Bind(params, grads []F) {
	GH := r.numGates() * r.Hidden
	split := func(s []F) (a, b, c, d []F) {
		o1 := r.In * GH
		o2 := o1 + r.Hidden*GH
		o3 := o2 + GH
		return s[:o1], s[o1:o2], s[o2:o3], s[o3:]
	}
	r.wih, r.whh, r.bias, r.bhn = split(params)
	r.gwih, r.gwhh, r.gbias, r.gbhn = split(grads)
}

// Init draws every parameter from U(±1/√Hidden), as PyTorch does, and sets the LSTM's
// forget-gate bias to 1 (Jozefowicz et al. 2015) so gradients flow early in training.
func (r *RecurrentOf[F]) Init(rng *rand.Rand) {
	lim := 1 / math.Sqrt(float64(r.Hidden))
	for _, s := range [][]F{r.wih, r.whh, r.bias, r.bhn} {
		for i := range s {
			s[i] = F((2*rng.Float64() - 1) * lim)
		}
	}
	if r.Cell == CellLSTM {
		H := r.Hidden
		for k := H; k < 2*H; k++ {
			r.bias[k] = 1
		}
	}
}

// dact is the derivative of the vanilla cell's activation given its output y.
func (r *RecurrentOf[F]) dact(y F) F {
	if r.Activation == ActReLU {
		if y > 0 {
			return 1
		}
		return 0
	}
	return 1 - y*y
}

func (r *RecurrentOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if x.Cols != r.In {
		panic("model: Recurrent input width mismatch")
	}
	B, T, H, In := b.B, b.T, r.Hidden, r.In
	GH := r.numGates() * H
	r.B, r.T = B, T
	TB := T * B
	r.xt = grow(r.xt, TB*In)
	r.valid = growBools(r.valid, TB)
	for i := 0; i < B; i++ {
		for t := 0; t < T; t++ {
			copy(r.xt[(t*B+i)*In:(t*B+i+1)*In], x.Data[(i*T+t)*In:(i*T+t+1)*In])
			r.valid[t*B+i] = b.Valid(i, t)
		}
	}
	// Input projections of all steps in one multiply. The LSTM and vanilla cells take them,
	// with the bias, as the initial value of the gate rows, to which each step adds
	// h_{t−1}·W_hh; the GRU keeps them apart in g_x (free until Backward), since its n gate
	// applies r to the recurrent part alone.
	r.gates = grow(r.gates, TB*GH)
	fused := r.Cell != CellGRU
	xp := r.gates
	if !fused {
		r.gx = grow(r.gx, TB*GH)
		xp = r.gx
	}
	r.quantActive = r.qih != nil && r.qhh != nil && !b.Grad
	if r.quantActive {
		if len(r.qs) < numWorkers()+1 {
			r.qs = make([]quantScratch, numWorkers()+1)
		}
		r.qih.mul(any(xp).([]float64), GH, any(r.xt).([]float64), TB, &r.qs[numWorkers()], false)
	} else {
		linalg.MulNN(xp, r.xt, r.wih, TB, In, GH, false)
	}
	if r.obsX != nil {
		observe(r.obsX, r.xt, TB, In)
	}
	if fused {
		linalg.AddRowVector(xp, TB, GH, r.bias)
	}
	r.hs = grow(r.hs, (T+1)*B*H)
	clear(r.hs[:B*H])
	if r.Cell == CellLSTM {
		r.cs = grow(r.cs, (T+1)*B*H)
		clear(r.cs[:B*H])
	}
	if r.Cell != CellVanilla {
		r.tc = grow(r.tc, TB*H)
	}
	// Examples are independent through the whole recurrence, so each worker runs all T
	// steps for its share of them: one hand-off per pass instead of two per step.
	if !r.quantActive {
		r.whhP.Pack(r.whh, H, GH, false)
	}
	share := (B + numWorkers() - 1) / numWorkers() // one range per worker: its rows are the multiplies' m
	if r.fwdRange == nil {
		r.fwdRange = r.forwardRange
	}
	linalg.ParallelForChunks(B, T*H*GH, share, r.fwdRange)
	if r.obsH != nil {
		observe(r.obsH, r.hs[:TB*H], TB, H) // h_{t−1} of every step, the rows W_hh multiplies
	}
	r.y = ensure(r.y, B*T, H)
	for i := 0; i < B; i++ {
		for t := 0; t < T; t++ {
			dst := r.y.Data[(i*T+t)*H : (i*T+t+1)*H]
			if r.valid[t*B+i] {
				copy(dst, r.hs[((t+1)*B+i)*H:((t+1)*B+i+1)*H])
			} else {
				clear(dst)
			}
		}
	}
	return r.y
}

// forwardRange runs examples [lo, hi) through all T steps.
func (r *RecurrentOf[F]) forwardRange(w, lo, hi int) {
	B, T, H := r.B, r.T, r.Hidden
	GH := r.numGates() * H
	fused := r.Cell != CellGRU
	xp := r.gates
	if !fused {
		xp = r.gx
	}
	for t := 0; t < T; t++ {
		z := r.gates[(t*B+lo)*GH : (t*B+hi)*GH]
		hp := r.hs[(t*B+lo)*H : (t*B+hi)*H]
		if r.quantActive {
			r.qhh.mul(any(z).([]float64), GH, any(hp).([]float64), hi-lo, &r.qs[w], fused)
		} else {
			linalg.MulPacked(z, hp, hi-lo, &r.whhP, fused)
		}
		for i := lo; i < hi; i++ {
			r.step(t, i, xp[(t*B+i)*GH:(t*B+i+1)*GH])
		}
	}
}

// step updates example i at time t. The gate row z holds the full pre-activation on entry
// for the LSTM and vanilla cells; for the GRU it holds h_{t−1}·W_hh and xp the input
// projection.
func (r *RecurrentOf[F]) step(t, i int, xp []F) {
	B, H := r.B, r.Hidden
	GH := r.numGates() * H
	row := t*B + i
	z := r.gates[row*GH : (row+1)*GH]
	hp := r.hs[(t*B+i)*H : (t*B+i+1)*H]
	h := r.hs[((t+1)*B+i)*H : ((t+1)*B+i+1)*H]
	if !r.valid[row] {
		copy(h, hp)
		if r.Cell == CellLSTM {
			copy(r.cs[((t+1)*B+i)*H:((t+1)*B+i+1)*H], r.cs[(t*B+i)*H:(t*B+i+1)*H])
		}
		clear(z)
		return
	}
	switch r.Cell {
	case CellVanilla:
		if r.Activation == ActReLU {
			for k, v := range z {
				z[k] = max(v, 0)
			}
		} else {
			linalg.Tanh(z, z)
		}
		copy(h, z)
	case CellLSTM:
		cp := r.cs[(t*B+i)*H : (t*B+i+1)*H]
		c := r.cs[((t+1)*B+i)*H : ((t+1)*B+i+1)*H]
		tc := r.tc[row*H : (row+1)*H]
		linalg.Sigmoid(z[:2*H], z[:2*H])
		linalg.Tanh(z[2*H:3*H], z[2*H:3*H])
		linalg.Sigmoid(z[3*H:], z[3*H:])
		ig, fg, gg, og := z[:H], z[H:2*H], z[2*H:3*H], z[3*H:4*H]
		for k := range c {
			c[k] = fg[k]*cp[k] + ig[k]*gg[k]
		}
		linalg.Tanh(tc, c)
		for k, v := range tc {
			h[k] = og[k] * v
		}
	case CellGRU:
		bias := r.bias
		hn := r.tc[row*H : (row+1)*H]
		for k := 0; k < 2*H; k++ {
			z[k] = z[k] + xp[k] + bias[k]
		}
		linalg.Sigmoid(z[:2*H], z[:2*H])
		for k := 0; k < H; k++ {
			hnv := z[2*H+k] + r.bhn[k]
			hn[k] = hnv
			z[2*H+k] = xp[2*H+k] + bias[2*H+k] + z[k]*hnv
		}
		linalg.Tanh(z[2*H:], z[2*H:])
		for k := 0; k < H; k++ {
			zg, ng := z[H+k], z[2*H+k]
			h[k] = (1-zg)*ng + zg*hp[k]
		}
	}
}

func (r *RecurrentOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	B, T, H, In := r.B, r.T, r.Hidden, r.In
	GH := r.numGates() * H
	TB := T * B
	r.gx = grow(r.gx, TB*GH)
	if r.Cell == CellGRU {
		r.gh = grow(r.gh, TB*GH)
	} else {
		r.gh = r.gx
	}
	r.whhTP.Pack(r.whh, GH, H, true)
	r.dh = grow(r.dh, B*H)
	clear(r.dh)
	if r.Cell == CellLSTM {
		r.dc = grow(r.dc, B*H)
		clear(r.dc)
	}
	share := (B + numWorkers() - 1) / numWorkers()
	r.gy = dy
	if r.bwdRange == nil {
		r.bwdRange = r.backwardRange
	}
	linalg.ParallelForChunks(B, T*H*GH, share, r.bwdRange)
	r.gy = nil
	if !b.Ghost {
		mulTNAcc(r.gwih, r.xt, r.gx, In, TB, GH)
		linalg.SumRows(r.gbias, r.gx, TB, GH)
		mulTNAcc(r.gwhh, r.hs[:TB*H], r.gh, H, TB, GH)
		if r.Cell == CellGRU {
			for row := 0; row < TB; row++ {
				linalg.Add(r.gbhn, r.gh[row*GH+2*H:(row+1)*GH])
			}
		}
	}
	if !needInput {
		return nil
	}
	r.dxt = grow(r.dxt, TB*In)
	linalg.MulNT(r.dxt, r.gx, r.wih, TB, GH, In, false)
	r.dx = ensure(r.dx, B*T, In)
	for i := 0; i < B; i++ {
		for t := 0; t < T; t++ {
			copy(r.dx.Data[(i*T+t)*In:(i*T+t+1)*In], r.dxt[(t*B+i)*In:(t*B+i+1)*In])
		}
	}
	return r.dx
}

// backwardRange runs examples [lo, hi) back through all T steps.
func (r *RecurrentOf[F]) backwardRange(_, lo, hi int) {
	B, T, H := r.B, r.T, r.Hidden
	GH := r.numGates() * H
	dy := r.gy
	for t := T - 1; t >= 0; t-- {
		for i := lo; i < hi; i++ {
			r.backStep(t, i, dy.Data[(i*T+t)*H:(i*T+t+1)*H])
		}
		if t > 0 {
			// dh_{t−1} += g_h[t]·W_hhᵀ; padded rows have g_h = 0 and keep dh (the state
			// was copied).
			linalg.MulPacked(r.dh[lo*H:hi*H], r.gh[(t*B+lo)*GH:(t*B+hi)*GH], hi-lo, &r.whhTP, true)
		}
	}
}

// backStep turns dh (and dc) of example i at time t into the gate gradients g_x, g_h of
// that step and leaves in dh the part of dh_{t−1} that does not go through W_hh.
func (r *RecurrentOf[F]) backStep(t, i int, dyRow []F) {
	B, H := r.B, r.Hidden
	GH := r.numGates() * H
	row := t*B + i
	gx := r.gx[row*GH : (row+1)*GH]
	gh := r.gh[row*GH : (row+1)*GH]
	dh := r.dh[i*H : (i+1)*H]
	if !r.valid[row] {
		clear(gx)
		clear(gh)
		return
	}
	linalg.Add(dh, dyRow)
	z := r.gates[row*GH : (row+1)*GH]
	switch r.Cell {
	case CellVanilla:
		for k := range gx {
			gx[k] = dh[k] * r.dact(z[k])
			dh[k] = 0
		}
	case CellLSTM:
		// Every slice cut to length H, so the loop runs without bounds checks.
		dc := r.dc[i*H : (i+1)*H]
		cp := r.cs[(t*B+i)*H : (t*B+i+1)*H][:H]
		tc := r.tc[row*H : (row+1)*H][:H]
		zi, zf, zg, zo := z[:H], z[H : 2*H][:H], z[2*H : 3*H][:H], z[3*H : 4*H][:H]
		gi, gf, gg, gox := gx[:H], gx[H : 2*H][:H], gx[2*H : 3*H][:H], gx[3*H : 4*H][:H]
		dc, dh = dc[:H], dh[:H]
		for k := range dc {
			ig, fg, g, og := zi[k], zf[k], zg[k], zo[k]
			tv := tc[k]
			d := dc[k] + dh[k]*og*(1-tv*tv)
			gi[k] = d * g * ig * (1 - ig)
			gf[k] = d * cp[k] * fg * (1 - fg)
			gg[k] = d * ig * (1 - g*g)
			gox[k] = dh[k] * tv * og * (1 - og)
			dc[k] = d * fg
			dh[k] = 0
		}
	case CellGRU:
		hp := r.hs[(t*B+i)*H : (t*B+i+1)*H]
		hn := r.tc[row*H : (row+1)*H]
		for k := 0; k < H; k++ {
			rg, zg, ng := z[k], z[H+k], z[2*H+k]
			d := dh[k]
			dn := d * (1 - zg) * (1 - ng*ng)
			dr := dn * hn[k] * rg * (1 - rg)
			dz := d * (hp[k] - ng) * zg * (1 - zg)
			gx[k], gx[H+k], gx[2*H+k] = dr, dz, dn
			gh[k], gh[H+k], gh[2*H+k] = dr, dz, dn*rg
			dh[k] = d * zg
		}
	}
}

// AddPerExampleSqNorms: example i's gradient is Σ_t x_tᵀ g^x_t for W_ih, Σ_t h_{t−1}ᵀ g^h_t
// for W_hh, Σ_t g^x_t for b (and Σ_t g^h_t restricted to the n gate for the GRU's b_hn),
// summed over its valid steps; seqGradSqNorm evaluates each block's squared norm exactly, by
// Gram matrices or by forming it, whichever is cheaper for the shape.
func (r *RecurrentOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	B, T, H, In := r.B, r.T, r.Hidden, r.In
	GH := r.numGates() * H
	if len(r.scratch) < 2*numWorkers() {
		r.scratch = make([][]F, 2*numWorkers())
	}
	parallelFor(B, T*min(T*(In+H+GH), (In+H)*GH), func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			L := T
			if b.Lengths != nil {
				L = int(b.Lengths[i])
			}
			if L == 0 {
				continue
			}
			n := L*(In+H) + 2*L*GH
			buf := grow(r.scratch[2*w], n)
			r.scratch[2*w] = buf
			xi, hi_, gxi, ghi := buf[:L*In], buf[L*In:L*(In+H)], buf[L*(In+H):L*(In+H)+L*GH], buf[L*(In+H)+L*GH:n]
			for t := 0; t < L; t++ {
				row := t*B + i
				copy(xi[t*In:(t+1)*In], r.xt[row*In:(row+1)*In])
				copy(hi_[t*H:(t+1)*H], r.hs[row*H:(row+1)*H])
				copy(gxi[t*GH:(t+1)*GH], r.gx[row*GH:(row+1)*GH])
				copy(ghi[t*GH:(t+1)*GH], r.gh[row*GH:(row+1)*GH])
			}
			s := seqGradSqNorm(xi, gxi, L, In, GH, true, &r.scratch[2*w+1])
			s += seqGradSqNorm(hi_, ghi, L, H, GH, false, &r.scratch[2*w+1])
			if r.Cell == CellGRU {
				for k := 0; k < H; k++ {
					v := 0.0
					for t := 0; t < L; t++ {
						v += float64(ghi[t*GH+2*H+k])
					}
					s += v * v
				}
			}
			dst[i] += s
		}
	})
}

// AccumulateWeighted scales each row of g^x, g^h by its example's weight and adds
// Xᵀ·diag(w)·G^x, H_prevᵀ·diag(w)·G^h and the bias sums: one multiply per weight.
func (r *RecurrentOf[F]) AccumulateWeighted(w []float64, b *Batch) {
	B, T, H, In := r.B, r.T, r.Hidden, r.In
	GH := r.numGates() * H
	TB := T * B
	r.scaled = grow(r.scaled, TB*GH)
	scale := func(g []F) {
		for row := 0; row < TB; row++ {
			wi := F(w[row%B])
			src, d := g[row*GH:(row+1)*GH], r.scaled[row*GH:(row+1)*GH]
			for k, v := range src {
				d[k] = wi * v
			}
		}
	}
	scale(r.gx)
	mulTNAcc(r.gwih, r.xt, r.scaled, In, TB, GH)
	linalg.SumRows(r.gbias, r.scaled, TB, GH)
	if r.Cell == CellGRU {
		scale(r.gh)
		for row := 0; row < TB; row++ {
			linalg.Add(r.gbhn, r.scaled[row*GH+2*H:(row+1)*GH])
		}
	}
	mulTNAcc(r.gwhh, r.hs[:TB*H], r.scaled, H, TB, GH)
}

func growBools(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}
