package onnxexport

import (
	"fmt"
	"math"
	"slices"

	"github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/confide-fl/confide/model"
)

// val is a value of the graph: [batch, features] (rank 2) or [batch, seq, features]
// (rank 3, a sequence model's rows).
type val struct {
	name string
	rank int
}

// lowering turns a model's layers into nodes, reading their parameters from the model's
// flat vector in the order the layers are bound to it (model.Sequential.Bind): every
// parametrised leaf layer takes the next NumParams values.
type lowering struct {
	g      *graph
	params []float64
	off    int

	tokens, lengths string // graph inputs of a sequence model ("" when absent)
	maxLen          int    // length of the position tables (0: none needed)

	seqLen   string // [1] int64: the seq dimension of the tokens
	pos      string // [seq] float: 0, 1, …, seq − 1
	mask     string // [batch, seq] float: 1 at valid positions, 0 at padding
	distance string // [batch, seq] float: length − position
}

// take returns the next n parameters.
func (l *lowering) take(n int) []float64 {
	p := l.params[l.off : l.off+n]
	l.off += n
	return p
}

// walk lowers layers applied in order to x.
func (l *lowering) walk(layers []model.Layer, x val) (val, error) {
	for _, layer := range layers {
		var err error
		if x, err = l.layer(layer, x); err != nil {
			return x, err
		}
	}
	return x, nil
}

func (l *lowering) layer(layer model.Layer, x val) (val, error) {
	g := l.g
	switch t := layer.(type) {
	case *model.Dropout: // the identity at inference
		return x, nil
	case *model.Linear:
		return l.linear(t, x), nil
	case *model.Activation:
		return l.activation(t, x)
	case *model.Embedding:
		table := g.floats("embedding", l.take(t.NumParams()), t.Vocab, t.Dim)
		return val{g.op("Gather", []string{table, l.tokens}, attrInt("axis", 0)), 3}, nil
	case *model.LearnedPosition:
		table := g.floats("positions", l.take(t.NumParams()), t.MaxLen, t.Dim)
		return val{g.add(x.name, g.slice(table, 0, l.seqLength(), 0)), 3}, nil
	case *model.SinusoidalPosition:
		return val{g.add(x.name, g.slice(l.sinusoidTable(t.Dim), 0, l.seqLength(), 0)), 3}, nil
	case *model.Recurrent:
		return l.recurrent(t, x)
	case *model.Pool:
		return l.pool(t, x)
	case *model.LayerNorm:
		return l.layerNorm(t, x), nil
	case *model.Attention:
		return l.attention(t, x), nil
	case *model.Residual:
		body, err := l.walk(t.Layers, x)
		return val{g.add(x.name, body.name), x.rank}, err
	case *model.TransformerBlock:
		return l.walk(t.Layers, x)
	case *model.MultiHeadAttention:
		return l.walk(t.Layers, x)
	case *model.Sequential:
		return l.walk(t.Layers, x)
	case *model.ColumnEmbeddings:
		return l.columnEmbeddings(t, x), nil
	}
	return x, fmt.Errorf("onnxexport: %w: layer %T has no ONNX form", ErrUnsupported, layer)
}

// columnEmbeddings looks each embedded column's index up in its table, which gets a zero
// row at the end so that index −1 (a missing or unknown category; Gather counts negative
// indices from the end) selects the zero vector, as Confide does; then it concatenates the
// vectors and the other features, in model.ColumnEmbeddings's order.
func (l *lowering) columnEmbeddings(t *model.ColumnEmbeddings, x val) val {
	g := l.g
	embedded := make([]bool, t.In)
	var parts []string
	for _, e := range t.Columns {
		embedded[e.Column] = true
		table := append(slices.Clone(l.take(e.Categories*e.Dim)), make([]float64, e.Dim)...)
		w := g.floats("column_embedding", table, e.Categories+1, e.Dim)
		col := g.op("Gather", []string{x.name, g.ints("column", int64(e.Column))}, attrInt("axis", 1)) // [batch, 1]
		idx := g.op("Cast", []string{col}, attrInt("to", int64(elemInt64)))
		parts = append(parts, g.squeeze(g.op("Gather", []string{w, idx}, attrInt("axis", 0)), 1)) // [batch, dim]
	}
	var pass []int64
	for j, e := range embedded {
		if !e {
			pass = append(pass, int64(j))
		}
	}
	if len(pass) > 0 {
		parts = append(parts, g.op("Gather", []string{x.name, g.ints("columns", pass...)}, attrInt("axis", 1)))
	}
	return val{g.op("Concat", parts, attrInt("axis", 1)), 2}
}

