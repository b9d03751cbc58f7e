package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Init schemes for weight matrices.
const (
	InitHe     = "he"     // N(0, 2/fan_in): He et al. 2015, for ReLU-like activations
	InitXavier = "xavier" // U(±√(6/(fan_in+fan_out))): Glorot & Bengio 2010, for tanh/sigmoid
)

// LinearOf is y = x·W + b with W stored in×out row-major, applied to every row of x (so a
// sequence applies it at every time step).
type LinearOf[F linalg.Float] struct {
	In, Out  int
	InitName string
	NoBias   bool

	w, b   []F // views into the model's parameters
	gw, gb []F // views into the model's gradients

	x    *TensorOf[F] // input of the last Forward (aliases the previous layer's output)
	y    *TensorOf[F]
	dx   *TensorOf[F]
	dy   *TensorOf[F] // output gradient kept in ghost mode
	tmp  []F
	rowW []F // AccumulateWeighted's weight of each row

	// perExample holds each example's formed gradient (NumParams values) when
	// AddPerExampleSqNorms formed them for the output gradient perExampleOf.
	perExample   []F
	perExampleOf *TensorOf[F]
	accW         []float64 // weights of the running AccumulateWeighted
	accRange     func(w, lo, hi int)

	scratch [][]F // per-worker buffers of AddPerExampleSqNorms

	// An int8 model's weights in the layout of the int8 kernels (nil: float64), shared by
	// clones; the scratch is the layer's own. obs records inputs during calibration. Only
	// the float64 network is quantised.
	q      *quantKernel
	qs     []quantScratch
	obs    *actObserver
	qx, qy []float64 // operands of the running int8 product
	qRange func(w, lo, hi int)
}

// Linear is a float64 LinearOf.
type Linear = LinearOf[float64]

var (
	_ ParamLayer            = (*Linear)(nil)
	_ ParamLayerOf[float32] = (*LinearOf[float32])(nil)
)

// NewLinear returns a Linear layer with in inputs, out outputs and the given init scheme.
func NewLinear(in, out int, init string) *Linear { return newLinear[float64](in, out, init) }

func newLinear[F linalg.Float](in, out int, init string) *LinearOf[F] {
	return &LinearOf[F]{In: in, Out: out, InitName: init}
}

func (l *LinearOf[F]) NumParams() int {
	if l.NoBias {
		return l.In * l.Out
	}
	return l.In*l.Out + l.Out
}

func (l *LinearOf[F]) Bind(params, grads []F) {
	n := l.In * l.Out
	l.w, l.gw = params[:n], grads[:n]
	if !l.NoBias {
		l.b, l.gb = params[n:n+l.Out], grads[n:n+l.Out]
	}
}

func (l *LinearOf[F]) Init(rng *rand.Rand) {
	switch l.InitName {
	case InitXavier:
		lim := math.Sqrt(6 / float64(l.In+l.Out))
		for i := range l.w {
			l.w[i] = F((2*rng.Float64() - 1) * lim)
		}
	default:
		std := math.Sqrt(2 / float64(l.In))
		for i := range l.w {
			l.w[i] = F(rng.NormFloat64() * std)
		}
	}
	clear(l.b)
}

func (l *LinearOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if x.Cols != l.In {
		panic("model: Linear input width mismatch")
	}
	l.x = x
	l.y = ensure(l.y, x.Rows, l.Out)
	if l.obs != nil {
		observe(l.obs, x.Data, x.Rows, l.In)
	}
	if l.q != nil && !b.Grad {
		l.mulQuant(x)
	} else {
		linalg.MulNN(l.y.Data, x.Data, l.w, x.Rows, l.In, l.Out, false)
	}
	if !l.NoBias {
		linalg.AddRowVector(l.y.Data, x.Rows, l.Out, l.b)
	}
	return l.y
}

func (l *LinearOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if b.Ghost {
		l.dy, l.perExampleOf = dy, nil
	} else {
		linalg.MulTN(l.gw, l.x.Data, dy.Data, l.In, dy.Rows, l.Out, !b.overwrite)
		if !l.NoBias {
			if b.overwrite {
				clear(l.gb)
			}
			linalg.SumRows(l.gb, dy.Data, dy.Rows, l.Out)
		}
	}
	if !needInput {
		return nil
	}
	l.dx = ensure(l.dx, dy.Rows, l.In)
	linalg.MulNT(l.dx.Data, dy.Data, l.w, dy.Rows, l.Out, l.In, false)
	return l.dx
}

