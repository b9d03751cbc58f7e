package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/internal/linalg"
)

// Input is one batch of examples: dense features X (B×InputDim) for mlp and cnn, or token ids
// Tokens (B×T, example-major, T ≥ 1) for the sequence models.
type Input struct {
	X       []float64
	Tokens  []int32
	B, T    int
	Lengths []int32 // valid time steps per example (sequences); nil means all T
	// Transformed says X already holds the output of the model's feature stage
	// (B×Features().OutDim(), e.g. computed once for a whole dataset), not raw inputs.
	Transformed bool
}

// Model is a network built from a Spec, with all parameters in one vector.
type Model struct {
	Spec   Spec
	Params []float64
	Grads  []float64
	// Meta is what the model file carries for inference and provenance (Save writes it,
	// Load reads it); the zero Meta says nothing.
	Meta Meta

	layers      []Layer
	paramLayers []ParamLayer
	perExample  []perExampleLayer // paramLayers
	quant       *Quantization     // nil: float64 weights
	precision   Precision
	net32       *network32 // the float32 network (precision Float32), built on first use
	loss        Loss
	features    Features // nil without a feature stage
	featBuf     []float64

	batch   Batch
	in      Tensor
	lossBuf []float64
	wBuf    []float64
	grad    *Tensor
}

// New builds the model described by spec, which must be within DefaultLimits, with
// parameters initialised from rng.
func New(spec Spec, rng *rand.Rand) (*Model, error) { return Limits{}.New(spec, rng) }

// New builds the model described by spec, which must be within l, with parameters
// initialised from rng.
func (l Limits) New(spec Spec, rng *rand.Rand) (*Model, error) {
	m, err := newWithFeatures(spec, nil, l)
	if err != nil {
		return nil, err
	}
	for _, p := range m.paramLayers {
		p.Init(rng)
	}
	m.ApplyMask()
	return m, nil
}

// newWithFeatures builds an uninitialised model of a spec within l, reusing features
// (immutable and safe for concurrent use) for its feature stage when not nil.
func newWithFeatures(spec Spec, features Features, l Limits) (*Model, error) {
	if err := l.Validate(spec); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	layers, err := spec.build()
	if err != nil {
		return nil, err
	}
	loss, err := newLoss(spec.Loss)
	if err != nil {
		return nil, err
	}
	m := &Model{Spec: spec, layers: layers, loss: loss}
	if spec.Features != nil {
		m.features = features
		if m.features == nil {
			m.features = spec.Features.build()
		}
	}
	n := 0
	for _, l := range layers {
		if p, ok := l.(ParamLayer); ok {
			m.paramLayers = append(m.paramLayers, p)
			m.perExample = append(m.perExample, p)
			n += p.NumParams()
		}
	}
	m.Params = make([]float64, n)
	m.Grads = make([]float64, n)
	off := 0
	for _, p := range m.paramLayers {
		k := p.NumParams()
		p.Bind(m.Params[off:off+k:off+k], m.Grads[off:off+k:off+k])
		off += k
	}
	return m, nil
}

// NumParams is the length of the parameter vector.
func (m *Model) NumParams() int { return len(m.Params) }

// Clone returns an independent model with the same spec, precision and a copy of the
// parameters.
func (m *Model) Clone() *Model {
	c, err := newWithFeatures(m.Spec, m.features, unlimited)
	if err != nil {
		panic(err) // m.Spec was validated, under the limits it was built with, when m was built
	}
	copy(c.Params, m.Params)
	c.Meta = m.Meta
	c.precision = m.precision
	if m.quant != nil {
		c.bindShared(m.quant)
	}
	return c
}

// SetParams copies p into the model's parameter vector.
func (m *Model) SetParams(p []float64) error {
	if len(p) != len(m.Params) {
		return fmt.Errorf("model: parameter vector has %d values, model %q needs %d", len(p), m.Spec.Type, len(m.Params))
	}
	copy(m.Params, p)
	m.paramsChanged()
	return nil
}

// ZeroGrads sets the gradient vector to zero.
func (m *Model) ZeroGrads() { clear(m.Grads) }

// Layers returns the model's layers in order.
func (m *Model) Layers() []Layer { return m.layers }

// Features returns the model's fixed feature stage, or nil when the layers read raw inputs.
func (m *Model) Features() Features { return m.features }

