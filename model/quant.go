package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"

	"github.com/confide-fl/confide/internal/linalg"
)

// Precisions of a model's weights.
const (
	PrecisionFloat64 = "float64"
	PrecisionInt8    = "int8"
)

// Activation quantisation of an int8 model (Quantization.Activations).
const (
	// ActivationsDynamic quantises each row of activations with its own scale,
	// max|x_row|/127, computed as the row arrives (PyTorch's dynamic quantisation): no
	// calibration, no clipping.
	ActivationsDynamic = "dynamic"
	// ActivationsStatic quantises the activations a weight tensor multiplies with one fixed
	// scale chosen on a calibration set (a high percentile of the rows' max|x|), clamping
	// larger values.
	ActivationsStatic = "static"
)

// Quantization describes a model quantised after training (Model.Quantize): every weight
// tensor (WeightTensors: Linear layers, attention projections, recurrent W_ih and W_hh,
// embeddings) stored as int8 values with one float32 scale per output channel, symmetric
// (weight = scale·value, value in [−127, 127]; Jacob et al. 2018, per-channel as Krishnamoorthi
// 2018 recommends). Biases, LayerNorm and position tables stay float64. The model's
// parameter vector holds the dequantised weights, so everything that reads parameters sees
// the quantised model; Forward multiplies Linear and recurrent weights in int8 (the
// linalg.MulQ kernels), with activations quantised per Activations; embeddings are looked
// up from the dequantised table. A Quantization is immutable once made; clones share it.
type Quantization struct {
	// Precision is PrecisionInt8.
	Precision string `json:"precision"`
	// Activations is ActivationsDynamic or ActivationsStatic.
	Activations string `json:"activations"`
	// Tensors are the quantised weight tensors, in parameter-vector order.
	Tensors []QuantizedTensor `json:"tensors"`
}

// QuantizedTensor is one weight tensor in int8.
type QuantizedTensor struct {
	WeightTensor
	// ActScale is the static scale of the activations the tensor multiplies (0: dynamic, or
	// an embedding, which multiplies nothing).
	ActScale float64 `json:"act_scale,omitempty"`
	// Scales hold a scale per channel and Values the Rows×Cols values, row-major: weight
	// (r, c) is Scales[channel]·Values[r·Cols+c].
	Scales []float32 `json:"-"`
	Values []int8    `json:"-"`

	kernel *quantKernel // the layout MulQ reads; nil for embeddings
}

// multiplies reports whether the tensor's layer multiplies activations by it (Linear,
// recurrent) rather than looking rows up (Embedding).
func (t *QuantizedTensor) multiplies() bool { return !t.ChannelRows }

// quantKernel is a weight tensor laid out for linalg.MulQ: channel j's values widened to
// int16 at w[j·kpad:], zero-padded, and its scale in s[j].
type quantKernel struct {
	n, k, kpad int
	w          []int16
	s          []float64
	act        float64 // static activation scale, 0 for dynamic
}

func newQuantKernel(t *QuantizedTensor) *quantKernel {
	k, n := t.Rows, t.Cols
	kp := linalg.PaddedDepth(k)
	np := linalg.PaddedChannels(n)
	q := &quantKernel{n: n, k: k, kpad: kp, w: make([]int16, np*kp), s: make([]float64, np), act: t.ActScale}
	for j := range n {
		q.s[j] = float64(t.Scales[j])
		for p := range k {
			q.w[j*kp+p] = int16(t.Values[p*n+j])
		}
	}
	return q
}

// quantScratch is a layer's buffers for quantised activations.
type quantScratch struct {
	xq []int16
	xs []float64
}

func (s *quantScratch) grow(rows, kpad int) {
	if cap(s.xq) < rows*kpad {
		s.xq = make([]int16, rows*kpad)
	}
	s.xq = s.xq[:rows*kpad]
	if cap(s.xs) < rows {
		s.xs = make([]float64, rows)
	}
	s.xs = s.xs[:rows]
}