// AddPerExampleSqNorms computes each example's ‖∇W_i‖² + ‖∇b_i‖² without forming ∇W_i when
// that is cheaper. With one row per example, ∇W_i = a_iᵀb_i, so ‖∇W_i‖² = ‖a_i‖²‖b_i‖² and
// ‖∇b_i‖² = ‖b_i‖². With T rows, ∇W_i = Σ_t a_tᵀb_t and ‖∇W_i‖² = Σ_{t,t'}(a_t·a_t')(b_t·b_t')
// (Li et al. 2022, "ghost clipping"), O(T²(in+out)); when T·in·out is smaller the per-example
// gradient is formed instead (mixed ghost clipping, Bu et al. 2022). Both are exact
// (seqGradSqNorm). Formed gradients are kept, so AccumulateWeighted is then a weighted sum
// of B vectors instead of a multiply over all B·T rows (the book-keeping of Bu et al. 2023);
// they take (in+1)·out values an example, when forming is the cheaper choice no more than
// the T·(in+out) + out its rows already hold in the cached activations and gradients.
func (l *LinearOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	a, g := l.x, l.dy
	T := a.Rows / b.B
	in, out := l.In, l.Out
	if T > 1 && !gramCheaper(T, in, out) {
		n := l.NumParams()
		l.perExample = grow(l.perExample, b.B*n)
		parallelFor(b.B, T*in*out, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				dst[i] += formGrad(l.perExample[i*n:(i+1)*n], a.Data[i*T*in:(i+1)*T*in], g.Data[i*T*out:(i+1)*T*out], T, in, out, !l.NoBias)
			}
		})
		l.perExampleOf = g
		return
	}
	if len(l.scratch) < numWorkers() {
		l.scratch = make([][]F, numWorkers())
	}
	parallelFor(b.B, T*min(T*(in+out), in*out), func(w, lo, hi int) {
		for i := lo; i < hi; i++ {
			ai := a.Data[i*T*in : (i+1)*T*in]
			gi := g.Data[i*T*out : (i+1)*T*out]
			dst[i] += seqGradSqNorm(ai, gi, T, in, out, !l.NoBias, &l.scratch[w])
		}
	})
}

// AccumulateWeighted adds Aᵀ·diag(w)·B to ∇W (and Σ_i w_i Σ_t b_t to ∇b): one multiply,
// or the weighted sum of the per-example gradients AddPerExampleSqNorms formed.
func (l *LinearOf[F]) AccumulateWeighted(w []float64, b *Batch) {
	g := l.dy
	if l.perExampleOf == g && g != nil {
		l.accW = w[:b.B]
		if l.accRange == nil {
			l.accRange = l.accumulateFormed
		}
		parallelFor(l.NumParams(), b.B, l.accRange)
		l.accW = nil
		return
	}
	T := g.Rows / b.B
	l.tmp = grow(l.tmp, g.Rows*l.Out)
	l.rowW = grow(l.rowW, g.Rows)
	scaled, rowW := l.tmp[:g.Rows*l.Out], l.rowW[:g.Rows]
	for r := range rowW {
		rowW[r] = F(w[r/T])
	}
	linalg.ScaleRows(scaled, g.Data, g.Rows, l.Out, rowW)
	mulTNAcc(l.gw, l.x.Data, scaled, l.In, g.Rows, l.Out)
	if !l.NoBias {
		linalg.SumRows(l.gb, scaled, g.Rows, l.Out)
	}
}

// mulQuant sets y = x·W with the int8 kernels, the rows spread over the cores. Only a
// float64 layer has them (Model.Quantize binds the float64 network's).
func (l *LinearOf[F]) mulQuant(x *TensorOf[F]) {
	if len(l.qs) < numWorkers() {
		l.qs = make([]quantScratch, numWorkers())
	}
	l.qx, l.qy = any(x.Data).([]float64), any(l.y.Data).([]float64)
	if l.qRange == nil {
		l.qRange = l.mulQuantRows
	}
	parallelFor(x.Rows, l.In*l.Out/4, l.qRange)
	l.qx, l.qy = nil, nil
}

func (l *LinearOf[F]) mulQuantRows(w, lo, hi int) {
	l.q.mul(l.qy[lo*l.Out:], l.Out, l.qx[lo*l.In:hi*l.In], hi-lo, &l.qs[w], false)
}

// accumulateFormed adds Σ_i w_i·(formed gradient of example i) to parameters [lo, hi).
func (l *LinearOf[F]) accumulateFormed(_, lo, hi int) {
	n, nw := l.NumParams(), l.In*l.Out
	for i, wi := range l.accW {
		g := l.perExample[i*n : (i+1)*n]
		if lo < nw {
			linalg.Axpy(F(wi), g[lo:min(hi, nw)], l.gw[lo:min(hi, nw)])
		}
		if hi > nw {
			linalg.Axpy(F(wi), g[max(lo, nw):hi], l.gb[max(lo, nw)-nw:hi-nw])
		}
	}
}
