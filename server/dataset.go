package server

import (
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// datasetEmbeddings returns the model an mlp that leaves out embeddings becomes for the
// schema's embedded categorical columns (model.Spec.EmbedColumns): the server ships it
// with them, so every client builds the same model. A mismatch is validateDataset's to
// report.
func (c Config) datasetEmbeddings() model.Spec {
	if c.Dataset == nil {
		return c.Model
	}
	if m, err := c.Model.EmbedColumns(train.EmbeddingSpecs(c.Dataset.Embedded())); err == nil {
		return m
	}
	return c.Model
}

// validateDataset checks federation.dataset: complete enough to ship (classes, categories,
// vocabulary and statistics in it, none fitted on a client's data) and fitting the model
// (its input size, its outputs, the loss of a regression).
func (c Config) validateDataset(bad func(format string, a ...any)) {
	c.validateStatistics(bad)
	s := c.Dataset
	if s == nil {
		return
	}
	if err := s.ValidateFederated(); err != nil {
		bad("dataset: %v", err)
		return
	}
	m := c.Model
	if d := s.FeatureDim(); d > 0 && m.Input > 0 && m.Features == nil && m.Input != d {
		bad("model.input = %d, but the dataset's schema encodes %d features an example: set model.input: %d", m.Input, d, d)
	}
	if _, err := m.EmbedColumns(train.EmbeddingSpecs(s.Embedded())); err != nil {
		bad("model: %v", err)
	}
	switch {
	case s.Target != nil:
		if m.Loss != model.LossMSE || m.Output != 1 {
			bad("the dataset's schema has a regression target (%s): the model needs loss: mse and output: 1 (it has loss %q, output %d)", s.Target.Column, m.Loss, m.Output)
		}
	case s.Label != nil && len(s.Label.Classes) > 0 && m.Output != len(s.Label.Classes):
		bad("model.output = %d, but the dataset's schema has %d classes: set model.output: %d", m.Output, len(s.Label.Classes), len(s.Label.Classes))
	}
}
