package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Embedding maps token ids (Batch.Tokens, B×T) to rows of a Vocab×Dim table. It is the
// first layer of a token model: its input tensor is nil. Padded positions (t ≥ Lengths[i])
// output zero rows, so the token there influences nothing, and get no gradient.
type Embedding struct {
	Vocab, Dim int

	w, gw []float64 // Vocab×Dim views into the model's parameters and gradients
	y     *Tensor
	dy    *Tensor // output gradient kept in ghost mode

	slot []int32   // token → row of sums in AddPerExampleSqNorms, −1 when unused
	sums []float64 // per-token gradient sums of one example
}

var _ ParamLayer = (*Embedding)(nil)

// NewEmbedding returns an embedding of vocab tokens into dim dimensions.
func NewEmbedding(vocab, dim int) *Embedding { return &Embedding{Vocab: vocab, Dim: dim} }

func (e *Embedding) NumParams() int { return e.Vocab * e.Dim }

func (e *Embedding) Bind(params, grads []float64) { e.w, e.gw = params, grads }

// Init draws the table from N(0, 1), as PyTorch's nn.Embedding does.
func (e *Embedding) Init(rng *rand.Rand) {
	for i := range e.w {
		e.w[i] = rng.NormFloat64()
	}
}

func (e *Embedding) Forward(_ *Tensor, b *Batch) *Tensor {
	rows := b.B * b.T
	if len(b.Tokens) != rows {
		panic("model: Embedding needs B×T tokens in the batch")
	}
	e.y = ensure(e.y, rows, e.Dim)
	D := e.Dim
	for r, tok := range b.Tokens {
		dst := e.y.Data[r*D : (r+1)*D]
		if !b.Valid(r/b.T, r%b.T) {
			clear(dst)
			continue
		}
		if tok < 0 || int(tok) >= e.Vocab {
			panic("model: token id outside the embedding's vocabulary")
		}
		copy(dst, e.w[int(tok)*D:(int(tok)+1)*D])
	}
	return e.y
}

func (e *Embedding) Backward(dy *Tensor, b *Batch, _ bool) *Tensor {
	if b.Ghost {
		e.dy = dy
		return nil
	}
	D := e.Dim
	for r, tok := range b.Tokens {
		if b.Valid(r/b.T, r%b.T) {
			linalg.Add(e.gw[int(tok)*D:(int(tok)+1)*D], dy.Data[r*D:(r+1)*D])
		}
	}
	return nil
}

// AddPerExampleSqNorms uses the token-equality Gram form: example i's gradient has row
// G[v] = Σ_{t: tok_t = v} b_t, so ‖G‖² = Σ_{t,t'} [tok_t = tok_t'] (b_t·b_t') = Σ_v ‖G[v]‖².
// Summing the b_t of each distinct token first evaluates it exactly in O(T·Dim).
func (e *Embedding) AddPerExampleSqNorms(dst []float64, b *Batch) {
	D, T := e.Dim, b.T
	if len(e.slot) != e.Vocab {
		e.slot = make([]int32, e.Vocab)
		for v := range e.slot {
			e.slot[v] = -1
		}
	}
	e.sums = growFloats(e.sums, T*D)
	for i := 0; i < b.B; i++ {
		toks := b.Tokens[i*T : (i+1)*T]
		n := int32(0)
		for t, tok := range toks {
			if !b.Valid(i, t) {
				continue
			}
			g := e.dy.Data[(i*T+t)*D : (i*T+t+1)*D]
			s := e.slot[tok]
			if s < 0 {
				s = n
				n++
				e.slot[tok] = s
				copy(e.sums[int(s)*D:int(s+1)*D], g)
				continue
			}
			linalg.Add(e.sums[int(s)*D:int(s+1)*D], g)
		}
		dst[i] += linalg.SumSq(e.sums[:int(n)*D])
		for t, tok := range toks {
			if b.Valid(i, t) {
				e.slot[tok] = -1
			}
		}
	}
}

func (e *Embedding) AccumulateWeighted(w []float64, b *Batch) {
	D, T := e.Dim, b.T
	for r, tok := range b.Tokens {
		if b.Valid(r/T, r%T) {
			linalg.Axpy(w[r/T], e.dy.Data[r*D:(r+1)*D], e.gw[int(tok)*D:(int(tok)+1)*D])
		}
	}
}

