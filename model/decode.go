package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/confide-fl/confide/internal/linalg"
)

// ErrNotLanguageModel is returned by NewDecoder for a model that is not a causal language
// model: anything but a Transformer with task next_token.
var ErrNotLanguageModel = errors.New("model: not a causal language model")

// ErrContextFull is returned by Decoder.Append when the tokens would not fit the model's
// max_len positions; a caller generating longer text starts again from a suffix (Reset).
var ErrContextFull = errors.New("model: decoder context is full")

// Decoder runs a causal language model (a Transformer with task next_token) incrementally:
// Append feeds tokens at the next positions and returns the logits of the token after each.
// Every attention layer keeps the keys and values of the positions fed so far (a KV cache,
// Pope et al. 2022, Sec. 2), so a new position costs one row through every layer plus its
// attention over the cache, instead of a pass over the whole prefix. Appending a sequence in
// any number of pieces gives the logits Forward gives for the whole sequence, up to the
// rounding of differently blocked products (the tests hold them to 1e-9).
//
// The decoder runs the model's own layers on the new rows (their Forward, in evaluation
// mode, with int8 kernels for a quantised model); it shares their buffers, so the model
// must not be used for anything else while its decoder is (Clone it). A Decoder is not safe
// for concurrent use.
type Decoder struct {
	m     *Model
	steps []decodeStep
	n     int // positions cached
	batch Batch
}

// decodeStep is one layer of the decoder's plan: it maps the rows of the new positions
// first, first+1, … (x, B = 1 example of T = x.Rows rows) to its output rows.
type decodeStep interface {
	forward(x *Tensor, b *Batch, first int) *Tensor
}

// NewDecoder returns an empty decoder of m, or an error wrapping ErrNotLanguageModel for a
// model that is not a causal Transformer language model.
func (m *Model) NewDecoder() (*Decoder, error) {
	s := m.Spec
	if s.Type != TypeTransformer || s.Task != TaskNextToken {
		task := s.Task
		if task == "" {
			task = "none"
		}
		return nil, fmt.Errorf("%w: the decoder runs Transformers with task next_token, this model is a %s with task %s", ErrNotLanguageModel, s.Type, task)
	}
	steps, err := decodePlan(m.layers, s.MaxLen)
	if err != nil {
		return nil, err
	}
	return &Decoder{m: m, steps: steps}, nil
}

// decodePlan compiles layers into decode steps: position-wise layers run as they are,
// composites are walked, positions and attention get their incremental forms (caching at
// most maxLen positions).
func decodePlan(layers []Layer, maxLen int) ([]decodeStep, error) {
	var steps []decodeStep
	for _, l := range layers {
		switch l := l.(type) {
		case *Embedding, *Linear, *LayerNorm, *Activation, *Dropout:
			steps = append(steps, rowStep{l})
		case *LearnedPosition:
			steps = append(steps, &positionStep{table: func(int) []float64 { return l.p }})
		case *SinusoidalPosition:
			steps = append(steps, &positionStep{table: func(n int) []float64 { l.ensureTable(n); return l.table }})
		case *TransformerBlock:
			sub, err := decodePlan(l.Layers, maxLen)
			if err != nil {
				return nil, err
			}
			steps = append(steps, sub...)
		case *Sequential:
			sub, err := decodePlan(l.Layers, maxLen)
			if err != nil {
				return nil, err
			}
			steps = append(steps, sub...)
		case *Residual:
			body, err := decodePlan(l.Layers, maxLen)
			if err != nil {
				return nil, err
			}
			steps = append(steps, &residualStep{body: body})
		case *MultiHeadAttention:
			if !l.Core.Causal {
				return nil, fmt.Errorf("%w: its attention is not causal (a position would attend to later ones)", ErrNotLanguageModel)
			}
			steps = append(steps, &attentionStep{mha: l, limit: maxLen})
		default:
			return nil, fmt.Errorf("%w: the decoder cannot run a %T layer", ErrNotLanguageModel, l)
		}
	}
	return steps, nil
}

// Len is the number of positions cached: the tokens appended since the last Reset.
func (d *Decoder) Len() int { return d.n }

// Cap is the number of positions the model reads at most (its max_len).
func (d *Decoder) Cap() int { return d.m.Spec.MaxLen }

// Vocab is the number of token ids: the columns of the logits.
func (d *Decoder) Vocab() int { return d.m.Spec.Vocab }

// Reset empties the cache: the next Append starts at position 0.
func (d *Decoder) Reset() { d.n = 0 }

