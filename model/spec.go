package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/internal/linalg"
)

// Model types accepted in specs.
const (
	TypeMLP         = "mlp"
	TypeRNN         = "rnn"         // embedding, stacked recurrent layers (Cell), head
	TypeLSTM        = "lstm"        // rnn with Cell lstm
	TypeGRU         = "gru"         // rnn with Cell gru
	TypeTransformer = "transformer" // embedding, positions, encoder blocks, head
)

// Tasks (heads) of sequence models.
const (
	TaskClassify  = "classify"   // one class per example: pool the sequence, then Linear
	TaskNextToken = "next_token" // a token per position: Linear at every position
)

// Norm placements of Transformer blocks.
const (
	NormPre  = "pre"  // x + f(LN(x)), final LN after the last block (Xiong et al. 2020)
	NormPost = "post" // LN(x + f(x)) (Vaswani et al. 2017; PyTorch's default)
)

// Spec declares a model's architecture. A federation ships it to clients so they build the
// same model; model files store it beside the parameters.
type Spec struct {
	// Type is the architecture: mlp, cnn, rnn, lstm, gru or transformer.
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
	// Init is he or xavier; empty picks he for relu/gelu and xavier for tanh/sigmoid (mlp;
	// sequence models use each layer's standard initialisation, see their Init methods).
	Init string `json:"init,omitempty" yaml:"init,omitempty"`
	// Loss is cross_entropy (default) or mse.
	Loss string `json:"loss,omitempty" yaml:"loss,omitempty"`
	// Features, when set, is a fixed first stage (mlp or cnn) that turns each raw input row
	// of Input values into Features.OutDim() features for the first layer, e.g. the
	// scattering transform of an image; a cnn's conv blocks read them as a map of the
	// transform's OutShape positions and Channels channels. Forward applies it to raw inputs;
	// training computes it once per dataset and feeds the features (Input.Transformed).
	Features *FeatureSpec `json:"features,omitempty" yaml:"features,omitempty"`
	// Embeddings lists an mlp's embedded categorical columns, each {column, categories,
	// dim, name}: input feature column holds a category index (−1: missing), looked up in a
	// learned categories×dim table, and the first layer reads the vectors, in this order,
	// then the other input features. Left out, an mlp takes them from its dataset's schema
	// (its columns with encoding: embedding); given, they must match the schema's.
	Embeddings []EmbeddingSpec `json:"embeddings,omitempty" yaml:"embeddings,omitempty"`

	// Sequence models (rnn, lstm, gru, transformer) read token ids (Input.Tokens, B×T) and
	// use the fields below; Hidden lists the widths of the stacked recurrent layers (one
	// width with Layers > 1 repeats it), Activation is the vanilla RNN's nonlinearity (tanh
	// default, or relu) or the Transformer's feed-forward one (relu default, or gelu), and
	// Dropout applies between recurrent layers, or on the embedding and inside every
	// residual branch of a Transformer.

	// Vocab is the number of token ids.
	Vocab int `json:"vocab,omitempty" yaml:"vocab,omitempty"`
	// Embed is the embedding width; for a transformer also the model width d_model.
	Embed int `json:"embed,omitempty" yaml:"embed,omitempty"`
	// Layers is the number of Transformer encoder blocks, or of stacked recurrent layers
	// when Hidden has one width (default 1).
	Layers int `json:"layers,omitempty" yaml:"layers,omitempty"`
	// Heads is the number of attention heads (transformer); Embed must be divisible by it.
	Heads int `json:"heads,omitempty" yaml:"heads,omitempty"`
	// FF is the width of the Transformer's feed-forward layer (default 4·Embed).
	FF int `json:"ff,omitempty" yaml:"ff,omitempty"`
	// MaxLen is the longest sequence accepted (T ≤ MaxLen); required for transformer, 0
	// means unbounded for the rnn types.
	MaxLen int `json:"max_len,omitempty" yaml:"max_len,omitempty"`
	// Positional is the Transformer's position encoding: learned (default) or sinusoidal.
	Positional string `json:"positional,omitempty" yaml:"positional,omitempty"`
	// Norm is the Transformer's LayerNorm placement: post (default, as in Vaswani et al.
	// and PyTorch) or pre (with a final LayerNorm after the last block).
	Norm string `json:"norm,omitempty" yaml:"norm,omitempty"`
	// Pooling reduces the sequence for classify: mean or first (transformer default mean),
	// or last, the last valid position (rnn default).
	Pooling string `json:"pooling,omitempty" yaml:"pooling,omitempty"`
	// Task is classify (default: Output classes per example) or next_token (a prediction of
	// the next token at every position; Output = Vocab).
	Task string `json:"task,omitempty" yaml:"task,omitempty"`
	// Cell is the recurrent cell of the rnn types: vanilla (type rnn's default), lstm or
	// gru; types lstm and gru fix it.
	Cell string `json:"cell,omitempty" yaml:"cell,omitempty"`
	// Causal restricts attention to earlier positions; next_token transformers always use it.
	Causal bool `json:"causal,omitempty" yaml:"causal,omitempty"`

	// A cnn reads dense images of Input values an example, channels last (Image[0] rows of
	// Image[1] pixels of Image[2] channels each; see Conv2D), through the Conv blocks, then
	// Flatten, Linear layers of the Hidden widths and the output layer. Activation follows
	// every convolution (after its GroupNorm) and hidden layer, Dropout every hidden layer.

	// Image is a cnn's input shape, [rows, cols] or [rows, cols, channels] (default 1
	// channel); Input, filled from it when omitted, must be its product.
	Image []int `json:"image,omitempty" yaml:"image,omitempty"`
	// Conv lists a cnn's convolution blocks, first to last.
	Conv []ConvSpec `json:"conv,omitempty" yaml:"conv,omitempty"`

	// Mask, when set, fixes the parameters it marks at zero: a pruned model (Model.Prune).
	// It covers the whole parameter vector.
	Mask *Mask `json:"mask,omitempty" yaml:"mask,omitempty"`
}

