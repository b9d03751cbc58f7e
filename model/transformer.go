package model

// TransformerBlock is one Transformer encoder layer over rows of width Dim: multi-head
// self-attention and a position-wise feed-forward network Linear(Dim, FF)–act–Linear(FF,
// Dim), each in a residual branch, with LayerNorm placed
//   - post-norm (Vaswani et al. 2017, PyTorch's norm_first=False): x ← LN(x + Attn(x)),
//     x ← LN(x + FF(x));
//   - pre-norm (Xiong et al. 2020): x ← x + Attn(LN(x)), x ← x + FF(LN(x)); the model adds
//     a final LayerNorm after the last block.
//
// Dropout, when P > 0, follows the attention and each feed-forward Linear, as in PyTorch.
// Parameters are the sublayers', in the order they are applied.
type TransformerBlock struct {
	*Sequential
	PreNorm bool
}

var _ ParamLayer = (*TransformerBlock)(nil)

// NewTransformerBlock returns an encoder block; act is relu or gelu.
func NewTransformerBlock(dim, heads, ff int, act string, preNorm, causal bool, dropout float64) (*TransformerBlock, error) {
	a1, err := NewActivation(act)
	if err != nil {
		return nil, err
	}
	drop := func(layers ...Layer) []Layer {
		if dropout > 0 {
			layers = append(layers, &Dropout{P: dropout})
		}
		return layers
	}
	attn := drop(NewMultiHeadAttention(dim, heads, causal))
	init1 := InitHe
	if act != ActReLU && act != ActGELU {
		init1 = InitXavier
	}
	ffn := append(drop(NewLinear(dim, ff, init1), a1), drop(NewLinear(ff, dim, InitXavier))...)
	var layers []Layer
	if preNorm {
		layers = []Layer{
			NewResidual(append([]Layer{NewLayerNorm(dim)}, attn...)...),
			NewResidual(append([]Layer{NewLayerNorm(dim)}, ffn...)...),
		}
	} else {
		layers = []Layer{NewResidual(attn...), NewLayerNorm(dim), NewResidual(ffn...), NewLayerNorm(dim)}
	}
	return &TransformerBlock{Sequential: NewSequential(layers...), PreNorm: preNorm}, nil
}