func (m *Model) setBatch(in *Input, train, ghost bool, rng *rand.Rand) error {
	if in.B <= 0 {
		return fmt.Errorf("model: empty batch")
	}
	T := in.T
	if T == 0 {
		T = 1
	}
	m.batch = Batch{B: in.B, T: T, Lengths: in.Lengths, Tokens: in.Tokens, Train: train, Rand: rng, Grad: train, Ghost: ghost}
	if train && rng == nil {
		m.batch.Train = false
	}
	if m.Spec.IsSequence() {
		return m.checkTokens(in)
	}
	return m.setDense(in) // mlp and cnn
}

// setDense points the first layer at the batch's dense input, applying the feature stage to
// raw inputs.
func (m *Model) setDense(in *Input) error {
	if in.Transformed {
		if m.features == nil {
			return fmt.Errorf("model: input is marked transformed but the model has no feature stage")
		}
		d := m.features.OutDim()
		if len(in.X) != in.B*d {
			return fmt.Errorf("model: transformed input has %d values, want %d examples × %d features", len(in.X), in.B, d)
		}
		m.in = Tensor{Data: in.X, Rows: in.B, Cols: d}
		return nil
	}
	if len(in.X) != in.B*m.Spec.Input {
		return fmt.Errorf("model: input has %d values, want %d examples × %d features", len(in.X), in.B, m.Spec.Input)
	}
	if e, ok := m.layers[0].(*ColumnEmbeddings); ok {
		if err := e.checkIndices(in.X, in.B); err != nil {
			return err
		}
	}
	if m.features == nil {
		m.in = Tensor{Data: in.X, Rows: in.B, Cols: m.Spec.Input}
		return nil
	}
	d := m.features.OutDim()
	m.featBuf = growFloats(m.featBuf, in.B*d)
	m.features.Transform(m.featBuf, in.X, in.B)
	m.in = Tensor{Data: m.featBuf, Rows: in.B, Cols: d}
	return nil
}

// checkTokens validates the token input of a sequence model.
func (m *Model) checkTokens(in *Input) error {
	s := m.Spec
	if in.T <= 0 {
		return fmt.Errorf("model: %s reads token sequences: set Input.T to the sequence length (got %d)", s.Type, in.T)
	}
	if s.MaxLen > 0 && in.T > s.MaxLen {
		return fmt.Errorf("model: sequence length %d exceeds the model's max_len %d", in.T, s.MaxLen)
	}
	if len(in.Tokens) != in.B*in.T {
		return fmt.Errorf("model: input has %d tokens, want %d examples × %d positions", len(in.Tokens), in.B, in.T)
	}
	for k, tok := range in.Tokens {
		if tok < 0 || int(tok) >= s.Vocab {
			return fmt.Errorf("model: token %d at example %d position %d is outside the vocabulary [0, %d): the data's vocabulary is larger than the model's vocab", tok, k/in.T, k%in.T, s.Vocab)
		}
	}
	if in.Lengths != nil {
		if len(in.Lengths) != in.B {
			return fmt.Errorf("model: %d sequence lengths for %d examples", len(in.Lengths), in.B)
		}
		for i, l := range in.Lengths {
			if l < 0 || int(l) > in.T {
				return fmt.Errorf("model: length %d of example %d outside [0, %d]", l, i, in.T)
			}
		}
	}
	return nil
}

// forward runs the layers, in the model's precision, and returns the output; quantized
// lets an int8 model's evaluation run its float64 layers (and int8 kernels).
func (m *Model) forward(quantized bool) *Tensor {
	if n := m.low(quantized); n != nil {
		return n.forward(m)
	}
	m.paramsChanged() // an int8 pass ends what Model.Step left for the next pass too
	return m.forward64()
}

// forward64 runs the float64 layers and returns the output.
func (m *Model) forward64() *Tensor {
	x := &m.in
	if m.Spec.IsSequence() {
		x = nil // the embedding reads the batch's tokens
	}
	return runForward(m.layers, x, &m.batch)
}

// backward runs the layers of the last forward back from dy.
func (m *Model) backward(dy *Tensor) {
	if n := m.low(false); n != nil {
		n.backward(dy, &m.batch, m.Grads)
		return
	}
	runBackward(m.layers, dy, &m.batch)
}

// perExampleLayers are the parametrised layers of the network that runs training passes.
func (m *Model) perExampleLayers() []perExampleLayer {
	if n := m.low(false); n != nil {
		return n.perExample
	}
	return m.perExample
}

// flushGrads moves the float32 network's gradients to Grads (nothing in float64, whose
// layers accumulate into Grads).
func (m *Model) flushGrads() {
	if n := m.low(false); n != nil {
		n.flushGrads(m.Grads)
	}
}