// mul sets dst (rows × q.n, row stride ldd) = x (rows × q.k) · W, or adds it with acc,
// quantising x's rows into s.
func (q *quantKernel) mul(dst []float64, ldd int, x []float64, rows int, s *quantScratch, acc bool) {
	s.grow(rows, q.kpad)
	linalg.QuantizeRows(s.xq, s.xs, x, rows, q.k, q.kpad, q.act)
	linalg.MulQ(dst, ldd, s.xq, s.xs, q.w, q.s, rows, q.n, q.kpad, acc)
}

// quantLayer is a layer that multiplies by weight tensors in int8 once bound.
type quantLayer interface {
	// bindQuant gives the layer, whose parameters start at off, the kernels of its tensors
	// (by offset), or removes them (nil map).
	bindQuant(off int, byOffset map[int]*QuantizedTensor)
	// observeActivations makes the next Forwards record the activations each weight tensor
	// multiplies into obs (by the tensor's offset), or stops it (nil map).
	observeActivations(off int, obs map[int]*actObserver)
}

var (
	_ quantLayer = (*Linear)(nil)
	_ quantLayer = (*Recurrent)(nil)
	_ quantLayer = (*Sequential)(nil)
)

// walkQuant calls f on the quantLayers among layers, whose parameters start at off.
func walkQuant[F linalg.Float](off int, layers []LayerOf[F], f func(l quantLayer, off int)) {
	for _, l := range layers {
		p, ok := l.(ParamLayerOf[F])
		if !ok {
			continue
		}
		if q, ok := l.(quantLayer); ok {
			f(q, off)
		}
		off += p.NumParams()
	}
}

func (l *LinearOf[F]) bindQuant(off int, by map[int]*QuantizedTensor) {
	l.q = nil
	if t, ok := by[off]; ok {
		l.q = t.kernel
	}
}

func (l *LinearOf[F]) observeActivations(off int, obs map[int]*actObserver) { l.obs = obs[off] }

func (r *RecurrentOf[F]) bindQuant(off int, by map[int]*QuantizedTensor) {
	r.qih, r.qhh = nil, nil
	if t, ok := by[off]; ok {
		r.qih = t.kernel
	}
	if t, ok := by[off+r.In*r.numGates()*r.Hidden]; ok {
		r.qhh = t.kernel
	}
}

func (r *RecurrentOf[F]) observeActivations(off int, obs map[int]*actObserver) {
	r.obsX, r.obsH = obs[off], obs[off+r.In*r.numGates()*r.Hidden]
}

func (s *SequentialOf[F]) bindQuant(off int, by map[int]*QuantizedTensor) {
	walkQuant(off, s.Layers, func(l quantLayer, off int) { l.bindQuant(off, by) })
}

func (s *SequentialOf[F]) observeActivations(off int, obs map[int]*actObserver) {
	walkQuant(off, s.Layers, func(l quantLayer, off int) { l.observeActivations(off, obs) })
}

// actObserver records the largest |x| of every row of activations a tensor multiplies.
type actObserver struct{ rowMax []float64 }

// observe records the rows of x (rows×cols) in o.
func observe[F linalg.Float](o *actObserver, x []F, rows, cols int) {
	for i := range rows {
		mx := 0.0
		for _, v := range x[i*cols : (i+1)*cols] {
			mx = max(mx, math.Abs(float64(v)))
		}
		o.rowMax = append(o.rowMax, mx)
	}
}

// scale is the static scale for the observed rows: the percentile p of their maxima,
// over 127.
func (o *actObserver) scale(p float64) float64 {
	if len(o.rowMax) == 0 {
		return 0
	}
	v := slices.Clone(o.rowMax)
	sort.Float64s(v)
	return v[min(len(v)-1, int(math.Ceil(p/100*float64(len(v))))-1)] / 127
}

// Quantization returns the model's quantisation, nil for a float64 model.
func (m *Model) Quantization() *Quantization { return m.quant }

// Precision is the number format of the model's weights: PrecisionFloat64 or PrecisionInt8.
func (m *Model) Precision() string {
	if m.quant != nil {
		return m.quant.Precision
	}
	return PrecisionFloat64
}

