package data

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// CSVOptions says how to read a CSV file into a classification dataset. The zero value
// reads a comma-separated file with a header row and the label in the first column.
type CSVOptions struct {
	// Name of the dataset; LoadCSVFile defaults it to the file's base name.
	Name string
	// Comma is the field separator; 0 means ','.
	Comma rune
	// NoHeader says the first row is data rather than column names.
	NoHeader bool
	// Label names the label column (needs a header). When empty, LabelIndex is used:
	// 0 is the first column, -1 the last, -2 the one before it, and so on.
	Label      string
	LabelIndex int
	// ClassNames, when set, fixes the classes: a label must equal one of them, and its
	// class id is its position. Set it when train and test come from separate files, so
	// both map labels to the same ids. When empty the classes come from the file: if
	// every label is a non-negative integer, the label is the class id and there are
	// max+1 classes; otherwise the distinct labels, sorted, are the classes.
	ClassNames []string
}

// LoadCSVFile reads a CSV file into a classification dataset; see LoadCSV.
func LoadCSVFile(path string, opts CSVOptions) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	if opts.Name == "" {
		opts.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	d, err := LoadCSV(f, opts)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return d, nil
}

// LoadCSV reads CSV from r into a classification dataset: one example per row, the label
// column as Y (see CSVOptions.ClassNames for how labels become class ids) and every other
// column as a numeric feature, in file order. Errors name the line and column.
func LoadCSV(r io.Reader, opts CSVOptions) (*Dataset, error) {
	cr := csv.NewReader(r)
	if opts.Comma != 0 {
		cr.Comma = opts.Comma
	}
	cr.ReuseRecord = true
	var header []string
	ncol := 0
	labelCol := -1
	resolveLabel := func() error {
		if opts.Label != "" {
			if header == nil {
				return fmt.Errorf("csv: label column %q given by name, but NoHeader is set; give LabelIndex instead", opts.Label)
			}
			labelCol = slices.Index(header, opts.Label)
			if labelCol < 0 {
				return fmt.Errorf("csv: no column named %q in the header (columns: %s): %w", opts.Label, strings.Join(header, ", "), ErrFormat)
			}
			return nil
		}
		labelCol = opts.LabelIndex
		if labelCol < 0 {
			labelCol += ncol
		}
		if labelCol < 0 || labelCol >= ncol {
			return fmt.Errorf("csv: label column index %d out of range for %d columns", opts.LabelIndex, ncol)
		}
		return nil
	}

	var feats []float64
	var labels []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("csv: line %d: %v: %w", pe.Line, pe.Err, ErrFormat)
			}
			return nil, fmt.Errorf("csv: %w", err)
		}
		if ncol == 0 {
			ncol = len(rec)
			if ncol < 2 {
				return nil, fmt.Errorf("csv: line 1 has %d column, want a label and at least one feature: %w", ncol, ErrFormat)
			}
			if !opts.NoHeader {
				header = slices.Clone(rec)
			}
			if err := resolveLabel(); err != nil {
				return nil, err
			}
			if header != nil {
				continue
			}
		}
		line, _ := cr.FieldPos(0)
		for j, field := range rec {
			if j == labelCol {
				labels = append(labels, strings.TrimSpace(field))
				continue
			}
			s := strings.TrimSpace(field)
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				what := "is not a number"
				if s == "" {
					what = "is empty (missing value)"
				} else if err == nil {
					what = "is not finite"
				}
				return nil, fmt.Errorf("csv: line %d, column %s: %q %s; features must be finite numbers (fill or drop the row): %w",
					line, columnName(header, j), s, what, ErrFormat)
			}
			feats = append(feats, v)
		}
	}
	if ncol == 0 || len(labels) == 0 {
		return nil, fmt.Errorf("csv: no data rows: %w", ErrFormat)
	}
	y, classes, err := classIDs(labels, opts.ClassNames)
	if err != nil {
		return nil, fmt.Errorf("csv: label column %s: %w", columnName(header, labelCol), err)
	}
	dim := ncol - 1
	return &Dataset{
		Name: opts.Name, N: len(labels), X: feats, Dim: dim,
		Y: y, NumClasses: len(classes), ClassNames: classes, Task: TaskClassify,
	}, nil
}

func columnName(header []string, j int) string {
	if header != nil {
		return fmt.Sprintf("%d (%q)", j+1, header[j])
	}
	return strconv.Itoa(j + 1)
}

// classIDs maps label strings to class ids, as documented on CSVOptions.ClassNames.
// Row numbers in errors count data rows from 1.
func classIDs(labels, fixed []string) ([]int32, []string, error) {
	y := make([]int32, len(labels))
	if len(fixed) > 0 {
		ids := make(map[string]int32, len(fixed))
		for i, c := range fixed {
			ids[c] = int32(i)
		}
		for i, l := range labels {
			id, ok := ids[l]
			if !ok {
				return nil, nil, fmt.Errorf("data row %d: label %q is not one of the classes %q: %w", i+1, l, fixed, ErrFormat)
			}
			y[i] = id
		}
		return y, slices.Clone(fixed), nil
	}
	numeric := true
	maxID := -1
	for i, l := range labels {
		v, err := strconv.Atoi(l)
		if err != nil || v < 0 || v >= 1<<20 {
			numeric = false
			break
		}
		y[i] = int32(v)
		maxID = max(maxID, v)
	}
	if numeric {
		classes := make([]string, maxID+1)
		for i := range classes {
			classes[i] = strconv.Itoa(i)
		}
		return y, classes, nil
	}
	classes := slices.Clone(labels)
	slices.Sort(classes)
	classes = slices.Compact(classes)
	for i, l := range labels {
		id, _ := slices.BinarySearch(classes, l)
		y[i] = int32(id)
	}
	return y, classes, nil
}
