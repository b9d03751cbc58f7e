package model

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"gopkg.in/yaml.v3"
)

// Mask marks the parameters of a pruned model that are fixed at zero. It is part of the
// Spec, so it travels wherever the architecture does: in model files and in the spec a
// federation's server ships with every task, so a client fine-tuning a pruned model keeps
// its zeros zero (train.Trainer re-applies the mask after every optimizer step, with or
// without DP-SGD). New and Unmarshal apply it, so a pruned parameter always reads as zero.
//
// A Mask is immutable once made (specs share it); its JSON is
//
//	{"params": n, "pruned": k, "bits": "<base64>"}
//
// with bit i (bit i%8 of byte i/8) set when parameter i is pruned: n/6 bytes of spec for n
// parameters, 217 KB for the 1.3 M of the spam Transformer.
type Mask struct {
	n, pruned int
	bits      []uint64
}

// NewMask returns the mask of n parameters that prunes those for which pruned returns true.
func NewMask(n int, pruned func(i int) bool) *Mask {
	m := &Mask{n: n, bits: make([]uint64, (n+63)/64)}
	for i := range n {
		if pruned(i) {
			m.bits[i/64] |= 1 << (i % 64)
			m.pruned++
		}
	}
	return m
}

// Len is the number of parameters the mask covers.
func (m *Mask) Len() int { return m.n }

// Pruned is the number of pruned parameters.
func (m *Mask) Pruned() int { return m.pruned }

// IsPruned reports whether parameter i is pruned.
func (m *Mask) IsPruned(i int) bool { return m.bits[i/64]&(1<<(i%64)) != 0 }

// countRange is the number of pruned parameters in [lo, hi).
func (m *Mask) countRange(lo, hi int) int {
	n := 0
	for i := lo; i < hi; {
		if i%64 == 0 && i+64 <= hi {
			n += bits.OnesCount64(m.bits[i/64])
			i += 64
			continue
		}
		if m.IsPruned(i) {
			n++
		}
		i++
	}
	return n
}

// Apply sets the pruned entries of v (a parameter or gradient vector of Len values) to zero.
func (m *Mask) Apply(v []float64) {
	if len(v) != m.n {
		panic(fmt.Sprintf("model: mask of %d parameters applied to %d values", m.n, len(v)))
	}
	for w, word := range m.bits {
		for word != 0 {
			v[w*64+bits.TrailingZeros64(word)] = 0
			word &= word - 1
		}
	}
}

// union returns the mask pruning what m or o prunes (both of the same length; m may be nil).
func (m *Mask) union(o *Mask) *Mask {
	if m == nil {
		return o
	}
	u := &Mask{n: m.n, bits: slices.Clone(m.bits)}
	for i, w := range o.bits {
		u.bits[i] |= w
	}
	for _, w := range u.bits {
		u.pruned += bits.OnesCount64(w)
	}
	return u
}

type maskJSON struct {
	Params int    `json:"params" yaml:"params"`
	Pruned int    `json:"pruned" yaml:"pruned"`
	Bits   string `json:"bits" yaml:"bits"`
}

func (m *Mask) toJSON() maskJSON {
	b := make([]byte, (m.n+7)/8)
	for i := range b {
		b[i] = byte(m.bits[i/8] >> (8 * (i % 8)))
	}
	return maskJSON{Params: m.n, Pruned: m.pruned, Bits: base64.StdEncoding.EncodeToString(b)}
}

// fromJSON decodes and checks a mask: the bits hold exactly Params parameters (no bit set
// beyond them) and Pruned of them are set.
func (m *Mask) fromJSON(j maskJSON) error {
	if j.Params <= 0 {
		return fmt.Errorf("mask.params = %d: must be the model's parameter count (> 0)", j.Params)
	}
	want := (j.Params + 7) / 8
	if base64.StdEncoding.DecodedLen(len(j.Bits)) > want+2 {
		return fmt.Errorf("mask.bits holds more than the %d bytes of %d parameters", want, j.Params)
	}
	b, err := base64.StdEncoding.DecodeString(j.Bits)
	if err != nil {
		return fmt.Errorf("mask.bits: %v", err)
	}
	if len(b) != want {
		return fmt.Errorf("mask.bits holds %d bytes; %d parameters need %d", len(b), j.Params, want)
	}
	if r := j.Params % 8; r != 0 && b[len(b)-1]>>r != 0 {
		return errors.New("mask.bits marks parameters beyond mask.params")
	}
	*m = Mask{n: j.Params, bits: make([]uint64, (j.Params+63)/64)}
	for i, v := range b {
		m.bits[i/8] |= uint64(v) << (8 * (i % 8))
		m.pruned += bits.OnesCount8(v)
	}
	if m.pruned != j.Pruned {
		return fmt.Errorf("mask.pruned = %d but mask.bits marks %d parameters", j.Pruned, m.pruned)
	}
	return nil
}

