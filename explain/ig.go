package explain

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/integrate/quad"

	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// ErrNoGradient says that a model cannot be differentiated with respect to its raw inputs:
// its feature stage (the scattering transform) has no gradient.
var ErrNoGradient = errors.New("explain: the model's feature stage has no gradient")

// Output is the scalar function of a model's outputs that integrated gradients explains.
type Output string

const (
	// OutputProbability is the target class's softmax probability.
	OutputProbability Output = "probability"
	// OutputLogit is the target class's logit (the output before the softmax).
	OutputLogit Output = "logit"
)

// Defaults of IGOptions.
const (
	DefaultSteps     = 64
	DefaultMaxSteps  = 4096
	DefaultTolerance = 0.01
)

// IGOptions configure IntegratedGradients. The zero value is the default.
type IGOptions struct {
	// Steps is the number of Gauss–Legendre nodes on the path (default DefaultSteps).
	Steps int
	// Tolerance is the completeness error to reach (default DefaultTolerance, 1%): while
	// the attributions' sum is off f(x) − f(baseline) by more, the steps are doubled, up
	// to MaxSteps (default DefaultMaxSteps; at most Steps disables refining). Smooth models
	// (tanh, GELU) converge fast; ReLU units make the integrand jump where they switch,
	// and the error then falls as 1/steps.
	Tolerance float64
	MaxSteps  int
	// Output is f: the target's logit (default) or probability. The probability saturates:
	// where input and baseline are both classified with certainty (a zero-embedding
	// baseline a spam filter calls spam) it leaves nothing to attribute.
	Output Output
	// Chunk bounds the nodes run in one batch (default: all of them for a dense model, as
	// many as make 4,096 rows for sequences: attention keeps B·heads·T² weights).
	Chunk int
}

