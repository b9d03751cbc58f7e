package explain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

// ErrNotDense says that permutation importance was asked of a model or dataset without
// dense features (text): shuffling token ids across e-mails of other lengths has no
// meaning; integrated gradients explains text models.
var ErrNotDense = errors.New("explain: permutation importance needs dense features (tabular or image data)")

// PermutationOptions configure PermutationImportance.
type PermutationOptions struct {
	// Groups lists the features shuffled together (one importance each): a pixel, an image
	// patch (PatchGroups), a set of related columns. Nil: every feature alone.
	Groups [][]int
	// Repeats is the number of shuffles per group (default 3); Batch the examples per
	// forward pass (default 256).
	Repeats, Batch int
	// Rand draws the permutations.
	Rand *rand.Rand
	// Progress, when not nil, is called after each group with the number done.
	Progress func(done int)
}

// Importance is the importance of one group of features.
type Importance struct {
	Group    int   `json:"group"`
	Features []int `json:"features"`
	// LossIncrease is the mean, over the repeats, of the mean cross-entropy with the group
	// shuffled minus without; AccuracyDrop likewise of accuracy without minus with. Std
	// are their sample standard deviations over the repeats (0 for one repeat).
	LossIncrease    float64 `json:"loss_increase"`
	LossIncreaseStd float64 `json:"loss_increase_std"`
	AccuracyDrop    float64 `json:"accuracy_drop"`
	AccuracyDropStd float64 `json:"accuracy_drop_std"`
}

// PermutationResult is the importance of every group on a dataset.
type PermutationResult struct {
	// Accuracy and Loss are the model's on the unshuffled data.
	Accuracy    float64      `json:"accuracy"`
	Loss        float64      `json:"loss"`
	Examples    int          `json:"examples"`
	Repeats     int          `json:"repeats"`
	Importances []Importance `json:"importances"`
}

// PatchGroups returns the groups of a rows×cols image cut into patch×patch squares (the
// last row and column of patches may be smaller), row by row; patch 1 gives the pixels.
func PatchGroups(rows, cols, patch int) ([][]int, error) {
	if rows <= 0 || cols <= 0 || patch <= 0 {
		return nil, fmt.Errorf("explain: image %d×%d, patch %d: all must be ≥ 1", rows, cols, patch)
	}
	var groups [][]int
	for r0 := 0; r0 < rows; r0 += patch {
		for c0 := 0; c0 < cols; c0 += patch {
			var g []int
			for r := r0; r < min(r0+patch, rows); r++ {
				for c := c0; c < min(c0+patch, cols); c++ {
					g = append(g, r*cols+c)
				}
			}
			groups = append(groups, g)
		}
	}
	return groups, nil
}

// PermutationImportance measures how much m relies on each group of ds's features
// (Breiman 2001, Sec. 10): the loss and accuracy on ds with the group's values shuffled
// across the examples (one permutation moves a whole group, so a patch stays a patch of
// some image), against those on ds as it is. ds is not modified.
func PermutationImportance(ctx context.Context, m *model.Model, ds *data.Dataset, o PermutationOptions) (*PermutationResult, error) {
	if m.Spec.IsSequence() || ds.IsText() || ds.Task != data.TaskClassify {
		return nil, ErrNotDense
	}
	if ds.Dim != m.Spec.Input {
		return nil, fmt.Errorf("explain: the model reads %d features, the dataset has %d", m.Spec.Input, ds.Dim)
	}
	if ds.NumClasses > m.Spec.Output {
		return nil, fmt.Errorf("explain: the model has %d outputs, the dataset %d classes", m.Spec.Output, ds.NumClasses)
	}
	if ds.N < 2 {
		return nil, fmt.Errorf("explain: permutation importance needs at least 2 examples, the dataset has %d", ds.N)
	}
	if o.Repeats == 0 {
		o.Repeats = 3
	}
	if o.Batch == 0 {
		o.Batch = 256
	}
	if o.Repeats < 1 || o.Batch < 1 {
		return nil, fmt.Errorf("explain: repeats %d and batch %d must be ≥ 1", o.Repeats, o.Batch)
	}
	if o.Rand == nil {
		return nil, fmt.Errorf("explain: PermutationOptions.Rand is required (it draws the permutations)")
	}
	groups := o.Groups
	if groups == nil {
		groups = make([][]int, ds.Dim)
		for j := range groups {
			groups[j] = []int{j}
		}
	}
	for g, cols := range groups {
		for _, j := range cols {
			if j < 0 || j >= ds.Dim {
				return nil, fmt.Errorf("explain: group %d names feature %d of %d", g, j, ds.Dim)
			}
		}
	}
	s := scorer{m: m, labels: ds.Y, dim: ds.Dim, batch: o.Batch}
	work := append([]float64(nil), ds.X...)
	acc, loss, err := s.score(work)
	if err != nil {
		return nil, err
	}
	res := &PermutationResult{Accuracy: acc, Loss: loss, Examples: ds.N, Repeats: o.Repeats, Importances: make([]Importance, len(groups))}
	perm := make([]int, ds.N)
	drops, rises := make([]float64, o.Repeats), make([]float64, o.Repeats)
	for g, cols := range groups {
		for r := range o.Repeats {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for i := range perm {
				perm[i] = i
			}
			o.Rand.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
			for i, src := range perm {
				for _, j := range cols {
					work[i*ds.Dim+j] = ds.X[src*ds.Dim+j]
				}
			}
			a, l, err := s.score(work)
			if err != nil {
				return nil, err
			}
			drops[r], rises[r] = acc-a, l-loss
		}
		for i := range ds.N {
			for _, j := range cols {
				work[i*ds.Dim+j] = ds.X[i*ds.Dim+j]
			}
		}
		imp := &res.Importances[g]
		imp.Group, imp.Features = g, cols
		imp.AccuracyDrop, imp.AccuracyDropStd = meanStd(drops)
		imp.LossIncrease, imp.LossIncreaseStd = meanStd(rises)
		if o.Progress != nil {
			o.Progress(g + 1)
		}
	}
	return res, nil
}

// scorer evaluates a model on dense inputs against fixed labels.
type scorer struct {
	m      *model.Model
	labels []int32
	dim    int
	batch  int
	probs  []float64
}

// score returns the accuracy and mean cross-entropy of the model on x (N×dim).
func (s *scorer) score(x []float64) (acc, loss float64, err error) {
	n := len(s.labels)
	correct := 0
	for lo := 0; lo < n; lo += s.batch {
		hi := min(lo+s.batch, n)
		out, err := s.m.Forward(&model.Input{X: x[lo*s.dim : hi*s.dim], B: hi - lo})
		if err != nil {
			return 0, 0, err
		}
		for i := range hi - lo {
			z := out.Row(i)
			y := int(s.labels[lo+i])
			// −log softmax(z)_y = logsumexp(z) − z_y
			if cap(s.probs) < len(z) {
				s.probs = make([]float64, len(z))
			}
			loss += metrics.Softmax(s.probs[:len(z)], z) - z[y]
			if metrics.ArgMax(z) == y {
				correct++
			}
		}
	}
	return float64(correct) / float64(n), loss / float64(n), nil
}

// meanStd returns the mean and the sample standard deviation of v (0 for one value).
func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if len(v) < 2 {
		return mean, 0
	}
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)-1))
}
