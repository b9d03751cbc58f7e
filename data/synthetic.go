package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SyntheticOptions configures Synthetic. The zero value, with Alpha and Beta set, is the
// paper's setting: 30 devices, 60 features, 10 classes.
type SyntheticOptions struct {
	// Alpha controls how much the devices' models differ, Beta how much their inputs do.
	Alpha, Beta float64
	// IID generates FedProx's Synthetic-IID instead: one W, b ~ N(0, 1) for all devices
	// and v_k = 0 (Alpha and Beta are ignored).
	IID bool
	// NumDevices, Dim and NumClasses; 0 means 30, 60 and 10.
	NumDevices, Dim, NumClasses int
}

// maxSyntheticExamples bounds the total size, against an extreme log-normal draw.
const maxSyntheticExamples = 1 << 24

// Synthetic generates the Synthetic(α, β) data set of Li et al. 2020 ("Federated
// Optimization in Heterogeneous Networks", Sec. 5.1), as the authors' generator
// (FedProx repository, data/synthetic_*/generate_synthetic.py) draws it. For device k:
//
//	u_k ~ N(0, α²), B_k ~ N(0, β²)
//	W_k ∈ R^{d×c} and b_k ∈ R^c with elements ~ N(u_k, 1)
//	v_k ∈ R^d with elements ~ N(B_k, 1)
//	x ~ N(v_k, Σ), Σ diagonal with Σ_jj = j^(−1.2) (j from 1)
//	y = argmax softmax(W_kᵀ x + b_k)
//
// The paper writes N(0, α); the generator passes α as the standard deviation
// (numpy.random.normal(0, alpha)), and so does this function. Note that u_k shifts every
// entry of W_k and b_k alike, which adds u_k(Σ_j x_j + 1) to every logit: the labels, and
// so the learning problem, do not depend on α (only on the per-device draws and on β).
// This is a property of the published construction, kept for comparability. The number of examples of
// device k is ⌊exp(4 + 2z)⌋ + 50 with z ~ N(0, 1) (numpy.random.lognormal(4, 2) cast to
// int, plus 50): a heavy-tailed power law. Group[i] is the device of example i
// (GroupNames "f_00000", … as the generator names its users), and the natural partition,
// one client per device, is returned with it. FedProx then holds out 10% of each device
// for testing: StratifiedSplit(d.Group, 0.1, rng) does that.
func Synthetic(opts SyntheticOptions, rng *rand.Rand) (*Dataset, [][]int, error) {
	if err := checkRNG("synthetic", rng); err != nil {
		return nil, nil, err
	}
	devices, dim, classes := opts.NumDevices, opts.Dim, opts.NumClasses
	if devices == 0 {
		devices = 30
	}
	if dim == 0 {
		dim = 60
	}
	if classes == 0 {
		classes = 10
	}
	if devices < 1 || dim < 1 || classes < 2 {
		return nil, nil, fmt.Errorf("data: synthetic: %d devices, %d features and %d classes; want ≥ 1, ≥ 1 and ≥ 2", devices, dim, classes)
	}
	if !opts.IID && (!(opts.Alpha >= 0) || !(opts.Beta >= 0) || math.IsInf(opts.Alpha, 0) || math.IsInf(opts.Beta, 0)) {
		return nil, nil, fmt.Errorf("data: synthetic: α = %v and β = %v, want finite and ≥ 0 (e.g. Synthetic(1, 1))", opts.Alpha, opts.Beta)
	}

	sizes := make([]int, devices)
	total := 0
	for k := range sizes {
		sizes[k] = int(math.Exp(4+2*rng.NormFloat64())) + 50
		total += sizes[k]
		if total > maxSyntheticExamples {
			return nil, nil, fmt.Errorf("data: synthetic: the log-normal device sizes exceed %d examples; use another seed", maxSyntheticExamples)
		}
	}
	// Σ_jj = (j+1)^(−1.2) for 0-based j; x = v + sqrt(Σ)·z.
	sd := make([]float64, dim)
	for j := range sd {
		sd[j] = math.Pow(float64(j+1), -0.6)
	}

	u := make([]float64, devices)
	v := make([][]float64, devices)
	if !opts.IID {
		for k := range u {
			u[k] = opts.Alpha * rng.NormFloat64()
		}
		B := make([]float64, devices)
		for k := range B {
			B[k] = opts.Beta * rng.NormFloat64()
		}
		for k := range v {
			v[k] = make([]float64, dim)
			for j := range v[k] {
				v[k][j] = B[k] + rng.NormFloat64()
			}
		}
	}
	W := make([]float64, dim*classes) // row-major d×c, as the generator's W
	b := make([]float64, classes)
	drawModel := func(mean float64) {
		for i := range W {
			W[i] = mean + rng.NormFloat64()
		}
		for i := range b {
			b[i] = mean + rng.NormFloat64()
		}
	}
	if opts.IID {
		drawModel(0)
	}

	name := fmt.Sprintf("synthetic(%g,%g)", opts.Alpha, opts.Beta)
	if opts.IID {
		name = "synthetic-iid"
	}
	d := &Dataset{
		Name: name, N: total, Dim: dim, X: make([]float64, total*dim),
		Y: make([]int32, total), NumClasses: classes, Task: TaskClassify,
		Group: make([]int32, total), GroupNames: make([]string, devices),
	}
	parts := make([][]int, devices)
	logits := make([]float64, classes)
	i := 0
	for k := range devices {
		d.GroupNames[k] = fmt.Sprintf("f_%05d", k)
		if !opts.IID {
			drawModel(u[k])
		}
		parts[k] = make([]int, sizes[k])
		for s := range sizes[k] {
			x := d.X[i*dim : (i+1)*dim]
			for j := range x {
				x[j] = sd[j] * rng.NormFloat64()
				if !opts.IID {
					x[j] += v[k][j]
				}
			}
			copy(logits, b)
			for j, xj := range x {
				row := W[j*classes : (j+1)*classes]
				for c := range logits {
					logits[c] += xj * row[c]
				}
			}
			// softmax is monotone: its argmax is the logits' argmax.
			best := 0
			for c := range logits {
				if logits[c] > logits[best] {
					best = c
				}
			}
			d.Y[i] = int32(best)
			d.Group[i] = int32(k)
			parts[k][s] = i
			i++
		}
	}
	return d, parts, nil
}