// linear is y = x·W + b (W in×out): Gemm on rows, MatMul and Add on sequences.
func (l *lowering) linear(t *model.Linear, x val) val {
	g := l.g
	p := l.take(t.NumParams())
	w := g.floats("weight", p[:t.In*t.Out], t.In, t.Out)
	if t.NoBias {
		return val{g.matmul(x.name, w), x.rank}
	}
	b := g.floats("bias", p[t.In*t.Out:], t.Out)
	if x.rank == 2 {
		return val{g.op("Gemm", []string{x.name, w, b}), 2}
	}
	return val{g.add(g.matmul(x.name, w), b), x.rank}
}

func (l *lowering) activation(t *model.Activation, x val) (val, error) {
	switch t.Name {
	case model.ActReLU:
		return val{l.g.relu(x.name), x.rank}, nil
	case model.ActTanh:
		return val{l.g.op("Tanh", []string{x.name}), x.rank}, nil
	case model.ActSigmoid:
		return val{l.g.op("Sigmoid", []string{x.name}), x.rank}, nil
	case model.ActGELU:
		return val{l.g.gelu(x.name), x.rank}, nil
	}
	return x, fmt.Errorf("onnxexport: %w: activation %q", ErrUnsupported, t.Name)
}

// normalize applies (x − mean_j)/std_j, feature j taking the last value of a shorter list
// as model.InputMeta.Normalize does.
func (l *lowering) normalize(x string, in *model.InputMeta, width int) string {
	expand := func(v []float64) []float64 {
		out := make([]float64, width)
		for j := range out {
			out[j] = v[min(j, len(v)-1)]
		}
		return out
	}
	if len(in.Mean) > 0 {
		x = l.g.sub(x, l.g.floats("input_mean", expand(in.Mean), width))
	}
	if len(in.Std) > 0 {
		x = l.g.div(x, l.g.floats("input_std", expand(in.Std), width))
	}
	return x
}

// seqLength is the seq dimension of the tokens as a [1] int64 value.
func (l *lowering) seqLength() string {
	if l.seqLen == "" {
		shape := l.g.op("Shape", []string{l.tokens})
		l.seqLen = l.g.sliceConst(shape, 1, 2, 0)
	}
	return l.seqLen
}

// sinusoidTable is Vaswani et al.'s position table for maxLen positions, computed by
// model.SinusoidalPosition itself (on zero inputs) so that it is Confide's to the bit.
func (l *lowering) sinusoidTable(dim int) string {
	T := l.maxLen
	p := &model.SinusoidalPosition{Dim: dim}
	zeros := &model.Tensor{Data: make([]float64, T*dim), Rows: T, Cols: dim}
	table := p.Forward(zeros, &model.Batch{B: 1, T: T})
	return l.g.floats("sinusoid", table.Data, T, dim)
}

// positions is 0, 1, …, seq − 1 as floats: a constant of maxLen positions sliced to seq
// (gonnx has no Range).
func (l *lowering) positions() string {
	if l.pos == "" {
		pos := make([]float64, l.maxLen)
		for t := range pos {
			pos[t] = float64(t)
		}
		l.pos = l.g.slice(l.g.floats("positions", pos, l.maxLen), 0, l.seqLength(), 0)
	}
	return l.pos
}

// positionDistance is length − t at every [batch, seq] position t (whole numbers as
// floats): positive exactly at the valid positions.
func (l *lowering) positionDistance() string {
	if l.distance == "" {
		lengths := l.g.unsqueeze(l.g.toFloat(l.lengths), 1) // [batch, 1]
		l.distance = l.g.sub(lengths, l.positions())
	}
	return l.distance
}

