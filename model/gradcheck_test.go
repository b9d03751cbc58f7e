package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Finite-difference gradient checks (the gonum habit: every numerical routine against a
// simple reference). For a layer f and a fixed random upstream vector r, L(x, θ) = r·f(x; θ);
// Backward(r) must return ∂L/∂x and accumulate ∂L/∂θ. Central differences with h = 1e-6 in
// float64 have truncation error O(h²) and rounding error O(ε/h), about 1e-9 relative.

const fdStep = 1e-6

// relErr is ‖a−b‖ / max(‖a‖, ‖b‖, tiny): the norm-wise relative error of two gradients.
func relErr(a, b []float64) float64 {
	var d, na, nb float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	den := math.Max(math.Sqrt(max(na, nb)), 1e-12)
	return math.Sqrt(d) / den
}

func randTensor(rng *rand.Rand, rows, cols int) *Tensor {
	t := &Tensor{Data: make([]float64, rows*cols), Rows: rows, Cols: cols}
	for i := range t.Data {
		t.Data[i] = rng.NormFloat64()
	}
	return t
}

// bindFresh gives a ParamLayer its own parameter and gradient vectors, initialised from rng
// and then perturbed so biases are not all zero.
func bindFresh(l ParamLayer, rng *rand.Rand) (params, grads []float64) {
	params = make([]float64, l.NumParams())
	grads = make([]float64, l.NumParams())
	l.Bind(params, grads)
	l.Init(rng)
	for i := range params {
		params[i] += 0.1 * rng.NormFloat64()
	}
	return params, grads
}

// layerLoss returns r·f(x) with a fresh batch copy so stateful randomness (dropout) can be
// replayed by re-seeding.
func layerLoss(l Layer, x *Tensor, b Batch, seed uint64, r []float64) float64 {
	if b.Train {
		b.Rand = rand.New(rand.NewPCG(seed, 0))
	}
	var xc *Tensor
	if x != nil {
		xc = &Tensor{Data: append([]float64(nil), x.Data...), Rows: x.Rows, Cols: x.Cols}
	}
	y := l.Forward(xc, &b)
	s := 0.0
	for i, v := range y.Data {
		s += r[i] * v
	}
	return s
}

// checkLayerGradients verifies ∂L/∂x and ∂L/∂θ of layer l at input x (x may be nil for layers
// that read b.Tokens) against central finite differences.
func checkLayerGradients(t *testing.T, l Layer, x *Tensor, b Batch, tol float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(99, 1))
	const seed = 7
	var params, grads []float64
	if p, ok := l.(ParamLayer); ok {
		params, grads = bindFresh(p, rng)
	}
	bb := b
	if bb.Train {
		bb.Rand = rand.New(rand.NewPCG(seed, 0))
	}
	var xc *Tensor
	if x != nil {
		xc = &Tensor{Data: append([]float64(nil), x.Data...), Rows: x.Rows, Cols: x.Cols}
	}
	y := l.Forward(xc, &bb)
	r := make([]float64, len(y.Data))
	for i := range r {
		r[i] = rng.NormFloat64()
	}
	dy := &Tensor{Data: append([]float64(nil), r...), Rows: y.Rows, Cols: y.Cols}
	clear(grads)
	dx := l.Backward(dy, &bb, x != nil)

	if x != nil {
		num := make([]float64, len(x.Data))
		for i := range x.Data {
			orig := x.Data[i]
			x.Data[i] = orig + fdStep
			lp := layerLoss(l, x, b, seed, r)
			x.Data[i] = orig - fdStep
			lm := layerLoss(l, x, b, seed, r)
			x.Data[i] = orig
			num[i] = (lp - lm) / (2 * fdStep)
		}
		if e := relErr(dx.Data, num); e > tol {
			t.Errorf("input gradient: relative error %.3g > %.1g", e, tol)
		}
	}
	if params != nil {
		analytic := append([]float64(nil), grads...)
		num := make([]float64, len(params))
		for i := range params {
			orig := params[i]
			params[i] = orig + fdStep
			lp := layerLoss(l, x, b, seed, r)
			params[i] = orig - fdStep
			lm := layerLoss(l, x, b, seed, r)
			params[i] = orig
			num[i] = (lp - lm) / (2 * fdStep)
		}
		if e := relErr(analytic, num); e > tol {
			t.Errorf("parameter gradient: relative error %.3g > %.1g", e, tol)
		}
	}
}

