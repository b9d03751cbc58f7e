package data

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LoadOptions say where a schema's files are and what becomes of bad rows.
type LoadOptions struct {
	// Path and TestPath, when set, replace the schema's (a client's own copy: --data).
	Path, TestPath string
	// NoTestSplit keeps every row of Path for training when there is no test file.
	NoTestSplit bool
	// SkipBadRows drops records that do not fit the schema, counting them in
	// Loaded.Skipped, instead of failing on the first few.
	SkipBadRows bool
	// Seed draws the held-out test rows (TestFraction) when there is no test file.
	Seed uint64
	// Federated refuses to fit anything on the data (classes, categories, vocabulary,
	// statistics must be in the schema): a client's private data never decides them.
	Federated bool
}

// Loaded is a dataset read by a Schema.
type Loaded struct {
	Train, Test *Dataset
	// Schema is the schema as applied: every class, category, vocabulary entry and
	// statistic that the data decided (central training only) filled in, so the same
	// encoding can be shipped to a federation or applied to new data.
	Schema *Schema
	// Fitted lists what was computed from the training data, in words ("columns[0]
	// (rooms): mean, std"); empty for a federation's schema.
	Fitted []string
	// Skipped counts the bad rows dropped (SkipBadRows); Bad holds the first of them.
	Skipped int
	Bad     []*BadRowError
}

// maxBadShown is the number of bad rows an error (or Loaded.Bad) lists.
const maxBadShown = 5

// LoadSchema reads the dataset a schema describes. Classification labels, categories and
// the vocabulary missing from the schema are taken from the training file, normalisation
// statistics from the training rows alone (after the test rows are held out); with
// o.Federated nothing may be missing. Every record that does not fit is a bad row: the
// error names the file, the line and the column (the first few of them), unless
// o.SkipBadRows, which drops them and counts them.
func LoadSchema(ctx context.Context, s *Schema, o LoadOptions) (*Loaded, error) {
	if o.Federated {
		if err := s.ValidateFederated(); err != nil {
			return nil, err
		}
		if est := s.Estimates(); len(est) > 0 {
			return nil, fmt.Errorf("data: dataset spec: the mean and std of %s are still to be estimated by the federation (its statistics round has not filled them in); a client never fits them on its own data: %w", est[0].Name, ErrStatisticsPending)
		}
	} else if err := s.Validate(); err != nil {
		return nil, err
	}
	path, testPath := o.Path, o.TestPath
	if path == "" {
		path = s.Resolve(s.Path)
	}
	if testPath == "" && o.Path == "" {
		testPath = s.Resolve(s.TestPath)
	}
	if path == "" {
		return nil, fmt.Errorf("data: dataset %s has no data path: set path in the spec, or pass the file (--data-path, or a client's --data)", s.Name)
	}
	ld := &Loaded{Schema: s.clone()}
	ld.Schema.Path, ld.Schema.TestPath = "", ""
	var err error
	switch s.Format {
	case FormatCSV, FormatTSV:
		err = loadTable(ctx, ld, path, testPath, o)
	case FormatJSONL:
		err = loadJSONL(ctx, ld, path, testPath, o)
	case FormatImages:
		err = loadImageFolders(ctx, ld, path, testPath, o)
	case FormatIDX:
		err = loadIDXDir(ld, path, o)
	}
	if err != nil {
		return nil, err
	}
	name := s.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	ld.Train.Name = name + "-train"
	if ld.Test != nil {
		ld.Test.Name = name + "-test"
	}
	for _, d := range []*Dataset{ld.Train, ld.Test} {
		if d == nil {
			continue
		}
		if err := d.Validate(); err != nil {
			return nil, err
		}
	}
	return ld, nil
}

// badRows collects the bad rows of a load: the first few are kept to show, all counted.
type badRows struct {
	skip  bool
	shown []*BadRowError
	n     int
}

func (b *badRows) add(e *BadRowError) {
	b.n++
	if len(b.shown) < maxBadShown {
		b.shown = append(b.shown, e)
	}
}

// err returns the error of a load with bad rows when they are not skipped.
func (b *badRows) err() error {
	if b.n == 0 || b.skip {
		return nil
	}
	return errBadRows(b.shown, b.n)
}

// record copies the counts into ld.
func (b *badRows) record(ld *Loaded) {
	ld.Skipped, ld.Bad = b.n, slices.Clone(b.shown)
}

// splitRows returns the training and test row indices of n rows: all of them for training
// when a test file exists or o.NoTestSplit, else TestFraction (0.2 by default) held out,
// stratified by strata when not nil.
func splitRows(s *Schema, n int, strata []int32, hasTestFile bool, o LoadOptions) (train, test []int, err error) {
	all := func() []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	if hasTestFile || o.NoTestSplit {
		return all(), nil, nil
	}
	f := s.TestFraction
	if f == 0 {
		f = 0.2
	}
	if strata == nil {
		strata = make([]int32, n)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x73706c6974))
	return StratifiedSplit(strata, f, rng)
}

// openMaybeGzip opens path, decompressing it when it starts with gzip's magic bytes.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("data: %s: gzip header: %v: %w", path, err, ErrFormat)
		}
		return zr, func() error { zr.Close(); return f.Close() }, nil
	}
	return br, f.Close, nil
}

// expandPaths returns the files a data path names: itself, or the files matching it
// when it is a glob pattern (data/train-*.csv: the union of a federation's files), sorted.
func expandPaths(path string) ([]string, error) {
	if !strings.ContainsAny(path, "*?[") {
		return []string{path}, nil
	}
	m, err := filepath.Glob(path)
	if err != nil {
		return nil, fmt.Errorf("data: path pattern %q: %w", path, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("data: no file matches %s", path)
	}
	return m, nil
}

// sortedLabels returns the distinct labels in order: numerically when every label is an
// integer, else as strings.
func sortedLabels(labels []string) []string {
	out := slices.Clone(labels)
	slices.Sort(out)
	out = slices.Compact(out)
	ints := make([]int, len(out))
	for i, l := range out {
		v, err := strconv.Atoi(l)
		if err != nil {
			return out
		}
		ints[i] = v
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	return out
}

func indexOf(xs []string) map[string]int32 {
	m := make(map[string]int32, len(xs))
	for i, x := range xs {
		m[x] = int32(i)
	}
	return m
}
