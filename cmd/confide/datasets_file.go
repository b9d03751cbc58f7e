package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// loadSchemaDataset loads the dataset a spec file describes (--dataset FILE.yaml): its own
// paths, or --data-path (the training file) instead. What the spec leaves open (classes,
// categories, vocabulary, normalisation statistics) is fitted on the training rows and
// logged; bad rows fail the load, or with --skip-bad-rows are dropped and counted.
func loadSchemaDataset(ctx context.Context, specFile string, o dataOptions) (train, test *data.Dataset, err error) {
	s, err := data.ReadSchemaFile(specFile)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	ld, err := data.LoadSchema(ctx, s, data.LoadOptions{Path: o.Path, SkipBadRows: o.SkipBadRows, Seed: o.Seed})
	if err != nil {
		return nil, nil, err
	}
	reportLoad(specFile, ld)
	if ld.Test == nil || ld.Test.N == 0 {
		return nil, nil, fmt.Errorf("dataset %s: no test rows: set test_path, or a test_fraction that holds some out", specFile)
	}
	return ld.Train, ld.Test, nil
}

// reportLoad logs what a schema load fitted on the data and the bad rows it skipped.
func reportLoad(what string, ld *data.Loaded) {
	if len(ld.Fitted) > 0 {
		slog.Info("fitted on the training rows (put them in the spec to fix them, as a federation must)", "dataset", what, "fitted", strings.Join(ld.Fitted, "; "))
	}
	if ld.Skipped > 0 {
		first := make([]string, len(ld.Bad))
		for i, b := range ld.Bad {
			first[i] = b.Error()
		}
		slog.Warn("skipped bad rows (--skip-bad-rows)", "dataset", what, "skipped", ld.Skipped, "first", strings.Join(first, "; "))
	}
}

// regressionHead makes s, a dense model's spec built for ds, a regression model when ds
// has real-valued targets: one output per target and the MSE loss.
func regressionHead(s *model.Spec, ds *data.Dataset) {
	if ds.Task == data.TaskRegress {
		s.Output, s.Loss = ds.NumValues, model.LossMSE
	}
}