// validMask is 1 at valid positions (t < length) and 0 at padding: min(relu(length − t), 1).
func (l *lowering) validMask() string {
	if l.mask == "" {
		l.mask = l.g.minOne(l.g.relu(l.positionDistance()))
	}
	return l.mask
}

// pool reduces [batch, seq, d] to [batch, d] over each row's valid prefix, as model.Pool
// does: a weighted sum with weights w[batch, seq] (zero at padding; all zero for a row of
// length 0, which pools to zeros).
func (l *lowering) pool(p *model.Pool, x val) (val, error) {
	g := l.g
	one := g.scalar("one", 1)
	var w string
	switch p.Mode {
	case model.PoolMean: // mask / max(length, 1)
		lengths := g.unsqueeze(g.toFloat(l.lengths), 1)
		w = g.div(l.validMask(), g.add(one, g.relu(g.sub(lengths, one))))
	case model.PoolLast: // t = length − 1 ⇔ |length − t − 1| = 0
		w = g.sub(one, g.minOne(g.op("Abs", []string{g.sub(l.positionDistance(), one)})))
	case model.PoolFirst: // t = 0 and length > 0
		first := make([]float64, l.maxLen)
		first[0] = 1
		w = g.mul(l.validMask(), g.slice(g.floats("first", first, l.maxLen), 0, l.seqLength(), 0))
	default:
		return x, fmt.Errorf("onnxexport: %w: pooling %q", ErrUnsupported, p.Mode)
	}
	pooled := g.matmul(g.unsqueeze(w, 1), x.name) // [batch, 1, seq]·[batch, seq, d]
	return val{g.squeeze(pooled, 1), 2}, nil
}

// layerNorm is γ ⊙ (x − μ)/√(σ² + ε) + β over the last axis (Ba et al. 2016), with the mean
// as a product with a column of 1/d and the inverse square root from math.go.
func (l *lowering) layerNorm(t *model.LayerNorm, x val) val {
	g := l.g
	D := t.Dim
	p := l.take(t.NumParams())
	avg := make([]float64, D)
	for i := range avg {
		avg[i] = 1 / float64(D)
	}
	col := g.floats("mean_col", avg, D, 1)
	centred := g.sub(x.name, g.matmul(x.name, col))
	variance := g.matmul(g.mul(centred, centred), col)
	norm := g.mul(centred, g.rsqrt(g.add(variance, g.scalar("eps", t.Eps))))
	return val{g.add(g.mul(norm, g.floats("gamma", p[:D], D)), g.floats("beta", p[D:], D)), x.rank}
}

// attention is model.Attention on rows [Q | K | V] (3·Dim wide): per head
// softmax(Q Kᵀ/√d_k + mask) V, heads side by side. A causal mask adds −1e9 after the
// diagonal; otherwise keys at padding get −1e9. Either way every valid query sees exactly
// the keys Confide's attention does: a causal query never sees the padding after it.
func (l *lowering) attention(a *model.Attention, x val) val {
	g := l.g
	D, H := int64(a.Dim), int64(a.Heads)
	dk := D / H
	heads := func(start int64, perm ...int64) string {
		part := g.sliceConst(x.name, start, start+D, 2)
		return g.transpose(g.reshape(part, 0, 0, H, dk), perm...)
	}
	q := heads(0, 0, 2, 1, 3)   // [batch, H, seq, dk]
	k := heads(D, 0, 2, 3, 1)   // [batch, H, dk, seq]
	v := heads(2*D, 0, 2, 1, 3) // [batch, H, seq, dk]
	scores := g.mul(g.matmul(q, k), g.scalar("attn_scale", 1/math.Sqrt(float64(dk))))
	switch {
	case a.Causal:
		scores = g.add(scores, l.causalMask())
	case l.lengths != "":
		keyBias := g.mul(g.sub(l.validMask(), g.scalar("one", 1)), g.scalar("mask_big", 1e9)) // 0 or −1e9
		scores = g.add(scores, g.unsqueeze(keyBias, 1, 2))                                    // [batch, 1, 1, seq]
	}
	probs := g.op("Softmax", []string{scores}, attrInt("axis", -1))
	heads4 := g.transpose(g.matmul(probs, v), 0, 2, 1, 3) // [batch, seq, H, dk]
	return val{g.reshape(heads4, 0, 0, D), 3}
}