// IsSequence reports whether the spec's model reads token sequences.
func (s Spec) IsSequence() bool {
	switch s.Type {
	case TypeRNN, TypeLSTM, TypeGRU, TypeTransformer:
		return true
	}
	return false
}

func (s Spec) isRecurrent() bool { return s.Type == TypeRNN || s.Type == TypeLSTM || s.Type == TypeGRU }

// recurrentWidths returns the widths of the stacked recurrent layers.
func (s Spec) recurrentWidths() []int {
	if len(s.Hidden) == 1 && s.Layers > 1 {
		w := make([]int, s.Layers)
		for i := range w {
			w[i] = s.Hidden[0]
		}
		return w
	}
	return s.Hidden
}

// ParseSpec reads a spec from YAML or JSON and validates it under DefaultLimits. Unknown
// keys are errors.
func ParseSpec(data []byte) (Spec, error) { return Limits{}.ParseSpec(data) }

// ParseSpec reads a spec from YAML or JSON and validates it under l. Unknown keys are errors.
func (l Limits) ParseSpec(data []byte) (Spec, error) {
	var s Spec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("model spec: %w", err)
	}
	if err := l.Validate(s); err != nil {
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
		if s.isRecurrent() {
			s.Activation = ActTanh
		}
	}
	if s.IsSequence() {
		if s.Task == "" {
			s.Task = TaskClassify
		}
		if s.Task == TaskNextToken && s.Output == 0 {
			s.Output = s.Vocab
		}
		if s.Pooling == "" && s.Task == TaskClassify {
			s.Pooling = PoolMean
			if s.isRecurrent() {
				s.Pooling = PoolLast
			}
		}
	}
	switch s.Type {
	case TypeRNN:
		if s.Cell == "" {
			s.Cell = CellVanilla
		}
	case TypeLSTM, TypeGRU:
		if s.Cell == "" {
			s.Cell = s.Type
		}
	case TypeTransformer:
		if s.FF == 0 {
			s.FF = 4 * s.Embed
		}
		if s.Positional == "" {
			s.Positional = PosLearned
		}
		if s.Norm == "" {
			s.Norm = NormPost
		}
		if s.Task == TaskNextToken {
			s.Causal = true
		}
	}
	if s.Type == TypeCNN {
		s = s.cnnDefaults()
	}
	if s.Init == "" && (s.Type == TypeMLP || s.Type == TypeCNN) {
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

// Validate checks the spec under DefaultLimits, naming the field and the fix on error.
func (s Spec) Validate() error { return Limits{}.Validate(s) }

// NumParams is the length of the parameter vector of the spec's model, computed without
// building it; an invalid spec, or one beyond DefaultLimits, is an error.
func (s Spec) NumParams() (int, error) { return Limits{}.NumParams(s) }

// Validate checks the spec, naming the field and the fix on error, and that its sizes and
// its parameter count stay within l.
func (l Limits) Validate(s Spec) error {
	_, err := l.NumParams(s)
	return err
}

// NumParams validates the spec under l and returns the length of its model's parameter
// vector, computed without building the model.
func (l Limits) NumParams(s Spec) (int, error) {
	l = l.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("model spec: "+format, a...)) }
	// atMost names the field and the limit a size exceeds.
	atMost := func(key string, v, limit int, name string) {
		if v > limit {
			bad("%s = %d exceeds the limit %d (model.Limits.%s)", key, v, limit, name)
		}
	}
	s = s.withDefaults()
	switch s.Type {
	case TypeMLP:
		if s.Input <= 0 {
			bad("input = %d: must be the number of input features (> 0)", s.Input)
		}
		atMost("input", s.Input, l.MaxWidth, "MaxWidth")
		atMost("len(hidden)", len(s.Hidden), l.MaxLayers, "MaxLayers")
		for i, h := range s.Hidden {
			if h <= 0 {
				bad("hidden[%d] = %d: layer widths must be > 0", i, h)
			}
			atMost(fmt.Sprintf("hidden[%d]", i), h, l.MaxWidth, "MaxWidth")
		}
		if len(s.Embeddings) > 0 {
			s.validateEmbeddings(bad, atMost, l)
		}
		if s.Features != nil && s.Input > 0 {
			if err := s.Features.validate(s.Input, l); err != nil {
				badEach(bad, err)
			}
		}
	case TypeCNN:
		s.validateCNN(bad, atMost, l)
	case TypeRNN, TypeLSTM, TypeGRU, TypeTransformer:
		s.validateSequence(bad, atMost, l)
		if s.Features != nil {
			bad("features: a feature stage reads dense inputs; remove it for type %s", s.Type)
		}
		if len(s.Embeddings) > 0 {
			bad("embeddings: embedded categorical columns are a stage of an mlp; remove them for type %s", s.Type)
		}
	case "":
		bad("type is missing (use mlp, cnn, rnn, lstm, gru or transformer)")
	default:
		bad("type %q unknown (use mlp, cnn, rnn, lstm, gru or transformer)", s.Type)
	}
	if s.Output <= 0 {
		bad("output = %d: must be the number of classes or outputs (> 0)", s.Output)
	}
	if s.Task != TaskNextToken { // a next_token model's output is its vocab, checked as such
		atMost("output", s.Output, l.MaxWidth, "MaxWidth")
	}
	if _, err := NewActivation(s.Activation); err != nil {
		bad("activation: %v", err)
	}
	if !(s.Dropout >= 0 && s.Dropout < 1) {
		bad("dropout = %v: must be in [0, 1)", s.Dropout)
	}
	if (s.Type == TypeMLP || s.Type == TypeCNN || s.Init != "") && s.Init != InitHe && s.Init != InitXavier {
		bad("init %q unknown (use he or xavier)", s.Init)
	}
	if _, err := newLoss(s.Loss); err != nil {
		bad("loss: %v", err)
	}
	if s.Loss == LossCrossEntropy && s.Output < 2 {
		bad("output = %d: cross_entropy needs at least 2 classes", s.Output)
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	// Every size is now positive and within its limit; the count is still checked for
	// overflow, since limits may be raised arbitrarily.
	c := s.numParams()
	switch {
	case c.overflow:
		return 0, fmt.Errorf("model spec: the model would have more than 2^64 parameters, beyond the limit %d (model.Limits.MaxParams): lower the widths, vocab or layers", l.MaxParams)
	case c.n > uint64(l.MaxParams):
		return 0, fmt.Errorf("model spec: the model would have %d parameters, beyond the limit %d (model.Limits.MaxParams): lower the widths, vocab or layers", c.n, l.MaxParams)
	case c.n == 0:
		return 0, errors.New("model spec: the model has no parameters")
	case s.Mask != nil && uint64(s.Mask.Len()) != c.n:
		return 0, fmt.Errorf("model spec: mask covers %d parameters, the model has %d: the mask belongs to another architecture", s.Mask.Len(), c.n)
	}
	return int(c.n), nil
}