// Forward returns the model's output for in (evaluation mode: no dropout), computed in the
// model's precision (an int8 model's in float64, with its int8 kernels). The returned
// tensor is owned by the model and valid until the next call.
func (m *Model) Forward(in *Input) (*Tensor, error) {
	if err := m.setBatch(in, false, false, nil); err != nil {
		return nil, err
	}
	return m.forward(true), nil
}

func (m *Model) evalLoss(out *Tensor, tg Targets, weight float64, perEx []float64, withGrad bool) (Stats, error) {
	B := m.batch.B
	m.lossBuf = growFloats(m.lossBuf, B)
	m.wBuf = growFloats(m.wBuf, B)
	for i := range m.wBuf {
		m.wBuf[i] = weight
	}
	var g *Tensor
	if withGrad {
		m.grad = ensure(m.grad, out.Rows, out.Cols)
		g = m.grad
	}
	st, err := m.loss.Eval(out, tg, &m.batch, m.wBuf, m.lossBuf, g)
	if err != nil {
		return st, err
	}
	if perEx != nil {
		copy(perEx, m.lossBuf)
	}
	return st, nil
}

func (m *Model) sumLoss() float64 {
	s := 0.0
	for _, v := range m.lossBuf[:m.batch.B] {
		s += v
	}
	return s
}

// Evaluate returns the summed per-example loss of the batch and the prediction counts.
func (m *Model) Evaluate(in *Input, tg Targets) (lossSum float64, st Stats, err error) {
	out, err := m.Forward(in)
	if err != nil {
		return 0, st, err
	}
	st, err = m.evalLoss(out, tg, 1, nil, false)
	return m.sumLoss(), st, err
}

// Backprop runs a training forward and backward pass and adds ∂(scale·Σ_i loss_i)/∂θ to
// Grads (scale = 1/B gives the mean loss). It returns the summed loss and prediction counts.
// rng drives dropout; nil disables it.
func (m *Model) Backprop(in *Input, tg Targets, scale float64, rng *rand.Rand) (lossSum float64, st Stats, err error) {
	return m.backprop(in, tg, scale, rng, nil)
}

// backprop is Backprop leaving a float32 network's gradients in it when low is that
// network (TrainStep).
func (m *Model) backprop(in *Input, tg Targets, scale float64, rng *rand.Rand, low *network32) (lossSum float64, st Stats, err error) {
	if err := m.setBatch(in, true, false, rng); err != nil {
		return 0, st, err
	}
	out := m.forward(false)
	st, err = m.evalLoss(out, tg, scale, nil, true)
	if err != nil {
		return 0, st, err
	}
	if low != nil {
		low.backward(m.grad, &m.batch, nil)
	} else {
		m.backward(m.grad)
	}
	return m.sumLoss(), st, nil
}

// PerExampleNorms runs a training forward and backward pass in ghost mode and writes
// ‖∇_θ loss_i‖ of every example into norms (length B). Grads is not touched; follow with
// AccumulateWeighted to add Σ_i w_i ∇_θ loss_i. It returns the summed loss.
func (m *Model) PerExampleNorms(in *Input, tg Targets, rng *rand.Rand, norms []float64) (lossSum float64, st Stats, err error) {
	if len(norms) != in.B {
		return 0, st, fmt.Errorf("model: norms has length %d, batch has %d examples", len(norms), in.B)
	}
	if st, err = m.ghostPass(in, tg, rng); err != nil {
		return 0, st, err
	}
	clear(norms)
	for _, l := range m.perExampleLayers() {
		l.AddPerExampleSqNorms(norms, &m.batch)
	}
	for i, v := range norms {
		norms[i] = math.Sqrt(v)
	}
	return m.sumLoss(), st, nil
}

// ghostPass runs a training forward and backward pass in ghost mode.
func (m *Model) ghostPass(in *Input, tg Targets, rng *rand.Rand) (Stats, error) {
	if err := m.setBatch(in, true, true, rng); err != nil {
		return Stats{}, err
	}
	out := m.forward(false)
	st, err := m.evalLoss(out, tg, 1, nil, true)
	if err != nil {
		return st, err
	}
	m.backward(m.grad)
	return st, nil
}

// ParamLayerSizes returns the number of parameters of each parametrised layer, in the order
// of the parameter vector (the sizes sum to NumParams). These are the groups of per-layer
// clipping; a composite layer (a Transformer block) is one group.
func (m *Model) ParamLayerSizes() []int {
	sizes := make([]int, len(m.paramLayers))
	for i, l := range m.paramLayers {
		sizes[i] = l.NumParams()
	}
	return sizes
}

