package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Model types accepted in specs.
const (
	TypeMLP = "mlp"
)

// Spec declares a model's architecture. A federation ships it to clients so they build the
// same model; model files store it beside the parameters.
type Spec struct {
	Type string `json:"type" yaml:"type"`
	// Input is the number of input features (mlp).
	Input int `json:"input,omitempty" yaml:"input,omitempty"`
	// Hidden lists the hidden layer widths (mlp).
	Hidden []int `json:"hidden,omitempty" yaml:"hidden,omitempty"`
	// Output is the number of classes (or regression outputs).
	Output int `json:"output" yaml:"output"`
	// Activation is relu (default), gelu, tanh or sigmoid.
	Activation string `json:"activation,omitempty" yaml:"activation,omitempty"`
	// Dropout is the drop probability after each hidden activation (0 disables).
	Dropout float64 `json:"dropout,omitempty" yaml:"dropout,omitempty"`
	// Init is he or xavier; empty picks he for relu/gelu and xavier for tanh/sigmoid.
	Init string `json:"init,omitempty" yaml:"init,omitempty"`
	// Loss is cross_entropy (default) or mse.
	Loss string `json:"loss,omitempty" yaml:"loss,omitempty"`
}

// ParseSpec reads a spec from YAML or JSON. Unknown keys are errors.
func ParseSpec(data []byte) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("model spec: %w", err)
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// JSON returns the spec's canonical JSON encoding.
func (s Spec) JSON() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Spec always marshals
	}
	return b
}

// withDefaults fills the fields left empty.
func (s Spec) withDefaults() Spec {
	if s.Activation == "" {
		s.Activation = ActReLU
	}
	if s.Init == "" {
		switch s.Activation {
		case ActTanh, ActSigmoid:
			s.Init = InitXavier
		default:
			s.Init = InitHe
		}
	}
	if s.Loss == "" {
		s.Loss = LossCrossEntropy
	}
	return s
}

// Validate checks the spec, naming the field and the fix on error.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("model spec: "+format, a...)) }
	s = s.withDefaults()
	switch s.Type {
	case TypeMLP:
		if s.Input <= 0 {
			bad("input = %d: must be the number of input features (> 0)", s.Input)
		}
		for i, h := range s.Hidden {
			if h <= 0 {
				bad("hidden[%d] = %d: layer widths must be > 0", i, h)
			}
		}
	case "":
		bad("type is missing (use mlp)")
	default:
		bad("type %q unknown (use mlp)", s.Type)
	}
	if s.Output <= 0 {
		bad("output = %d: must be the number of classes or outputs (> 0)", s.Output)
	}
	if _, err := NewActivation(s.Activation); err != nil {
		bad("activation: %v", err)
	}
	if s.Dropout < 0 || s.Dropout >= 1 {
		bad("dropout = %v: must be in [0, 1)", s.Dropout)
	}
	if s.Init != InitHe && s.Init != InitXavier {
		bad("init %q unknown (use he or xavier)", s.Init)
	}
	if _, err := newLoss(s.Loss); err != nil {
		bad("loss: %v", err)
	}
	if s.Loss == LossCrossEntropy && s.Output < 2 {
		bad("output = %d: cross_entropy needs at least 2 classes", s.Output)
	}
	return errors.Join(errs...)
}

// build returns the layers of the spec (which must be valid).
func (s Spec) build() ([]Layer, error) {
	s = s.withDefaults()
	var layers []Layer
	switch s.Type {
	case TypeMLP:
		in := s.Input
		for _, h := range s.Hidden {
			layers = append(layers, NewLinear(in, h, s.Init))
			act, err := NewActivation(s.Activation)
			if err != nil {
				return nil, err
			}
			layers = append(layers, act)
			if s.Dropout > 0 {
				layers = append(layers, &Dropout{P: s.Dropout})
			}
			in = h
		}
		// The output layer feeds a softmax: Xavier suits it whatever the hidden activation.
		layers = append(layers, NewLinear(in, s.Output, InitXavier))
	}
	return layers, nil
}