func (o IGOptions) withDefaults() (IGOptions, error) {
	if o.Steps == 0 {
		o.Steps = DefaultSteps
	}
	if o.Output == "" {
		o.Output = OutputLogit
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.MaxSteps == 0 {
		o.MaxSteps = max(DefaultMaxSteps, o.Steps)
	}
	switch {
	case o.Steps < 1:
		return o, fmt.Errorf("explain: %d integration steps: need at least 1", o.Steps)
	case o.Tolerance < 0 || math.IsNaN(o.Tolerance):
		return o, fmt.Errorf("explain: tolerance %g: must be > 0", o.Tolerance)
	case o.Output != OutputProbability && o.Output != OutputLogit:
		return o, fmt.Errorf("explain: output %q: use %s or %s", o.Output, OutputProbability, OutputLogit)
	case o.Chunk < 0:
		return o, fmt.Errorf("explain: chunk %d: must be ≥ 0 (0: automatic)", o.Chunk)
	}
	return o, nil
}

// Attribution is the integrated-gradients attribution of one example's output.
type Attribution struct {
	// Target is the class (or, for a next-token model, the token id at the last position)
	// whose Output is explained.
	Target int
	Output Output
	// Values is the attribution of every value of the representation, Rows×Cols row-major:
	// 1×Input for a dense model (1×the embedding stage's width with embedded categorical
	// columns), Len×Embed (one row a token) for a sequence model.
	Values     []float64
	Rows, Cols int
	// Features is the attribution of every input feature (a dense model's Values; for an
	// embedded categorical column the sum over its vector's dimensions) or token (the sum
	// of its row of Values).
	Features []float64
	// F and Baseline are f at the input and at the baseline; Sum is Σ Values.
	F, Baseline, Sum float64
	// CompletenessError is |Sum − (F − Baseline)| / |F − Baseline| (absolute when F equals
	// Baseline): the quadrature's error, which more Steps reduce.
	CompletenessError float64
	// Steps is the number of nodes of the result; Converged says whether its
	// CompletenessError is within the tolerance.
	Steps     int
	Converged bool
}

// IntegratedGradients explains f, the target's Output, for the single example in (B = 1:
// dense X, or Tokens of length T, with Lengths optional) against baseline, a tensor of the
// shape of its representation (nil: zeros, a black image or zero embeddings). For a
// next-token model target is the token predicted after the last valid position.
func IntegratedGradients(m *model.Model, in *model.Input, target int, baseline *model.Tensor, o IGOptions) (*Attribution, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if m.Features() != nil {
		return nil, fmt.Errorf("%w: integrated gradients would stop at its output, not the raw inputs (use permutation importance)", ErrNoGradient)
	}
	if in.B != 1 {
		return nil, fmt.Errorf("explain: integrated gradients explains one example at a time, got %d", in.B)
	}
	classes := m.Spec.Output
	if m.Spec.Task == model.TaskNextToken {
		classes = m.Spec.Vocab
	}
	if target < 0 || target >= classes {
		return nil, fmt.Errorf("explain: target %d outside the model's %d outputs", target, classes)
	}
	x, err := m.Representation(in)
	if err != nil {
		return nil, err
	}
	if baseline == nil {
		baseline = &model.Tensor{Data: make([]float64, len(x.Data)), Rows: x.Rows, Cols: x.Cols}
	}
	if baseline.Rows != x.Rows || baseline.Cols != x.Cols || len(baseline.Data) != len(x.Data) {
		return nil, fmt.Errorf("explain: baseline is %d×%d, the example's representation %d×%d", baseline.Rows, baseline.Cols, x.Rows, x.Cols)
	}
	p := path{m: m, in: in, x: x, baseline: baseline, target: target, output: o.Output}
	p.outRows, p.targetRow = 1, 0
	if m.Spec.Task == model.TaskNextToken {
		p.outRows, p.targetRow = x.Rows, x.Rows-1
		if in.Lengths != nil {
			p.targetRow = int(in.Lengths[0]) - 1
		}
		if p.targetRow < 0 {
			return nil, fmt.Errorf("explain: the example has no tokens")
		}
	}
	ends, err := p.values([]float64{1, 0})
	if err != nil {
		return nil, err
	}
	var a *Attribution
	for steps := o.Steps; ; steps *= 2 {
		if a, err = p.integrate(steps, o.Chunk); err != nil {
			return nil, err
		}
		a.F, a.Baseline = ends[0], ends[1]
		diff := a.F - a.Baseline
		a.CompletenessError = math.Abs(a.Sum - diff)
		if diff != 0 {
			a.CompletenessError /= math.Abs(diff)
		}
		a.Converged = a.CompletenessError <= o.Tolerance
		if a.Converged || 2*steps > o.MaxSteps {
			return a, nil
		}
	}
}

// integrate returns the attributions from a Gauss–Legendre rule of steps nodes, chunk of
// them a batch (0: automatic); F, Baseline and the error are left to the caller.
func (p *path) integrate(steps, chunk int) (*Attribution, error) {
	x, baseline := p.x, p.baseline
	a := &Attribution{Target: p.target, Output: p.output, Rows: x.Rows, Cols: x.Cols, Steps: steps}
	alphas, weights := make([]float64, steps), make([]float64, steps)
	quad.Legendre{}.FixedLocations(alphas, weights, 0, 1)
	if chunk == 0 {
		chunk = steps
		if p.m.Spec.IsSequence() {
			chunk = max(1, 4096/x.Rows)
		}
	}
	grad := make([]float64, len(x.Data)) // ∫₀¹ ∂f/∂x dα
	for lo := 0; lo < steps; lo += chunk {
		hi := min(lo+chunk, steps)
		if err := p.addGradients(grad, alphas[lo:hi], weights[lo:hi]); err != nil {
			return nil, err
		}
	}
	a.Values = make([]float64, len(x.Data))
	for j := range a.Values {
		a.Values[j] = (x.Data[j] - baseline.Data[j]) * grad[j]
		a.Sum += a.Values[j]
	}
	if !p.m.Spec.IsSequence() {
		var err error
		if a.Features, err = p.m.InputFeatures(a.Values); err != nil {
			return nil, err
		}
	} else {
		a.Features = make([]float64, x.Rows)
		for t := range a.Features {
			for _, v := range a.Values[t*x.Cols : (t+1)*x.Cols] {
				a.Features[t] += v
			}
		}
	}
	return a, nil
}

// path is the straight line from a baseline to an input's representation.
type path struct {
	m           *model.Model
	in          *model.Input
	x, baseline *model.Tensor
	target      int
	output      Output
	// outRows is the number of output rows of one example, targetRow the one explained.
	outRows, targetRow int
}

// batch returns the representations baseline + α(x − baseline) for alphas as one batch.
func (p *path) batch(alphas []float64) (*model.Input, *model.Tensor) {
	n := len(p.x.Data)
	xs := &model.Tensor{Data: make([]float64, len(alphas)*n), Rows: len(alphas) * p.x.Rows, Cols: p.x.Cols}
	for k, a := range alphas {
		dst := xs.Data[k*n : (k+1)*n]
		for j, b := range p.baseline.Data {
			dst[j] = b + a*(p.x.Data[j]-b)
		}
	}
	in := &model.Input{B: len(alphas), T: p.in.T}
	if p.in.Lengths != nil {
		in.Lengths = make([]int32, len(alphas))
		for k := range in.Lengths {
			in.Lengths[k] = p.in.Lengths[0]
		}
	}
	return in, xs
}

// f returns the explained output of row r of out.
func (p *path) f(out *model.Tensor, r int, probs []float64) float64 {
	z := out.Row(r)
	if p.output == OutputLogit {
		return z[p.target]
	}
	metrics.Softmax(probs, z)
	return probs[p.target]
}

// values returns f at the points of the path at alphas.
func (p *path) values(alphas []float64) ([]float64, error) {
	in, xs := p.batch(alphas)
	out, err := p.m.ForwardFrom(in, xs)
	if err != nil {
		return nil, err
	}
	probs := make([]float64, out.Cols)
	v := make([]float64, len(alphas))
	for k := range alphas {
		v[k] = p.f(out, k*p.outRows+p.targetRow, probs)
	}
	return v, nil
}

// addGradients adds Σ_k weights[k]·∂f/∂x at the points of the path at alphas to grad.
func (p *path) addGradients(grad, alphas, weights []float64) error {
	in, xs := p.batch(alphas)
	out, err := p.m.ForwardFrom(in, xs)
	if err != nil {
		return err
	}
	dOut := &model.Tensor{Data: make([]float64, len(out.Data)), Rows: out.Rows, Cols: out.Cols}
	probs := make([]float64, out.Cols)
	for k, w := range weights {
		r := k*p.outRows + p.targetRow
		d := dOut.Row(r)
		if p.output == OutputLogit {
			d[p.target] = w
			continue
		}
		// ∂p_t/∂z_j = p_t(δ_tj − p_j)
		pt := p.f(out, r, probs)
		for j, pj := range probs {
			d[j] = -w * pt * pj
		}
		d[p.target] += w * pt
	}
	dx, err := p.m.BackwardTo(dOut)
	if err != nil {
		return err
	}
	n := len(grad)
	for k := range weights {
		for j, g := range dx.Data[k*n : (k+1)*n] {
			grad[j] += g
		}
	}
	p.m.ZeroGrads()
	return nil
}
