package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// tokenSeqs is a sequence classification problem with padding: sequences of 3–6 tokens
// from [2, 8), labelled by whether the first token is even.
func tokenSeqs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	T := 6
	ds := &data.Dataset{Name: "seqs", N: n, SeqLen: T, Tokens: make([]int32, n*T), Lengths: make([]int32, n), VocabSize: 8, Y: make([]int32, n), NumClasses: 2}
	for i := range n {
		L := 3 + rng.IntN(4)
		ds.Lengths[i] = int32(L)
		for t := range L {
			ds.Tokens[i*T+t] = int32(2 + rng.IntN(6))
		}
		ds.Y[i] = 1 - ds.Tokens[i*T]%2
	}
	return ds
}

// agreement is the fraction of ds on which a and b predict the same class.
func agreement(t *testing.T, a, b *model.Model, ds *data.Dataset) float64 {
	t.Helper()
	var batch data.Batch
	var in model.Input
	idx := make([]int, ds.N)
	for i := range idx {
		idx[i] = i
	}
	ds.Gather(&batch, idx)
	Input(ds, &batch, &in)
	argmax := func(m *model.Model) []int {
		out, err := m.Forward(&in)
		if err != nil {
			t.Fatal(err)
		}
		c := make([]int, out.Rows)
		for r := range out.Rows {
			row := out.Row(r)
			for j, v := range row {
				if v > row[c[r]] {
					c[r] = j
				}
			}
		}
		return c
	}
	ca, cb := argmax(a), argmax(b)
	same := 0
	for i := range ca {
		if ca[i] == cb[i] {
			same++
		}
	}
	return float64(same) / float64(len(ca))
}

// A student distilled from a trained teacher, with labels or on unlabelled data, with or
// without DP-SGD, learns the task and agrees with the teacher; dense and sequence models.
func TestDistillLearnsFromTeacher(t *testing.T) {
	type problem struct {
		train, test      *data.Dataset
		teacher, student model.Spec
		opt              model.OptimizerConfig
	}
	problems := map[string]problem{
		"mlp": {blobs(1500, 1), blobs(400, 2), model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{32}, Output: 3, Activation: "tanh"},
			model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{8}, Output: 3, Activation: "tanh"}, model.OptimizerConfig{LR: 0.1, Momentum: 0.9}},
		"sequence": {tokenSeqs(1200, 1), tokenSeqs(300, 2), model.Spec{Type: model.TypeGRU, Vocab: 8, Embed: 8, Hidden: []int{16}, Output: 2, Pooling: model.PoolFirst},
			model.Spec{Type: model.TypeTransformer, Vocab: 8, Embed: 8, Heads: 2, FF: 16, Layers: 1, MaxLen: 6, Output: 2, Pooling: model.PoolFirst}, model.OptimizerConfig{Name: "adam", LR: 0.01}},
	}
	for name, p := range problems {
		teacher, err := model.New(p.teacher, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(teacher, Config{Epochs: 8, BatchSize: 32, Optimizer: p.opt, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := tr.Fit(context.Background(), p.train, p.test, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acc := rep[len(rep)-1].Test.Accuracy; acc < 0.9 {
			t.Fatalf("%s teacher: test accuracy %v < 0.9", name, acc)
		}
		for _, mode := range []string{"labelled", "unlabelled", "unlabelled-dp"} {
			t.Run(fmt.Sprintf("%s/%s", name, mode), func(t *testing.T) {
				student, err := model.New(p.student, rand.New(rand.NewPCG(2, 2)))
				if err != nil {
					t.Fatal(err)
				}
				ds := p.train
				d := DistillConfig{Temperature: 3, Alpha: 0.7}
				if mode != "labelled" {
					// A public set with no labels at all.
					c := *p.train
					c.Y, c.NumClasses = nil, 0
					ds, d = &c, DistillConfig{Temperature: 3, Unlabeled: true}
				}
				cfg := Config{Epochs: 8, BatchSize: 32, Optimizer: p.opt, Seed: 2}
				var reps []EpochReport
				if mode == "unlabelled-dp" {
					cfg.DP = &DPConfig{NoiseMultiplier: 0.5, MaxGradNorm: 1}
					st, err := New(student, cfg)
					if err != nil {
						t.Fatal(err)
					}
					if err := st.Distill(teacher, d); err != nil {
						t.Fatal(err)
					}
					if err := st.EnableDP(seededNoise{rand.New(rand.NewPCG(7, 7))}, rand.New(rand.NewPCG(8, 8))); err != nil {
						t.Fatal(err)
					}
					reps, err = st.Fit(context.Background(), ds, p.test, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
				} else if reps, err = Distill(context.Background(), teacher, student, ds, p.test, cfg, d, nil, nil); err != nil {
					t.Fatal(err)
				}
				acc := reps[len(reps)-1].Test.Accuracy
				agree := agreement(t, teacher, student, p.test)
				if acc < 0.85 || agree < 0.85 {
					t.Fatalf("student test accuracy %v, agreement with the teacher %v; want ≥ 0.85", acc, agree)
				}
			})
		}
	}
}

func TestDistillRefusesMismatchedModels(t *testing.T) {
	mlp := func(in, out int) *model.Model {
		m, err := model.New(model.Spec{Type: model.TypeMLP, Input: in, Hidden: []int{4}, Output: out}, rand.New(rand.NewPCG(1, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	gru, err := model.New(model.Spec{Type: model.TypeGRU, Vocab: 8, Embed: 4, Hidden: []int{4}, Output: 3}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	smallVocab, err := model.New(model.Spec{Type: model.TypeGRU, Vocab: 5, Embed: 4, Hidden: []int{4}, Output: 3}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		teacher, student *model.Model
		want             string
	}{
		{mlp(2, 3), mlp(3, 3), "reads 2 features, the student 3"},
		{mlp(2, 3), mlp(2, 4), "3 outputs, the student 4"},
		{mlp(2, 3), gru, "read different inputs"},
		{gru, smallVocab, "vocab 5 is smaller"},
	} {
		if err := CheckTeacher(tc.teacher, tc.student); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	tr, err := New(mlp(2, 3), Config{Epochs: 1, BatchSize: 4, Optimizer: model.OptimizerConfig{LR: 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Distill(mlp(2, 3), DistillConfig{Temperature: -1}); err == nil || !strings.Contains(err.Error(), "temperature = -1") {
		t.Fatalf("bad temperature: %v", err)
	}
	if err := tr.Distill(mlp(2, 3), DistillConfig{Alpha: 2}); err == nil || !strings.Contains(err.Error(), "alpha = 2") {
		t.Fatalf("bad alpha: %v", err)
	}
}
