package data

import (
	"fmt"
	"math"
)

// MaxEmbeddingDim bounds the width of an embedded column's vectors (Column.Dim): a schema
// comes from a file or from a federation's server, and the model allocates
// categories × dim parameters for each such column.
const MaxEmbeddingDim = 1024

// DefaultEmbeddingDim is the width of the vectors of an embedded column of k categories
// when the schema gives none: fastai's rule of thumb (fastai.tabular.model.emb_sz_rule),
// min(600, round(1.6·k^0.56)), at least 1. Five categories get 4, a hundred 21, ten
// thousand 278.
func DefaultEmbeddingDim(k int) int {
	return max(1, min(600, int(math.Round(1.6*math.Pow(float64(k), 0.56)))))
}

// EmbeddedColumn is a categorical column encoded for an embedding (encoding embedding): an
// example's feature Column holds the index of its category in [0, Categories), or −1 when
// the value is missing or unknown (missing: zero, unknown: zero), and a model looks it up
// in a learned Categories×Dim table instead of reading it as a number. The fields are
// those of model.EmbeddingSpec, so one converts to the other.
type EmbeddedColumn struct {
	// Name is the column's header in the file.
	Name string `json:"name,omitempty"`
	// Column is the feature's position in an encoded example (a row of Dataset.X).
	Column int `json:"column"`
	// Categories is the number of categories, the rows of the table.
	Categories int `json:"categories"`
	// Dim is the width of the learned vectors.
	Dim int `json:"dim"`
}

// Embedded returns the schema's embedded columns in column order, with their positions in
// an encoded example and their widths (Dim, or DefaultEmbeddingDim). The categories must be
// known: a federation's schema lists them, and LoadSchema fills them in for central
// training (Loaded.Schema); a column whose categories are not listed yet is left out.
func (s *Schema) Embedded() []EmbeddedColumn {
	var out []EmbeddedColumn
	off := 0
	for _, c := range s.Columns {
		if c.Type == ColumnCategorical && c.Encoding == EncodeEmbedding && len(c.Categories) > 0 {
			d := c.Dim
			if d == 0 {
				d = DefaultEmbeddingDim(len(c.Categories))
			}
			out = append(out, EmbeddedColumn{Name: c.Name, Column: off, Categories: len(c.Categories), Dim: d})
		}
		off += c.width()
	}
	return out
}

// validateEmbedded checks d.Embedded against d's features: distinct columns inside a row,
// positive sizes, and every example's index an integer in [−1, Categories).
func (d *Dataset) validateEmbedded() error {
	seen := make(map[int]bool, len(d.Embedded))
	for k, e := range d.Embedded {
		switch {
		case e.Column < 0 || e.Column >= d.Dim:
			return fmt.Errorf("embedded column %d (%s): feature %d outside the %d features", k, e.Name, e.Column, d.Dim)
		case seen[e.Column]:
			return fmt.Errorf("embedded column %d (%s): feature %d is embedded twice", k, e.Name, e.Column)
		case e.Categories <= 0 || e.Dim <= 0:
			return fmt.Errorf("embedded column %d (%s): %d categories, dim %d, want both > 0", k, e.Name, e.Categories, e.Dim)
		}
		seen[e.Column] = true
		for i := range d.N {
			v := d.X[i*d.Dim+e.Column]
			if v != math.Trunc(v) || v < -1 || v >= float64(e.Categories) {
				return fmt.Errorf("example %d, embedded column %s (feature %d) = %v, want a category index in [0, %d) or −1", i, e.Name, e.Column, v, e.Categories)
			}
		}
	}
	return nil
}