// validateSequence checks the fields of the sequence model types.
func (s Spec) validateSequence(bad func(string, ...any), atMost func(string, int, int, string), l Limits) {
	if s.Vocab < 2 {
		bad("vocab = %d: must be the number of token ids (≥ 2)", s.Vocab)
	}
	atMost("vocab", s.Vocab, l.MaxVocab, "MaxVocab")
	if s.Embed <= 0 {
		bad("embed = %d: must be the embedding width (> 0)", s.Embed)
	}
	atMost("embed", s.Embed, l.MaxWidth, "MaxWidth")
	if s.Layers < 0 {
		bad("layers = %d: must be ≥ 0", s.Layers)
	}
	atMost("layers", s.Layers, l.MaxLayers, "MaxLayers")
	if s.MaxLen < 0 {
		bad("max_len = %d: must be ≥ 0", s.MaxLen)
	}
	atMost("max_len", s.MaxLen, l.MaxSeqLen, "MaxSeqLen")
	switch s.Task {
	case TaskClassify:
		switch s.Pooling {
		case PoolMean, PoolFirst, PoolLast:
		default:
			bad("pooling %q unknown (use mean, first or last)", s.Pooling)
		}
	case TaskNextToken:
		if s.Output != s.Vocab {
			bad("output = %d: a next_token model predicts one of vocab = %d tokens (omit output)", s.Output, s.Vocab)
		}
		if s.Loss != LossCrossEntropy {
			bad("loss %q: next_token needs cross_entropy", s.Loss)
		}
		if s.Pooling != "" {
			bad("pooling %q: next_token predicts at every position and pools nothing (omit pooling)", s.Pooling)
		}
	default:
		bad("task %q unknown (use classify or next_token)", s.Task)
	}
	if s.isRecurrent() {
		if len(s.Hidden) == 0 {
			bad("hidden is empty: list the recurrent layer widths, e.g. [128] (with layers: 2 for two)")
		}
		atMost("len(hidden)", len(s.Hidden), l.MaxLayers, "MaxLayers")
		for i, h := range s.Hidden {
			if h <= 0 {
				bad("hidden[%d] = %d: layer widths must be > 0", i, h)
			}
			atMost(fmt.Sprintf("hidden[%d]", i), h, l.MaxWidth, "MaxWidth")
		}
		if len(s.Hidden) > 1 && s.Layers > 0 && s.Layers != len(s.Hidden) {
			bad("layers = %d but hidden lists %d widths: give one width with layers, or one width per layer", s.Layers, len(s.Hidden))
		}
		switch {
		case s.Cell != CellVanilla && s.Cell != CellLSTM && s.Cell != CellGRU:
			bad("cell %q unknown (use vanilla, lstm or gru)", s.Cell)
		case s.Type != TypeRNN && s.Cell != s.Type:
			bad("cell %q contradicts type %s (omit cell, or use type rnn)", s.Cell, s.Type)
		}
		if s.Cell == CellVanilla && s.Activation != ActTanh && s.Activation != ActReLU {
			bad("activation %q: a vanilla RNN uses tanh or relu", s.Activation)
		}
		if s.Heads != 0 || s.FF != 0 || s.Positional != "" || s.Norm != "" || s.Causal {
			bad("heads, ff, positional, norm and causal are transformer fields; remove them for type %s", s.Type)
		}
		return
	}
	// transformer
	if s.Layers <= 0 {
		bad("layers = %d: a transformer needs ≥ 1 encoder block", s.Layers)
	}
	if s.Heads <= 0 || (s.Embed > 0 && s.Embed%s.Heads != 0) {
		bad("heads = %d: must be > 0 and divide embed = %d", s.Heads, s.Embed)
	}
	atMost("heads", s.Heads, l.MaxHeads, "MaxHeads")
	if s.FF <= 0 {
		bad("ff = %d: must be the feed-forward width (> 0)", s.FF)
	}
	atMost("ff", s.FF, l.MaxWidth, "MaxWidth")
	if s.MaxLen <= 0 {
		bad("max_len = %d: a transformer needs the longest sequence length (> 0)", s.MaxLen)
	}
	if s.Positional != PosLearned && s.Positional != PosSinusoidal {
		bad("positional %q unknown (use learned or sinusoidal)", s.Positional)
	}
	if s.Norm != NormPre && s.Norm != NormPost {
		bad("norm %q unknown (use pre or post)", s.Norm)
	}
	if s.Activation != ActReLU && s.Activation != ActGELU {
		bad("activation %q: the transformer's feed-forward uses relu or gelu", s.Activation)
	}
	if len(s.Hidden) > 0 || s.Cell != "" {
		bad("hidden and cell are mlp/rnn fields; a transformer's widths are embed and ff")
	}
}