// checkPerExample verifies a ParamLayer's ghost-mode per-example squared norms and weighted
// gradient sum against naive backprop of one example at a time.
func checkPerExample(t *testing.T, l ParamLayer, x *Tensor, b Batch) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	params, grads := bindFresh(l, rng)
	_ = params
	rowsPer := 0
	if x != nil {
		rowsPer = x.Rows / b.B
	}
	// Ghost pass over the whole batch.
	gb := b
	gb.Ghost = true
	var xc *Tensor
	if x != nil {
		xc = &Tensor{Data: append([]float64(nil), x.Data...), Rows: x.Rows, Cols: x.Cols}
	}
	y := l.Forward(xc, &gb)
	outPer := y.Rows / b.B
	dy := randTensor(rng, y.Rows, y.Cols)
	dyCopy := append([]float64(nil), dy.Data...)
	clear(grads)
	l.Backward(dy, &gb, false)
	for _, g := range grads {
		if g != 0 {
			t.Fatalf("ghost-mode Backward accumulated parameter gradients")
		}
	}
	sq := make([]float64, b.B)
	l.AddPerExampleSqNorms(sq, &gb)
	w := make([]float64, b.B)
	for i := range w {
		w[i] = rng.Float64()
	}
	l.AccumulateWeighted(w, &gb)
	weighted := append([]float64(nil), grads...)

	// Naive: each example alone, normal mode.
	want := make([]float64, len(grads))
	for i := 0; i < b.B; i++ {
		one := b
		one.B = 1
		one.Ghost = false
		if b.Lengths != nil {
			one.Lengths = b.Lengths[i : i+1]
		}
		if b.Tokens != nil {
			one.Tokens = b.Tokens[i*b.T : (i+1)*b.T]
		}
		var xi *Tensor
		if x != nil {
			xi = &Tensor{Data: append([]float64(nil), x.Data[i*rowsPer*x.Cols:(i+1)*rowsPer*x.Cols]...), Rows: rowsPer, Cols: x.Cols}
		}
		yi := l.Forward(xi, &one)
		dyi := &Tensor{Data: append([]float64(nil), dyCopy[i*outPer*yi.Cols:(i+1)*outPer*yi.Cols]...), Rows: yi.Rows, Cols: yi.Cols}
		clear(grads)
		l.Backward(dyi, &one, false)
		n2 := 0.0
		for k, g := range grads {
			n2 += g * g
			want[k] += w[i] * g
		}
		if d := math.Abs(sq[i] - n2); d > 1e-9*math.Max(n2, 1e-300) {
			t.Errorf("example %d: ghost squared norm %.15g, naive %.15g (rel %.2g)", i, sq[i], n2, d/n2)
		}
	}
	if e := relErr(weighted, want); e > 1e-9 {
		t.Errorf("weighted gradient sum: relative error %.3g vs naive", e)
	}
}

func TestLinearGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		in, out   int
		rows, B   int
		noBias    bool
		initation string
	}{
		{"dense", 5, 4, 3, 3, false, InitHe},
		{"dense_nobias", 6, 3, 4, 4, true, InitXavier},
		{"sequence_T4", 3, 5, 8, 2, false, InitHe},
		{"sequence_materialised", 2, 2, 12, 2, false, InitHe}, // T²(in+out) > T·in·out
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLinear(tc.in, tc.out, tc.initation)
			l.NoBias = tc.noBias
			x := randTensor(rng, tc.rows, tc.in)
			b := Batch{B: tc.B, T: tc.rows / tc.B}
			checkLayerGradients(t, l, x, b, 1e-6)
			checkPerExample(t, l, x, b)
		})
	}
}

func TestActivationGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{ActReLU, ActGELU, ActTanh, ActSigmoid} {
		t.Run(name, func(t *testing.T) {
			a, err := NewActivation(name)
			if err != nil {
				t.Fatal(err)
			}
			x := randTensor(rng, 4, 6)
			for i, v := range x.Data { // keep ReLU's kink out of the finite-difference stencil
				if math.Abs(v) < 1e-3 {
					x.Data[i] = 0.5
				}
			}
			checkLayerGradients(t, a, x, Batch{B: 4, T: 1}, 1e-6)
		})
	}
}

func TestDropoutGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	d := &Dropout{P: 0.3}
	checkLayerGradients(t, d, randTensor(rng, 5, 7), Batch{B: 5, T: 1, Train: true}, 1e-6)
	// Evaluation mode is the identity.
	x := randTensor(rng, 2, 3)
	y := d.Forward(x, &Batch{B: 2, T: 1})
	if relErr(x.Data, y.Data) != 0 {
		t.Fatal("dropout in evaluation mode changed its input")
	}
}

func TestDropoutRate(t *testing.T) {
	d := &Dropout{P: 0.25}
	x := &Tensor{Data: make([]float64, 100000), Rows: 1000, Cols: 100}
	for i := range x.Data {
		x.Data[i] = 1
	}
	y := d.Forward(x, &Batch{B: 1000, T: 1, Train: true, Rand: rand.New(rand.NewPCG(1, 1))})
	zeros, sum := 0, 0.0
	for _, v := range y.Data {
		if v == 0 {
			zeros++
		}
		sum += v
	}
	// Binomial(1e5, 0.25): sd of the fraction ≈ 0.00137; 5 sd bound.
	if f := float64(zeros) / 1e5; math.Abs(f-0.25) > 0.007 {
		t.Fatalf("dropped fraction %.4f, want 0.25", f)
	}
	if mean := sum / 1e5; math.Abs(mean-1) > 0.01 {
		t.Fatalf("mean after inverted dropout %.4f, want 1", mean)
	}
}

// lossValue evaluates Σ_i w_i·loss_i for the given output.
func lossValue(l Loss, out *Tensor, tg Targets, b *Batch, w []float64) float64 {
	loss := make([]float64, b.B)
	if _, err := l.Eval(out, tg, b, w, loss, nil); err != nil {
		panic(err)
	}
	s := 0.0
	for i, v := range loss {
		s += w[i] * v
	}
	return s
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	B, T, C := 3, 4, 5
	out := randTensor(rng, B*T, C)
	w := []float64{0.5, 1, 2}
	b := &Batch{B: B, T: T}
	cls := make([]int32, B*T)
	for i := range cls {
		cls[i] = int32(rng.IntN(C))
	}
	cls[5], cls[11] = -1, -1 // ignored positions
	vals := make([]float64, B*T*C)
	for i := range vals {
		vals[i] = rng.NormFloat64()
	}
	// A teacher's probabilities for distillation; rows 5 and 11 have none (padding), row 2
	// has no class but soft targets (unlabelled).
	soft := make([]float64, B*T*C)
	for r := range B * T {
		if r == 5 || r == 11 {
			continue
		}
		s := 0.0
		for j := range C {
			soft[r*C+j] = rng.Float64()
			s += soft[r*C+j]
		}
		for j := range C {
			soft[r*C+j] /= s
		}
	}
	unlabelled := append([]int32(nil), cls...)
	unlabelled[2] = -1
	for _, tc := range []struct {
		name string
		loss Loss
		tg   Targets
	}{
		{"cross_entropy", SoftmaxCrossEntropy{}, Targets{Class: cls}},
		{"mse", MSE{}, Targets{Value: vals}},
		{"distillation", SoftmaxCrossEntropy{}, Targets{Class: unlabelled, Soft: soft, Temperature: 2.5, SoftWeight: 0.7}},
		{"distillation-soft-only", SoftmaxCrossEntropy{}, Targets{Class: unlabelled, Soft: soft, Temperature: 0.8, SoftWeight: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grad := &Tensor{Data: make([]float64, len(out.Data)), Rows: out.Rows, Cols: out.Cols}
			loss := make([]float64, B)
			if _, err := tc.loss.Eval(out, tc.tg, b, w, loss, grad); err != nil {
				t.Fatal(err)
			}
			num := make([]float64, len(out.Data))
			for i := range out.Data {
				orig := out.Data[i]
				out.Data[i] = orig + fdStep
				lp := lossValue(tc.loss, out, tc.tg, b, w)
				out.Data[i] = orig - fdStep
				lm := lossValue(tc.loss, out, tc.tg, b, w)
				out.Data[i] = orig
				num[i] = (lp - lm) / (2 * fdStep)
			}
			if e := relErr(grad.Data, num); e > 1e-6 {
				t.Errorf("relative error %.3g", e)
			}
		})
	}
}