// QuantizeOptions configure Model.Quantize.
type QuantizeOptions struct {
	// Calibration, when not empty, selects static activation scales: the model is run on
	// these batches (with its weights already quantised) and every tensor's activation
	// scale set from what it multiplied. Empty: dynamic activations.
	Calibration []*Input
	// Percentile of the rows' max|x| a static scale covers (default 99.99): the rare rows
	// beyond it are clamped instead of coarsening every other row.
	Percentile float64
}

// DefaultCalibrationPercentile is QuantizeOptions.Percentile's default.
const DefaultCalibrationPercentile = 99.99

// Quantize quantises the model's weight tensors to int8 (see Quantization): each channel's
// scale is its largest |weight|/127 (rounded to float32), each value the nearest integer.
// The parameter vector then holds the dequantised weights, and Forward runs the int8
// kernels. A model is quantised once; pruned weights stay exactly zero.
func (m *Model) Quantize(o QuantizeOptions) error {
	if m.quant != nil {
		return errors.New("model: the model is already quantised")
	}
	if o.Percentile == 0 {
		o.Percentile = DefaultCalibrationPercentile
	}
	if !(o.Percentile > 0 && o.Percentile <= 100) {
		return fmt.Errorf("model: calibration percentile %v: must be in (0, 100]", o.Percentile)
	}
	ws := m.WeightTensors()
	if len(ws) == 0 {
		return errors.New("model: the model has no weight tensors to quantise")
	}
	q := &Quantization{Precision: PrecisionInt8, Activations: ActivationsDynamic, Tensors: make([]QuantizedTensor, len(ws))}
	for i, w := range ws {
		t := &q.Tensors[i]
		t.WeightTensor = w
		t.Scales = make([]float32, w.Channels())
		t.Values = make([]int8, w.Size())
		vals := m.Params[w.Offset : w.Offset+w.Size()]
		channel := func(r, c int) int {
			if w.ChannelRows {
				return r
			}
			return c
		}
		mx := make([]float64, w.Channels())
		for r := range w.Rows {
			for c := range w.Cols {
				ch := channel(r, c)
				mx[ch] = max(mx[ch], math.Abs(vals[r*w.Cols+c]))
			}
		}
		for ch, v := range mx {
			t.Scales[ch] = float32(v / 127)
		}
		for r := range w.Rows {
			for c := range w.Cols {
				k := r*w.Cols + c
				s := float64(t.Scales[channel(r, c)])
				if s == 0 {
					vals[k] = 0
					continue
				}
				v := math.Round(min(max(vals[k]/s, -127), 127))
				t.Values[k] = int8(v)
				vals[k] = v * s
			}
		}
	}
	m.setQuant(q)
	if len(o.Calibration) > 0 {
		if err := m.calibrate(o.Calibration, o.Percentile); err != nil {
			m.setQuant(nil)
			return err
		}
	}
	return nil
}

// calibrate runs the batches and sets every multiplying tensor's static activation scale.
func (m *Model) calibrate(batches []*Input, percentile float64) error {
	obs := map[int]*actObserver{}
	for i := range m.quant.Tensors {
		if t := &m.quant.Tensors[i]; t.multiplies() {
			obs[t.Offset] = &actObserver{}
		}
	}
	walkQuant(0, m.layers, func(l quantLayer, off int) { l.observeActivations(off, obs) })
	defer walkQuant(0, m.layers, func(l quantLayer, off int) { l.observeActivations(off, nil) })
	for k, in := range batches {
		if _, err := m.Forward(in); err != nil {
			return fmt.Errorf("model: calibration batch %d: %w", k, err)
		}
	}
	q := &Quantization{Precision: m.quant.Precision, Activations: ActivationsStatic, Tensors: slices.Clone(m.quant.Tensors)}
	for i := range q.Tensors {
		t := &q.Tensors[i]
		if !t.multiplies() {
			continue
		}
		s := obs[t.Offset].scale(percentile)
		if !(s > 0) {
			return fmt.Errorf("model: calibration: the activations of %s were all zero: calibrate on other data", t.Name)
		}
		t.ActScale = s
	}
	m.setQuant(q)
	return nil
}

