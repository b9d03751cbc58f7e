package model

import "fmt"

// Gradients with respect to a model's input, for explanations (integrated gradients,
// saliency). Token ids are not differentiable, so a model's input is taken at its
// representation: the tensor its first differentiable layer reads.
//   - mlp: the dense inputs, B×Input (after the feature stage, when the model has one: the
//     stage has no gradient, so attributions then stop at its output); with embedded
//     categorical columns, the output of the embedding stage (ColumnEmbeddings: each
//     column's vector, then the other inputs), since category indices have no gradient;
//   - rnn, lstm, gru, transformer: the token embeddings, B·T×Embed (zero at padded
//     positions), which the layers after the Embedding read — the position table of a
//     Transformer is added after it and is part of the function.
//
// ForwardFrom runs the model from a representation of one's choosing (an interpolation
// between an input's and a baseline's, say) and BackwardTo returns the gradient of any
// linear function of the output with respect to it.

// Representation returns the representation of in (see above) as a new tensor.
func (m *Model) Representation(in *Input) (*Tensor, error) {
	if err := m.setBatch(in, false, false, nil); err != nil {
		return nil, err
	}
	x := &m.in
	switch {
	case m.Spec.IsSequence():
		x = m.layers[0].Forward(nil, &m.batch)
	case m.embedsColumns():
		x = m.layers[0].Forward(x, &m.batch)
	}
	return &Tensor{Data: append([]float64(nil), x.Data...), Rows: x.Rows, Cols: x.Cols}, nil
}

// RepresentationWidth is the number of columns of the model's representation.
func (m *Model) RepresentationWidth() int {
	switch {
	case m.Spec.IsSequence():
		return m.Spec.Embed
	case m.features != nil:
		return m.features.OutDim()
	case m.embedsColumns():
		return m.layers[0].(*ColumnEmbeddings).OutDim()
	}
	return m.Spec.Input
}

// embedsColumns reports whether the model's first layer is an embedding stage of
// categorical columns.
func (m *Model) embedsColumns() bool { return len(m.Spec.Embeddings) > 0 }

// firstDifferentiable is the index of the layer that reads the representation.
func (m *Model) firstDifferentiable() int {
	if m.Spec.IsSequence() || m.embedsColumns() {
		return 1
	}
	return 0
}

// ForwardFrom runs the model (evaluation mode: no dropout) on the representation x of a
// batch whose shape in gives (B, and for sequences T and Lengths; in's X and Tokens are not
// read) and returns the output: B×Output, or B·T×Vocab for a next-token model. It keeps
// what BackwardTo needs. x is not modified; the returned tensor is owned by the model and
// valid until the next call.
func (m *Model) ForwardFrom(in *Input, x *Tensor) (*Tensor, error) {
	if in.B <= 0 {
		return nil, fmt.Errorf("model: empty batch")
	}
	rows, width := in.B, m.RepresentationWidth()
	T := 1
	if m.Spec.IsSequence() {
		probe := *in
		probe.Tokens = make([]int32, in.B*in.T) // token 0 is valid: only the shape is checked
		if err := m.checkTokens(&probe); err != nil {
			return nil, err
		}
		T = in.T
		rows = in.B * T
	}
	if x.Rows != rows || x.Cols != width || len(x.Data) != rows*width {
		return nil, fmt.Errorf("model: representation is %d×%d (%d values), want %d×%d", x.Rows, x.Cols, len(x.Data), rows, width)
	}
	m.batch = Batch{B: in.B, T: T, Lengths: in.Lengths, Grad: true}
	out := x
	for _, l := range m.layers[m.firstDifferentiable():] {
		out = l.Forward(out, &m.batch)
	}
	return out, nil
}

// BackwardTo returns ∂(Σ_{r,c} dOut[r,c]·out[r,c])/∂x for the output out and
// representation x of the last ForwardFrom; dOut has out's shape. Like Backprop it adds the
// parameter gradients of that sum to Grads. The returned tensor is owned by the model and
// valid until the next call.
func (m *Model) BackwardTo(dOut *Tensor) (*Tensor, error) {
	b := &m.batch
	if !b.Grad || b.Train || b.Ghost {
		return nil, fmt.Errorf("model: BackwardTo needs a preceding ForwardFrom")
	}
	rows, cols := b.B, m.Spec.Output
	if m.Spec.Task == TaskNextToken {
		rows, cols = b.B*b.T, m.Spec.Vocab
	}
	if dOut.Rows != rows || dOut.Cols != cols || len(dOut.Data) != rows*cols {
		return nil, fmt.Errorf("model: output gradient is %d×%d, want the output's %d×%d", dOut.Rows, dOut.Cols, rows, cols)
	}
	dy := dOut
	first := m.firstDifferentiable()
	for i := len(m.layers) - 1; i >= first; i-- {
		dy = m.layers[i].Backward(dy, b, true)
	}
	return dy, nil
}

// InputFeatures returns the values of one representation row (RepresentationWidth wide) of
// a dense model summed per input feature (Spec.Input wide): with embedded columns a
// column gets the sum over its vector's dimensions, as a token gets the sum over its
// embedding's, and every other feature its own value; without, a copy of row. It turns an
// attribution to the representation into one to the input's columns.
func (m *Model) InputFeatures(row []float64) ([]float64, error) {
	if m.Spec.IsSequence() || len(row) != m.RepresentationWidth() {
		return nil, fmt.Errorf("model: InputFeatures takes a dense model's representation row of %d values, got %d", m.RepresentationWidth(), len(row))
	}
	if !m.embedsColumns() {
		return append([]float64(nil), row...), nil
	}
	c := m.layers[0].(*ColumnEmbeddings)
	out := make([]float64, c.In)
	off := 0
	for _, e := range c.Columns {
		for _, v := range row[off : off+e.Dim] {
			out[e.Column] += v
		}
		off += e.Dim
	}
	for k, j := range c.pass {
		out[j] = row[off+k]
	}
	return out, nil
}