// Append feeds tokens at positions Len(), Len()+1, … and returns their logits: row j
// (of Vocab columns) scores the token after tokens[j]. The tensor is owned by the model and
// valid until the next Append or use of the model. It fails, changing nothing, for an empty
// slice, a token outside the vocabulary or, with ErrContextFull, more tokens than fit.
func (d *Decoder) Append(tokens []int32) (*Tensor, error) {
	s := d.m.Spec
	switch {
	case len(tokens) == 0:
		return nil, errors.New("model: Decoder.Append needs at least one token")
	case d.n+len(tokens) > s.MaxLen:
		return nil, fmt.Errorf("%w: %d positions cached and %d more exceed max_len %d", ErrContextFull, d.n, len(tokens), s.MaxLen)
	}
	for j, tok := range tokens {
		if tok < 0 || int(tok) >= s.Vocab {
			return nil, fmt.Errorf("model: token %d at position %d is outside the vocabulary [0, %d)", tok, d.n+j, s.Vocab)
		}
	}
	d.batch = Batch{B: 1, T: len(tokens), Tokens: tokens}
	var x *Tensor // the embedding reads the batch's tokens
	for _, st := range d.steps {
		x = st.forward(x, &d.batch, d.n)
	}
	d.n += len(tokens)
	return x, nil
}

// rowStep runs a layer that treats every row alone (or, the embedding, every token).
type rowStep struct{ l Layer }

func (s rowStep) forward(x *Tensor, b *Batch, _ int) *Tensor { return s.l.Forward(x, b) }

// positionStep adds rows first, first+1, … of a position table (the learned one, or the
// sinusoidal one grown to cover them).
type positionStep struct {
	table func(rows int) []float64
	y     *Tensor
}

func (s *positionStep) forward(x *Tensor, _ *Batch, first int) *Tensor {
	D := x.Cols
	tab := s.table(first + x.Rows)
	s.y = ensure(s.y, x.Rows, D)
	copy(s.y.Data, x.Data)
	for r := range x.Rows {
		linalg.Add(s.y.Row(r), tab[(first+r)*D:(first+r+1)*D])
	}
	return s.y
}

// residualStep is x + body(x).
type residualStep struct {
	body []decodeStep
	y    *Tensor
}

func (s *residualStep) forward(x *Tensor, b *Batch, first int) *Tensor {
	out := x
	for _, st := range s.body {
		out = st.forward(out, b, first)
	}
	s.y = ensure(s.y, x.Rows, x.Cols)
	for i, v := range x.Data {
		s.y.Data[i] = v + out.Data[i]
	}
	return s.y
}

// attentionStep is a MultiHeadAttention over the cached positions: the new rows' keys and
// values join the cache, then each new query attends to the cached keys up to its own
// position (Attention.forwardPairs' products and softmax, on the rows of the new queries).
type attentionStep struct {
	mha   *MultiHeadAttention
	limit int // the model's max_len
	// k and v hold Heads blocks of rows×d_k: head h's key (value) of position t at
	// (h·rows + t)·d_k.
	k, v  []float64
	rows  int
	q, p  []float64 // one head's new queries (n×d_k) and their weights (n×(first+n))
	o     []float64 // one head's outputs, n×d_k
	heads *Tensor   // the heads side by side, n×Dim
}

func (s *attentionStep) forward(x *Tensor, b *Batch, first int) *Tensor {
	core := s.mha.Core
	H, D := core.Heads, core.Dim
	dk := D / H
	n, L := x.Rows, first+x.Rows // new positions, positions attended to
	s.grow(H, dk, L)
	qkv := s.mha.QKV.Forward(x, b)
	s.q = growFloats(s.q, n*dk)
	s.p = growFloats(s.p, n*L)
	s.o = growFloats(s.o, n*dk)
	s.heads = ensure(s.heads, n, D)
	scale := 1 / math.Sqrt(float64(dk))
	for h := range H {
		kh := s.k[h*s.rows*dk : (h*s.rows+L)*dk]
		vh := s.v[h*s.rows*dk : (h*s.rows+L)*dk]
		for r := range n {
			row := qkv.Row(r)
			t := first + r
			copy(s.q[r*dk:(r+1)*dk], row[h*dk:(h+1)*dk])
			copy(kh[t*dk:(t+1)*dk], row[D+h*dk:D+(h+1)*dk])
			copy(vh[t*dk:(t+1)*dk], row[2*D+h*dk:2*D+(h+1)*dk])
		}
		linalg.MulNT(s.p, s.q, kh, n, dk, L, false)
		for r := range n {
			softmaxPrefix(s.p[r*L:(r+1)*L], first+r+1, scale)
		}
		linalg.MulNN(s.o, s.p, vh, n, L, dk, false)
		for r := range n {
			copy(s.heads.Row(r)[h*dk:(h+1)*dk], s.o[r*dk:(r+1)*dk])
		}
	}
	return s.mha.Out.Forward(s.heads, b)
}

// grow makes room in the cache for L positions, keeping the cached ones: it doubles, up to
// the model's max_len, so a short generation does not hold a cache for the longest.
func (s *attentionStep) grow(H, dk, L int) {
	if L <= s.rows {
		return
	}
	rows := min(s.limit, max(L, 2*s.rows, 64))
	k, v := make([]float64, H*rows*dk), make([]float64, H*rows*dk)
	for h := range H {
		copy(k[h*rows*dk:], s.k[h*s.rows*dk:(h+1)*s.rows*dk])
		copy(v[h*rows*dk:], s.v[h*s.rows*dk:(h+1)*s.rows*dk])
	}
	s.k, s.v, s.rows = k, v, rows
}
