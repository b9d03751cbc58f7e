// Package onnxexport writes a Confide model as an ONNX graph (opset 13, IR version 7), so
// that runtimes outside Confide (onnxruntime, gonnx, …) can run it. It covers every model
// type a spec declares — mlp, rnn, lstm, gru and transformer — by lowering the model's
// layers one by one; the protobuf types are gonnx's (github.com/advancedclimatesystems/gonnx/onnx).
//
// The graph's contract:
//
//	mlp            input   float32 [batch, features]  (raw features when Options.Normalize
//	                                                  puts the file's mean/std in the graph)
//	rnn/lstm/gru,  tokens  int64   [batch, seq]
//	transformer    lengths int64   [batch]            classifiers only: the valid prefix of
//	                                                  each row, the rest being padding
//	outputs        logits, probabilities (softmax)     cross_entropy models
//	               output                              mse models
//	               [batch, classes], or [batch, seq, vocab] for next_token models
//
// Invariants:
//   - The model is only read. Its parameters are written as float32 initializers, in the
//     layout of the ONNX operators; a quantised model's are its dequantised weights and a
//     pruned model's pruned weights are zeros, so the graph computes the float forward pass
//     of the weights the file holds (not Confide's int8 kernels).
//   - Outputs equal model.Forward's to float32 rounding: the tests run every model type
//     in gonnx and compare with Confide's forward pass to 1e-5.
//   - Padding: a classifier pools only the first lengths[i] positions of row i and its
//     (non-causal) attention ignores keys beyond them, as Confide does with Input.Lengths.
//     Padding is a suffix, so the recurrent operators (run without sequence_lens) and causal
//     attention give the same outputs at valid positions whatever follows; a next_token
//     model's outputs past a row's end are meaningless and it takes no lengths.
//
// Operators: Gemm, MatMul, Add, Sub, Mul, Div, Relu, Tanh, Sigmoid, Abs, Gather (embedding;
// an mlp's embedded categorical columns too, each table with a zero row appended that the
// index −1 of a missing category selects), Concat, Slice, Shape, Cast, Reshape, Transpose, Squeeze, Unsqueeze, Softmax, RNN, LSTM, GRU (one
// direction; Confide's gate orders i,f,g,o and r,z,n become ONNX's i,o,f,c and z,r,h; the GRU
// with linear_before_reset = 1, PyTorch's form), Asinh, Cosh, Sinh. gonnx v1.1 implements
// opset 13 without Exp, Log, Sqrt, Erf, ReduceMean, Where or Less, so the graph builds them
// from the operators it has (math.go): LayerNorm's mean as a product with a column of 1/d and
// its 1/√(σ²+ε) as e^{−ln(v)/2}, ln v = asinh((v − 1/v)/2) and e^w = (cosh + sinh)(relu(w)) /
// (cosh + sinh)(relu(−w)), both exact up to rounding; GELU's erf by Abramowitz & Stegun
// 7.1.26 (|error| ≤ 1.5e-7); masks from lengths by relu and min(a, 1) = a − relu(a − 1) on
// whole numbers. Attention is MatMul, a causal mask (−1e9 after the diagonal) or a key
// mask from lengths, and Softmax. Position tables, and the positions 0 … seq−1 that masks
// are computed from (gonnx has no Range), are constants of max_len rows sliced to seq, so a
// graph accepts sequences up to the spec's max_len (a recurrent classifier without one: the
// Options.MaxLen, else the tokenizer's, else DefaultMaxLen).
//
// Not exportable (ErrUnsupported): an mlp with a feature stage (the scattering transform).
//
// Metadata: the ONNX model's metadata_props carry the spec, class names, input
// normalisation, tokenizer (with its vocabulary) and provenance as JSON under confide.*.
package onnxexport
