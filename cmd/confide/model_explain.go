package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/explain"
	"github.com/confide-fl/confide/internal/atomicfile"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// Methods of 'confide model explain'.
const (
	methodIG          = "integrated-gradients"
	methodPermutation = "permutation"
	methodAttention   = "attention"
)

// privacyNote is the disclosure warning of explain's help and JSON.
const privacyNote = "an explanation discloses the data it is computed on: explain on public data or data its owner supplies, not on private training data"

type explainFlags struct {
	df      dataFlags
	split   string
	seed    uint64
	method  string
	indices []int
	target  string
	output  string
	steps   int
	tol     float64
	maxStep int
	png     string
	html    string
	layer   int
	head    string
	maxTok  int
	patch   int
	repeats int
	maxEx   int
	batch   int
	top     int
	permSed uint64
}

// explainResult is what 'confide model explain' reports.
type explainResult struct {
	Model     string `json:"model"`
	ModelName string `json:"model_name"`
	Method    string `json:"method"`
	Dataset   string `json:"dataset"`
	Split     string `json:"split"`
	// Privacy says what an explanation discloses.
	Privacy     string                     `json:"privacy"`
	Examples    []explainedExample         `json:"examples,omitempty"`
	Permutation *explain.PermutationResult `json:"permutation,omitempty"`
	// Patch is the side of the image patches shuffled together (permutation on images).
	Patch     int                  `json:"patch,omitempty"`
	Attention *attentionReport     `json:"attention,omitempty"`
	PNG       string               `json:"png,omitempty"`
	HTML      string               `json:"html,omitempty"`
	Seconds   float64              `json:"seconds"`
	topGroups []explain.Importance // the --top most important groups (human output)
	imageCols int                  // the width of the images explained (0: not images)
}

// explainedExample is one example's prediction and, for integrated gradients, its
// attributions.
type explainedExample struct {
	Index       int     `json:"index"`
	Label       int     `json:"label"`
	LabelName   string  `json:"label_name,omitempty"`
	Predicted   int     `json:"predicted"`
	PredName    string  `json:"predicted_name,omitempty"`
	Probability float64 `json:"probability"`
	// The attributions of integrated gradients (nil for the other methods).
	*igExplanation
}

// igExplanation is one example's integrated-gradients attribution. Target is the class
// explained and Output which function of it (probability or logit): F at the input,
// Baseline at the baseline (a black image, zero embeddings).
type igExplanation struct {
	Target            int     `json:"target"`
	TargetName        string  `json:"target_name,omitempty"`
	Output            string  `json:"output"`
	F                 float64 `json:"f"`
	Baseline          float64 `json:"baseline"`
	Sum               float64 `json:"attribution_sum"`
	CompletenessError float64 `json:"completeness_error"`
	Converged         bool    `json:"converged"`
	Steps             int     `json:"steps"`
	// Attributions has one value per input feature (pixel) or per token of Tokens.
	Attributions []float64 `json:"attributions"`
	Tokens       []string  `json:"tokens,omitempty"`
}

// attentionReport holds the attention maps of one example.
type attentionReport struct {
	Layers int `json:"layers"`
	Heads  int `json:"heads"`
	// TokensTotal is the example's length; the maps cover its first len(Tokens).
	TokensTotal int          `json:"tokens_total"`
	Tokens      []string     `json:"tokens"`
	Maps        []attnMapOut `json:"maps"`
}

// attnMapOut is one map: Head 0 is the mean over the layer's heads.
type attnMapOut struct {
	Layer   int         `json:"layer"`
	Head    int         `json:"head"`
	Weights [][]float64 `json:"weights"`
}

