package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// seqBatch returns a batch of B sequences of T positions with random tokens below vocab,
// padded with 0 after the given lengths (nil: full length).
func seqBatch(rng *rand.Rand, B, T, vocab int, lengths []int32) Batch {
	toks := make([]int32, B*T)
	for r := range toks {
		if lengths == nil || r%T < int(lengths[r/T]) {
			toks[r] = int32(rng.IntN(vocab))
		}
	}
	return Batch{B: B, T: T, Tokens: toks, Lengths: lengths, Grad: true}
}

func TestEmbeddingGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	for _, tc := range []struct {
		name    string
		lengths []int32
	}{{"full", nil}, {"padded", []int32{4, 1, 0, 3}}} {
		t.Run(tc.name, func(t *testing.T) {
			// A vocabulary of 3 makes tokens repeat inside an example (the Gram terms t ≠ t').
			b := seqBatch(rng, 4, 4, 3, tc.lengths)
			checkLayerGradients(t, NewEmbedding(3, 5), nil, b, 1e-6)
			checkPerExample(t, NewEmbedding(3, 5), nil, b)
		})
	}
}

func TestPositionGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 2))
	b := seqBatch(rng, 3, 4, 2, []int32{4, 2, 1})
	x := randTensor(rng, 12, 6)
	t.Run("learned", func(t *testing.T) {
		checkLayerGradients(t, &LearnedPosition{MaxLen: 5, Dim: 6}, x, b, 1e-6)
		checkPerExample(t, &LearnedPosition{MaxLen: 5, Dim: 6}, x, b)
	})
	t.Run("sinusoidal", func(t *testing.T) {
		checkLayerGradients(t, &SinusoidalPosition{Dim: 6}, x, b, 1e-6)
	})
}

func TestSinusoidalValues(t *testing.T) {
	p := &SinusoidalPosition{Dim: 4}
	p.ensureTable(3)
	// Vaswani et al. 2017, Sec. 3.5: PE(t, 2k) = sin(t/10000^{2k/d}), PE(t, 2k+1) = cos(…).
	want := []float64{math.Sin(2), math.Cos(2), math.Sin(2 / 100.0), math.Cos(2 / 100.0)}
	if e := relErr(p.table[8:12], want); e > 1e-15 {
		t.Fatalf("row 2 = %v, want %v", p.table[8:12], want)
	}
}

func TestLayerNormGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	for _, T := range []int{1, 3} {
		t.Run(fmt.Sprintf("T%d", T), func(t *testing.T) {
			x := randTensor(rng, 4*T, 5)
			b := Batch{B: 4, T: T}
			checkLayerGradients(t, NewLayerNorm(5), x, b, 1e-6)
			checkPerExample(t, NewLayerNorm(5), x, b)
		})
	}
}

func TestPoolGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 2))
	for _, mode := range []string{PoolMean, PoolFirst, PoolLast} {
		t.Run(mode, func(t *testing.T) {
			x := randTensor(rng, 12, 3)
			checkLayerGradients(t, &Pool{Mode: mode}, x, Batch{B: 3, T: 4, Lengths: []int32{4, 2, 0}}, 1e-6)
		})
	}
}

func TestAttentionGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	for _, tc := range []struct {
		name    string
		heads   int
		causal  bool
		lengths []int32
	}{
		{"one_head", 1, false, nil},
		{"two_heads_padded", 2, false, []int32{5, 3, 1}},
		{"causal_padded", 2, true, []int32{2, 5, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const B, T, D = 3, 5, 4
			b := Batch{B: B, T: T, Lengths: tc.lengths, Grad: true}
			x := randTensor(rng, B*T, 3*D)
			checkLayerGradients(t, &Attention{Dim: D, Heads: tc.heads, Causal: tc.causal}, x, b, 1e-6)
			checkLayerGradients(t, NewMultiHeadAttention(D, tc.heads, tc.causal), randTensor(rng, B*T, D), b, 1e-6)
			checkPerExample(t, NewMultiHeadAttention(D, tc.heads, tc.causal), randTensor(rng, B*T, D), b)
		})
	}
}

