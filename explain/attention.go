package explain

import (
	"errors"
	"fmt"

	"github.com/confide-fl/confide/model"
)

// ErrNoAttention says that a model has no attention layers to draw.
var ErrNoAttention = errors.New("explain: the model has no attention layers (only Transformers do)")

// AttentionMaps returns the attention weights of the single example in (B = 1):
// maps[l][h] is head h of self-attention layer l (in the order the layers apply), an L×L
// row-major matrix whose row q is query position q's distribution over the key positions.
func AttentionMaps(m *model.Model, in *model.Input) ([][][]float64, error) {
	if m.AttentionLayers() == 0 {
		return nil, ErrNoAttention
	}
	if in.B != 1 {
		return nil, fmt.Errorf("explain: attention maps are drawn one example at a time, got %d", in.B)
	}
	w, err := m.AttentionWeights(in)
	if err != nil {
		return nil, err
	}
	maps := make([][][]float64, len(w))
	for l := range w {
		maps[l] = w[l][0]
	}
	return maps, nil
}

// MeanHeads returns the element-wise mean of heads' maps (each a distribution per row, so
// the mean is too).
func MeanHeads(heads [][]float64) []float64 {
	mean := make([]float64, len(heads[0]))
	for _, h := range heads {
		for i, v := range h {
			mean[i] += v
		}
	}
	for i := range mean {
		mean[i] /= float64(len(heads))
	}
	return mean
}