func newModelExplainCmd(g *globalOptions) *cobra.Command {
	f := &explainFlags{}
	cmd := &cobra.Command{
		Use:   "explain FILE --dataset NAME [--method integrated-gradients|permutation|attention]",
		Short: "Explain a model: integrated gradients (saliency maps, token attributions), permutation importance, attention maps",
		Long: `Explain a model file's predictions on examples of a dataset the CLI knows (mnist,
fashion-mnist, shakespeare, spam; located and fitted to the model as for 'evaluate').

--method integrated-gradients (default; Sundararajan et al. 2017) attributes the
explained output — the --target class's logit, or its probability with --of probability
(which saturates: an input and a baseline both classified with certainty leave nothing to
attribute) — to the inputs of each example of --index: attribution_j = (x_j − x'_j) × the
mean gradient along the straight path from a baseline x' (a black image; for text models
the zero embedding of every token, and a token's attribution is the sum over its
embedding's dimensions) to x.
Completeness: the attributions sum to f(x) − f(x'); the integral is a Gauss–Legendre rule
of --steps nodes, doubled (up to --max-steps) until the sum is within --tolerance (1%) of
it — ReLU models need more steps than smooth ones. --png draws images as [image |
attributions | overlay] rows and texts as coloured tokens; --html writes texts as coloured
spans. Models with a scattering feature stage have no input gradient: use permutation.

--method permutation (Breiman 2001) shuffles a feature group across the first
--max-examples examples of the split and reports how much the loss rises and the accuracy
falls, mean and standard deviation over --repeats shuffles: every feature of tabular data,
--patch×--patch squares of an image (--patch 1: every pixel). --png draws the loss
increase per pixel over the split's mean image. Dense (tabular, image) models only.

--method attention draws the attention weights of a Transformer for one example (--index):
rows are query tokens, columns key tokens, one heat map per --layer (0: all) and --head
(mean: the mean over the layer's heads, all: every head, or a head's number), over the
first --max-tokens tokens.

Privacy: an explanation discloses the data it is computed on. A saliency map of a training
image shows that image; a token map prints an e-mail's words; permutation importance on a
private dataset is a statistic of it released without noise, and a model's DP guarantee
(its ε) does not cover explanations computed on its training data. Explain on public data
(the MNIST test set is public), on inputs whose owner asks for the explanation, or on a
held-out set gathered for the purpose with consent — not on --split train of private
data. After a federation the server holds no client data: explain the global model on the
public evaluation set it already uses.

-o json prints one object: the examples with their predictions and attributions, the
importances, or the maps (cropped to --max-tokens), and the files written. A missing or
corrupt model file, a dataset that does not fit the model and bad flag values exit with
code 2.`,
		Example: `  confide model explain mnist.confide --dataset mnist --index 0,1,2 --png docs/mnist-saliency.png
  confide model explain mnist.confide --dataset mnist --method permutation --patch 4 --max-examples 1000 -o json
  confide model explain spam.confide --dataset spam --data-path spamassassin.jsonl.gz --index 3 --html spam.html
  confide model explain spam.confide --dataset spam --data-path spamassassin.jsonl.gz --method attention --index 3 --max-tokens 24 --png attention.png`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runModelExplain(ctx, g, cmd, cmd.OutOrStdout(), args[0], f)
		},
	}
	f.df.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.split, "split", "test", "the split whose examples are explained: test or train (see Privacy)")
	fl.Uint64Var(&f.seed, "data-seed", 0, "seed of the dataset's random split (spam); default: the seed the model was trained with")
	fl.StringVar(&f.method, "method", methodIG, "integrated-gradients, permutation or attention")
	fl.IntSliceVar(&f.indices, "index", []int{0}, "the examples of the split to explain (integrated gradients: several, comma-separated; attention: one)")
	fl.StringVar(&f.target, "target", "predicted", "the class explained: predicted, label, or a class name or number")
	fl.StringVar(&f.output, "of", string(explain.OutputLogit), "integrated gradients of the target's logit or probability")
	fl.IntVar(&f.steps, "steps", explain.DefaultSteps, "integrated gradients: the quadrature nodes to start with")
	fl.Float64Var(&f.tol, "tolerance", explain.DefaultTolerance, "integrated gradients: the completeness error to reach, relative to |f(x) − f(baseline)|")
	fl.IntVar(&f.maxStep, "max-steps", explain.DefaultMaxSteps, "integrated gradients: the most nodes to double up to")
	fl.StringVar(&f.png, "png", "", "draw the explanation into this PNG file")
	fl.StringVar(&f.html, "html", "", "integrated gradients of a text model: write the token attributions as HTML to this file")
	fl.IntVar(&f.layer, "layer", 0, "attention: the layer to draw, from 1 (0: all)")
	fl.StringVar(&f.head, "head", "mean", "attention: mean (of the layer's heads), all, or a head's number from 1")
	fl.IntVar(&f.maxTok, "max-tokens", 32, "attention maps and token PNGs: the first N tokens of a text")
	fl.IntVar(&f.patch, "patch", 4, "permutation on images: the side of the square patches shuffled together (1: every pixel)")
	fl.IntVar(&f.repeats, "repeats", 3, "permutation: shuffles per feature group")
	fl.IntVar(&f.maxEx, "max-examples", 1000, "permutation: the first N examples of the split (0: all)")
	fl.IntVar(&f.batch, "batch", 256, "permutation: examples per forward pass")
	fl.IntVar(&f.top, "top", 10, "human output: the N largest attributions or importances")
	fl.Uint64Var(&f.permSed, "seed", 1, "permutation: seed of the shuffles")
	return cmd
}

