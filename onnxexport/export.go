package onnxexport

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/model"
)

// Opset is the ONNX operator set of every exported graph: 13, the one gonnx implements.
const Opset = 13

// irVersion is the ONNX IR version that introduced opset 13 (ONNX 1.8).
const irVersion = 7

// DefaultMaxLen is the longest sequence a recurrent classifier accepts after export when
// neither its spec, Options.MaxLen nor its tokenizer sets one: pooling needs a table of
// positions.
const DefaultMaxLen = 4096

// Names of the graph's inputs and outputs.
const (
	InputFeatures = "input"   // mlp: float32 [batch, features]
	InputTokens   = "tokens"  // sequence models: int64 [batch, seq]
	InputLengths  = "lengths" // sequence classifiers: int64 [batch], valid prefix of each row
	OutputLogits  = "logits"  // cross_entropy models: the scores Confide's Forward returns
	OutputProbs   = "probabilities"
	OutputValues  = "output" // mse models: the regression outputs
)

// ErrUnsupported reports a model the exporter cannot express in ONNX.
var ErrUnsupported = errors.New("not exportable to ONNX")

// Options control an export. The zero value exports the graph of the model's layers as it is.
type Options struct {
	// Normalize puts an mlp's input normalisation (Meta.Input's mean and std) at the start
	// of the graph, so that it reads raw features, as 'confide model predict' does.
	Normalize bool
	// MaxLen bounds the sequences of a recurrent classifier whose spec sets no max_len (0:
	// the tokenizer's max_len, else DefaultMaxLen). Other models ignore it.
	MaxLen int
	// ProducerVersion is written as the ONNX model's producer_version (Confide's version).
	ProducerVersion string
}

// Dim is one dimension of a graph input or output: a fixed size, or a named dynamic one.
type Dim struct {
	Size  int
	Param string // batch, seq: set by the caller at run time
}

// MarshalJSON writes a fixed dimension as a number and a dynamic one as its name.
func (d Dim) MarshalJSON() ([]byte, error) {
	if d.Param != "" {
		return json.Marshal(d.Param)
	}
	return json.Marshal(d.Size)
}

func (d Dim) String() string {
	if d.Param != "" {
		return d.Param
	}
	return strconv.Itoa(d.Size)
}

// Tensor describes a graph input or output.
type Tensor struct {
	Name  string `json:"name"`
	Type  string `json:"type"` // float32 or int64
	Shape []Dim  `json:"shape"`
}

func (t Tensor) String() string {
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = d.String()
	}
	return fmt.Sprintf("%s %s[%s]", t.Name, t.Type, strings.Join(dims, ", "))
}

// Result is an exported model.
type Result struct {
	Model   *onnx.ModelProto
	Inputs  []Tensor
	Outputs []Tensor
	// Normalized says the graph applies the model file's input normalisation.
	Normalized bool
	// MaxLen is the longest sequence the graph accepts (0: unbounded).
	MaxLen int
}

// Marshal returns the ONNX protobuf encoding of the model, the contents of a .onnx file.
func (r *Result) Marshal() ([]byte, error) { return proto.Marshal(r.Model) }

