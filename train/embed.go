package train

import (
	"fmt"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// EmbeddingSpecs returns a dataset's embedded categorical columns (data.Dataset.Embedded,
// data.Schema.Embedded) as the model's embedding specs: the same fields.
func EmbeddingSpecs(cols []data.EmbeddedColumn) []model.EmbeddingSpec {
	if len(cols) == 0 {
		return nil
	}
	out := make([]model.EmbeddingSpec, len(cols))
	for k, c := range cols {
		out[k] = model.EmbeddingSpec(c)
	}
	return out
}

// FitEmbeddings returns spec with ds's embedded categorical columns: an mlp that lists
// none takes them, one that lists them must match them (model.Spec.EmbedColumns).
func FitEmbeddings(spec model.Spec, ds *data.Dataset) (model.Spec, error) {
	return spec.EmbedColumns(EmbeddingSpecs(ds.Embedded))
}

// checkEmbeddings reports a model that would read ds's category indices as numbers, or
// look up features of ds that hold none.
func checkEmbeddings(s model.Spec, ds *data.Dataset) error {
	if len(s.Embeddings) == 0 && len(ds.Embedded) > 0 {
		e := ds.Embedded[0]
		return fmt.Errorf("dataset %s embeds %d categorical columns (%s: a category index in feature %d), which the model reads as numbers: give the model the dataset's embeddings (leave embeddings out of an mlp's spec and it takes them)", ds.Name, len(ds.Embedded), e.Name, e.Column)
	}
	if _, err := s.EmbedColumns(EmbeddingSpecs(ds.Embedded)); err != nil {
		return fmt.Errorf("dataset %s: %w", ds.Name, err)
	}
	return nil
}
