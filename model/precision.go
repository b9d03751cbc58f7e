package model

import (
	"fmt"

	"github.com/confide-fl/confide/internal/linalg"
)

// Precision is the number format a model's layer math runs in: forward and backward
// passes, per-example gradient norms and their weighted sums. The parameters and gradients
// the model exposes (Params, Grads), and with them optimisers, clipping, noise and
// aggregation, are float64 in every precision: float64 master weights, as in
// mixed-precision training (Micikevicius et al. 2018), whose O(P) updates cost little next
// to the O(B·P) layer math.
type Precision uint8

// Precisions. The zero value is Float64.
const (
	Float64 Precision = iota // the layers run in float64
	Float32                  // the layers run in float32 (a second network, see Model.SetPrecision)
)

// String is "float64" or "float32".
func (p Precision) String() string {
	switch p {
	case Float64:
		return "float64"
	case Float32:
		return "float32"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// ParsePrecision reads "float64" or "float32".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "float64":
		return Float64, nil
	case "float32":
		return Float32, nil
	}
	return 0, fmt.Errorf("precision %q unknown (use float32 or float64)", s)
}

func (p Precision) valid() bool { return p == Float64 || p == Float32 }

// MarshalText writes the precision's name (model files store it in Meta).
func (p Precision) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("model: %v is not a precision", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads a name ParsePrecision accepts.
func (p *Precision) UnmarshalText(b []byte) error {
	v, err := ParsePrecision(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// SetPrecision selects the precision of the model's layer math. With Float32 the model
// builds, on first use, a float32 network of its spec with its own float32 parameter and
// gradient vectors; every training and evaluation pass (Forward, Evaluate, Backprop,
// PerExampleNorms, PerExampleLayerNorms, AccumulateWeighted, AccumulateWeightedPerLayer)
// then copies Params into it, rounded (unless Model.Step just did), runs on it, and adds
// the float32 gradients it produced to Grads: the accumulate semantics of the float64
// path, with gradients rounded to float32 on their way. Losses are computed in float64 on the widened output.
// What stays float64: the feature stage (its output is rounded), an int8 model's
// Forward (Quantize; its training passes follow the precision), and the explanation and
// decoding paths (Representation, ForwardFrom, BackwardTo, AttentionWeights, Decoder).
// Changing the precision discards the state of the last ghost pass.
func (m *Model) SetPrecision(p Precision) error {
	if !p.valid() {
		return fmt.Errorf("model: %v is not a precision (use Float32 or Float64)", p)
	}
	if p != m.precision {
		m.precision = p
		m.net32 = nil
		m.batch = Batch{}
	}
	return nil
}

// ComputePrecision is the precision of the model's layer math (SetPrecision). A model
// file records it; files that do not were trained in float64. (Precision, by contrast,
// is the number format of the stored weights.)
func (m *Model) ComputePrecision() Precision { return m.precision }

// network32 is a model's float32 network: the layers of its spec bound to float32
// parameter and gradient vectors that mirror Params and Grads.
type network32 struct {
	layers     []LayerOf[float32]
	perExample []perExampleLayer // the parametrised layers
	params     []float32
	grads      []float32 // zero between passes (flushGrads moves them to Grads), or stale
	// stale says grads hold the gradients TrainStep's update took, not zero: the next
	// backward pass overwrites them where every parametrised layer can (overwrites: all
	// are LinearOf, whose one multiply sets its gradient), or clears them first (clean).
	stale, overwrites bool
	// fresh says params already hold Params rounded, written by Model.Step in its update;
	// the next pass takes them as they are and clears it, and every Model method that
	// writes Params clears it (paramsChanged).
	fresh  bool
	in, dy *TensorOf[float32]
	out64  Tensor // the output, widened for the loss
}

// perExampleLayer is the part of a ParamLayerOf that does not depend on its precision.
type perExampleLayer interface {
	NumParams() int
	AddPerExampleSqNorms(dst []float64, b *Batch)
	AccumulateWeighted(w []float64, b *Batch)
}

// newNetwork32 builds the float32 network of a valid spec with n parameters.
func newNetwork32(spec Spec, n int) (*network32, error) {
	layers, err := buildLayers[float32](spec)
	if err != nil {
		return nil, err
	}
	net := &network32{layers: layers, params: make([]float32, n), grads: make([]float32, n)}
	off := 0
	for _, l := range layers {
		if p, ok := l.(ParamLayerOf[float32]); ok {
			k := p.NumParams()
			p.Bind(net.params[off:off+k:off+k], net.grads[off:off+k:off+k])
			net.perExample = append(net.perExample, p)
			off += k
		}
	}
	if off != n {
		return nil, fmt.Errorf("model: the float32 network has %d parameters, the float64 one %d", off, n)
	}
	net.overwrites = true
	for _, p := range net.perExample {
		if _, ok := p.(*LinearOf[float32]); !ok {
			net.overwrites = false
		}
	}
	return net, nil
}

// low returns the float32 network when the layer math runs in float32 (a quantised
// model's Forward excepted: quantized says whether the pass may use the int8 kernels),
// building it on first use; nil for float64.
func (m *Model) low(quantized bool) *network32 {
	if m.precision != Float32 || quantized && m.quant != nil {
		return nil
	}
	if m.net32 == nil {
		net, err := newNetwork32(m.Spec, len(m.Params))
		if err != nil {
			panic(err) // the spec was validated and built in float64 when m was built
		}
		m.net32 = net
	}
	return m.net32
}

// paramsChanged discards the float32 network's copy of Params that Model.Step wrote: the
// next pass rounds Params again. Every Model method that writes Params calls it.
func (m *Model) paramsChanged() {
	if m.net32 != nil {
		m.net32.fresh = false
	}
}

// forward copies Params (unless Model.Step just did) and the model's dense input (m.in) into the network, runs it and
// returns its output widened to float64.
func (n *network32) forward(m *Model) *Tensor {
	if !n.fresh {
		convert(n.params, m.Params)
	}
	n.fresh = false
	var x *TensorOf[float32]
	if !m.Spec.IsSequence() {
		n.in = ensure(n.in, m.in.Rows, m.in.Cols)
		convert(n.in.Data, m.in.Data)
		x = n.in
	}
	y := runForward(n.layers, x, &m.batch)
	n.out64.Data = grow(n.out64.Data, len(y.Data))
	n.out64.Rows, n.out64.Cols = y.Rows, y.Cols
	convert(n.out64.Data, y.Data)
	return &n.out64
}

// backward runs the network back from the output gradient dy (float64, rounded) and, out
// of ghost mode, adds the parameter gradients to grads (with grads nil, leaves them in
// the network for Model.TrainStep's update).
func (n *network32) backward(dy *Tensor, b *Batch, grads []float64) {
	n.dy = ensure(n.dy, dy.Rows, dy.Cols)
	convert(n.dy.Data, dy.Data)
	if n.stale && n.overwrites && !b.Ghost {
		b.overwrite, n.stale = true, false
	}
	n.clean()
	runBackward(n.layers, n.dy, b)
	b.overwrite = false
	if !b.Ghost && grads != nil {
		n.flushGrads(grads)
	}
}

// clean zeroes stale gradients. Every pass that adds to them (a backward pass, then
// AccumulateWeighted after a ghost one) starts with backward, which calls it.
func (n *network32) clean() {
	if n.stale {
		clear(n.grads)
		n.stale = false
	}
}

// flushGrads adds the network's gradients to grads and zeroes them.
func (n *network32) flushGrads(grads []float64) {
	linalg.Drain(grads, n.grads)
}

// runForward applies layers to x (nil for a token model: the embedding reads the batch).
func runForward[F linalg.Float](layers []LayerOf[F], x *TensorOf[F], b *Batch) *TensorOf[F] {
	for _, l := range layers {
		x = l.Forward(x, b)
	}
	return x
}

// runBackward takes dy back through layers; the first one's input gradient is not needed.
func runBackward[F linalg.Float](layers []LayerOf[F], dy *TensorOf[F], b *Batch) {
	for i := len(layers) - 1; i >= 0; i-- {
		dy = layers[i].Backward(dy, b, i > 0)
	}
}
