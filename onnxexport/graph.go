package onnxexport

import (
	"fmt"

	"github.com/advancedclimatesystems/gonnx/onnx"
)

// ONNX element types (TensorProto.DataType).
const (
	elemFloat = int32(onnx.TensorProto_FLOAT)
	elemInt64 = int32(onnx.TensorProto_INT64)
)

// graph accumulates the nodes and initializers of one ONNX graph. Every value gets a
// fresh name, so the nodes are in topological order as they are added.
type graph struct {
	nodes  []*onnx.NodeProto
	inits  []*onnx.TensorProto
	n      int
	consts map[float64]string // scalar initializers by value
}

// name returns a fresh value name with the given prefix.
func (g *graph) name(prefix string) string {
	g.n++
	return fmt.Sprintf("%s_%d", prefix, g.n)
}

// op adds a node of one output and returns the output's name.
func (g *graph) op(opType string, inputs []string, attrs ...*onnx.AttributeProto) string {
	return g.opN(opType, inputs, 1, attrs...)[0]
}

// opN adds a node with n outputs and returns their names.
func (g *graph) opN(opType string, inputs []string, n int, attrs ...*onnx.AttributeProto) []string {
	outs := make([]string, n)
	for i := range outs {
		outs[i] = g.name(opType)
	}
	g.nodes = append(g.nodes, &onnx.NodeProto{
		OpType: opType, Name: outs[0], Input: inputs, Output: outs, Attribute: attrs,
	})
	return outs
}

// rename gives value the name out, in the node that produces it and in those that read it:
// graph outputs have fixed names.
func (g *graph) rename(value, out string) {
	found := false
	for _, nd := range g.nodes {
		for _, names := range [][]string{nd.Input, nd.Output} {
			for i, n := range names {
				if n == value {
					names[i] = out
					found = true
				}
			}
		}
	}
	if !found {
		panic("onnxexport: rename of a value no node produces: " + value)
	}
}

// floats adds a float32 initializer of the given shape holding v rounded to float32.
func (g *graph) floats(prefix string, v []float64, dims ...int) string {
	checkSize(len(v), dims)
	d := make([]float32, len(v))
	for i, x := range v {
		d[i] = float32(x)
	}
	name := g.name(prefix)
	g.inits = append(g.inits, &onnx.TensorProto{Name: name, DataType: elemFloat, Dims: int64s(dims), FloatData: d})
	return name
}

// scalar returns a one-element float32 initializer holding v (shape [1]: it broadcasts
// against any tensor), adding it the first time v is asked for.
func (g *graph) scalar(prefix string, v float64) string {
	if name, ok := g.consts[v]; ok {
		return name
	}
	if g.consts == nil {
		g.consts = make(map[float64]string)
	}
	name := g.floats(prefix, []float64{v}, 1)
	g.consts[v] = name
	return name
}

// ints adds a 1-D int64 initializer.
func (g *graph) ints(prefix string, v ...int64) string {
	name := g.name(prefix)
	g.inits = append(g.inits, &onnx.TensorProto{Name: name, DataType: elemInt64, Dims: []int64{int64(len(v))}, Int64Data: v})
	return name
}

func checkSize(n int, dims []int) {
	want := 1
	for _, d := range dims {
		want *= d
	}
	if n != want {
		panic(fmt.Sprintf("onnxexport: %d values for a tensor of shape %v", n, dims))
	}
}

func int64s(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func attrInt(name string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INT, I: v}
}

func attrInts(name string, v ...int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_INTS, Ints: v}
}

func attrStrings(name string, v ...string) *onnx.AttributeProto {
	b := make([][]byte, len(v))
	for i, s := range v {
		b[i] = []byte(s)
	}
	return &onnx.AttributeProto{Name: name, Type: onnx.AttributeProto_STRINGS, Strings: b}
}

// Elementwise and shape helpers, one ONNX node each.

func (g *graph) add(a, b string) string { return g.op("Add", []string{a, b}) }
func (g *graph) sub(a, b string) string { return g.op("Sub", []string{a, b}) }
func (g *graph) mul(a, b string) string { return g.op("Mul", []string{a, b}) }
func (g *graph) div(a, b string) string { return g.op("Div", []string{a, b}) }
func (g *graph) relu(a string) string   { return g.op("Relu", []string{a}) }
func (g *graph) matmul(a, b string) string {
	return g.op("MatMul", []string{a, b})
}
func (g *graph) transpose(a string, perm ...int64) string {
	return g.op("Transpose", []string{a}, attrInts("perm", perm...))
}

// reshape reshapes a to shape (0 keeps the input's dimension, −1 infers one).
func (g *graph) reshape(a string, shape ...int64) string {
	return g.op("Reshape", []string{a, g.ints("shape", shape...)})
}

func (g *graph) unsqueeze(a string, axes ...int64) string {
	return g.op("Unsqueeze", []string{a, g.ints("axes", axes...)})
}

func (g *graph) squeeze(a string, axes ...int64) string {
	return g.op("Squeeze", []string{a, g.ints("axes", axes...)})
}

// slice takes [start, end) of axis; end is a 1-D int64 value (a dynamic length).
func (g *graph) slice(a string, start int64, end string, axis int64) string {
	return g.op("Slice", []string{a, g.ints("starts", start), end, g.ints("axes", axis)})
}

// sliceConst takes [start, end) of axis.
func (g *graph) sliceConst(a string, start, end, axis int64) string {
	return g.slice(a, start, g.ints("ends", end), axis)
}

// toFloat casts a to float32.
func (g *graph) toFloat(a string) string {
	return g.op("Cast", []string{a}, attrInt("to", int64(elemFloat)))
}