// badEach reports every line of err, an errors.Join of errors that each name their key,
// through bad.
func badEach(bad func(string, ...any), err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		bad("%s", line)
	}
}

// build returns the float64 layers of the spec (which must be valid).
func (s Spec) build() ([]Layer, error) { return buildLayers[float64](s) }

// buildLayers returns the layers of the spec (which must be valid) in precision F.
func buildLayers[F linalg.Float](s Spec) ([]LayerOf[F], error) {
	s = s.withDefaults()
	var layers []LayerOf[F]
	switch s.Type {
	case TypeMLP:
		in := s.Input
		if s.Features != nil {
			in = s.Features.OutDim()
		}
		if len(s.Embeddings) > 0 {
			e := newColumnEmbeddings[F](s.Input, s.Embeddings)
			layers = append(layers, e)
			in = e.OutDim()
		}
		for _, h := range s.Hidden {
			layers = append(layers, newLinear[F](in, h, s.Init))
			act, err := newActivation[F](s.Activation)
			if err != nil {
				return nil, err
			}
			layers = append(layers, act)
			if s.Dropout > 0 {
				layers = append(layers, &DropoutOf[F]{P: s.Dropout})
			}
			in = h
		}
		// The output layer feeds a softmax: Xavier suits it whatever the hidden activation.
		layers = append(layers, newLinear[F](in, s.Output, InitXavier))
	case TypeCNN:
		return buildCNN[F](s)
	case TypeRNN, TypeLSTM, TypeGRU:
		layers = append(layers, newEmbedding[F](s.Vocab, s.Embed))
		in := s.Embed
		for _, h := range s.recurrentWidths() {
			r := newRecurrent[F](s.Cell, in, h)
			r.Activation = s.Activation
			layers = append(layers, r)
			if s.Dropout > 0 {
				layers = append(layers, &DropoutOf[F]{P: s.Dropout})
			}
			in = h
		}
		layers = append(layers, head[F](s, in)...)
	case TypeTransformer:
		D := s.Embed
		layers = append(layers, newEmbedding[F](s.Vocab, D))
		if s.Positional == PosSinusoidal {
			layers = append(layers, &SinusoidalPositionOf[F]{Dim: D})
		} else {
			layers = append(layers, &LearnedPositionOf[F]{MaxLen: s.MaxLen, Dim: D})
		}
		if s.Dropout > 0 {
			layers = append(layers, &DropoutOf[F]{P: s.Dropout})
		}
		for range s.Layers {
			blk, err := newTransformerBlock[F](D, s.Heads, s.FF, s.Activation, s.Norm == NormPre, s.Causal, s.Dropout)
			if err != nil {
				return nil, err
			}
			layers = append(layers, blk)
		}
		if s.Norm == NormPre {
			layers = append(layers, newLayerNorm[F](D))
		}
		layers = append(layers, head[F](s, D)...)
	}
	return layers, nil
}

