package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/confide-fl/confide/data"
)

// dataOptions locate and shape a dataset.
type dataOptions struct {
	// Dir holds the dataset's files; Path names the file itself (text datasets).
	Dir, Path string
	// SeqLen is the token sequence length of text datasets; 0 takes the dataset's default
	// (80 characters for shakespeare, the first 256 words of an e-mail for spam).
	SeqLen int
	// Seed drives the random parts of loading (spam's stratified test split).
	Seed uint64
	// CharVocab fixes shakespeare's character vocabulary (a model's), instead of building
	// it from the training text.
	CharVocab []rune
	// SkipBadRows drops the records of a spec file's dataset that do not fit its schema
	// (reporting the count) instead of failing.
	SkipBadRows bool
	// Schema, when set, is the schema a model file records (model.Meta.Dataset): a spec
	// file's data (its paths, or Path) is encoded with it, fitting nothing, as the model
	// was trained.
	Schema *data.Schema
}

// dataFlags are the dataset flags of train.
type dataFlags struct {
	name string
	opts dataOptions
}

func (f *dataFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "dataset", "mnist", "dataset: mnist, fashion-mnist, shakespeare (next character), spam (SpamAssassin), or a dataset spec file (FILE.yaml: csv/tsv, jsonl, image folders, idx; see examples/tabular)")
	cmd.Flags().StringVar(&f.opts.Dir, "data-dir", "", "directory holding the dataset files (default: cache or system location; for shakespeare and spam see --data-path)")
	cmd.Flags().StringVar(&f.opts.Path, "data-path", "", "the dataset file of shakespeare (tinyshakespeare.txt) or spam (spamassassin.jsonl.gz); for a spec file, the training data instead of its path")
	cmd.Flags().BoolVar(&f.opts.SkipBadRows, "skip-bad-rows", false, "drop the records of a spec file's dataset that do not fit its schema, reporting how many, instead of failing")
	cmd.Flags().IntVar(&f.opts.SeqLen, "seq-len", 0, "token sequence length of text datasets (default: 80 for shakespeare, 128 for its transformer, 256 words for spam)")
}

// textDataFiles are the file names looked for in --data-dir, and in the fallback
// directory, for the text datasets.
var textDataFiles = map[string][]string{
	"shakespeare": {"tinyshakespeare.txt", "shakespeare.txt"},
	"spam":        {"spamassassin.jsonl.gz", "spamassassin.jsonl"},
}

// loadDataset returns the train and test sets of a named dataset with default options.
func loadDataset(ctx context.Context, name, dataDir string) (train, test *data.Dataset, err error) {
	return loadDatasetWith(ctx, name, dataOptions{Dir: dataDir})
}

// loadTestDataset returns only the test set of a dataset the CLI knows by name: what a
// server that evaluates centrally holds (the MNIST training images alone are about 380 MB
// as float64). The text datasets split one file, so they are read whole and their training
// part dropped. A spec file's test set is loadSchemaTestSet's.
func loadTestDataset(ctx context.Context, name, dataDir string) (*data.Dataset, error) {
	switch name {
	case "mnist":
		return data.LoadMNISTTest(ctx, dataDir)
	case "fashion-mnist", "fashion_mnist", "fmnist":
		dir, err := data.FashionMNISTDir(ctx, dataDir, fetchOptions())
		if err != nil {
			return nil, err
		}
		return data.LoadFashionMNISTTest(dir)
	}
	_, test, err := loadDataset(ctx, name, dataDir)
	return test, err
}

// loadDatasetWith returns the train and test sets of a named dataset.
func loadDatasetWith(ctx context.Context, name string, o dataOptions) (train, test *data.Dataset, err error) {
	train, test, _, err = loadDatasetSchema(ctx, name, o)
	return train, test, err
}

// loadDatasetSchema is loadDatasetWith that also returns the schema a spec file's data
// was encoded with (everything fitted filled in, no paths); nil for a built-in dataset.
// With o.Schema and no name, the data is o.Path, all of it in both sets.
func loadDatasetSchema(ctx context.Context, name string, o dataOptions) (train, test *data.Dataset, schema *data.Schema, err error) {
	if data.IsSchemaFile(name) || (name == "" && o.Schema != nil) {
		return loadSchemaDataset(ctx, name, o)
	}
	train, test, err = loadBuiltinDataset(ctx, name, o)
	return train, test, nil, err
}

// loadBuiltinDataset returns the train and test sets of a dataset the CLI knows by name.
func loadBuiltinDataset(ctx context.Context, name string, o dataOptions) (train, test *data.Dataset, err error) {
	switch name {
	case "mnist":
		train, test, err = data.LoadMNISTContext(ctx, o.Dir)
	case "fashion-mnist", "fashion_mnist", "fmnist":
		var dir string
		if dir, err = data.FashionMNISTDir(ctx, o.Dir, fetchOptions()); err == nil {
			train, test, err = data.LoadFashionMNIST(dir)
		}
	case "shakespeare":
		var path string
		if path, err = textDataPath(ctx, name, o); err != nil {
			return nil, nil, err
		}
		var c *data.ShakespeareCorpus
		if c, err = data.LoadShakespeare(path, data.ShakespeareOptions{SeqLen: o.SeqLen, Vocab: o.CharVocab}); err == nil {
			train, test = c.Train, c.Test
		}
	case "spam":
		var path string
		if path, err = textDataPath(ctx, "spam", o); err != nil {
			return nil, nil, err
		}
		var c *data.SpamCorpus
		rng := rand.New(rand.NewPCG(o.Seed, 0x7370616d))
		if c, err = data.LoadSpamAssassin(path, data.SpamOptions{MaxLen: o.SeqLen}, rng); err == nil {
			train, test = c.Train, c.Test
		}
	default:
		return nil, nil, fmt.Errorf("--dataset %q unknown (use mnist, fashion-mnist, shakespeare or spam)", name)
	}
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// textDataPath finds the file of a text dataset: --data-path, else the dataset's file in
// --data-dir, else the cache's copy, downloaded (and converted) on first use.
func textDataPath(ctx context.Context, name string, o dataOptions) (string, error) {
	files := textDataFiles[name]
	if o.Path != "" {
		if _, err := os.Stat(o.Path); err != nil {
			return "", fmt.Errorf("--data-path: %w", err)
		}
		return o.Path, nil
	}
	find := func(dir string) (string, error) {
		for _, f := range files {
			p := filepath.Join(dir, f)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
		}
		return "", fs.ErrNotExist
	}
	if o.Dir != "" {
		p, err := find(o.Dir)
		if err != nil {
			return "", fmt.Errorf("--data-dir %s: no %s file (%v): pass the file itself with --data-path", o.Dir, name, files)
		}
		return p, nil
	}
	return data.Fetch(ctx, name, fetchOptions())
}
