// Package model owns Confide's neural networks: layers, models built from a declarative
// Spec, losses, initialisation, optimizers, per-example gradients for DP-SGD, and the model
// file format.
//
// Invariants:
//   - One flat parameter vector. A Model's parameters live in one contiguous []float64
//     (Model.Params) and its gradients in another of the same length (Model.Grads); every
//     layer holds views into both. Federated updates, clipping, noise, encryption and
//     checkpoints all work on these vectors.
//   - Parameters are float64; layer math runs in the model's Precision. Params, Grads,
//     optimisers and everything outside the package see float64 vectors. The layers are
//     generic over linalg.Float (LinearOf[F], …; Linear is LinearOf[float64]) and go
//     through the kernels of internal/linalg. A model in Float32 (SetPrecision) also builds
//     its spec's float32 network, which every training and evaluation pass runs on: Params
//     rounded in (by Model.Step's update, for the pass after it, where the optimizer can),
//     the float32 gradients added to Grads after (float64 master weights).
//     Losses, per-example norms and their weights are float64 in both. Gradient checks
//     run in float64; float32 is checked against it (precision_test.go).
//   - Backprop is explicit: Forward caches what Backward needs; Backward returns the input
//     gradient and accumulates parameter gradients. Every layer and loss is checked against
//     finite differences in the tests.
//   - Per-example gradients (for DP-SGD) are materialised as B separate vectors only where
//     that is cheaper: in ghost mode each parametrised layer reports per-example squared
//     gradient norms from its cached activations and output gradients (‖∇W_i‖² = ‖a_i‖²‖b_i‖²
//     for a Linear layer; the Gram-matrix form Σ_{t,t'}(a_t·a_t')(b_t·b_t') over time steps or
//     a convolution's positions), and then accumulates the weighted sum Σ_i w_i g_i with one
//     multiply per layer. Where forming a layer's per-example gradients costs fewer
//     multiply-adds than the Gram form (mixed ghost clipping, Bu et al. 2022), they are formed
//     and kept, and the weighted sum adds them up. Tests compare both with naive
//     one-example-at-a-time backprop.
//   - Images are channels-last: a convolutional layer's batch is B·H·W rows of C channels,
//     example-major like a sequence batch, so Linear's per-row code serves a convolution over
//     its unfolded patches (Conv2D: im2col + one multiply) and Flatten is a view.
//   - Randomness (initialisation, dropout) is injected as *rand.Rand; the same seed gives the
//     same model and the same training run.
//   - A Model is not safe for concurrent use: layers own their activation buffers. Use one
//     Model per goroutine (Clone).
//   - Sequences are rows too: a batch of B sequences of T positions is a B·T-row tensor
//     (example-major), with Batch.Lengths marking the valid prefix of each. Padded positions
//     influence no output and get no gradient: the embedding zeroes them, attention masks
//     them as keys and skips them as queries, recurrent layers freeze their state there,
//     pooling ignores them and next-token targets there are −1.
//   - Composite layers (Sequential, Residual, TransformerBlock, MultiHeadAttention) own the
//     concatenation of their sublayers' parameter slices and delegate every ParamLayer
//     method to them.
//   - Per-layer clipping sees the model as its parametrised layers in parameter-vector order
//     (ParamLayerSizes; a composite layer is one group): PerExampleLayerNorms and
//     AccumulateWeightedPerLayer are PerExampleNorms and AccumulateWeighted per group.
//   - A feature stage (Spec.Features, the Features interface) is a fixed, parameter-free
//     transform of raw dense inputs that the trainable layers read: today the 2-D wavelet
//     scattering transform (Scattering: Kymatio's Scattering2D filter bank and subsampling,
//     FFTs from gonum's dsp/fourier) with optional per-example GroupNorm. It is part of the
//     model, so a saved model reads raw inputs: Forward applies it. Being deterministic and
//     built from no data (it costs no privacy), training computes it once per dataset and
//     passes the result with Input.Transformed set; the model then skips it. It holds no
//     parameters, so the flat parameter vector is the trainable layers' alone, and it is
//     shared, not copied, by Clone (it is immutable and safe for concurrent use).
//   - Embedded categorical columns of a table (Spec.Embeddings, EmbeddingSpec) are an mlp's
//     first, trainable stage, ColumnEmbeddings: input feature Column of each holds a
//     category index (−1: missing or unknown), looked up in its own learned Embedding table
//     (the zero vector for −1); the first Linear layer reads the vectors, in Embeddings
//     order, then the other input features in theirs. The tables are Embeddings run over
//     B one-token examples, so DP-SGD's per-example norms and clipped sums are the
//     Embedding's, and compression sees each table as a WeightTensor. An index that is not
//     one is an error of Forward (the row came from a file or a request), not a panic.
//     Where the columns come from: a dataset's schema (data, encoding: embedding) lists
//     them, with their widths; an mlp spec that leaves Embeddings out takes the dataset's
//     (Spec.EmbedColumns) — in confide train and confide sim from the loaded dataset, in a
//     federation from the schema the server ships, so every client builds the same model —
//     as a PyTorch user's TabularModel takes its embedding sizes from the data. A spec that
//     lists them must match the dataset's (columns, categories and dims); one for a dataset
//     without embedded columns is refused.
//   - Incremental decoding equals the forward pass. A Decoder runs a causal language model
//     (a next_token Transformer) a few positions at a time through the model's own layers,
//     each attention layer caching the keys and values of the earlier positions (a KV
//     cache); the logits of a position equal those of Forward over the prefix that ends
//     there, up to rounding (tested to 1e-9).
//   - Compression keeps the flat vector. A pruned model's spec carries a Mask of the
//     parameters fixed at zero (Model.Prune: magnitude pruning, global or per tensor); New
//     and Unmarshal zero them and train.Trainer keeps them zero, so a federation that ships
//     the spec keeps them zero on every client. An int8 model (Model.Quantize: per-channel
//     symmetric weights of the WeightTensors) keeps the dequantised weights in Params, so
//     everything reading parameters sees the quantised model; only Forward's products with
//     Linear (so also Conv2D) and recurrent weights run in int8 (linalg.MulQ), activations
//     quantised per row (dynamic) or with calibrated scales (static). Training uses the float path.
//   - Explanations differentiate the output with respect to the input's representation —
//     the dense inputs, or the token embeddings (token ids have no gradient) — through
//     Representation, ForwardFrom and BackwardTo (inputgrad.go, checked against finite
//     differences); AttentionWeights returns every attention layer's softmax weights.
//
// Main types: Spec (the declarative architecture: mlp, cnn, rnn, lstm, gru, transformer;
// EmbeddingSpec for an mlp's embedded categorical columns), Model,
// Layer and ParamLayer (LayerOf and ParamLayerOf in a precision), Precision, Batch (the
// shape and mode of one forward pass), Optimizer (SGD,
// Adam), FeatureSpec, Features and Scattering (the feature stage), Decoder (incremental
// decoding with a KV cache). Layers: Linear, Activation, Dropout, Embedding, ColumnEmbeddings, LearnedPosition,
// SinusoidalPosition, LayerNorm, Conv2D, Pool2D, GroupNorm, Flatten, Attention, MultiHeadAttention, Recurrent (vanilla, LSTM,
// GRU), Pool, Residual, Sequential, TransformerBlock. Compression: WeightTensor, Mask,
// Quantization. Model files: Save, Load (format version 3: spec, Meta — class names, input
// normalisation, tokenizer, provenance, compute precision —, the quantisation and the parameters, as float64
// or int8, checksummed; a float64 model without a mask is written as version 2, and
// version-1 files, without Meta, still load).
// Programmer errors inside the package (shape mismatches) panic; anything read from a file,
// flag or the network is validated and returns an error.
package model