// causalMask is [seq, seq]: 0 on and before the diagonal, −1e9 after it, i.e.
// −1e9·min(relu(j − i), 1) at row i, column j.
func (l *lowering) causalMask() string {
	g := l.g
	after := g.sub(g.unsqueeze(l.positions(), 0), g.unsqueeze(l.positions(), 1)) // j − i
	return g.mul(g.minOne(g.relu(after)), g.scalar("minus_big", -1e9))
}

// Gate orders: ONNX's LSTM is i, o, f, c and its GRU z, r, h; Confide's are i, f, g, o and
// r, z, n (PyTorch's). onnxGates[cell][k] is the Confide gate of ONNX gate k.
var onnxGates = map[string][]int{
	model.CellVanilla: {0},
	model.CellLSTM:    {0, 3, 1, 2},
	model.CellGRU:     {1, 0, 2},
}

var onnxRecurrentOp = map[string]string{model.CellVanilla: "RNN", model.CellLSTM: "LSTM", model.CellGRU: "GRU"}

// recurrent runs the ONNX RNN, LSTM or GRU operator (forward, one direction) over the
// sequence. Confide freezes the state at padding, ONNX (without sequence_lens) does not;
// padding is a suffix, so the outputs at valid positions are the same.
func (l *lowering) recurrent(r *model.Recurrent, x val) (val, error) {
	g := l.g
	order, ok := onnxGates[r.Cell]
	if !ok {
		return x, fmt.Errorf("onnxexport: %w: recurrent cell %q", ErrUnsupported, r.Cell)
	}
	G, H, In := len(order), r.Hidden, r.In
	GH := G * H
	p := l.take(r.NumParams())
	wih, whh, bias, bhn := p[:In*GH], p[In*GH:(In+H)*GH], p[(In+H)*GH:(In+H+1)*GH], p[(In+H+1)*GH:]
	// ONNX W is [1, G·H, In], row (gate k, unit u) the column of Confide's In × G·H W_ih
	// for that unit of gate order[k]; R likewise from W_hh; B is [1, 2·G·H]: W's bias, then
	// R's (zero but for the GRU's b_hn, which linear_before_reset applies inside r ⊙ ·).
	transposeGates := func(w []float64, rows int) []float64 {
		out := make([]float64, GH*rows)
		for k, cg := range order {
			for u := 0; u < H; u++ {
				for i := 0; i < rows; i++ {
					out[(k*H+u)*rows+i] = w[i*GH+cg*H+u]
				}
			}
		}
		return out
	}
	b := make([]float64, 2*GH)
	for k, cg := range order {
		copy(b[k*H:(k+1)*H], bias[cg*H:(cg+1)*H])
	}
	attrs := []*onnx.AttributeProto{attrInt("hidden_size", int64(H))}
	outputs := 2
	switch r.Cell {
	case model.CellGRU:
		copy(b[GH+2*H:], bhn)
		attrs = append(attrs, attrInt("linear_before_reset", 1))
	case model.CellLSTM:
		outputs = 3
	case model.CellVanilla:
		switch r.Activation {
		case model.ActTanh: // the default
		case model.ActReLU:
			attrs = append(attrs, attrStrings("activations", "Relu"))
		default:
			return x, fmt.Errorf("onnxexport: %w: vanilla RNN activation %q", ErrUnsupported, r.Activation)
		}
	}
	inputs := []string{
		g.transpose(x.name, 1, 0, 2), // [seq, batch, In]
		g.floats("W", transposeGates(wih, In), 1, GH, In),
		g.floats("R", transposeGates(whh, H), 1, GH, H),
		g.floats("B", b, 1, 2*GH),
	}
	y := g.opN(onnxRecurrentOp[r.Cell], inputs, outputs, attrs...)[0] // [seq, 1, batch, H]
	return val{g.transpose(g.squeeze(y, 1), 1, 0, 2), 3}, nil
}
