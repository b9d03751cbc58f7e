package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/train"
)

// centralEvaluation is a server's central evaluation (evaluation.dataset): its test set and
// the model it evaluates every round's parameters with, outside the coordinator's Step (the
// service's driver runs it, one evaluation at a time).
//
// A spec file's test set is encoded with the federation's schema (federation.dataset) when
// there is one, as the clients encode their files. When that schema leaves means and stds
// to the federation's statistics round (range without mean and std), the test file is
// checked at start-up (read with the raw values of those columns), and read again with the
// estimated schema once the estimates are known: from the StatisticsRecord the service
// persists when the round completes (Append: the evaluation is one of the server's
// stores) or, after a restart, from the stored one (estimated). An evaluation asked for
// before then, the initial model's, waits for them.
type centralEvaluation struct {
	m        *model.Model
	test     *data.Dataset
	evaluate func(*model.Model, *data.Dataset, int) (train.Metrics, error)
	// schema is the schema the test set was read with, as applied (nil for a built-in
	// dataset); pending, when set, the schema whose estimates it still lacks, and testFile
	// the file (a spec file's test_path) to read again with them.
	schema   *data.Schema
	pending  *data.Schema
	testFile string

	mu        sync.Mutex
	estimates []byte        // the estimated schema, JSON (set once)
	known     chan struct{} // closed when estimates is set
	applied   bool          // the test set is standardised (only the evaluating goroutine reads it)
}

