package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/data"
)

func init() { registerCommand(newDataCmd) }

func newDataCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Prepare datasets: draft a dataset spec, generate example data, fetch public datasets",
		Long: `Prepare datasets for confide train, sim, server and client.

A dataset spec (YAML) says how files become examples: csv/tsv tables (feature columns,
numeric or categorical, missing values), jsonl text, image folders or idx directories,
the label or regression target, and the normalisation statistics. Pass it wherever a
dataset is named (--dataset FILE.yaml; a server's federation.dataset), and a federation
ships it to its clients, so that every client encodes its own files the same way.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDataSchemaCmd(g), newDataGenerateCmd(g), newDataFetchCmd(g))
	return cmd
}

func newDataSchemaCmd(g *globalOptions) *cobra.Command {
	var (
		label, target, group, format string
		categorical, embed, ignore   []string
		maxCategories                int
	)
	cmd := &cobra.Command{
		Use:   "schema FILE",
		Short: "Draft a dataset spec (YAML) for a csv/tsv file, with its statistics",
		Long: `Print a dataset spec for a csv or tsv file: every column other than the label and the
target becomes a feature (the group column too), numeric when all its values are numbers (standardised, with the
file's mean and standard deviation) and categorical otherwise (one-hot, with the file's
categories), and missing values are filled with the mean (numeric) or left as no category.
--embed drafts the columns it names as embedded categorical columns (encoding: embedding,
dim: fastai's min(600, round(1.6·k^0.56)) for k categories): an mlp looks each category up
in a learned vector instead of reading k one-hot features, for columns of many categories.

The statistics are the file's: draft the spec from data you may look at, such as a public
sample or the federation's public evaluation set, never from one client's private data. A
federation's clients encode their data with exactly these statistics; edit the spec to
taste (encoding: ordinal, missing: error, normalize: minmax or none, test_path, …).`,
		Example: `  confide data schema examples/tabular/data/eval.csv --target price_k --group region --ignore price_band > price.yaml
  confide data schema eval.csv --label price_band --group region --ignore price_k
  confide data schema eval.csv --label price_band --group region --ignore price_k --embed region,energy`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (label == "") == (target == "") {
				return &exitError{code: 2, err: fmt.Errorf("give --label COLUMN (classification) or --target COLUMN (regression)")}
			}
			s, err := draftSchema(args[0], format, label, target, group, categorical, embed, ignore, maxCategories)
			if err != nil {
				return err
			}
			b, err := yaml.Marshal(s)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# confide data schema %s: statistics from this file\n", filepath.Base(args[0]))
			_, err = w.Write(b)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&label, "label", "", "the class column (classification)")
	f.StringVar(&target, "target", "", "the real-valued target column (regression)")
	f.StringVar(&group, "group", "", "the column of each row's natural group (e.g. region)")
	f.StringVar(&format, "format", "", "csv or tsv (default: by the file's extension)")
	f.StringSliceVar(&categorical, "categorical", nil, "columns to treat as categorical even if numeric")
	f.StringSliceVar(&embed, "embed", nil, "categorical columns to embed (encoding: embedding; not bound by --max-categories)")
	f.StringSliceVar(&ignore, "ignore", nil, "columns to leave out")
	f.IntVar(&maxCategories, "max-categories", 100, "a non-numeric column with more distinct values is refused (name it in --ignore or --embed)")
	return cmd
}

// draftSchema reads a table and drafts its spec (see newDataSchemaCmd).
func draftSchema(path, format, label, target, group string, categorical, embed, ignore []string, maxCategories int) (*data.Schema, error) {
	if format == "" {
		format = data.FormatCSV
		if strings.EqualFold(filepath.Ext(strings.TrimSuffix(path, ".gz")), ".tsv") {
			format = data.FormatTSV
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	if format == data.FormatTSV {
		cr.Comma, cr.LazyQuotes = '\t', true
	}
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("%s: want a header and data rows", path)
	}
	header := rows[0]
	for _, name := range slices.Concat([]string{label, target, group}, categorical, embed, ignore) {
		if name != "" && !slices.Contains(header, name) {
			return nil, &exitError{code: 2, err: fmt.Errorf("%s has no column %q (columns: %s)", path, name, strings.Join(header, ", "))}
		}
	}
	missing := map[string]bool{"": true, "NA": true, "N/A": true, "NaN": true, "nan": true, "null": true, "?": true}
	s := &data.Schema{Name: strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), Format: format, Group: group}
	for j, name := range header {
		var vals []string
		for _, r := range rows[1:] {
			if j < len(r) {
				vals = append(vals, strings.TrimSpace(r[j]))
			}
		}
		switch {
		case name == label:
			s.Label = &data.Label{Column: name, Classes: distinct(vals, missing)}
			continue
		case name == target:
			m, sd, ok := numericStats(vals, missing)
			if !ok {
				return nil, fmt.Errorf("%s: target column %q holds values that are not numbers", path, name)
			}
			s.Target = &data.Target{Column: name, Mean: &m, Std: &sd}
			continue
		case slices.Contains(ignore, name):
			continue
		}
		c := data.Column{Name: name}
		m, sd, ok := numericStats(vals, missing)
		switch {
		case slices.Contains(embed, name):
			c.Type, c.Encoding, c.Categories = data.ColumnCategorical, data.EncodeEmbedding, distinct(vals, missing)
			c.Dim = data.DefaultEmbeddingDim(len(c.Categories))
		case ok && !slices.Contains(categorical, name):
			c.Mean, c.Std = &m, &sd
		default:
			c.Type, c.Categories = data.ColumnCategorical, distinct(vals, missing)
			if len(c.Categories) > maxCategories {
				return nil, fmt.Errorf("%s: column %q has %d distinct values, more than --max-categories %d: --ignore it or raise the limit", path, name, len(c.Categories), maxCategories)
			}
		}
		for _, v := range vals {
			if missing[v] {
				c.Missing = data.MissingMean
				if c.Type == data.ColumnCategorical {
					c.Missing = data.MissingZero
				}
				break
			}
		}
		s.Columns = append(s.Columns, c)
	}
	if err := s.ValidateFederated(); err != nil {
		return nil, err
	}
	return s, nil
}

// numericStats returns the mean and the population standard deviation (1 for a constant
// column) of the non-missing values, and whether they are all numbers.
func numericStats(vals []string, missing map[string]bool) (mean, std float64, ok bool) {
	var xs []float64
	for _, v := range vals {
		if missing[v] {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, 0, false
		}
		xs = append(xs, x)
	}
	if len(xs) == 0 {
		return 0, 0, false
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	std = math.Sqrt(std / float64(len(xs)))
	if std == 0 {
		std = 1
	}
	// Six significant digits keep the spec readable; every client uses the same values.
	round := func(v float64) float64 { r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64); return r }
	return round(mean), round(std), true
}

func distinct(vals []string, missing map[string]bool) []string {
	var out []string
	for _, v := range vals {
		if !missing[v] {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func newDataGenerateCmd(g *globalOptions) *cobra.Command {
	var (
		out       string
		rows      int
		evalRows  int
		seed      uint64
		overwrite bool
	)
	cmd := &cobra.Command{
		Use:   "generate housing",
		Short: "Write the synthetic house-price tables of the examples (one CSV per region)",
		Long: `Write data.SyntheticHousing's tables into --out: train-REGION.csv for each region
(north, east, south, west; --rows rows each, one client's private data in the examples) and
eval.csv (--eval-rows rows of every region: a public evaluation set). The same --seed gives
the same files on every machine: examples/tabular/data was made with the defaults.`,
		Example: `  confide data generate housing --out examples/tabular/data`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "housing" {
				return &exitError{code: 2, err: fmt.Errorf("unknown generator %q (use housing)", args[0])}
			}
			if rows < 1 || evalRows < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--rows %d, --eval-rows %d: must be ≥ 1", rows, evalRows)}
			}
			files, err := generateHousing(cmd.Context(), out, rows, evalRows, seed, overwrite)
			if err != nil {
				return err
			}
			return g.emit(cmd.OutOrStdout(), map[string]any{"files": files}, func(w io.Writer) {
				for _, f := range files {
					fmt.Fprintln(w, f)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", ".", "directory to write the CSV files into")
	f.IntVar(&rows, "rows", 1000, "rows of each region's training file")
	f.IntVar(&evalRows, "eval-rows", 250, "rows of each region in eval.csv")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.BoolVar(&overwrite, "overwrite", false, "replace existing files")
	return cmd
}

func generateHousing(ctx context.Context, dir string, rows, evalRows int, seed uint64, overwrite bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	create := func(name string) (*os.File, error) {
		flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if !overwrite {
			flag |= os.O_EXCL
		}
		f, err := os.OpenFile(filepath.Join(dir, name), flag, 0o644)
		if os.IsExist(err) {
			return nil, &exitError{code: 2, err: fmt.Errorf("%s exists: pass --overwrite to replace it", filepath.Join(dir, name))}
		}
		return f, err
	}
	var files []string
	var eval strings.Builder
	for k, region := range data.HousingRegions {
		if err := ctx.Err(); err != nil {
			return files, err
		}
		f, err := create("train-" + region + ".csv")
		if err != nil {
			return files, err
		}
		err = data.SyntheticHousing(f, region, rows, rand.New(rand.NewPCG(seed, uint64(k))))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return files, err
		}
		files = append(files, f.Name())
		var part strings.Builder
		if err := data.SyntheticHousing(&part, region, evalRows, rand.New(rand.NewPCG(seed, 100+uint64(k)))); err != nil {
			return files, err
		}
		body := part.String()
		if k > 0 {
			body = body[strings.IndexByte(body, '\n')+1:] // one header
		}
		eval.WriteString(body)
	}
	f, err := create("eval.csv")
	if err != nil {
		return files, err
	}
	_, err = io.WriteString(f, eval.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return append(files, f.Name()), err
}

func newDataFetchCmd(g *globalOptions) *cobra.Command {
	var mirror string
	cmd := &cobra.Command{
		Use:   "fetch NAME...",
		Short: "Download public datasets into the cache directory (shakespeare, spam, fashion-mnist)",
		Long: `Download public datasets from their canonical locations into the user's cache directory
(on Linux ~/.cache/confide/NAME), verify them by SHA-256, and print where they are. The
commands that read a dataset (--dataset NAME) do the same on first use; --data-path or
--data-dir still point them at a copy of your own.

  shakespeare    tiny Shakespeare (Karpathy's char-rnn input.txt)
  spam           the SpamAssassin public corpus: the five original archives, converted by
                 Confide into spamassassin.jsonl.gz (one e-mail a line, a mailbox each);
                 no checksums of the archives are published, so the converted e-mails are
                 verified against the corpus Confide's results were measured on
  fashion-mnist  Fashion-MNIST's four IDX files

Without network access it says which files to download where; --mirror URL fetches
NAME/FILE from a mirror of your own instead.`,
		Example: `  confide data fetch shakespeare spam fashion-mnist
  confide data fetch spam --mirror http://files.example.org/datasets`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := fetchOptions()
			o.Mirror = mirror
			paths := map[string]string{}
			for _, name := range args {
				p, err := data.Fetch(cmd.Context(), name, o)
				if err != nil {
					return err
				}
				paths[name] = p
			}
			return g.emit(cmd.OutOrStdout(), paths, func(w io.Writer) {
				for _, name := range args {
					fmt.Fprintf(w, "%s: %s\n", name, paths[name])
				}
			})
		},
	}
	cmd.Flags().StringVar(&mirror, "mirror", "", "base URL of a mirror holding NAME/FILE, instead of the canonical locations")
	return cmd
}