// Positional encodings add a vector that depends on the position t to every valid row.
const (
	PosSinusoidal = "sinusoidal"
	PosLearned    = "learned"
)

// SinusoidalPosition adds Vaswani et al. 2017's fixed encoding (Sec. 3.5),
// PE[t, 2k] = sin(t/10000^{2k/Dim}), PE[t, 2k+1] = cos(t/10000^{2k/Dim}), to the valid rows.
type SinusoidalPosition struct {
	Dim   int
	table []float64 // rows 0… computed so far
	y     *Tensor
}

var _ Layer = (*SinusoidalPosition)(nil)

func (p *SinusoidalPosition) ensureTable(T int) {
	D := p.Dim
	for t := len(p.table) / D; t < T; t++ {
		for k := 0; k < D; k++ {
			freq := math.Pow(10000, -float64(k-k%2)/float64(D))
			if k%2 == 0 {
				p.table = append(p.table, math.Sin(float64(t)*freq))
			} else {
				p.table = append(p.table, math.Cos(float64(t)*freq))
			}
		}
	}
}

func (p *SinusoidalPosition) Forward(x *Tensor, b *Batch) *Tensor {
	p.ensureTable(b.T)
	p.y = ensure(p.y, x.Rows, x.Cols)
	addPositions(p.y, x, p.table, b)
	return p.y
}

func (p *SinusoidalPosition) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	return dy
}

// addPositions sets y = x + table[t] on valid rows and y = x on padded ones.
func addPositions(y, x *Tensor, table []float64, b *Batch) {
	D := x.Cols
	copy(y.Data, x.Data)
	for r := 0; r < x.Rows; r++ {
		t := r % b.T
		if b.Valid(r/b.T, t) {
			linalg.Add(y.Data[r*D:(r+1)*D], table[t*D:(t+1)*D])
		}
	}
}

// LearnedPosition adds a trained MaxLen×Dim table: row t to position t of every valid row.
type LearnedPosition struct {
	MaxLen, Dim int
	p, gp       []float64
	y           *Tensor
	dy          *Tensor // ghost mode
}

var _ ParamLayer = (*LearnedPosition)(nil)

func (p *LearnedPosition) NumParams() int               { return p.MaxLen * p.Dim }
func (p *LearnedPosition) Bind(params, grads []float64) { p.p, p.gp = params, grads }

// Init draws N(0, 0.02²), the scale of BERT and GPT-2's position tables.
func (p *LearnedPosition) Init(rng *rand.Rand) {
	for i := range p.p {
		p.p[i] = 0.02 * rng.NormFloat64()
	}
}

func (p *LearnedPosition) Forward(x *Tensor, b *Batch) *Tensor {
	if b.T > p.MaxLen {
		panic("model: sequence longer than the position table")
	}
	p.y = ensure(p.y, x.Rows, x.Cols)
	addPositions(p.y, x, p.p, b)
	return p.y
}

func (p *LearnedPosition) Backward(dy *Tensor, b *Batch, needInput bool) *Tensor {
	if b.Ghost {
		p.dy = dy
	} else {
		p.accumulate(dy, b, nil)
	}
	if !needInput {
		return nil
	}
	return dy
}

func (p *LearnedPosition) accumulate(dy *Tensor, b *Batch, w []float64) {
	D := p.Dim
	for r := 0; r < dy.Rows; r++ {
		i, t := r/b.T, r%b.T
		if !b.Valid(i, t) {
			continue
		}
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		linalg.Axpy(wi, dy.Data[r*D:(r+1)*D], p.gp[t*D:(t+1)*D])
	}
}

// AddPerExampleSqNorms: every position of an example updates its own table row, so the
// example's gradient is its output gradient rows, and the norm is their sum of squares.
func (p *LearnedPosition) AddPerExampleSqNorms(dst []float64, b *Batch) {
	D := p.Dim
	for r := 0; r < p.dy.Rows; r++ {
		if i := r / b.T; b.Valid(i, r%b.T) {
			dst[i] += linalg.SumSq(p.dy.Data[r*D : (r+1)*D])
		}
	}
}

func (p *LearnedPosition) AccumulateWeighted(w []float64, b *Batch) { p.accumulate(p.dy, b, w) }
