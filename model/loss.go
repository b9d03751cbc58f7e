package model

import (
	"fmt"
	"math"
)

// Targets are the labels of a batch. Class holds one class index per output row (B for
// per-example outputs, B·T for per-position outputs; −1 marks a row to ignore). Value holds
// regression targets with the output's shape.
type Targets struct {
	Class []int32
	Value []float64
	// Soft, when set (cross-entropy only), holds a teacher's class probabilities at
	// temperature Temperature for every output row (rows × classes): knowledge distillation
	// (Hinton et al. 2015). A row's loss is then (1 − SoftWeight)·CE(class) +
	// SoftWeight·T²·KL(soft ‖ softmax(z/T)) (the T² keeps the soft gradients' scale as T
	// changes); a row without a class (−1) takes the soft term alone, at weight 1, and a
	// row without a class whose soft row is all zero (padding) is ignored.
	Soft        []float64
	Temperature float64
	SoftWeight  float64
}

// Stats counts correct predictions among the rows that have a label.
type Stats struct {
	Correct, Count int
}

// Loss turns a model's output into per-example losses and their gradients.
//
// An example's loss is the mean over its labelled rows (positions), so examples of different
// lengths weigh the same. Eval writes each example's loss into loss[i] and, when grad is not
// nil, sets grad = ∂(Σ_i w[i]·loss_i)/∂out.
type Loss interface {
	Name() string
	Eval(out *Tensor, tg Targets, b *Batch, w, loss []float64, grad *Tensor) (Stats, error)
}

// Loss names accepted in specs.
const (
	LossCrossEntropy = "cross_entropy"
	LossMSE          = "mse"
)

func newLoss(name string) (Loss, error) {
	switch name {
	case "", LossCrossEntropy:
		return SoftmaxCrossEntropy{}, nil
	case LossMSE:
		return MSE{}, nil
	}
	return nil, fmt.Errorf("unknown loss %q (use cross_entropy or mse)", name)
}

// SoftmaxCrossEntropy is −log softmax(z)[y] per labelled row.
type SoftmaxCrossEntropy struct{}

func (SoftmaxCrossEntropy) Name() string { return LossCrossEntropy }

func (SoftmaxCrossEntropy) Eval(out *Tensor, tg Targets, b *Batch, w, loss []float64, grad *Tensor) (Stats, error) {
	var st Stats
	if len(tg.Class) != out.Rows {
		return st, fmt.Errorf("model: %d class targets for %d output rows", len(tg.Class), out.Rows)
	}
	if tg.Soft != nil {
		return evalDistillation(out, tg, b, w, loss, grad)
	}
	R := out.Rows / b.B
	C := out.Cols
	for i := 0; i < b.B; i++ {
		n := 0
		for r := i * R; r < (i+1)*R; r++ {
			if tg.Class[r] >= 0 {
				n++
			}
		}
		sum := 0.0
		for r := i * R; r < (i+1)*R; r++ {
			z := out.Row(r)
			var g []float64
			if grad != nil {
				g = grad.Row(r)
			}
			y := int(tg.Class[r])
			if y < 0 {
				clear(g)
				continue
			}
			if y >= C {
				return st, fmt.Errorf("model: class target %d out of range [0,%d)", y, C)
			}
			mx, arg := z[0], 0
			for j, v := range z {
				if v > mx {
					mx, arg = v, j
				}
			}
			if arg == y {
				st.Correct++
			}
			st.Count++
			se := 0.0
			for _, v := range z {
				se += math.Exp(v - mx)
			}
			lse := mx + math.Log(se)
			sum += lse - z[y]
			if g != nil {
				s := w[i] / float64(n)
				for j, v := range z {
					g[j] = s * math.Exp(v-lse)
				}
				g[y] -= s
			}
		}
		if n > 0 {
			loss[i] = sum / float64(n)
		} else {
			loss[i] = 0
		}
	}
	return st, nil
}

// MSE is the mean squared error over an example's output elements; Stats count nothing.
type MSE struct{}

func (MSE) Name() string { return LossMSE }

