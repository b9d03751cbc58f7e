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