func TestCrossEntropyValue(t *testing.T) {
	// logits (0, ln 2, ln 3): softmax = (1/6, 2/6, 3/6); −log(2/6) = log 3.
	out := &Tensor{Data: []float64{0, math.Log(2), math.Log(3)}, Rows: 1, Cols: 3}
	loss := make([]float64, 1)
	st, err := SoftmaxCrossEntropy{}.Eval(out, Targets{Class: []int32{1}}, &Batch{B: 1, T: 1}, []float64{1}, loss, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss[0]-math.Log(3)) > 1e-15 || st.Correct != 0 || st.Count != 1 {
		t.Fatalf("loss %v stats %+v", loss[0], st)
	}
	if _, err := (SoftmaxCrossEntropy{}).Eval(out, Targets{Class: []int32{3}}, &Batch{B: 1, T: 1}, []float64{1}, loss, nil); err == nil {
		t.Fatal("out-of-range class accepted")
	}
}

// The distillation loss is zero where the student's tempered softmax equals the teacher's
// probabilities and the row has no class, and T²·KL otherwise; with SoftWeight 0 it is
// the plain cross-entropy.
func TestDistillationLossValue(t *testing.T) {
	z := []float64{0, math.Log(2), math.Log(3)}
	T := 2.0
	q := make([]float64, 3) // softmax(z/T)
	s := 0.0
	for j, v := range z {
		q[j] = math.Exp(v / T)
		s += q[j]
	}
	for j := range q {
		q[j] /= s
	}
	out := &Tensor{Data: z, Rows: 1, Cols: 3}
	loss := make([]float64, 1)
	b := &Batch{B: 1, T: 1}
	if _, err := (SoftmaxCrossEntropy{}).Eval(out, Targets{Class: []int32{-1}, Soft: q, Temperature: T, SoftWeight: 0.5}, b, []float64{1}, loss, nil); err != nil || math.Abs(loss[0]) > 1e-15 {
		t.Fatalf("matching soft targets: loss %v, %v", loss[0], err)
	}
	p := []float64{0.5, 0.5, 0}
	want := T * T * (0.5*(math.Log(0.5)-math.Log(q[0])) + 0.5*(math.Log(0.5)-math.Log(q[1])))
	if _, err := (SoftmaxCrossEntropy{}).Eval(out, Targets{Class: []int32{-1}, Soft: p, Temperature: T, SoftWeight: 0.5}, b, []float64{1}, loss, nil); err != nil || math.Abs(loss[0]-want) > 1e-12 {
		t.Fatalf("soft only: loss %v, want %v (%v)", loss[0], want, err)
	}
	if _, err := (SoftmaxCrossEntropy{}).Eval(out, Targets{Class: []int32{1}, Soft: p, Temperature: T, SoftWeight: 0}, b, []float64{1}, loss, nil); err != nil || math.Abs(loss[0]-math.Log(3)) > 1e-12 {
		t.Fatalf("soft weight 0: loss %v, want log 3 (%v)", loss[0], err)
	}
	for _, tg := range []Targets{{Class: []int32{1}, Soft: p, Temperature: 0, SoftWeight: 0.5}, {Class: []int32{1}, Soft: p, Temperature: 1, SoftWeight: 1.5}, {Class: []int32{1}, Soft: p[:2], Temperature: 1, SoftWeight: 0.5}} {
		if _, err := (SoftmaxCrossEntropy{}).Eval(out, tg, b, []float64{1}, loss, nil); err == nil {
			t.Errorf("targets %+v accepted", tg)
		}
	}
}