// head returns the output layers of a sequence model whose last hidden width is in.
func head[F linalg.Float](s Spec, in int) []LayerOf[F] {
	if s.Task == TaskNextToken {
		return []LayerOf[F]{newLinear[F](in, s.Vocab, InitXavier)}
	}
	return []LayerOf[F]{&PoolOf[F]{Mode: s.Pooling}, newLinear[F](in, s.Output, InitXavier)}
}

// Limits bounds the model a spec may declare. Specs arrive from files and from a server's
// tasks, so validation checks every size against these bounds, and computes the parameter
// count with overflow-checked arithmetic, before anything is allocated: a hostile spec is an
// error naming the field and the limit, never a huge allocation or a panic. A field ≤ 0
// takes its default (DefaultLimits). The package functions (Spec.Validate, Spec.NumParams,
// ParseSpec, New, Unmarshal, Load) use the defaults; a caller that needs a larger model
// calls the same methods on its own Limits, e.g. Limits{MaxParams: 1 << 30}.Unmarshal(data).
type Limits struct {
	// MaxParams bounds the length of the parameter vector. Default 2^28 (268,435,456): a
	// model holds every parameter at least twice as a float64 (Params and Grads; Adam adds
	// two moments, a federated round the update and its ciphertexts), so 2^28 is ≥ 4 GiB a
	// model, above BERT-base (110 M parameters) and a thousand times the examples' models.
	MaxParams int
	// MaxWidth bounds every layer width: input, each of hidden, output (classify), embed
	// and ff. Default 2^20.
	MaxWidth int
	// MaxVocab bounds vocab, and with it a next_token model's output. Default 2^21.
	MaxVocab int
	// MaxSeqLen bounds max_len. Default 2^16.
	MaxSeqLen int
	// MaxLayers bounds the number of hidden layers: the length of hidden, and layers
	// (Transformer blocks or stacked recurrent layers). Default 1024.
	MaxLayers int
	// MaxHeads bounds a Transformer's heads. Default 1024.
	MaxHeads int
	// MaxFeatureDim bounds the features per example of a feature stage. Default
	// MaxFeatureDim (2^18).
	MaxFeatureDim int
	// MaxFilterBank bounds the float64 values of a feature stage's filter bank, which is
	// built with the model (and by every Unmarshal). Default 2^25 (256 MiB): MNIST's
	// J = 2, L = 8 needs 22,356, J = 4, L = 8 on 224×224 images 2.6 M, J = 5, L = 8 on
	// 512×512 ones 17 M.
	MaxFilterBank int
	// MaxActivation bounds a cnn's values an example in any block: its feature maps and
	// its unfolded convolution input (positions × kernel² × channels), which training
	// holds for every example of a batch. Default 2^24 (128 MiB an example; MNIST's CNN
	// needs 12,544).
	MaxActivation int
	// MaxMetaBytes bounds the metadata section of a model file (Meta as JSON): decoding
	// allocates a small multiple of it at most. Default 2^24 (16 MiB): a word vocabulary
	// of 20,000 words takes about 200 KB.
	MaxMetaBytes int
}