func (f *explainFlags) check() error {
	switch {
	case f.method != methodIG && f.method != methodPermutation && f.method != methodAttention:
		return usageErr("--method %q: use %s, %s or %s", f.method, methodIG, methodPermutation, methodAttention)
	case f.split != "test" && f.split != "train":
		return usageErr("--split %q: use test or train", f.split)
	case f.output != string(explain.OutputProbability) && f.output != string(explain.OutputLogit):
		return usageErr("--of %q: use probability or logit", f.output)
	case f.steps < 1 || f.maxStep < 1:
		return usageErr("--steps %d, --max-steps %d: must be ≥ 1", f.steps, f.maxStep)
	case !(f.tol > 0):
		return usageErr("--tolerance %g: must be > 0, e.g. 0.01", f.tol)
	case f.layer < 0:
		return usageErr("--layer %d: must be ≥ 1, or 0 for all", f.layer)
	case f.maxTok < 1:
		return usageErr("--max-tokens %d: must be ≥ 1", f.maxTok)
	case f.patch < 1:
		return usageErr("--patch %d: must be ≥ 1", f.patch)
	case f.repeats < 1:
		return usageErr("--repeats %d: must be ≥ 1", f.repeats)
	case f.maxEx < 0:
		return usageErr("--max-examples %d: must be ≥ 0 (0: all)", f.maxEx)
	case f.batch < 1:
		return usageErr("--batch %d: must be ≥ 1", f.batch)
	case f.top < 0:
		return usageErr("--top %d: must be ≥ 0", f.top)
	case len(f.indices) == 0:
		return usageErr("--index: name at least one example")
	case f.method == methodAttention && len(f.indices) != 1:
		return usageErr("--index %v: attention maps are drawn for one example at a time", f.indices)
	case f.df.opts.SeqLen < 0:
		return usageErr("--seq-len %d: must be ≥ 0", f.df.opts.SeqLen)
	case f.html != "" && f.method != methodIG:
		return usageErr("--html: only integrated gradients of a text model write HTML")
	}
	if f.head != "mean" && f.head != "all" {
		if h, err := strconv.Atoi(f.head); err != nil || h < 1 {
			return usageErr("--head %q: use mean, all or a head's number from 1", f.head)
		}
	}
	for _, i := range f.indices {
		if i < 0 {
			return usageErr("--index %d: examples count from 0", i)
		}
	}
	if f.png != "" && !strings.EqualFold(filepath.Ext(f.png), ".png") {
		return usageErr("--png %q: give a file name ending in .png", f.png)
	}
	if f.html != "" && !strings.EqualFold(filepath.Ext(f.html), ".html") && !strings.EqualFold(filepath.Ext(f.html), ".htm") {
		return usageErr("--html %q: give a file name ending in .html", f.html)
	}
	return nil
}

