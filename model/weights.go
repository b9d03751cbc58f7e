package model

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/confide-fl/confide/internal/linalg"
)

// WeightTensor is one weight matrix of a model: Rows×Cols values, row-major, at Offset in
// the parameter vector. These are the tensors compression works on: magnitude pruning
// (Prune) and int8 quantisation (Quantize). Biases, LayerNorm gains and position tables are
// not among them; they are a small share of any model and sensitive to rounding.
type WeightTensor struct {
	// Name is the layer's path in the model, e.g. "2:TransformerBlock/0:Residual/0:MultiHeadAttention/0:Linear",
	// and the tensor's name within the layer (Recurrent: W_ih, W_hh).
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Rows   int    `json:"rows"`
	Cols   int    `json:"cols"`
	// ChannelRows says each row is one output channel (Embedding: a row per token);
	// otherwise each column is (Linear and Recurrent: x·W, a column per output unit).
	ChannelRows bool `json:"channel_rows,omitempty"`
}

// Size is the tensor's number of values.
func (w WeightTensor) Size() int { return w.Rows * w.Cols }

// Channels is the number of output channels: per-channel quantisation has a scale for each.
func (w WeightTensor) Channels() int {
	if w.ChannelRows {
		return w.Rows
	}
	return w.Cols
}

// weightLayer is a layer that holds weight tensors (or composes layers that do).
type weightLayer interface {
	// weights appends the layer's weight tensors to dst, for a layer named name whose
	// parameters start at off.
	weights(name string, off int, dst []WeightTensor) []WeightTensor
}

var (
	_ weightLayer = (*Linear)(nil)
	_ weightLayer = (*Embedding)(nil)
	_ weightLayer = (*Recurrent)(nil)
	_ weightLayer = (*Sequential)(nil)
	_ weightLayer = (*ColumnEmbeddings)(nil)
)

// WeightTensors returns the model's weight matrices in parameter-vector order.
func (m *Model) WeightTensors() []WeightTensor {
	return layerWeights("", 0, m.layers, nil)
}

// layerWeights appends the weight tensors of layers, whose parameters start at off.
func layerWeights[F linalg.Float](prefix string, off int, layers []LayerOf[F], dst []WeightTensor) []WeightTensor {
	for i, l := range layers {
		p, ok := l.(ParamLayerOf[F])
		if !ok {
			continue
		}
		if w, ok := l.(weightLayer); ok {
			dst = w.weights(fmt.Sprintf("%s%d:%s", prefix, i, LayerName(l)), off, dst)
		}
		off += p.NumParams()
	}
	return dst
}

// LayerName is the name of a layer's type without its precision: Linear for a *Linear
// (*LinearOf[float64]) or a *LinearOf[float32]. Weight tensor names use it.
func LayerName(l any) string {
	name, _, _ := strings.Cut(reflect.TypeOf(l).Elem().Name(), "[")
	return strings.TrimSuffix(name, "Of")
}

func (l *LinearOf[F]) weights(name string, off int, dst []WeightTensor) []WeightTensor {
	return append(dst, WeightTensor{Name: name, Offset: off, Rows: l.In, Cols: l.Out})
}

func (e *EmbeddingOf[F]) weights(name string, off int, dst []WeightTensor) []WeightTensor {
	return append(dst, WeightTensor{Name: name, Offset: off, Rows: e.Vocab, Cols: e.Dim, ChannelRows: true})
}

func (r *RecurrentOf[F]) weights(name string, off int, dst []WeightTensor) []WeightTensor {
	GH := r.numGates() * r.Hidden
	return append(dst,
		WeightTensor{Name: name + ".W_ih", Offset: off, Rows: r.In, Cols: GH},
		WeightTensor{Name: name + ".W_hh", Offset: off + r.In*GH, Rows: r.Hidden, Cols: GH})
}

func (s *SequentialOf[F]) weights(name string, off int, dst []WeightTensor) []WeightTensor {
	return layerWeights(name+"/", off, s.Layers, dst)
}