// DefaultLimits returns the limits that the package functions apply.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&l.MaxParams, 1<<28)
	set(&l.MaxWidth, 1<<20)
	set(&l.MaxVocab, 1<<21)
	set(&l.MaxSeqLen, 1<<16)
	set(&l.MaxLayers, 1024)
	set(&l.MaxHeads, 1024)
	set(&l.MaxFeatureDim, MaxFeatureDim)
	set(&l.MaxFilterBank, 1<<25)
	set(&l.MaxMetaBytes, 1<<24)
	set(&l.MaxActivation, 1<<24)
	return l
}

// unlimited accepts every spec whose parameter count fits an int: Clone uses it to rebuild
// a model whose spec was checked against the limits it was built under.
var unlimited = Limits{MaxParams: math.MaxInt, MaxWidth: math.MaxInt, MaxVocab: math.MaxInt, MaxSeqLen: math.MaxInt,
	MaxLayers: math.MaxInt, MaxHeads: math.MaxInt, MaxFeatureDim: math.MaxInt, MaxFilterBank: math.MaxInt, MaxMetaBytes: math.MaxInt, MaxActivation: math.MaxInt}

// paramCount adds up a parameter count in uint64 and records an overflow instead of
// wrapping around: the sizes come from a spec, which may be hostile.
type paramCount struct {
	n        uint64
	overflow bool
}