// newCentralEvaluation loads the evaluation set of ev for a federation with config fed and
// checks that its model can read it.
func newCentralEvaluation(ctx context.Context, ev serverEvaluation, fed server.Config) (*centralEvaluation, error) {
	// The model the coordinator ships: with defaults, e.g. the schema's embedded columns.
	m, err := model.New(fed.WithDefaults().Model, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, fmt.Errorf("federation.model: %w", err)
	}
	ce := &centralEvaluation{m: m, evaluate: train.Evaluate, known: make(chan struct{})}
	if data.IsSchemaFile(ev.Dataset) {
		ce.test, ce.schema, ce.pending, ce.testFile, err = loadSchemaTestSet(ctx, ev.Dataset, fed.Dataset)
	} else {
		ce.test, err = loadTestDataset(ctx, ev.Dataset, ev.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluation dataset: %w", err)
	}
	if err := train.CheckCompatible(m, ce.test); err != nil {
		return nil, fmt.Errorf("evaluation dataset vs federation.model: %w", err)
	}
	if ce.pending == nil {
		if err := ce.featurize(ctx); err != nil {
			return nil, err
		}
		ce.applied = true
	}
	return ce, nil
}

// featurize computes the model's fixed feature stage, if it has one, for the test set once,
// not every round.
func (ce *centralEvaluation) featurize(ctx context.Context) error {
	f := ce.m.Features()
	if f == nil {
		return nil
	}
	test, err := train.Featurize(ctx, f, ce.test, nil)
	if err != nil {
		return fmt.Errorf("evaluation dataset: federation.model.features: %w", err)
	}
	ce.test, ce.evaluate = test, train.EvaluateFeatures
	return nil
}

// Append takes the estimated schema from the statistics round's record (server.Store).
func (ce *centralEvaluation) Append(records []server.Record) error {
	for _, r := range records {
		if sr, ok := r.(server.StatisticsRecord); ok {
			ce.estimated(sr.Schema)
		}
	}
	return nil
}

// estimated records the federation's estimated schema (JSON, as shipped); the first wins.
func (ce *centralEvaluation) estimated(schema []byte) {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	if ce.estimates == nil && schema != nil {
		ce.estimates = schema
		close(ce.known)
	}
}

// run evaluates params on the test set, first waiting for the statistics it lacks (until
// ctx ends) and standardising it with them.
func (ce *centralEvaluation) run(ctx context.Context, params []float64) (train.Metrics, error) {
	if !ce.applied {
		select {
		case <-ce.known:
		case <-ctx.Done():
			return train.Metrics{}, fmt.Errorf("evaluation dataset: the statistics round had not estimated its statistics: %w", ctx.Err())
		}
		ce.mu.Lock()
		b := ce.estimates
		ce.mu.Unlock()
		est, err := data.ParseSchemaJSON(b)
		if err != nil {
			return train.Metrics{}, fmt.Errorf("evaluation dataset: the estimated schema: %w", err)
		}
		// Read again rather than standardised in place: a missing value (missing: mean)
		// must become the estimated mean, which the raw read could not know.
		ld, err := data.LoadSchema(ctx, est, data.LoadOptions{Path: ce.testFile, NoTestSplit: true, Federated: true})
		if err != nil {
			return train.Metrics{}, fmt.Errorf("evaluation dataset with the estimated statistics: %w", err)
		}
		ld.Train.Name = ce.test.Name
		ce.test = ld.Train
		if err := ce.featurize(ctx); err != nil {
			return train.Metrics{}, err
		}
		ce.schema, ce.applied = est, true
	}
	if err := ce.m.SetParams(params); err != nil {
		return train.Metrics{}, err
	}
	return ce.evaluate(ce.m, ce.test, 1024)
}

// checkpointMeta is what the checkpoints of a federation with config fed record for
// inference: the test set's class names and input, and the dataset schema the clients
// encode their files with (the evaluation's, without a federation schema), once it is
// complete; until the statistics round has estimated what it lacks, the CheckpointStore
// takes the estimated schema from the round's record.
func checkpointMeta(ce *centralEvaluation, fed server.Config) model.Meta {
	schema := fed.Dataset
	if schema == nil && ce != nil {
		schema = ce.schema
	}
	if ce == nil {
		var meta model.Meta
		if schema != nil && len(schema.Estimates()) == 0 {
			meta.Dataset, _ = schema.Shipped() // the coordinator shipped it, so it ships
		}
		return meta
	}
	meta, err := train.SchemaMeta(ce.test, fed.Model, schema)
	if err != nil {
		meta.Dataset = nil
	}
	return meta
}

// loadSchemaTestSet loads only the test file of a spec (its test_path): a server's central
// evaluation set, without the training data a server does not hold. It is encoded with
// the federation's schema when given (as the clients encode theirs), else with the spec's
// own, which must then be complete. It returns the schema as applied, the test file, and,
// when the schema leaves statistics to the statistics round, that schema (pending): the
// set then holds those columns' raw values (see centralEvaluation).
func loadSchemaTestSet(ctx context.Context, specFile string, federation *data.Schema) (test *data.Dataset, applied, pending *data.Schema, testFile string, err error) {
	s, err := data.ReadSchemaFile(specFile)
	if err != nil {
		return nil, nil, nil, "", &exitError{code: 2, err: err}
	}
	if s.TestPath == "" {
		return nil, nil, nil, "", &exitError{code: 2, err: fmt.Errorf("dataset %s has no test_path: the server evaluates on that file (a public evaluation set)", specFile)}
	}
	testFile = s.Resolve(s.TestPath)
	enc := s
	if federation != nil {
		enc = federation
	}
	if est := enc.Estimates(); len(est) > 0 {
		if federation == nil {
			return nil, nil, nil, "", &exitError{code: 2, err: fmt.Errorf("dataset %s leaves the mean and std of %s to estimate, which only a federation's statistics round does: give it as federation.dataset too, or give mean and std", specFile, est[0].Name)}
		}
		pending, enc = enc, enc.RawForEstimates()
	}
	ld, err := data.LoadSchema(ctx, enc, data.LoadOptions{Path: testFile, NoTestSplit: true, Federated: true})
	if err != nil {
		return nil, nil, nil, "", err
	}
	reportLoad(specFile, ld)
	ld.Train.Name = s.Name + "-test"
	return ld.Train, ld.Schema, pending, testFile, nil
}
