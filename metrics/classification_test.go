package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// logitsFor returns logits whose softmax puts p on class pred and spreads the rest evenly.
func logitsFor(k, pred int, p float64) []float64 {
	z := make([]float64, k)
	for i := range z {
		z[i] = math.Log((1 - p) / float64(k-1))
	}
	z[pred] = math.Log(p)
	return z
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*max(1, math.Abs(b)) }

// Three classes, labels 0 0 1 1 2 2 predicted 0 1 1 1 2 0, each prediction with
// probability 0.7 (0.15 on the two others). Worked by hand:
//
//	confusion [[1 1 0] [0 2 0] [1 0 1]]; accuracy 4/6
//	class 0: TP 1, FP 1, FN 1 → P 1/2, R 1/2, F1 1/2
//	class 1: TP 2, FP 1, FN 0 → P 2/3, R 1,   F1 4/5
//	class 2: TP 1, FP 0, FN 1 → P 1,   R 1/2, F1 2/3
//	macro-F1 (1/2 + 4/5 + 2/3)/3 = 59/90
//	loss (4·(−ln 0.7) + 2·(−ln 0.15))/6
//
// scikit-learn agrees: f1_score([0,0,1,1,2,2], [0,1,1,1,2,0], average="macro") = 0.6555….
func TestClassificationHandComputed(t *testing.T) {
	c, err := NewClassification(3)
	if err != nil {
		t.Fatal(err)
	}
	labels, preds := []int{0, 0, 1, 1, 2, 2}, []int{0, 1, 1, 1, 2, 0}
	for i := range labels {
		if err := c.AddLogits(logitsFor(3, preds[i], 0.7), labels[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := c.Report([]string{"a", "b", "c"})
	if r.Rows != 6 || !near(r.Accuracy, 4.0/6) {
		t.Fatalf("rows %d accuracy %v, want 6 and 2/3", r.Rows, r.Accuracy)
	}
	wantLoss := (4*-math.Log(0.7) + 2*-math.Log(0.15)) / 6
	if !near(r.Loss, wantLoss) || !near(r.Perplexity, math.Exp(wantLoss)) {
		t.Fatalf("loss %v perplexity %v, want %v and %v", r.Loss, r.Perplexity, wantLoss, math.Exp(wantLoss))
	}
	want := []ClassReport{
		{Class: 0, Name: "a", Precision: 0.5, Recall: 0.5, F1: 0.5, Support: 2, Predicted: 2},
		{Class: 1, Name: "b", Precision: 2.0 / 3, Recall: 1, F1: 0.8, Support: 2, Predicted: 3},
		{Class: 2, Name: "c", Precision: 1, Recall: 0.5, F1: 2.0 / 3, Support: 2, Predicted: 1},
	}
	for i, w := range want {
		g := r.PerClass[i]
		if g.Class != w.Class || g.Name != w.Name || !near(g.Precision, w.Precision) || !near(g.Recall, w.Recall) ||
			!near(g.F1, w.F1) || g.Support != w.Support || g.Predicted != w.Predicted {
			t.Errorf("class %d: %+v, want %+v", i, g, w)
		}
	}
	if !near(r.MacroF1, 59.0/90) || r.MacroClasses != 3 {
		t.Fatalf("macro-F1 %v over %d classes, want 59/90 over 3", r.MacroF1, r.MacroClasses)
	}
	if want := [][]int64{{1, 1, 0}, {0, 2, 0}, {1, 0, 1}}; !slices.EqualFunc(r.Confusion, want, slices.Equal) {
		t.Fatalf("confusion %v, want %v", r.Confusion, want)
	}
	if r.ROCAUC != nil {
		t.Fatalf("ROC AUC %v for three classes", *r.ROCAUC)
	}
}

// Classes absent from both labels and predictions (unused token ids) are left out of the
// macro average; a class only predicted is in it with F1 0.
func TestMacroF1Classes(t *testing.T) {
	c, _ := NewClassification(4)
	c.AddLogits(logitsFor(4, 0, 0.9), 0)
	c.AddLogits(logitsFor(4, 1, 0.9), 1)
	c.AddLogits(logitsFor(4, 2, 0.9), 1)
	r := c.Report(nil)
	// class 0: F1 1; class 1: P 1, R 1/2, F1 2/3; class 2: F1 0; class 3 absent.
	if r.MacroClasses != 3 || !near(r.MacroF1, (1+2.0/3+0)/3) {
		t.Fatalf("macro-F1 %v over %d classes, want 5/9 over 3", r.MacroF1, r.MacroClasses)
	}
}

// ROC AUC reference values: scikit-learn's roc_auc_score docstring example
// ([0,0,1,1], [0.1,0.4,0.35,0.8] → 0.75), and by hand with ties counting one half.
func TestAUC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float64
		pos    []bool
		want   float64
		ok     bool
	}{
		{"sklearn-docs", []float64{0.1, 0.4, 0.35, 0.8}, []bool{false, false, true, true}, 0.75, true},
		// (pos 0.5 vs neg 0.5: ½, twice) + (pos 0.9 vs each neg: 1, twice) = 3 of 4 pairs.
		{"ties", []float64{0.5, 0.5, 0.5, 0.9}, []bool{false, true, false, true}, 0.75, true},
		{"perfect", []float64{0.2, 0.3, 0.7}, []bool{false, false, true}, 1, true},
		{"inverted", []float64{0.9, 0.1}, []bool{false, true}, 0, true},
		{"all-tied", []float64{0.5, 0.5, 0.5}, []bool{true, false, true}, 0.5, true},
		{"no-negatives", []float64{0.5, 0.6}, []bool{true, true}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AUC(tc.scores, tc.pos)
			if ok != tc.ok || (ok && !near(got, tc.want)) {
				t.Fatalf("AUC = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// AUC equals its definition, the fraction of (positive, negative) pairs ordered right
// (ties ½), computed naively over all pairs.
func TestAUCMatchesPairCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 20 {
		n := 2 + rng.IntN(60)
		scores, pos := make([]float64, n), make([]bool, n)
		for i := range scores {
			scores[i] = float64(rng.IntN(8)) / 8 // coarse, so ties are common
			pos[i] = rng.IntN(2) == 1
		}
		var pairs, wins float64
		for i := range n {
			for j := range n {
				if pos[i] && !pos[j] {
					pairs++
					switch {
					case scores[i] > scores[j]:
						wins++
					case scores[i] == scores[j]:
						wins += 0.5
					}
				}
			}
		}
		got, ok := AUC(scores, pos)
		if ok != (pairs > 0) || (ok && !near(got, wins/pairs)) {
			t.Fatalf("trial %d: AUC = %v, %v; pair count gives %v over %v pairs", trial, got, ok, wins/pairs, pairs)
		}
	}
}

// Two classes: the report carries the AUC of class 1's probability.
func TestBinaryReportHasAUC(t *testing.T) {
	c, _ := NewClassification(2)
	for i, p1 := range []float64{0.1, 0.4, 0.35, 0.8} {
		z := []float64{math.Log(1 - p1), math.Log(p1)}
		c.AddLogits(z, []int{0, 0, 1, 1}[i])
	}
	r := c.Report([]string{"ham", "spam"})
	if r.ROCAUC == nil || !near(*r.ROCAUC, 0.75) {
		t.Fatalf("ROC AUC %v, want 0.75", r.ROCAUC)
	}
}

// A uniform next-token model over V tokens has loss ln V and perplexity V.
func TestPerplexityOfAUniformModel(t *testing.T) {
	const V = 67
	c, _ := NewClassification(V)
	for i := range 100 {
		c.AddLogits(make([]float64, V), i%V)
	}
	if r := c.Report(nil); !near(r.Loss, math.Log(V)) || !near(r.Perplexity, V) {
		t.Fatalf("loss %v perplexity %v, want ln %d and %d", r.Loss, r.Perplexity, V, V)
	}
}

func TestSoftmaxIsStable(t *testing.T) {
	p := make([]float64, 3)
	lse := Softmax(p, []float64{1000, 1000, 1000 + math.Log(2)})
	if !near(p[0], 0.25) || !near(p[2], 0.5) || !near(lse, 1000+math.Log(4)) {
		t.Fatalf("softmax %v, log-sum-exp %v", p, lse)
	}
	if ArgMax([]float64{1, 3, 3}) != 1 {
		t.Fatal("ArgMax does not take the first of tied maxima")
	}
}

func TestClassificationRefusesBadRows(t *testing.T) {
	if _, err := NewClassification(1); err == nil {
		t.Fatal("one class accepted")
	}
	c, _ := NewClassification(3)
	for _, tc := range []struct {
		logits []float64
		label  int
		want   string
	}{
		{[]float64{1, 2}, 0, "2 logits for 3 classes"},
		{[]float64{1, 2, 3}, 3, "label 3 outside [0, 3)"},
		{[]float64{1, math.NaN(), 3}, 0, "not finite"},
	} {
		if err := c.AddLogits(tc.logits, tc.label); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, %d: %v, want %q", tc.logits, tc.label, err, tc.want)
		}
	}
	if r := c.Report(nil); r.Rows != 0 {
		t.Fatalf("refused rows were counted: %d", r.Rows)
	}
	big, _ := NewClassification(MaxConfusionClasses + 1)
	big.AddLogits(make([]float64, MaxConfusionClasses+1), 0)
	if r := big.Report(nil); r.Confusion != nil || r.PerClass[0].Support != 1 {
		t.Fatalf("beyond MaxConfusionClasses: confusion %v, support %d", r.Confusion != nil, r.PerClass[0].Support)
	}
}

func BenchmarkAddLogits(b *testing.B) {
	c, _ := NewClassification(10)
	z := logitsFor(10, 3, 0.6)
	for i := 0; b.Loop(); i++ {
		c.AddLogits(z, i%10)
	}
}