// add adds the product of factors, each ≥ 0.
func (c *paramCount) add(factors ...int) {
	p := uint64(1)
	for _, f := range factors {
		hi, lo := bits.Mul64(p, uint64(f))
		if hi != 0 {
			c.overflow = true
			return
		}
		p = lo
	}
	c.addCount(1, paramCount{n: p})
}

// addCount adds k times the count b.
func (c *paramCount) addCount(k int, b paramCount) {
	hi, p := bits.Mul64(uint64(k), b.n)
	sum, carry := bits.Add64(c.n, p, 0)
	if b.overflow || hi != 0 || carry != 0 {
		c.overflow = true
		return
	}
	c.n = sum
}

// numParams counts the parameters of a spec with defaults filled in whose sizes passed
// validation (all > 0), in the order build lays them out.
func (s Spec) numParams() paramCount {
	var c paramCount
	linear := func(in, out int) { c.add(in, out); c.add(out) }
	switch s.Type {
	case TypeMLP:
		in := s.Input
		if s.Features != nil {
			in = s.Features.OutDim()
		}
		if len(s.Embeddings) > 0 {
			for _, e := range s.Embeddings {
				c.add(e.Categories, e.Dim)
			}
			w, _ := s.embeddedWidth() // validated: within MaxWidth
			in = int(w)
		}
		for _, h := range s.Hidden {
			linear(in, h)
			in = h
		}
		linear(in, s.Output)
	case TypeCNN:
		s.countCNN(&c)
	case TypeRNN, TypeLSTM, TypeGRU:
		c.add(s.Vocab, s.Embed)
		gates := map[string]int{CellVanilla: 1, CellLSTM: 4, CellGRU: 3}[s.Cell]
		// Recurrent.NumParams: W (in×GH), U (h×GH), b (GH), and GRU's extra recurrent bias.
		recurrent := func(c *paramCount, in, h int) {
			c.add(in, gates, h)
			c.add(h, gates, h)
			c.add(gates, h)
			if s.Cell == CellGRU {
				c.add(h)
			}
		}
		in, widths := s.Embed, s.Hidden
		if len(s.Hidden) == 1 && s.Layers > 1 {
			// recurrentWidths repeats the width; count the repeats without building the list.
			h := s.Hidden[0]
			recurrent(&c, in, h)
			var rest paramCount
			recurrent(&rest, h, h)
			c.addCount(s.Layers-1, rest)
			in, widths = h, nil
		}
		for _, h := range widths {
			recurrent(&c, in, h)
			in = h
		}
		linear(in, s.Output)
	case TypeTransformer:
		D := s.Embed
		c.add(s.Vocab, D)
		if s.Positional == PosLearned {
			c.add(s.MaxLen, D)
		}
		// One encoder block: attention's W_qkv, b_qkv, W_o, b_o; the feed-forward's two
		// Linear layers; two LayerNorms (γ and β each).
		var blk paramCount
		blk.add(D, 3, D)
		blk.add(3, D)
		blk.add(D, D)
		blk.add(D)
		blk.add(D, s.FF)
		blk.add(s.FF)
		blk.add(s.FF, D)
		blk.add(D)
		blk.add(2, 2, D)
		c.addCount(s.Layers, blk)
		if s.Norm == NormPre {
			c.add(2, D)
		}
		linear(D, s.Output)
	}
	return c
}