// setQuant attaches q (nil: none) and binds its kernels to the layers.
func (m *Model) setQuant(q *Quantization) {
	m.quant = q
	m.paramsChanged() // Quantize wrote the dequantised weights
	var by map[int]*QuantizedTensor
	if q != nil {
		by = map[int]*QuantizedTensor{}
		for i := range q.Tensors {
			t := &q.Tensors[i]
			if t.multiplies() {
				t.kernel = newQuantKernel(t)
			}
			by[t.Offset] = t
		}
	}
	walkQuant(0, m.layers, func(l quantLayer, off int) { l.bindQuant(off, by) })
}

// bindShared attaches q, whose kernels are already built (a clone's), to the layers.
func (m *Model) bindShared(q *Quantization) {
	m.quant = q
	by := map[int]*QuantizedTensor{}
	for i := range q.Tensors {
		by[q.Tensors[i].Offset] = &q.Tensors[i]
	}
	walkQuant(0, m.layers, func(l quantLayer, off int) { l.bindQuant(off, by) })
}

// ParamBytes is the size of the parameters in the model's file: 8 bytes a float64
// parameter; for an int8 model, per quantised tensor a float32 scale a channel and a byte a
// value, and 8 bytes for every other parameter; the parameters a mask prunes are left out
// (version 3).
func (m *Model) ParamBytes() int64 {
	pruned := func(lo, hi int) int64 {
		if m.Spec.Mask == nil {
			return 0
		}
		return int64(m.Spec.Mask.countRange(lo, hi))
	}
	n := len(m.Params)
	if m.quant == nil {
		return 8 * (int64(n) - pruned(0, n))
	}
	var b, covered, coveredPruned int64
	for _, t := range m.quant.Tensors {
		p := pruned(t.Offset, t.Offset+t.Size())
		b += 4*int64(t.Channels()) + int64(t.Size()) - p
		covered += int64(t.Size())
		coveredPruned += p
	}
	return b + 8*(int64(n)-covered-(pruned(0, n)-coveredPruned))
}

// checkQuantization validates a file's quantisation table against the model of spec
// (built, unquantised): known precision and activation mode, every tensor one of the
// model's weight tensors with its geometry, in order, each once; finite non-negative
// scales.
func (m *Model) checkQuantization(q *Quantization) error {
	if q.Precision != PrecisionInt8 {
		return fmt.Errorf("quantization.precision %q unknown (this build reads %s)", truncate(q.Precision), PrecisionInt8)
	}
	if q.Activations != ActivationsDynamic && q.Activations != ActivationsStatic {
		return fmt.Errorf("quantization.activations %q unknown (use %s or %s)", truncate(q.Activations), ActivationsDynamic, ActivationsStatic)
	}
	ws := m.WeightTensors()
	byOffset := map[int]WeightTensor{}
	for _, w := range ws {
		byOffset[w.Offset] = w
	}
	if len(q.Tensors) > len(ws) {
		return fmt.Errorf("quantization lists %d tensors; the model has %d weight tensors", len(q.Tensors), len(ws))
	}
	last := -1
	for i, t := range q.Tensors {
		w, ok := byOffset[t.Offset]
		if !ok || w.Rows != t.Rows || w.Cols != t.Cols || w.ChannelRows != t.ChannelRows || t.Offset <= last {
			return fmt.Errorf("quantization.tensors[%d] (offset %d, %d×%d) is not the next weight tensor of the model", i, t.Offset, t.Rows, t.Cols)
		}
		last = t.Offset
		if math.IsNaN(t.ActScale) || math.IsInf(t.ActScale, 0) || t.ActScale < 0 {
			return fmt.Errorf("quantization.tensors[%d].act_scale = %v: must be finite and ≥ 0", i, t.ActScale)
		}
		if q.Activations == ActivationsStatic && !t.ChannelRows && t.ActScale == 0 {
			return fmt.Errorf("quantization.tensors[%d].act_scale is 0 with static activations", i)
		}
		if len(t.Name) > maxNameBytes {
			return fmt.Errorf("quantization.tensors[%d].name is longer than %d bytes", i, maxNameBytes)
		}
	}
	return nil
}

