package train

import (
	"context"
	"fmt"
	"slices"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// DatasetMeta returns what a model of spec trained on ds needs for inference, for its model
// file: ds's class names, and how raw inputs became ds's examples (its Normalization and
// image shape, or its TextEncoding). A part that does not fit spec (class names of another
// count, a vocabulary larger than the model's) is left out.
func DatasetMeta(ds *data.Dataset, spec model.Spec) model.Meta {
	var meta model.Meta
	fits := func(part model.Meta) bool { return model.ValidateMeta(spec, part) == nil }
	if ds.Task == data.TaskClassify && len(ds.ClassNames) > 0 {
		if part := (model.Meta{ClassNames: slices.Clone(ds.ClassNames)}); fits(part) {
			meta.ClassNames = part.ClassNames
		}
	}
	if !spec.IsSequence() && !ds.IsText() {
		in := &model.InputMeta{Kind: model.InputTabular, Description: "feature values as the dataset's files hold them"}
		shape := ds.Shape
		if spec.Features != nil {
			shape = spec.Features.Shape // ds may hold the feature stage's output
		}
		if len(shape) == 2 {
			in.Kind, in.Shape = model.InputImage, slices.Clone(shape)
			in.Description = "greyscale pixel intensities as the dataset's files hold them"
		}
		if n := ds.Normalization; n != nil {
			in.Mean, in.Std = slices.Clone(n.Mean), slices.Clone(n.Std)
			if slices.Equal(n.Mean, []float64{0}) && slices.Equal(n.Std, []float64{255}) {
				in.Description = "8-bit pixels, 0 (black) to 255 (white), divided by 255"
			}
		}
		if fits(model.Meta{Input: in}) {
			meta.Input = in
		}
	}
	if e := ds.Text; e != nil {
		t := &model.TokenizerMeta{Type: e.Tokenizer, Vocab: slices.Clone(e.Vocab), MaxLen: e.MaxLen,
			StripEmailHeaders: e.StripEmailHeaders, StripHTML: e.StripHTML}
		if fits(model.Meta{Tokenizer: t}) {
			meta.Tokenizer = t
		}
	}
	return meta
}

// SchemaMeta is DatasetMeta for ds read with a dataset schema (data.LoadSchema): it also
// records the schema as a federation ships it (without local paths, with every class,
// category, vocabulary entry and normalisation statistic it was encoded with), so that
// inference encodes raw rows as training did. A schema that is not complete (statistics
// still to be estimated) is not recorded: it could not encode a row.
func SchemaMeta(ds *data.Dataset, spec model.Spec, schema *data.Schema) (model.Meta, error) {
	meta := DatasetMeta(ds, spec)
	if schema == nil || len(schema.Estimates()) > 0 {
		return meta, nil
	}
	b, err := schema.Shipped()
	if err != nil {
		return meta, err
	}
	if err := model.ValidateMeta(spec, model.Meta{Dataset: b}); err != nil {
		return meta, err
	}
	meta.Dataset = b
	if in := meta.Input; in != nil && in.Kind == model.InputTabular && (schema.Format == data.FormatCSV || schema.Format == data.FormatTSV) {
		in.Description = "a table's row encoded by the dataset spec (metadata.dataset): numeric columns normalised, categorical ones one-hot, ordinal or embedding indices"
	}
	return meta, nil
}

// TextEncoder returns the encoder of the tokenizer a model file records.
func TextEncoder(t *model.TokenizerMeta) (*data.TextEncoder, error) {
	return data.NewTextEncoder(data.TextEncoding{Tokenizer: t.Type, Vocab: t.Vocab, MaxLen: t.MaxLen,
		StripEmailHeaders: t.StripEmailHeaders, StripHTML: t.StripHTML})
}

// EachOutput runs m over ds in batches of batchSize (evaluation mode: no dropout; through
// the model's feature stage, if any) and calls visit with the logits and the label of every
// labelled row: each example of a classifier, each position with a target of a next-token
// model. visit must not keep logits. onExamples, when not nil, is called after each batch
// with its size.
func EachOutput(ctx context.Context, m *model.Model, ds *data.Dataset, batchSize int, visit func(logits []float64, label int32) error, onExamples func(int)) error {
	if err := CheckCompatible(m, ds); err != nil {
		return err
	}
	if batchSize <= 0 {
		batchSize = 256
	}
	var b data.Batch
	var in model.Input
	idx := make([]int, 0, batchSize)
	for start := 0; start < ds.N; start += batchSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx = idx[:0]
		for i := start; i < min(start+batchSize, ds.N); i++ {
			idx = append(idx, i)
		}
		ds.Gather(&b, idx)
		tg := Input(ds, &b, &in)
		out, err := m.Forward(&in)
		if err != nil {
			return err
		}
		if len(tg.Class) != out.Rows {
			return fmt.Errorf("train: %d labels for %d output rows of dataset %s", len(tg.Class), out.Rows, ds.Name)
		}
		for r, y := range tg.Class {
			if y < 0 {
				continue // padding of a next-token example
			}
			if err := visit(out.Row(r), y); err != nil {
				return err
			}
		}
		if onExamples != nil {
			onExamples(len(idx))
		}
	}
	return nil
}
