package model

import (
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// EmbeddingOf maps token ids (Batch.Tokens, B×T) to rows of a Vocab×Dim table. It is the
// first layer of a token model: its input tensor is nil. Padded positions (t ≥ Lengths[i])
// output zero rows, so the token there influences nothing, and get no gradient.
type EmbeddingOf[F linalg.Float] struct {
	Vocab, Dim int

	w, gw []F // Vocab×Dim views into the model's parameters and gradients
	y     *TensorOf[F]
	dy    *TensorOf[F] // output gradient kept in ghost mode

	slot []int32 // token → row of sums in AddPerExampleSqNorms, −1 when unused
	sums []F     // per-token gradient sums of one example
}

// Embedding is a float64 EmbeddingOf.
type Embedding = EmbeddingOf[float64]

var (
	_ ParamLayer            = (*Embedding)(nil)
	_ ParamLayerOf[float32] = (*EmbeddingOf[float32])(nil)
)

// NewEmbedding returns an embedding of vocab tokens into dim dimensions.
func NewEmbedding(vocab, dim int) *Embedding { return newEmbedding[float64](vocab, dim) }

func newEmbedding[F linalg.Float](vocab, dim int) *EmbeddingOf[F] {
	return &EmbeddingOf[F]{Vocab: vocab, Dim: dim}
}

func (e *EmbeddingOf[F]) NumParams() int { return e.Vocab * e.Dim }

func (e *EmbeddingOf[F]) Bind(params, grads []F) { e.w, e.gw = params, grads }

// Init draws the table from N(0, 1), as PyTorch's nn.Embedding does.
func (e *EmbeddingOf[F]) Init(rng *rand.Rand) {
	for i := range e.w {
		e.w[i] = F(rng.NormFloat64())
	}
}

func (e *EmbeddingOf[F]) Forward(_ *TensorOf[F], b *Batch) *TensorOf[F] {
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

func (e *EmbeddingOf[F]) Backward(dy *TensorOf[F], b *Batch, _ bool) *TensorOf[F] {
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
func (e *EmbeddingOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	D, T := e.Dim, b.T
	if len(e.slot) != e.Vocab {
		e.slot = make([]int32, e.Vocab)
		for v := range e.slot {
			e.slot[v] = -1
		}
	}
	e.sums = grow(e.sums, T*D)
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
		dst[i] += float64(linalg.SumSq(e.sums[:int(n)*D]))
		for t, tok := range toks {
			if b.Valid(i, t) {
				e.slot[tok] = -1
			}
		}
	}
}

func (e *EmbeddingOf[F]) AccumulateWeighted(w []float64, b *Batch) {
	D, T := e.Dim, b.T
	for r, tok := range b.Tokens {
		if b.Valid(r/T, r%T) {
			linalg.Axpy(F(w[r/T]), e.dy.Data[r*D:(r+1)*D], e.gw[int(tok)*D:(int(tok)+1)*D])
		}
	}
}

// Positional encodings add a vector that depends on the position t to every valid row.
const (
	PosSinusoidal = "sinusoidal"
	PosLearned    = "learned"
)

// SinusoidalPositionOf adds Vaswani et al. 2017's fixed encoding (Sec. 3.5),
// PE[t, 2k] = sin(t/10000^{2k/Dim}), PE[t, 2k+1] = cos(t/10000^{2k/Dim}), to the valid rows.
type SinusoidalPositionOf[F linalg.Float] struct {
	Dim   int
	table []F // rows 0… computed so far (in float64, then rounded to F)
	y     *TensorOf[F]
}

// SinusoidalPosition is a float64 SinusoidalPositionOf.
type SinusoidalPosition = SinusoidalPositionOf[float64]

var (
	_ Layer            = (*SinusoidalPosition)(nil)
	_ LayerOf[float32] = (*SinusoidalPositionOf[float32])(nil)
)

func (p *SinusoidalPositionOf[F]) ensureTable(T int) {
	D := p.Dim
	for t := len(p.table) / D; t < T; t++ {
		for k := 0; k < D; k++ {
			freq := math.Pow(10000, -float64(k-k%2)/float64(D))
			if k%2 == 0 {
				p.table = append(p.table, F(math.Sin(float64(t)*freq)))
			} else {
				p.table = append(p.table, F(math.Cos(float64(t)*freq)))
			}
		}
	}
}

func (p *SinusoidalPositionOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	p.ensureTable(b.T)
	p.y = ensure(p.y, x.Rows, x.Cols)
	addPositions(p.y, x, p.table, b)
	return p.y
}

func (p *SinusoidalPositionOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
	if !needInput {
		return nil
	}
	return dy
}

// addPositions sets y = x + table[t] on valid rows and y = x on padded ones.
func addPositions[F linalg.Float](y, x *TensorOf[F], table []F, b *Batch) {
	D := x.Cols
	copy(y.Data, x.Data)
	for r := 0; r < x.Rows; r++ {
		t := r % b.T
		if b.Valid(r/b.T, t) {
			linalg.Add(y.Data[r*D:(r+1)*D], table[t*D:(t+1)*D])
		}
	}
}

// LearnedPositionOf adds a trained MaxLen×Dim table: row t to position t of every valid row.
type LearnedPositionOf[F linalg.Float] struct {
	MaxLen, Dim int
	p, gp       []F
	y           *TensorOf[F]
	dy          *TensorOf[F] // ghost mode
}

// LearnedPosition is a float64 LearnedPositionOf.
type LearnedPosition = LearnedPositionOf[float64]

var (
	_ ParamLayer            = (*LearnedPosition)(nil)
	_ ParamLayerOf[float32] = (*LearnedPositionOf[float32])(nil)
)

func (p *LearnedPositionOf[F]) NumParams() int         { return p.MaxLen * p.Dim }
func (p *LearnedPositionOf[F]) Bind(params, grads []F) { p.p, p.gp = params, grads }

// Init draws N(0, 0.02²), the scale of BERT and GPT-2's position tables.
func (p *LearnedPositionOf[F]) Init(rng *rand.Rand) {
	for i := range p.p {
		p.p[i] = F(0.02 * rng.NormFloat64())
	}
}

func (p *LearnedPositionOf[F]) Forward(x *TensorOf[F], b *Batch) *TensorOf[F] {
	if b.T > p.MaxLen {
		panic("model: sequence longer than the position table")
	}
	p.y = ensure(p.y, x.Rows, x.Cols)
	addPositions(p.y, x, p.p, b)
	return p.y
}

func (p *LearnedPositionOf[F]) Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F] {
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

func (p *LearnedPositionOf[F]) accumulate(dy *TensorOf[F], b *Batch, w []float64) {
	D := p.Dim
	for r := 0; r < dy.Rows; r++ {
		i, t := r/b.T, r%b.T
		if !b.Valid(i, t) {
			continue
		}
		wi := F(1)
		if w != nil {
			wi = F(w[i])
		}
		linalg.Axpy(wi, dy.Data[r*D:(r+1)*D], p.gp[t*D:(t+1)*D])
	}
}

// AddPerExampleSqNorms: every position of an example updates its own table row, so the
// example's gradient is its output gradient rows, and the norm is their sum of squares.
func (p *LearnedPositionOf[F]) AddPerExampleSqNorms(dst []float64, b *Batch) {
	D := p.Dim
	for r := 0; r < p.dy.Rows; r++ {
		if i := r / b.T; b.Valid(i, r%b.T) {
			dst[i] += float64(linalg.SumSq(p.dy.Data[r*D : (r+1)*D]))
		}
	}
}

func (p *LearnedPositionOf[F]) AccumulateWeighted(w []float64, b *Batch) { p.accumulate(p.dy, b, w) }
