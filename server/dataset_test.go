package server_test

import (
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
)

// TestConfigDatasetMustBeShippableAndFitTheModel checks federation.dataset: a schema that
// leaves statistics to be fitted (on some client's data) is refused, and so is a model whose
// input, output or loss does not fit the schema; a good one is shipped in fit tasks.
func TestConfigDatasetMustBeShippableAndFitTheModel(t *testing.T) {
	parse := func(spec string) *data.Schema {
		s, err := data.ParseSchema([]byte(spec), "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := `{format: csv, label: {column: y, classes: [a, b]}, columns: [{name: x1, mean: 0, std: 1}, {name: x2, normalize: none}, {name: c, type: categorical, encoding: ordinal, categories: [p, q]}]}`
	for _, tc := range []struct {
		name, spec string
		model      model.Spec
		want       string
	}{
		{"statistics_missing", `{format: csv, label: {column: y, classes: [a, b]}, columns: [{name: x1}, {name: x2}, {name: x3}]}`, tinyModel(), "mean and std are missing"},
		{"input_mismatch", good, model.Spec{Type: model.TypeMLP, Input: 4, Output: 2}, "encodes 3 features"},
		{"classes_mismatch", good, model.Spec{Type: model.TypeMLP, Input: 3, Output: 3}, "has 2 classes"},
		{"regression_needs_mse", `{format: csv, target: {column: y, normalize: none}, columns: [{name: x1, normalize: none}, {name: x2, normalize: none}, {name: x3, normalize: none}]}`, model.Spec{Type: model.TypeMLP, Input: 3, Output: 1}, "needs loss: mse"},
		{"good", good, tinyModel(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(1, 1)
			cfg.Model, cfg.Dataset = tc.model, parse(tc.spec)
			err := cfg.WithDefaults().Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := server.New(cfg.WithDefaults(), server.Options{}); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestConfigModelTakesTheSchemasEmbeddings: an mlp that leaves out embeddings is shipped
// with the schema's embedded columns, so every client builds the same model; an explicit
// list that differs from the schema's is refused.
func TestConfigModelTakesTheSchemasEmbeddings(t *testing.T) {
	schema, err := data.ParseSchema([]byte(`{format: csv, label: {column: y, classes: [a, b]}, columns: [{name: x1, mean: 0, std: 1}, {name: shop, type: categorical, encoding: embedding, dim: 3, categories: [p, q, r, s]}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(1, 1)
	cfg.Model, cfg.Dataset = model.Spec{Type: model.TypeMLP, Input: 2, Hidden: []int{4}, Output: 2}, schema
	full := cfg.WithDefaults()
	want := model.EmbeddingSpec{Name: "shop", Column: 1, Categories: 4, Dim: 3}
	if len(full.Model.Embeddings) != 1 || full.Model.Embeddings[0] != want {
		t.Fatalf("model.embeddings = %+v, want [%+v]", full.Model.Embeddings, want)
	}
	if _, err := server.New(cfg, server.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg.Model.Embeddings = []model.EmbeddingSpec{{Column: 1, Categories: 4, Dim: 8}}
	if err := cfg.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "differ from the dataset's embedded columns") {
		t.Fatalf("err = %v, want the mismatch named", err)
	}
}
