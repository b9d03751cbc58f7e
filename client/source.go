package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/confide-fl/confide/data"
)

// DataSource is a client's own data files, read with the schema the federation ships in
// its tasks, so that every client encodes features, classes and targets the same way
// (confide client --data). Nothing of the schema comes from the local data: a schema that
// leaves classes, categories, the vocabulary or statistics open is refused
// (data.Schema.ValidateFederated).
type DataSource struct {
	// Path is the file (csv, tsv, jsonl; a glob for several), or the directory (images,
	// idx) of the client's data.
	Path string
	// Seed draws the local test set of evaluate tasks: the schema's test_fraction of the
	// rows (0.2 when it is 0), never trained on.
	Seed uint64
	// SkipBadRows drops the records that do not fit the schema instead of failing the task.
	SkipBadRows bool
	// OnLoad, when set, is told about every load (rows skipped, examples), for the
	// operator's log; it must not send anything anywhere.
	OnLoad func(*data.Loaded)
}

// shippedSchema decodes a task's dataset schema (nil when it has none).
func shippedSchema(b []byte) (*data.Schema, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s, err := data.ParseSchemaJSON(b)
	if err != nil {
		return nil, TaskError(fmt.Errorf("the task's dataset schema: %w", err))
	}
	return s, nil
}

// sourceData holds what a DataSource was read into, and under which schema.
type sourceData struct {
	schema      []byte
	train, test *data.Dataset
}

// localData returns the training and test sets a task runs on: the configured ones, or
// the DataSource read with the task's schema (again only when the schema changes).
func (t *ModelTrainer) localData(ctx context.Context, schema *data.Schema) (train, test *data.Dataset, err error) {
	src := t.cfg.Source
	if src == nil {
		return t.cfg.Train, t.cfg.Test, nil
	}
	if schema == nil {
		return nil, nil, TaskError(errors.New("the task carries no dataset schema, and this client reads its own files only with the federation's schema (set federation.dataset on the server)"))
	}
	key, err := schema.Shipped()
	if err != nil {
		return nil, nil, TaskError(err)
	}
	if t.source != nil && string(t.source.schema) == string(key) {
		return t.source.train, t.source.test, nil
	}
	ld, err := data.LoadSchema(ctx, schema, data.LoadOptions{Path: src.Path, SkipBadRows: src.SkipBadRows, Seed: src.Seed, Federated: true})
	if err != nil {
		return nil, nil, fmt.Errorf("client: reading %s with the federation's schema: %w", src.Path, err)
	}
	if ld.Train.N == 0 {
		return nil, nil, fmt.Errorf("client: %s holds no training rows", src.Path)
	}
	if src.OnLoad != nil {
		src.OnLoad(ld)
	}
	t.source = &sourceData{schema: key, train: ld.Train, test: ld.Test}
	return ld.Train, ld.Test, nil
}

// Data returns the local training and test sets: the configured ones, or those read from
// the DataSource by the last task (nil before the first).
func (t *ModelTrainer) Data() (train, test *data.Dataset) {
	if t.cfg.Source == nil {
		return t.cfg.Train, t.cfg.Test
	}
	if t.source == nil {
		return nil, nil
	}
	return t.source.train, t.source.test
}