// PerExampleLayerNorms is PerExampleNorms per parametrised layer: it writes
// ‖∇_{θ_l} loss_i‖, the norm of example i's gradient restricted to layer l's parameters, into
// norms[l][i] (len(norms) = len(ParamLayerSizes()), each of length B). Follow with
// AccumulateWeightedPerLayer.
func (m *Model) PerExampleLayerNorms(in *Input, tg Targets, rng *rand.Rand, norms [][]float64) (lossSum float64, st Stats, err error) {
	if len(norms) != len(m.paramLayers) {
		return 0, st, fmt.Errorf("model: %d norm rows for %d parametrised layers", len(norms), len(m.paramLayers))
	}
	for l, row := range norms {
		if len(row) != in.B {
			return 0, st, fmt.Errorf("model: norms[%d] has length %d, batch has %d examples", l, len(row), in.B)
		}
	}
	if st, err = m.ghostPass(in, tg, rng); err != nil {
		return 0, st, err
	}
	for l, layer := range m.perExampleLayers() {
		row := norms[l]
		clear(row)
		layer.AddPerExampleSqNorms(row, &m.batch)
		for i, v := range row {
			row[i] = math.Sqrt(v)
		}
	}
	return m.sumLoss(), st, nil
}

// AccumulateWeightedPerLayer adds Σ_i w[l][i]·∇_{θ_l} loss_i to the gradients of every
// parametrised layer l, for the batch of the last PerExampleLayerNorms (or PerExampleNorms)
// call: per-layer clip factors in one multiply per layer.
func (m *Model) AccumulateWeightedPerLayer(w [][]float64) error {
	if !m.batch.Ghost {
		return fmt.Errorf("model: AccumulateWeightedPerLayer needs a preceding PerExampleLayerNorms")
	}
	if len(w) != len(m.paramLayers) {
		return fmt.Errorf("model: %d weight rows for %d parametrised layers", len(w), len(m.paramLayers))
	}
	for l, row := range w {
		if len(row) != m.batch.B {
			return fmt.Errorf("model: w[%d] has %d weights for a batch of %d examples", l, len(row), m.batch.B)
		}
	}
	for l, layer := range m.perExampleLayers() {
		layer.AccumulateWeighted(w[l], &m.batch)
	}
	m.flushGrads()
	return nil
}

// AccumulateWeighted adds Σ_i w[i]·∇_θ loss_i to Grads, for the batch of the last
// PerExampleNorms call: one multiply per layer, no per-example gradient vectors.
func (m *Model) AccumulateWeighted(w []float64) error {
	if err := m.checkWeights(w); err != nil {
		return err
	}
	for _, l := range m.perExampleLayers() {
		l.AccumulateWeighted(w, &m.batch)
	}
	m.flushGrads()
	return nil
}

func (m *Model) checkWeights(w []float64) error {
	if !m.batch.Ghost {
		return fmt.Errorf("model: AccumulateWeighted needs a preceding PerExampleNorms")
	}
	if len(w) != m.batch.B {
		return fmt.Errorf("model: %d weights for a batch of %d examples", len(w), m.batch.B)
	}
	return nil
}

// AccumulateWeightedStep is DP-SGD's step after PerExampleNorms: it applies opt to the
// gradient Σ_i w[i]·∇_θ loss_i + std·z, where z (as long as Params) holds standard normal
// draws, which it zeroes. The new Params are those of clearing Grads, AccumulateWeighted,
// adding std·z and Step(opt), to the bit. A Float32 model stepped by plain SGD (no
// momentum) forms no float64 gradients, as in TrainStep: one pass reads the float32 ones,
// adds the noise and updates (linalg.DescendDrainNoise), and Grads is left unspecified;
// otherwise Grads holds the noised gradient.
func (m *Model) AccumulateWeightedStep(w []float64, opt Optimizer, std float64, z []float64) error {
	if err := m.checkWeights(w); err != nil {
		return err
	}
	if len(z) != len(m.Params) {
		return fmt.Errorf("model: %d noise draws for %d parameters", len(z), len(m.Params))
	}
	s, ok := opt.(noiseStepper)
	n := m.low(false)
	if !ok || n == nil || !s.drains() {
		m.ZeroGrads()
		if err := m.AccumulateWeighted(w); err != nil {
			return err
		}
		linalg.AxpyClear(std, z, m.Grads)
		m.Step(opt)
		return nil
	}
	for _, l := range m.perExampleLayers() {
		l.AccumulateWeighted(w, &m.batch)
	}
	s.stepDrainNoise(m.Params, n.grads, z, std, n.params)
	n.fresh, n.stale = true, true
	return nil
}
