package model

import "github.com/confide-fl/confide/internal/linalg"

// TransformerBlockOf is one Transformer encoder layer over rows of width Dim: multi-head
// self-attention and a position-wise feed-forward network Linear(Dim, FF)–act–Linear(FF,
// Dim), each in a residual branch, with LayerNorm placed
//   - post-norm (Vaswani et al. 2017, PyTorch's norm_first=False): x ← LN(x + Attn(x)),
//     x ← LN(x + FF(x));
//   - pre-norm (Xiong et al. 2020): x ← x + Attn(LN(x)), x ← x + FF(LN(x)); the model adds
//     a final LayerNorm after the last block.
//
// Dropout, when P > 0, follows the attention and each feed-forward Linear, as in PyTorch.
// Parameters are the sublayers', in the order they are applied.
type TransformerBlockOf[F linalg.Float] struct {
	*SequentialOf[F]
	PreNorm bool
}

// TransformerBlock is a float64 TransformerBlockOf.
type TransformerBlock = TransformerBlockOf[float64]

var (
	_ ParamLayer            = (*TransformerBlock)(nil)
	_ ParamLayerOf[float32] = (*TransformerBlockOf[float32])(nil)
)

// NewTransformerBlock returns an encoder block; act is relu or gelu.
func NewTransformerBlock(dim, heads, ff int, act string, preNorm, causal bool, dropout float64) (*TransformerBlock, error) {
	return newTransformerBlock[float64](dim, heads, ff, act, preNorm, causal, dropout)
}

func newTransformerBlock[F linalg.Float](dim, heads, ff int, act string, preNorm, causal bool, dropout float64) (*TransformerBlockOf[F], error) {
	a1, err := newActivation[F](act)
	if err != nil {
		return nil, err
	}
	drop := func(layers ...LayerOf[F]) []LayerOf[F] {
		if dropout > 0 {
			layers = append(layers, &DropoutOf[F]{P: dropout})
		}
		return layers
	}
	attn := drop(newMultiHeadAttention[F](dim, heads, causal))
	init1 := InitHe
	if act != ActReLU && act != ActGELU {
		init1 = InitXavier
	}
	ffn := append(drop(newLinear[F](dim, ff, init1), a1), drop(newLinear[F](ff, dim, InitXavier))...)
	var layers []LayerOf[F]
	if preNorm {
		layers = []LayerOf[F]{
			newResidual(append([]LayerOf[F]{newLayerNorm[F](dim)}, attn...)...),
			newResidual(append([]LayerOf[F]{newLayerNorm[F](dim)}, ffn...)...),
		}
	} else {
		layers = []LayerOf[F]{newResidual(attn...), newLayerNorm[F](dim), newResidual(ffn...), newLayerNorm[F](dim)}
	}
	return &TransformerBlockOf[F]{SequentialOf: newSequential(layers...), PreNorm: preNorm}, nil
}