// TestAttentionMatchesFormula checks softmax(QKᵀ/√d_k)V on a hand-computed example.
func TestAttentionMatchesFormula(t *testing.T) {
	// One example, T = 2, Dim = 2, one head: Q = K = I, V = [[1 2] [3 4]].
	// S = QKᵀ/√2 = diag(a, a) with a = 1/√2, so row 0 of softmax(S) is (p, 1−p) and row 1 is
	// (1−p, p) with p = e^a/(e^a + 1); O = softmax(S)·V.
	x := &Tensor{Data: []float64{
		1, 0, 1, 0, 1, 2, // position 0: q0, k0, v0
		0, 1, 0, 1, 3, 4, // position 1: q1, k1, v1
	}, Rows: 2, Cols: 6}
	a := 1 / math.Sqrt2
	p := math.Exp(a) / (math.Exp(a) + 1)
	for _, tc := range []struct {
		name    string
		causal  bool
		lengths []int32
		want    []float64
	}{
		{"full", false, nil, []float64{p*1 + (1-p)*3, p*2 + (1-p)*4, (1-p)*1 + p*3, (1-p)*2 + p*4}},
		// Causal: position 0 sees only itself; position 1 sees both.
		{"causal", true, nil, []float64{1, 2, (1-p)*1 + p*3, (1-p)*2 + p*4}},
		// Length 1: key 1 is masked, the padded query outputs zeros.
		{"padded", false, []int32{1}, []float64{1, 2, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := &Attention{Dim: 2, Heads: 1, Causal: tc.causal}
			y := at.Forward(x, &Batch{B: 1, T: 2, Lengths: tc.lengths})
			if e := relErr(y.Data, tc.want); e > 1e-15 {
				t.Fatalf("output %v, want %v", y.Data, tc.want)
			}
		})
	}
	// Two heads of width 1: each head attends with its own column; head 1 of position 0
	// has q = 2, keys (1, −1), values (5, 7): weights ∝ (e^{2}, e^{−2}).
	x2 := &Tensor{Data: []float64{
		0, 2, 0, 1, 1, 5,
		0, 0, 0, -1, 3, 7,
	}, Rows: 2, Cols: 6}
	y := (&Attention{Dim: 2, Heads: 2}).Forward(x2, &Batch{B: 1, T: 2})
	w := math.Exp(2) / (math.Exp(2) + math.Exp(-2))
	want := []float64{2, w*5 + (1-w)*7, 2, 6} // head 0 has q = 0: uniform weights over values (1, 3)
	if e := relErr(y.Data, want); e > 1e-15 {
		t.Fatalf("two heads: output %v, want %v", y.Data, want)
	}
}

func TestResidualAndTransformerBlockGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	const B, T, D = 3, 4, 4
	b := Batch{B: B, T: T, Lengths: []int32{4, 2, 3}, Grad: true}
	t.Run("residual", func(t *testing.T) {
		mk := func() ParamLayer { return NewResidual(NewLinear(D, D, InitXavier), mustAct(t, ActTanh)) }
		checkLayerGradients(t, mk(), randTensor(rng, B*T, D), b, 1e-6)
		checkPerExample(t, mk(), randTensor(rng, B*T, D), b)
	})
	for _, tc := range []struct {
		pre    bool
		causal bool
		act    string
	}{{false, false, ActReLU}, {true, false, ActGELU}, {true, true, ActReLU}} {
		t.Run(fmt.Sprintf("block_pre=%v_causal=%v_%s", tc.pre, tc.causal, tc.act), func(t *testing.T) {
			mk := func() ParamLayer {
				blk, err := NewTransformerBlock(D, 2, 6, tc.act, tc.pre, tc.causal, 0)
				if err != nil {
					t.Fatal(err)
				}
				return blk
			}
			x := randTensor(rng, B*T, D)
			checkLayerGradients(t, mk(), x, b, 1e-6)
			checkPerExample(t, mk(), x, b)
		})
	}
}

func mustAct(t *testing.T, name string) *Activation {
	a, err := NewActivation(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRecurrentGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	for _, tc := range []struct {
		cell, act string
		in, H, T  int
		lengths   []int32
	}{
		{CellVanilla, ActTanh, 3, 4, 5, nil},
		{CellVanilla, ActReLU, 3, 4, 4, []int32{4, 2, 3}},
		{CellLSTM, "", 3, 4, 5, nil},
		// In = H = 8 with T = 4 takes the Gram path, T = 9 forms the per-example gradient.
		{CellLSTM, "", 8, 8, 4, []int32{4, 1, 3}},
		{CellLSTM, "", 8, 8, 9, []int32{9, 0, 6}},
		{CellGRU, "", 3, 4, 5, nil},
		{CellGRU, "", 8, 8, 4, []int32{2, 4, 1}},
		{CellGRU, "", 8, 8, 9, []int32{7, 9, 3}},
	} {
		t.Run(fmt.Sprintf("%s_%s_in%d_h%d_T%d_padded=%v", tc.cell, tc.act, tc.in, tc.H, tc.T, tc.lengths != nil), func(t *testing.T) {
			const B = 3
			mk := func() ParamLayer {
				r := NewRecurrent(tc.cell, tc.in, tc.H)
				if tc.act != "" {
					r.Activation = tc.act
				}
				return r
			}
			b := Batch{B: B, T: tc.T, Lengths: tc.lengths, Grad: true}
			x := randTensor(rng, B*tc.T, tc.in)
			checkLayerGradients(t, mk(), x, b, 1e-6)
			checkPerExample(t, mk(), x, b)
		})
	}
}

// TestRecurrentPaddingFreezesState checks that padded steps neither change the state nor
// output anything: the last valid output equals that of the unpadded prefix.
func TestRecurrentPaddingFreezesState(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	for _, cell := range []string{CellVanilla, CellLSTM, CellGRU} {
		r := NewRecurrent(cell, 2, 3)
		bindFresh(r, rng)
		x := randTensor(rng, 6, 2)
		y := r.Forward(x, &Batch{B: 1, T: 6, Lengths: []int32{4}})
		got := append([]float64(nil), y.Data...)
		y = r.Forward(&Tensor{Data: x.Data[:8], Rows: 4, Cols: 2}, &Batch{B: 1, T: 4})
		if relErr(got[:12], y.Data) != 0 {
			t.Errorf("%s: padded run differs from the prefix run", cell)
		}
		for _, v := range got[12:] {
			if v != 0 {
				t.Errorf("%s: padded position output %v, want 0", cell, v)
			}
		}
	}
}