func runModelExplain(ctx context.Context, g *globalOptions, cmd *cobra.Command, w io.Writer, path string, f *explainFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	m := mf.m
	if m.Spec.Loss == model.LossMSE {
		return usageErr("model %s is a regression model (loss mse): explain reads classifiers (loss cross_entropy)", path)
	}
	switch {
	case f.method == methodPermutation && m.Spec.IsSequence():
		return usageErr("model %s reads text: permutation importance needs dense features (tabular or image models); explain text models with --method %s or %s", path, methodIG, methodAttention)
	case f.method == methodAttention && m.AttentionLayers() == 0:
		return usageErr("model %s (%s) has no attention layers: attention maps are drawn for Transformers", path, modelName(m.Spec))
	case f.method == methodIG && m.Features() != nil:
		return usageErr("model %s reads its inputs through a scattering transform, which has no gradient: integrated gradients is not available; use --method %s", path, methodPermutation)
	case f.html != "" && !m.Spec.IsSequence():
		return usageErr("--html: model %s reads %s; HTML token maps are for text models (use --png)", path, inputShape(m))
	}
	if f.method == methodAttention && f.layer > m.AttentionLayers() {
		return usageErr("--layer %d: model %s has %d attention layers", f.layer, path, m.AttentionLayers())
	}
	if h, err := strconv.Atoi(f.head); err == nil && h > m.Spec.Heads {
		return usageErr("--head %d: model %s has %d heads", h, path, m.Spec.Heads)
	}
	trainSet, testSet, err := modelDatasets(ctx, m, path, f.df, f.seed)
	if err != nil {
		return err
	}
	ds := testSet
	if f.split == "train" {
		ds = trainSet
		slog.Warn("explaining training examples: " + privacyNote)
	}
	for _, i := range f.indices {
		if i >= ds.N {
			return usageErr("--index %d: the %s split of %s has %d examples (0 to %d)", i, f.split, f.df.name, ds.N, ds.N-1)
		}
	}
	start := time.Now()
	res := explainResult{Model: path, ModelName: modelName(m.Spec), Method: f.method, Dataset: f.df.name, Split: f.split, Privacy: privacyNote}
	x := explainer{m: m, ds: ds, f: f, names: m.Meta.OutputNames(m.Spec)}
	if x.names == nil && len(ds.ClassNames) == m.Spec.Output {
		x.names = ds.ClassNames
	}
	switch f.method {
	case methodIG:
		err = x.integratedGradients(ctx, &res)
	case methodPermutation:
		err = x.permutation(ctx, &res)
	case methodAttention:
		err = x.attention(&res)
	}
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	return g.emit(w, res, func(w io.Writer) { res.print(w, f.top) })
}

// explainer explains a model on the examples of a dataset.
type explainer struct {
	m     *model.Model
	ds    *data.Dataset
	f     *explainFlags
	names []string
}

// input returns example i as a batch of one (a text without its padding).
func (x *explainer) input(i int) *model.Input {
	ds := x.ds
	if ds.IsText() {
		L := ds.SeqLen
		if ds.Lengths != nil {
			L = int(ds.Lengths[i])
		}
		return &model.Input{B: 1, T: L, Tokens: slices.Clone(ds.Tokens[i*ds.SeqLen : i*ds.SeqLen+L])}
	}
	return &model.Input{B: 1, X: slices.Clone(ds.X[i*ds.Dim : (i+1)*ds.Dim])}
}

// label returns example i's label: its class, or the token after a language model's last
// position.
func (x *explainer) label(i int, in *model.Input) int {
	if x.ds.Task == data.TaskNextToken {
		return int(x.ds.Targets[i*x.ds.SeqLen+in.T-1])
	}
	return int(x.ds.Y[i])
}

// predict fills e's prediction of example in (its last position for a language model).
func (x *explainer) predict(in *model.Input, e *explainedExample) error {
	out, err := x.m.Forward(in)
	if err != nil {
		return usageErr("example %d: %v", e.Index, err)
	}
	z := out.Row(out.Rows - 1)
	p := make([]float64, len(z))
	metrics.Softmax(p, z)
	e.Predicted = metrics.ArgMax(p)
	e.Probability = p[e.Predicted]
	e.PredName, e.LabelName = x.className(e.Predicted), x.className(e.Label)
	return nil
}

// className is class c's name: the model's class name, a token for a language model.
func (x *explainer) className(c int) string {
	if x.m.Spec.Task == model.TaskNextToken {
		return tokenLabel(x.m.Meta.Tokenizer, int32(c))
	}
	if c >= 0 && c < len(x.names) {
		return x.names[c]
	}
	return ""
}

// resolveTarget returns the class --target names for an example.
func (x *explainer) resolveTarget(e *explainedExample) (int, error) {
	switch t := x.f.target; t {
	case "predicted":
		return e.Predicted, nil
	case "label":
		return e.Label, nil
	default:
		if i := slices.Index(x.names, t); i >= 0 {
			return i, nil
		}
		k, err := strconv.Atoi(t)
		outs := x.m.Spec.Output
		if x.m.Spec.Task == model.TaskNextToken {
			outs = x.m.Spec.Vocab
		}
		if err != nil || k < 0 || k >= outs {
			names := ""
			if len(x.names) > 0 {
				names = " or a class name (" + shortNames(x.names) + ")"
			}
			return 0, usageErr("--target %q: use predicted, label, a class number from 0 to %d%s", t, outs-1, names)
		}
		return k, nil
	}
}

