package train

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	quality "github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
)

func TestDatasetMeta(t *testing.T) {
	t.Run("image", func(t *testing.T) {
		ds := bars(4, 1)
		ds.Normalization = data.PixelNormalization()
		spec := model.Spec{Type: model.TypeMLP, Input: 64, Output: 2}
		meta := DatasetMeta(ds, spec)
		in := meta.Input
		if in == nil || in.Kind != model.InputImage || !slices.Equal(in.Shape, []int{8, 8}) || !slices.Equal(in.Std, []float64{255}) {
			t.Fatalf("input %+v, want an 8×8 image of pixels / 255", in)
		}
		if !slices.Equal(meta.ClassNames, []string{"horizontal", "vertical"}) || meta.Tokenizer != nil {
			t.Fatalf("meta %s", meta.JSON())
		}
		if err := model.ValidateMeta(spec, meta); err != nil {
			t.Fatal(err)
		}
		// Class names that do not fit the model are left out.
		if m := DatasetMeta(ds, model.Spec{Type: model.TypeMLP, Input: 64, Output: 3}); m.ClassNames != nil {
			t.Fatalf("class names %q for a 3-output model", m.ClassNames)
		}
	})
	t.Run("tabular", func(t *testing.T) {
		meta := DatasetMeta(blobs(5, 1), model.Spec{Type: model.TypeMLP, Input: 2, Output: 3})
		if meta.Input == nil || meta.Input.Kind != model.InputTabular || meta.Input.Mean != nil || meta.ClassNames != nil {
			t.Fatalf("meta %s", meta.JSON())
		}
	})
	t.Run("text", func(t *testing.T) {
		c, err := data.ReadShakespeare(strings.NewReader("ROMEO:\nBut soft, what light.\n\nJULIET:\nAy me!\n"), "t",
			data.ShakespeareOptions{SeqLen: 8, TestFraction: -1})
		if err != nil {
			t.Fatal(err)
		}
		spec := model.Spec{Type: model.TypeGRU, Vocab: c.Train.VocabSize, Embed: 4, Hidden: []int{4}, Task: model.TaskNextToken}
		meta := DatasetMeta(c.Train, spec)
		if meta.Tokenizer == nil || meta.Tokenizer.Type != model.TokenizerChar || meta.Input != nil {
			t.Fatalf("meta %s", meta.JSON())
		}
		enc, err := TextEncoder(meta.Tokenizer)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := enc.Encode(nil, "what light?"), c.Tokenizer.Encode(nil, "what light?"); !slices.Equal(got, want) {
			t.Fatalf("the recorded tokenizer encodes %v, the corpus's %v", got, want)
		}
		small := spec
		small.Vocab = 3
		if m := DatasetMeta(c.Train, small); m.Tokenizer != nil {
			t.Fatal("a vocabulary larger than the model's was recorded")
		}
	})
}

// EachOutput visits the rows Evaluate scores: fed to package metrics, they give Evaluate's loss and
// accuracy, for a classifier and for a next-token model (padding skipped).
func TestEachOutputAgreesWithEvaluate(t *testing.T) {
	text := "ROMEO:\nBut soft, what light through yonder window breaks.\n\nJULIET:\nAy me! O Romeo, Romeo.\n"
	c, err := data.ReadShakespeare(strings.NewReader(text), "t", data.ShakespeareOptions{SeqLen: 7, TestFraction: -1})
	if err != nil {
		t.Fatal(err)
	}
	lm, err := model.New(model.Spec{Type: model.TypeLSTM, Vocab: c.Train.VocabSize, Embed: 3, Hidden: []int{5}, Task: model.TaskNextToken}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *model.Model
		ds   *data.Dataset
	}{
		{"mlp", newModel(t), blobs(50, 3)},
		{"lstm-next-token", lm, c.Train},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc, err := quality.NewClassification(tc.m.Spec.Output)
			if err != nil {
				t.Fatal(err)
			}
			seen := 0
			err = EachOutput(context.Background(), tc.m, tc.ds, 8, func(z []float64, y int32) error {
				return acc.AddLogits(z, int(y))
			}, func(n int) { seen += n })
			if err != nil {
				t.Fatal(err)
			}
			want, err := Evaluate(tc.m, tc.ds, 8)
			if err != nil {
				t.Fatal(err)
			}
			r := acc.Report(nil)
			if seen != tc.ds.N || math.Abs(r.Accuracy-want.Accuracy) > 1e-12 {
				t.Fatalf("%d examples, accuracy %v; Evaluate: %d, %v", seen, r.Accuracy, tc.ds.N, want.Accuracy)
			}
			// Evaluate averages per example (each the mean over its positions); the row
			// mean equals it when every example has the same number of rows.
			if tc.ds.Task == data.TaskClassify && math.Abs(r.Loss-want.Loss) > 1e-9 {
				t.Fatalf("loss %v, Evaluate %v", r.Loss, want.Loss)
			}
		})
	}
	if err := EachOutput(context.Background(), newModel(t), c.Train, 8, nil, nil); err == nil || !strings.Contains(err.Error(), "needs dense features") {
		t.Fatalf("a text dataset for an mlp: %v", err)
	}
}