// Export builds the ONNX graph of m: the layers of its spec with its parameters, which it
// reads and does not modify. A quantised or pruned model exports its dequantised float
// weights (the values in m.Params), rounded to float32.
func Export(m *model.Model, o Options) (*Result, error) {
	spec := m.Spec
	if m.Features() != nil {
		return nil, fmt.Errorf("onnxexport: %w: the model has a feature stage (%s), a transform ONNX export does not cover; export a model without one", ErrUnsupported, spec.Features)
	}
	l := &lowering{g: &graph{}, params: m.Params}
	res := &Result{}
	batch := Dim{Param: "batch"}
	var x val
	switch {
	case spec.Type == model.TypeMLP:
		x = val{name: InputFeatures, rank: 2}
		res.Inputs = []Tensor{{Name: InputFeatures, Type: "float32", Shape: []Dim{batch, {Size: spec.Input}}}}
		if in := m.Meta.Input; o.Normalize && in != nil && (len(in.Mean) > 0 || len(in.Std) > 0) {
			x.name = l.normalize(x.name, in, spec.Input)
			res.Normalized = true
		}
	case spec.IsSequence():
		l.tokens = InputTokens
		res.Inputs = []Tensor{{Name: InputTokens, Type: "int64", Shape: []Dim{batch, {Param: "seq"}}}}
		if spec.Task == model.TaskClassify {
			l.lengths = InputLengths
			res.Inputs = append(res.Inputs, Tensor{Name: InputLengths, Type: "int64", Shape: []Dim{batch}})
		}
		l.maxLen = spec.MaxLen
		if l.maxLen == 0 && spec.Task == model.TaskClassify { // the pooling weights need positions
			l.maxLen = o.MaxLen
			if tk := m.Meta.Tokenizer; l.maxLen == 0 && tk != nil {
				l.maxLen = tk.MaxLen
			}
			if l.maxLen == 0 {
				l.maxLen = DefaultMaxLen
			}
		}
		res.MaxLen = l.maxLen
	default:
		return nil, fmt.Errorf("onnxexport: %w: model type %q", ErrUnsupported, spec.Type)
	}
	y, err := l.walk(m.Layers(), x)
	if err != nil {
		return nil, err
	}
	if l.off != len(l.params) {
		return nil, fmt.Errorf("onnxexport: the layers used %d of the model's %d parameters", l.off, len(l.params))
	}
	outShape := []Dim{batch, {Size: spec.Output}}
	if spec.Task == model.TaskNextToken {
		outShape = []Dim{batch, {Param: "seq"}, {Size: spec.Output}}
	}
	if spec.Loss == model.LossCrossEntropy {
		l.g.rename(y.name, OutputLogits)
		l.g.rename(l.g.op("Softmax", []string{OutputLogits}, attrInt("axis", -1)), OutputProbs)
		res.Outputs = []Tensor{{Name: OutputLogits, Type: "float32", Shape: outShape}, {Name: OutputProbs, Type: "float32", Shape: outShape}}
	} else {
		l.g.rename(y.name, OutputValues)
		res.Outputs = []Tensor{{Name: OutputValues, Type: "float32", Shape: outShape}}
	}
	res.Model = &onnx.ModelProto{
		IrVersion:       irVersion,
		OpsetImport:     []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName:    "confide",
		ProducerVersion: o.ProducerVersion,
		DocString:       docString(spec, res),
		Graph: &onnx.GraphProto{
			Name:        "confide_" + spec.Type,
			Node:        l.g.nodes,
			Initializer: l.g.inits,
			Input:       valueInfos(res.Inputs),
			Output:      valueInfos(res.Outputs),
		},
		MetadataProps: metadata(m),
	}
	return res, nil
}

// docString says in words what the graph reads and returns.
func docString(spec model.Spec, res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Confide %s model", spec.Type)
	if spec.IsSequence() {
		fmt.Fprintf(&b, " (task %s)", spec.Task)
	}
	b.WriteString(". Inputs:")
	for _, t := range res.Inputs {
		fmt.Fprintf(&b, " %s;", t)
	}
	b.WriteString(" outputs:")
	for _, t := range res.Outputs {
		fmt.Fprintf(&b, " %s;", t)
	}
	switch {
	case spec.Task == model.TaskClassify:
		b.WriteString(" lengths[i] is the number of valid tokens of row i (a prefix; the rest is padding).")
	case spec.Task == model.TaskNextToken:
		b.WriteString(" Position t predicts token t+1; rows padded after a sequence's end give outputs that mean nothing (attention is causal, so padding never changes the outputs before it).")
	case res.Normalized:
		b.WriteString(" The graph normalises raw features with the model file's mean and std.")
	}
	return b.String()
}

// metadata carries what inference needs besides the graph: the spec, class names,
// tokenizer, input description and provenance, as JSON under confide.* keys.
func metadata(m *model.Model) []*onnx.StringStringEntryProto {
	var props []*onnx.StringStringEntryProto
	put := func(key string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // specs and Meta always marshal
		}
		props = append(props, &onnx.StringStringEntryProto{Key: "confide." + key, Value: string(b)})
	}
	spec := m.Spec
	spec.Mask = nil // the pruned parameters are zeros in the initializers
	put("spec", spec)
	if names := m.Meta.ClassNames; len(names) > 0 {
		put("class_names", names)
	}
	if m.Meta.Input != nil {
		put("input", m.Meta.Input)
	}
	if m.Meta.Tokenizer != nil {
		put("tokenizer", m.Meta.Tokenizer)
	}
	if m.Meta.Provenance != nil {
		put("provenance", m.Meta.Provenance)
	}
	return props
}

func valueInfos(ts []Tensor) []*onnx.ValueInfoProto {
	out := make([]*onnx.ValueInfoProto, len(ts))
	for i, t := range ts {
		elem := elemFloat
		if t.Type == "int64" {
			elem = elemInt64
		}
		dims := make([]*onnx.TensorShapeProto_Dimension, len(t.Shape))
		for j, d := range t.Shape {
			if d.Param != "" {
				dims[j] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}}
			} else {
				dims[j] = &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d.Size)}}
			}
		}
		out[i] = &onnx.ValueInfoProto{Name: t.Name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: elem, Shape: &onnx.TensorShapeProto{Dim: dims}},
		}}}
	}
	return out
}