// MarshalJSON encodes the mask as {"params", "pruned", "bits"}.
func (m *Mask) MarshalJSON() ([]byte, error) { return json.Marshal(m.toJSON()) }

// UnmarshalJSON decodes and checks a mask.
func (m *Mask) UnmarshalJSON(b []byte) error {
	var j maskJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("mask: %v", err)
	}
	return m.fromJSON(j)
}

// MarshalYAML encodes the mask as in JSON.
func (m *Mask) MarshalYAML() (any, error) { return m.toJSON(), nil }

// UnmarshalYAML decodes and checks a mask, refusing unknown keys.
func (m *Mask) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			switch k := n.Content[i].Value; k {
			case "params", "pruned", "bits":
			default:
				return fmt.Errorf("mask: unknown key %q (use params, pruned and bits)", k)
			}
		}
	}
	var j maskJSON
	if err := n.Decode(&j); err != nil {
		return fmt.Errorf("mask: %v", err)
	}
	return m.fromJSON(j)
}

// ApplyMask sets the parameters the spec's mask prunes to zero (nothing without a mask).
func (m *Model) ApplyMask() {
	if m.Spec.Mask != nil {
		m.Spec.Mask.Apply(m.Params)
		m.paramsChanged()
	}
}

// Pruning granularities of Prune.
const (
	PruneGlobal    = "global"     // one magnitude threshold over all weight tensors
	PrunePerTensor = "per-tensor" // each weight tensor to the target sparsity
)

// Prune sets the fraction sparsity of the model's weights (WeightTensors: biases, norms
// and position tables are left alone) with the smallest magnitudes to zero and records
// them in the spec's mask, together with any mask the model had: magnitude pruning (Han et
// al. 2015), with one threshold over all weight tensors (PruneGlobal) or each tensor pruned
// to sparsity on its own (PrunePerTensor; a layer's share cannot collapse). Ties break by
// position, so the result is deterministic.
func (m *Model) Prune(sparsity float64, granularity string) error {
	if !(sparsity >= 0 && sparsity < 1) {
		return fmt.Errorf("model: sparsity %v: must be in [0, 1)", sparsity)
	}
	if m.quant != nil {
		return errors.New("model: the model is quantised: prune the float64 model, then quantise it")
	}
	ws := m.WeightTensors()
	if len(ws) == 0 {
		return errors.New("model: the model has no weight tensors to prune")
	}
	var groups [][]WeightTensor
	switch granularity {
	case PruneGlobal:
		groups = [][]WeightTensor{ws}
	case PrunePerTensor:
		for _, w := range ws {
			groups = append(groups, []WeightTensor{w})
		}
	default:
		return fmt.Errorf("model: pruning granularity %q unknown (use %s or %s)", granularity, PruneGlobal, PrunePerTensor)
	}
	prune := make([]bool, len(m.Params))
	var idx []int
	for _, g := range groups {
		idx = idx[:0]
		for _, w := range g {
			for i := w.Offset; i < w.Offset+w.Size(); i++ {
				idx = append(idx, i)
			}
		}
		k := int(math.Round(sparsity * float64(len(idx))))
		slices.SortStableFunc(idx, func(a, b int) int {
			x, y := math.Abs(m.Params[a]), math.Abs(m.Params[b])
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		for _, i := range idx[:k] {
			prune[i] = true
		}
	}
	mask := NewMask(len(m.Params), func(i int) bool { return prune[i] })
	m.Spec.Mask = m.Spec.Mask.union(mask)
	m.ApplyMask()
	return nil
}
