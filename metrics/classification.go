package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// MaxConfusionClasses bounds the classes whose confusion matrix (K² counts) a
// Classification keeps; per-class precision, recall and F1 need only K counts each and are
// kept for any K.
const MaxConfusionClasses = 256

// Classification accumulates the predictions of a K-class model on labelled rows. It is
// not safe for concurrent use.
type Classification struct {
	k       int
	rows    int64
	correct int64
	nllSum  float64
	// tp, predicted and actual count, per class, the rows predicted right, the rows
	// predicted as the class and the rows labelled with it.
	tp, predicted, actual []int64
	confusion             []int64 // k×k, row = label, column = prediction; nil beyond MaxConfusionClasses
	// Two classes: the probability of class 1 and whether the row is of class 1 (ROC AUC).
	scores    []float64
	positives []bool
	probs     []float64 // scratch
}

// NewClassification returns an empty accumulator for k ≥ 2 classes.
func NewClassification(k int) (*Classification, error) {
	if k < 2 {
		return nil, fmt.Errorf("metrics: %d classes: need at least 2", k)
	}
	c := &Classification{k: k, tp: make([]int64, k), predicted: make([]int64, k), actual: make([]int64, k), probs: make([]float64, k)}
	if k <= MaxConfusionClasses {
		c.confusion = make([]int64, k*k)
	}
	return c, nil
}

// Softmax writes the probabilities softmax(logits) into dst (len(dst) = len(logits)) and
// returns log Σ exp(logits), computed stably (the maximum is subtracted first).
func Softmax(dst, logits []float64) (logSumExp float64) {
	mx := math.Inf(-1)
	for _, z := range logits {
		mx = max(mx, z)
	}
	sum := 0.0
	for i, z := range logits {
		dst[i] = math.Exp(z - mx)
		sum += dst[i]
	}
	for i := range dst {
		dst[i] /= sum
	}
	return mx + math.Log(sum)
}

// ArgMax returns the index of the largest value, the first on a tie.
func ArgMax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// AddLogits adds one row: the model's logits (K of them) and the row's label in [0, K).
// Its loss is −log softmax(logits)[label], computed from the logits so that a confident
// mistake costs a large finite loss rather than −log 0.
func (c *Classification) AddLogits(logits []float64, label int) error {
	if len(logits) != c.k {
		return fmt.Errorf("metrics: %d logits for %d classes", len(logits), c.k)
	}
	if label < 0 || label >= c.k {
		return fmt.Errorf("metrics: label %d outside [0, %d)", label, c.k)
	}
	for _, z := range logits {
		if math.IsNaN(z) || math.IsInf(z, 0) {
			return fmt.Errorf("metrics: logit %v is not finite", z)
		}
	}
	lse := Softmax(c.probs, logits)
	pred := ArgMax(logits)
	c.rows++
	c.nllSum += lse - logits[label]
	c.predicted[pred]++
	c.actual[label]++
	if pred == label {
		c.correct++
		c.tp[label]++
	}
	if c.confusion != nil {
		c.confusion[label*c.k+pred]++
	}
	if c.k == 2 {
		c.scores = append(c.scores, c.probs[1])
		c.positives = append(c.positives, label == 1)
	}
	return nil
}

// Report is the summary of a Classification.
type Report struct {
	// Rows is the number of labelled rows: examples, or predicted positions of a language
	// model.
	Rows     int64   `json:"rows"`
	Accuracy float64 `json:"accuracy"`
	// Loss is the mean cross-entropy in nats, Perplexity exp(Loss).
	Loss       float64 `json:"loss"`
	Perplexity float64 `json:"perplexity"`
	// MacroF1 averages F1 over MacroClasses classes: those among the labels or predictions.
	MacroF1      float64 `json:"macro_f1"`
	MacroClasses int     `json:"macro_classes"`
	// ROCAUC is the area under the ROC curve of class 1's probability (two classes with
	// both among the labels; nil otherwise).
	ROCAUC   *float64      `json:"roc_auc,omitempty"`
	PerClass []ClassReport `json:"per_class"`
	// Confusion[i][j] counts the rows labelled i that were predicted j (nil beyond
	// MaxConfusionClasses classes).
	Confusion [][]int64 `json:"confusion,omitempty"`
}

// ClassReport holds one class's precision, recall and F1; Support is the number of rows
// labelled with it, Predicted the number predicted as it.
type ClassReport struct {
	Class     int     `json:"class"`
	Name      string  `json:"name,omitempty"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int64   `json:"support"`
	Predicted int64   `json:"predicted"`
}

// Report summarises the rows added so far; names, when not nil, names the classes (one a
// class).
func (c *Classification) Report(names []string) Report {
	r := Report{Rows: c.rows, PerClass: make([]ClassReport, c.k)}
	if c.rows > 0 {
		r.Accuracy = float64(c.correct) / float64(c.rows)
		r.Loss = c.nllSum / float64(c.rows)
		r.Perplexity = math.Exp(r.Loss)
	}
	ratio := func(a, b int64) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	for k := range c.k {
		p, rec := ratio(c.tp[k], c.predicted[k]), ratio(c.tp[k], c.actual[k])
		f1 := 0.0
		if p+rec > 0 {
			f1 = 2 * p * rec / (p + rec)
		}
		cr := ClassReport{Class: k, Precision: p, Recall: rec, F1: f1, Support: c.actual[k], Predicted: c.predicted[k]}
		if k < len(names) {
			cr.Name = names[k]
		}
		r.PerClass[k] = cr
		if c.actual[k] > 0 || c.predicted[k] > 0 {
			r.MacroF1 += f1
			r.MacroClasses++
		}
	}
	if r.MacroClasses > 0 {
		r.MacroF1 /= float64(r.MacroClasses)
	}
	if c.confusion != nil {
		r.Confusion = make([][]int64, c.k)
		for i := range r.Confusion {
			r.Confusion[i] = slices.Clone(c.confusion[i*c.k : (i+1)*c.k])
		}
	}
	if auc, ok := AUC(c.scores, c.positives); ok {
		r.ROCAUC = &auc
	}
	return r
}

// AUC returns the area under the ROC curve of scores for telling the positive rows from
// the others: the probability that a random positive scores above a random negative, ties
// counting one half (the Mann–Whitney U statistic over n₊·n₋; Hanley & McNeil 1982). It
// is not defined (ok false) without a positive and a negative.
func AUC(scores []float64, positive []bool) (auc float64, ok bool) {
	var nPos, nNeg float64
	for _, p := range positive {
		if p {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 || len(scores) != len(positive) {
		return 0, false
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
	// Sum the (1-based, tie-averaged) ranks of the positives.
	rankSum := 0.0
	for lo := 0; lo < len(idx); {
		hi := lo
		for hi < len(idx) && scores[idx[hi]] == scores[idx[lo]] {
			hi++
		}
		mid := float64(lo+1+hi) / 2 // mean of ranks lo+1 … hi
		for _, i := range idx[lo:hi] {
			if positive[i] {
				rankSum += mid
			}
		}
		lo = hi
	}
	return (rankSum - nPos*(nPos+1)/2) / (nPos * nNeg), true
}