func (x *explainer) integratedGradients(ctx context.Context, res *explainResult) error {
	f, m := x.f, x.m
	text := m.Spec.IsSequence()
	rows, cols := imageShape(m, x.ds)
	res.imageCols = cols
	if f.png != "" && !text && rows == 0 {
		return usageErr("--png: model reads %s, not an image: its attributions are in -o json", inputShape(m))
	}
	var images []explain.ImageAttribution
	var texts []explain.TokenAttribution
	for _, i := range f.indices {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := x.input(i)
		e := explainedExample{Index: i, Label: x.label(i, in)}
		if err := x.predict(in, &e); err != nil {
			return err
		}
		target, err := x.resolveTarget(&e)
		if err != nil {
			return err
		}
		a, err := explain.IntegratedGradients(m, in, target, nil, explain.IGOptions{Steps: f.steps, Output: explain.Output(f.output), Tolerance: f.tol, MaxSteps: max(f.maxStep, f.steps)})
		if err != nil {
			if errors.Is(err, explain.ErrNoGradient) {
				return usageErr("%v", err)
			}
			return fmt.Errorf("example %d: %w", i, err)
		}
		if !a.Converged {
			slog.Warn("integrated gradients did not reach the tolerance: raise --max-steps", "example", i, "completeness_error", a.CompletenessError, "steps", a.Steps)
		}
		e.igExplanation = &igExplanation{Target: target, TargetName: x.className(target), Output: string(a.Output),
			F: a.F, Baseline: a.Baseline, Sum: a.Sum, CompletenessError: a.CompletenessError, Converged: a.Converged, Steps: a.Steps,
			Attributions: a.Features}
		title := fmt.Sprintf("%s #%d: label %s, predicted %s (%.3f)", f.split, i, orNumber(e.LabelName, e.Label), orNumber(e.PredName, e.Predicted), e.Probability)
		if text {
			e.Tokens = make([]string, len(in.Tokens))
			for t, id := range in.Tokens {
				e.Tokens[t] = tokenLabel(m.Meta.Tokenizer, id)
			}
			texts = append(texts, explain.TokenAttribution{Title: title + fmt.Sprintf("; explaining %s of %s", a.Output, orNumber(e.TargetName, target)), Tokens: e.Tokens, Values: e.Attributions})
		} else if rows > 0 {
			images = append(images, explain.ImageAttribution{Title: title, Pixels: in.X, Values: e.Attributions})
		}
		res.Examples = append(res.Examples, e)
	}
	if f.html != "" {
		title := fmt.Sprintf("Integrated gradients of %s on %s %s", filepath.Base(res.Model), res.Dataset, res.Split)
		if err := writeFileWith(f.html, "--html", func(w io.Writer) error { return explain.TokenHTML(w, title, texts) }); err != nil {
			return err
		}
		res.HTML = f.html
	}
	if f.png == "" {
		return nil
	}
	var draw func(w io.Writer) error
	if text {
		cropped := make([]explain.TokenAttribution, len(texts))
		for k, t := range texts {
			n := min(len(t.Tokens), f.maxTok)
			cropped[k] = explain.TokenAttribution{Title: t.Title, Tokens: t.Tokens[:n], Values: t.Values[:n]}
			if n < len(t.Tokens) {
				cropped[k].Title += fmt.Sprintf(" (first %d of %d tokens)", n, len(t.Tokens))
			}
		}
		draw = func(w io.Writer) error { return explain.TokenPNG(w, cropped) }
	} else {
		draw = func(w io.Writer) error { return explain.SaliencyPNG(w, rows, cols, images) }
	}
	if err := writeFileWith(f.png, "--png", draw); err != nil {
		return err
	}
	res.PNG = f.png
	return nil
}