func (MSE) Eval(out *Tensor, tg Targets, b *Batch, w, loss []float64, grad *Tensor) (Stats, error) {
	if len(tg.Value) != len(out.Data) {
		return Stats{}, fmt.Errorf("model: %d regression targets for %d outputs", len(tg.Value), len(out.Data))
	}
	per := len(out.Data) / b.B
	for i := 0; i < b.B; i++ {
		sum := 0.0
		for k := i * per; k < (i+1)*per; k++ {
			d := out.Data[k] - tg.Value[k]
			sum += d * d
			if grad != nil {
				grad.Data[k] = 2 * w[i] * d / float64(per)
			}
		}
		loss[i] = sum / float64(per)
	}
	return Stats{}, nil
}

// evalDistillation is SoftmaxCrossEntropy.Eval with soft targets (see Targets.Soft). With
// p the teacher's probabilities at temperature T and q = softmax(z/T), the soft term's
// gradient is T²·(q − p)/T = T·(q − p); the hard term's is softmax(z) − onehot(y).
func evalDistillation(out *Tensor, tg Targets, b *Batch, w, loss []float64, grad *Tensor) (Stats, error) {
	var st Stats
	C := out.Cols
	if len(tg.Soft) != out.Rows*C {
		return st, fmt.Errorf("model: %d soft targets for %d output rows of %d classes", len(tg.Soft), out.Rows, C)
	}
	T, alpha := tg.Temperature, tg.SoftWeight
	if !(T > 0) || math.IsInf(T, 0) || !(alpha >= 0 && alpha <= 1) {
		return st, fmt.Errorf("model: distillation temperature %v (must be > 0) and soft weight %v (must be in [0, 1])", T, alpha)
	}
	R := out.Rows / b.B
	q := make([]float64, C)
	for i := 0; i < b.B; i++ {
		n := 0
		for r := i * R; r < (i+1)*R; r++ {
			if tg.Class[r] >= 0 || hasSoft(tg.Soft[r*C:(r+1)*C]) {
				n++
			}
		}
		sum := 0.0
		for r := i * R; r < (i+1)*R; r++ {
			z, p, y := out.Row(r), tg.Soft[r*C:(r+1)*C], int(tg.Class[r])
			var g []float64
			if grad != nil {
				g = grad.Row(r)
				clear(g)
			}
			if y >= C {
				return st, fmt.Errorf("model: class target %d out of range [0,%d)", y, C)
			}
			if y < 0 && !hasSoft(p) {
				continue
			}
			a := alpha
			if y < 0 {
				a = 1
			}
			if y >= 0 {
				// Hard term: −log softmax(z)[y].
				mx, arg := z[0], 0
				for j, v := range z {
					if v > mx {
						mx, arg = v, j
					}
				}
				if arg == y {
					st.Correct++
				}
				st.Count++
				se := 0.0
				for _, v := range z {
					se += math.Exp(v - mx)
				}
				lse := mx + math.Log(se)
				sum += (1 - a) * (lse - z[y])
				if g != nil && a < 1 {
					s := w[i] / float64(n) * (1 - a)
					for j, v := range z {
						g[j] += s * math.Exp(v-lse)
					}
					g[y] -= s
				}
			}
			if a > 0 {
				// Soft term: T²·Σ_j p_j (log p_j − log q_j), q = softmax(z/T).
				mx := z[0] / T
				for _, v := range z {
					mx = max(mx, v/T)
				}
				se := 0.0
				for j, v := range z {
					q[j] = math.Exp(v/T - mx)
					se += q[j]
				}
				lse := mx + math.Log(se)
				kl := 0.0
				for j, v := range z {
					q[j] /= se
					if p[j] > 0 {
						kl += p[j] * (math.Log(p[j]) - (v/T - lse))
					}
				}
				sum += a * T * T * kl
				if g != nil {
					s := w[i] / float64(n) * a * T
					for j := range g {
						g[j] += s * (q[j] - p[j])
					}
				}
			}
		}
		if n > 0 {
			loss[i] = sum / float64(n)
		} else {
			loss[i] = 0
		}
	}
	return st, nil
}

func hasSoft(p []float64) bool {
	for _, v := range p {
		if v != 0 {
			return true
		}
	}
	return false
}
