package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/train"
)

// loadSchemaDataset loads the dataset a spec file describes (--dataset FILE.yaml): its own
// paths, or --data-path (the training file) instead. What the spec leaves open (classes,
// categories, vocabulary, normalisation statistics) is fitted on the training rows and
// logged; bad rows fail the load, or with --skip-bad-rows are dropped and counted. It
// returns the schema as applied. With o.Schema (a model's recorded schema) the data is
// encoded with that instead, fitting nothing; with o.Schema and no spec file, o.Path is
// read whole and is both sets.
func loadSchemaDataset(ctx context.Context, specFile string, o dataOptions) (train, test *data.Dataset, schema *data.Schema, err error) {
	s, lo := o.Schema, data.LoadOptions{Path: o.Path, SkipBadRows: o.SkipBadRows, Seed: o.Seed, Federated: o.Schema != nil}
	what := specFile
	switch {
	case specFile == "":
		if o.Path == "" {
			return nil, nil, nil, &exitError{code: 2, err: errors.New("give the data to read with the model's recorded dataset spec: --data-path FILE (or --dataset SPEC.yaml for the spec's own files)")}
		}
		lo.NoTestSplit, what = true, o.Path
	case s != nil:
		// The spec file says where the data is; the model's schema how to encode it.
		f, err := data.ReadSchemaFile(specFile)
		if err != nil {
			return nil, nil, nil, &exitError{code: 2, err: err}
		}
		switch {
		case lo.Path != "":
		case f.Path == "" && f.TestPath != "":
			// A public evaluation set alone (a server's spec): it is both sets.
			lo.Path, lo.NoTestSplit = f.Resolve(f.TestPath), true
		default:
			lo.Path, lo.TestPath = f.Resolve(f.Path), f.Resolve(f.TestPath)
		}
	default:
		if s, err = data.ReadSchemaFile(specFile); err != nil {
			return nil, nil, nil, &exitError{code: 2, err: err}
		}
	}
	ld, err := data.LoadSchema(ctx, s, lo)
	if err != nil {
		return nil, nil, nil, err
	}
	reportLoad(what, ld)
	if lo.NoTestSplit && lo.TestPath == "" {
		return ld.Train, ld.Train, ld.Schema, nil
	}
	if ld.Test == nil || ld.Test.N == 0 {
		return nil, nil, nil, fmt.Errorf("dataset %s: no test rows: set test_path, or a test_fraction that holds some out", specFile)
	}
	return ld.Train, ld.Test, ld.Schema, nil
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

// ownDataSource is a client's --data: its own files, read with the schema the server ships.
func ownDataSource(o clientOptions) *client.DataSource {
	return &client.DataSource{
		Path: o.data, SkipBadRows: o.skipBadRows, Seed: o.seed*1000003 + uint64(o.clientIndex),
		OnLoad: func(ld *data.Loaded) {
			reportLoad(o.data, ld)
			test := 0
			if ld.Test != nil {
				test = ld.Test.N
			}
			slog.Info("local data read with the federation's schema", "data", o.data, "train_examples", ld.Train.N, "test_examples", test, "skipped_rows", ld.Skipped)
		},
	}
}

// sharedDataset is a client's share of a public dataset: --dataset split by --partition
// across --num-clients, its --client-index part, and an IID part of the test set.
func sharedDataset(ctx context.Context, o clientOptions, spec data.PartitionSpec) (train, test *data.Dataset, err error) {
	trains, tests, err := datasetShards(ctx, o, spec, o.clientIndex, 1)
	if err != nil {
		return nil, nil, err
	}
	return trains[0], tests[0], nil
}

// datasetShards loads --dataset once and returns the training and test shards of the n
// clients first…first+n−1 of the --partition of --num-clients by --seed: the shards every
// client of the federation computes alike (a fleet of --virtual clients shares the one
// load; each shard is a copy, so the whole set can be freed afterwards).
func datasetShards(ctx context.Context, o clientOptions, spec data.PartitionSpec, first, n int) (train, test []*data.Dataset, err error) {
	trainSet, testSet, err := loadDataset(ctx, o.dataset, o.dataDir)
	if err != nil {
		return nil, nil, err
	}
	parts, err := spec.Partition(trainSet, o.numClients, rand.New(rand.NewPCG(o.seed, 0x70617274)))
	if err != nil {
		return nil, nil, err
	}
	testParts, err := data.PartitionIID(testSet.N, o.numClients, rand.New(rand.NewPCG(o.seed, 0x74657374)))
	if err != nil {
		return nil, nil, err
	}
	for k := first; k < first+n; k++ {
		train, test = append(train, trainSet.Subset(parts[k])), append(test, testSet.Subset(testParts[k]))
	}
	return train, test, nil
}

// centralMetrics are the metrics of a server's central evaluation: accuracy and loss, and
// for a regression model its errors in the target's units (r2, rmse, mae, mse).
func centralMetrics(r train.Metrics) map[string]float64 {
	m := map[string]float64{"accuracy": r.Accuracy, "loss": r.Loss}
	if g := r.Regression; g != nil {
		m["r2"], m["rmse"], m["mae"], m["mse"] = g.R2, g.RMSE, g.MAE, g.MSE
	}
	return m
}

// fetchOptions are how the CLI downloads a public dataset on first use: into the user's
// cache directory, with a progress bar on a terminal (none in pipes and logs).
func fetchOptions() data.FetchOptions {
	return data.FetchOptions{Progress: func(name string, size int64) io.Writer {
		slog.Info("downloading", "file", name, "bytes", size)
		if bar := newProgressBytes(size, "download "+name); bar != nil {
			return bar
		}
		return nil
	}}
}