// checkSizes checks, before the model is built, that a file's quantised data of have bytes
// holds the tensors the table lists and the other parameters of n: every tensor within n
// values, their sizes adding up to at most n.
func (q *Quantization) checkSizes(n uint64, mask *Mask, have int) error {
	var covered, coveredPruned, bytes uint64
	pruned := func(lo, hi uint64) uint64 {
		if mask == nil {
			return 0
		}
		return uint64(mask.countRange(int(lo), int(hi)))
	}
	for i, t := range q.Tensors {
		if t.Rows <= 0 || t.Cols <= 0 || uint64(t.Rows) > n || uint64(t.Cols) > n || t.Offset < 0 || uint64(t.Offset) > n {
			return fmt.Errorf("quantization.tensors[%d] is %d×%d at %d, not a tensor of a model of %d parameters", i, t.Rows, t.Cols, t.Offset, n)
		}
		hi, size := bits64Mul(uint64(t.Rows), uint64(t.Cols))
		if hi != 0 || size > n || covered+size > n || uint64(t.Offset)+size > n {
			return fmt.Errorf("quantization.tensors cover more than the %d parameters", n)
		}
		p := pruned(uint64(t.Offset), uint64(t.Offset)+size)
		covered += size
		coveredPruned += p
		bytes += 4*uint64(t.WeightTensor.Channels()) + size - p
	}
	bytes += 8 * (n - covered - (pruned(0, n) - coveredPruned))
	if bytes != uint64(have) {
		return fmt.Errorf("the quantised parameters need %d bytes, the file holds %d", bytes, have)
	}
	return nil
}

// readQuantized reads the tensors' scales and values from r (checked by checkSizes and
// checkQuantization), writes the dequantised weights into m.Params, and returns the rest
// of r: the other parameters.
func (m *Model) readQuantized(q *Quantization, mask *Mask, r []byte) ([]byte, error) {
	ws := map[int]WeightTensor{}
	for _, w := range m.WeightTensors() {
		ws[w.Offset] = w
	}
	for i := range q.Tensors {
		t := &q.Tensors[i]
		t.WeightTensor = ws[t.Offset] // the model's own names
		t.Scales = make([]float32, t.Channels())
		for c := range t.Scales {
			s := math.Float32frombits(binary.LittleEndian.Uint32(r[4*c:]))
			if !(s >= 0) || math.IsInf(float64(s), 0) {
				return nil, fmt.Errorf("quantization.tensors[%d]: scale %d is %v: must be finite and ≥ 0", i, c, s)
			}
			t.Scales[c] = s
		}
		r = r[4*len(t.Scales):]
		t.Values = make([]int8, t.Size())
		dst := m.Params[t.Offset : t.Offset+t.Size()]
		read := 0
		for k := range t.Values {
			if mask != nil && mask.IsPruned(t.Offset+k) {
				continue // a pruned weight: zero, not stored
			}
			v := int8(r[read])
			read++
			if v == -128 {
				return nil, fmt.Errorf("quantization.tensors[%d]: value %d is −128, outside the symmetric range [−127, 127]", i, k)
			}
			t.Values[k] = v
			ch := k % t.Cols
			if t.ChannelRows {
				ch = k / t.Cols
			}
			dst[k] = float64(v) * float64(t.Scales[ch])
		}
		r = r[read:]
	}
	return r, nil
}

// covers reports whether parameter i belongs to a quantised tensor (Tensors are in
// increasing offset order).
func (q *Quantization) covers(i int) bool {
	k := sort.Search(len(q.Tensors), func(k int) bool { return q.Tensors[k].Offset+q.Tensors[k].Size() > i })
	return k < len(q.Tensors) && q.Tensors[k].Offset <= i
}

func bits64Mul(a, b uint64) (hi, lo uint64) { return bits.Mul64(a, b) }
