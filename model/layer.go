package model

import (
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Batch describes one forward pass: its shape and its mode. The model fills it; layers read it.
type Batch struct {
	B int // examples
	T int // rows per example: 1 for per-example features, time steps for sequences
	// Lengths[i] is the number of valid time steps of example i (a prefix); nil means all T.
	Lengths []int32
	// Tokens is B×T token ids for models whose first layer is an embedding.
	Tokens []int32
	// Train enables dropout; Rand drives it.
	Train bool
	Rand  *rand.Rand
	// Grad says a Backward follows this Forward. Layers whose backward state is large
	// (attention weights) keep it only then; the model sets it for every training pass.
	Grad bool
	// Ghost selects per-example mode: Backward keeps what it needs to compute per-example
	// gradient norms and weighted sums, and does not accumulate parameter gradients.
	Ghost bool
	// overwrite says the parameter gradients hold stale values: Backward sets them instead
	// of adding to them (a float32 network after TrainStep; only LinearOf does, see
	// network32.overwrites).
	overwrite bool
}

// Valid reports whether row t of example i is a real (not padded) position.
func (b *Batch) Valid(i, t int) bool { return b.Lengths == nil || t < int(b.Lengths[i]) }

// LayerOf is one differentiable step of a model whose layer math runs in F.
type LayerOf[F linalg.Float] interface {
	// Forward computes the output for x and keeps what Backward needs. The returned tensor is
	// owned by the layer and valid until its next Forward.
	Forward(x *TensorOf[F], b *Batch) *TensorOf[F]
	// Backward takes dL/dy for the last Forward and returns dL/dx (nil when needInput is
	// false). Parameter gradients are accumulated unless b.Ghost.
	Backward(dy *TensorOf[F], b *Batch, needInput bool) *TensorOf[F]
}

// Layer is a float64 layer.
type Layer = LayerOf[float64]

// ParamLayerOf is a LayerOf with parameters. Its parameters and gradients are views into
// the network's flat vectors, set by Bind. Per-example norms and weights are float64 in
// every precision: they are few (one per example) and clipping compares them with a bound.
type ParamLayerOf[F linalg.Float] interface {
	LayerOf[F]
	// NumParams is the length of the layer's slice of the parameter vector.
	NumParams() int
	// Bind points the layer at its slices of the network's parameter and gradient vectors.
	Bind(params, grads []F)
	// Init fills the layer's parameters from rng.
	Init(rng *rand.Rand)
	// AddPerExampleSqNorms adds ‖∇_θ loss_i‖² for this layer's parameters to dst[i], for every
	// example i of the last ghost-mode Forward/Backward.
	AddPerExampleSqNorms(dst []float64, b *Batch)
	// AccumulateWeighted adds Σ_i w[i]·∇_θ loss_i to the layer's gradients, for the last
	// ghost-mode Forward/Backward.
	AccumulateWeighted(w []float64, b *Batch)
}

// ParamLayer is a float64 layer with parameters.
type ParamLayer = ParamLayerOf[float64]
