package model

// AttentionLayers is the number of self-attention layers of the model (one per Transformer
// block; 0 for other models).
func (m *Model) AttentionLayers() int { return len(attentionCores(m.layers, nil)) }

// AttentionWeights runs the model on in (evaluation mode) and returns the attention
// weights of its self-attention layers, in the order they are applied:
// w[l][i][h] is head h of layer l for example i, an L×L row-major matrix where L is the
// example's valid length and row q holds query position q's softmax over the key
// positions (zero after q under a causal mask). The matrices are new slices.
func (m *Model) AttentionWeights(in *Input) ([][][][]float64, error) {
	if err := m.setBatch(in, false, false, nil); err != nil {
		return nil, err
	}
	m.batch.Grad = true // attention keeps its weights only for a backward pass
	m.forward64()
	b := &m.batch
	cores := attentionCores(m.layers, nil)
	w := make([][][][]float64, len(cores))
	for l, a := range cores {
		w[l] = make([][][]float64, b.B)
		for i := range b.B {
			L := validLen(b, i)
			w[l][i] = make([][]float64, a.Heads)
			for h := range a.Heads {
				off := (i*a.Heads + h) * b.T * b.T
				w[l][i][h] = append([]float64(nil), a.p[off:off+L*L]...)
			}
		}
	}
	return w, nil
}

// attentionCores appends the Attention layers among layers (inside blocks, residual
// branches and projections) to dst, in the order they are applied.
func attentionCores(layers []Layer, dst []*Attention) []*Attention {
	for _, l := range layers {
		switch l := l.(type) {
		case *Attention:
			dst = append(dst, l)
		case *MultiHeadAttention:
			dst = attentionCores(l.Layers, dst)
		case *TransformerBlock:
			dst = attentionCores(l.Layers, dst)
		case *Residual:
			dst = attentionCores(l.Layers, dst)
		case *Sequential:
			dst = attentionCores(l.Layers, dst)
		}
	}
	return dst
}