func (x *explainer) permutation(ctx context.Context, res *explainResult) error {
	f, ds := x.f, x.ds
	if f.maxEx > 0 && f.maxEx < ds.N {
		idx := make([]int, f.maxEx)
		for i := range idx {
			idx[i] = i
		}
		ds = ds.Subset(idx)
	}
	rows, cols := imageShape(x.m, ds)
	var groups [][]int
	if rows > 0 {
		var err error
		if groups, err = explain.PatchGroups(rows, cols, f.patch); err != nil {
			return usageErr("--patch: %v", err)
		}
		res.Patch = f.patch
	} else if f.png != "" {
		return usageErr("--png: model reads %s, not an image: the importances are in -o json", inputShape(x.m))
	}
	n := len(groups)
	if n == 0 {
		n = ds.Dim
	}
	bar := newProgress(int64(n), "permutation")
	r, err := explain.PermutationImportance(ctx, x.m, ds, explain.PermutationOptions{
		Groups: groups, Repeats: f.repeats, Batch: f.batch, Rand: rand.New(rand.NewPCG(f.permSed, 0x7065726d)),
		Progress: func(int) {
			if bar != nil {
				bar.Add(1)
			}
		},
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		if errors.Is(err, explain.ErrNotDense) {
			return usageErr("%v", err)
		}
		return err
	}
	res.Permutation = r
	res.topGroups = slices.Clone(r.Importances)
	sort.SliceStable(res.topGroups, func(a, b int) bool { return res.topGroups[a].LossIncrease > res.topGroups[b].LossIncrease })
	if f.png == "" {
		return nil
	}
	mean := make([]float64, ds.Dim)
	for i := range ds.N {
		for j, v := range ds.X[i*ds.Dim : (i+1)*ds.Dim] {
			mean[j] += v / float64(ds.N)
		}
	}
	perPixel := make([]float64, ds.Dim)
	for _, imp := range r.Importances {
		for _, j := range imp.Features {
			perPixel[j] = imp.LossIncrease
		}
	}
	title := fmt.Sprintf("mean of %d %s images; loss %.4f, accuracy %.4f", ds.N, res.Split, r.Loss, r.Accuracy)
	img := []explain.ImageAttribution{{Title: title, Pixels: mean, Values: perPixel}}
	if err := writeFileWith(f.png, "--png", func(w io.Writer) error { return explain.SaliencyPNG(w, rows, cols, img) }); err != nil {
		return err
	}
	res.PNG = f.png
	return nil
}

func (x *explainer) attention(res *explainResult) error {
	f, m := x.f, x.m
	i := f.indices[0]
	in := x.input(i)
	e := explainedExample{Index: i, Label: x.label(i, in)}
	if err := x.predict(in, &e); err != nil {
		return err
	}
	res.Examples = []explainedExample{e}
	maps, err := explain.AttentionMaps(m, in)
	if err != nil {
		return usageErr("%v", err)
	}
	L := in.T
	n := min(L, f.maxTok)
	rep := &attentionReport{Layers: len(maps), Heads: m.Spec.Heads, TokensTotal: L}
	for t := range n {
		rep.Tokens = append(rep.Tokens, tokenLabel(m.Meta.Tokenizer, in.Tokens[t]))
	}
	var panels []explain.AttentionPanel
	for l, heads := range maps {
		if f.layer != 0 && l+1 != f.layer {
			continue
		}
		add := func(head int, w []float64, title string) {
			crop := make([]float64, n*n)
			rowsOut := make([][]float64, n)
			for q := range n {
				copy(crop[q*n:(q+1)*n], w[q*L:q*L+n])
				rowsOut[q] = crop[q*n : (q+1)*n]
			}
			rep.Maps = append(rep.Maps, attnMapOut{Layer: l + 1, Head: head, Weights: rowsOut})
			panels = append(panels, explain.AttentionPanel{Title: title, Weights: crop})
		}
		switch f.head {
		case "mean":
			add(0, explain.MeanHeads(heads), fmt.Sprintf("layer %d, mean of %d heads", l+1, len(heads)))
		case "all":
			for h, w := range heads {
				add(h+1, w, fmt.Sprintf("layer %d, head %d", l+1, h+1))
			}
		default:
			h, _ := strconv.Atoi(f.head) // checked against the model's heads
			add(h, heads[h-1], fmt.Sprintf("layer %d, head %d", l+1, h))
		}
	}
	res.Attention = rep
	if f.png == "" {
		return nil
	}
	if n < L {
		for k := range panels {
			panels[k].Title += fmt.Sprintf(" (first %d of %d tokens)", n, L)
		}
	}
	perRow := min(len(panels), 4)
	if err := writeFileWith(f.png, "--png", func(w io.Writer) error { return explain.AttentionPNG(w, rep.Tokens, panels, perRow) }); err != nil {
		return err
	}
	res.PNG = f.png
	return nil
}

// imageShape returns the rows and columns of the images m reads (from its file, else the
// dataset), or 0, 0 when its inputs are not images.
func imageShape(m *model.Model, ds *data.Dataset) (rows, cols int) {
	shape := ds.Shape
	if in := m.Meta.Input; in != nil && len(in.Shape) == 2 {
		shape = in.Shape
	}
	if len(shape) != 2 || shape[0]*shape[1] != m.Spec.Input || m.Spec.IsSequence() {
		return 0, 0
	}
	return shape[0], shape[1]
}

// tokenLabel is how a token is shown: its word or character (blanks made visible), or
// <pad>, <unk>, #id when the model records no tokenizer.
func tokenLabel(t *model.TokenizerMeta, id int32) string {
	switch {
	case id == data.PadID:
		return "<pad>"
	case id == data.UnknownID:
		return "<unk>"
	case t == nil || int(id)-2 >= len(t.Vocab) || id < 2:
		return "#" + strconv.Itoa(int(id))
	}
	s := t.Vocab[id-2]
	if t.Type == model.TokenizerChar {
		switch s {
		case " ":
			return "␣"
		case "\n":
			return "⏎"
		case "\t":
			return "⇥"
		}
	}
	return s
}

// orNumber is name, or n when there is no name.
func orNumber(name string, n int) string {
	if name == "" {
		return strconv.Itoa(n)
	}
	return name
}

// writeFileWith writes what draw writes to path atomically; flag names the file in errors.
func writeFileWith(path, flag string, draw func(io.Writer) error) error {
	var buf bufferWriter
	if err := draw(&buf); err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if err := atomicfile.Write(path, buf.b, 0o644); err != nil {
		return fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return nil
}

func (r explainResult) print(w io.Writer, top int) {
	fmt.Fprintf(w, "%s (%s), %s on %s %s (%.1fs)\n", r.Model, r.ModelName, r.Method, r.Dataset, r.Split, r.Seconds)
	for _, e := range r.Examples {
		fmt.Fprintf(w, "#%d: label %s, predicted %s (p %.4f)\n", e.Index, orNumber(e.LabelName, e.Label), orNumber(e.PredName, e.Predicted), e.Probability)
		if e.igExplanation == nil {
			continue
		}
		fmt.Fprintf(w, "  %s of %s: %.4f at the input, %.4f at the baseline; attributions sum to %.4f (completeness error %.2f%%, %d steps)\n",
			e.Output, orNumber(e.TargetName, e.Target), e.F, e.Baseline, e.Sum, 100*e.CompletenessError, e.Steps)
		order := make([]int, len(e.Attributions))
		for k := range order {
			order[k] = k
		}
		sort.SliceStable(order, func(a, b int) bool { return math.Abs(e.Attributions[order[a]]) > math.Abs(e.Attributions[order[b]]) })
		for _, k := range order[:min(top, len(order))] {
			what := fmt.Sprintf("feature %d", k)
			if r.imageCols > 0 {
				what = fmt.Sprintf("pixel (row %d, column %d)", k/r.imageCols, k%r.imageCols)
			}
			if e.Tokens != nil {
				what = fmt.Sprintf("token %d %q", k, e.Tokens[k])
			}
			fmt.Fprintf(w, "  %-28s %+.4f\n", what, e.Attributions[k])
		}
	}
	if p := r.Permutation; p != nil {
		unit := "feature"
		if r.Patch > 0 {
			unit = fmt.Sprintf("%d×%d patch", r.Patch, r.Patch)
		}
		fmt.Fprintf(w, "%d examples: loss %.4f, accuracy %.4f; shuffling each %s (%d times):\n", p.Examples, p.Loss, p.Accuracy, unit, p.Repeats)
		fmt.Fprintf(w, "  %-8s %-22s %-22s\n", "group", "loss increase (std)", "accuracy drop (std)")
		for _, imp := range r.topGroups[:min(top, len(r.topGroups))] {
			fmt.Fprintf(w, "  %-8d %+.4f (%.4f)      %+.4f (%.4f)\n", imp.Group, imp.LossIncrease, imp.LossIncreaseStd, imp.AccuracyDrop, imp.AccuracyDropStd)
		}
	}
	if a := r.Attention; a != nil {
		fmt.Fprintf(w, "%d attention maps (%d layers × %d heads in the model) over %d of %d tokens\n", len(a.Maps), a.Layers, a.Heads, len(a.Tokens), a.TokensTotal)
	}
	if r.PNG != "" {
		fmt.Fprintf(w, "drawn in %s\n", r.PNG)
	}
	if r.HTML != "" {
		fmt.Fprintf(w, "written to %s\n", r.HTML)
	}
}
