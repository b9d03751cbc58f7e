package data

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// missingCell marks a missing categorical value (allowed by missing: zero) in a rawTable.
const missingCell = "\x00missing"

// rawTable holds the rows of a csv/tsv file that fit the schema, column by column, before
// encoding: numeric features as numbers (NaN: missing, to be filled with the mean),
// categorical features, labels and groups as strings.
type rawTable struct {
	n      int
	num    [][]float64 // by feature column; nil for categorical ones
	cat    [][]string  // by feature column; nil for numeric ones
	label  []string
	target []float64
	group  []string
}

// loadTable reads a csv/tsv dataset (see LoadSchema).
func loadTable(ctx context.Context, ld *Loaded, path, testPath string, o LoadOptions) error {
	s := ld.Schema
	bad := &badRows{skip: o.SkipBadRows}
	paths, err := expandPaths(path)
	if err != nil {
		return err
	}
	train := newRawTable(s)
	for _, p := range paths {
		if err := readTable(ctx, s, p, bad, train); err != nil {
			return err
		}
	}
	if err := bad.err(); err != nil {
		return err
	}
	if train.n == 0 {
		return fmt.Errorf("data: %s: no data rows: %w", path, ErrFormat)
	}
	// What the file decides: classes, categories (central training only; a federation's
	// schema lists them, and readTable has checked every value against them).
	if l := s.Label; l != nil && len(l.Classes) == 0 {
		l.Classes = sortedLabels(train.label)
		ld.Fitted = append(ld.Fitted, fmt.Sprintf("label.classes (%d, from the training file)", len(l.Classes)))
	}
	for j := range s.Columns {
		c := &s.Columns[j]
		if c.Type == ColumnCategorical && len(c.Categories) == 0 {
			var vals []string
			for _, v := range train.cat[j] {
				if v != missingCell {
					vals = append(vals, v)
				}
			}
			c.Categories = sortedLabels(vals)
			ld.Fitted = append(ld.Fitted, fmt.Sprintf("columns[%d] (%s): categories (%d, from the training file)", j, c.Name, len(c.Categories)))
		}
	}
	var strata []int32
	if s.Label != nil {
		ids := indexOf(s.Label.Classes)
		strata = make([]int32, train.n)
		for i, l := range train.label {
			strata[i] = ids[l]
		}
	}
	trIdx, teIdx, err := splitRows(s, train.n, strata, testPath != "", o)
	if err != nil {
		return err
	}
	ld.Fitted = append(ld.Fitted, fitTableStatistics(s, train, trIdx)...)
	groups := sortedLabels(train.group)
	ld.Train = encodeTable(s, train, trIdx, groups)
	if testPath != "" {
		test := newRawTable(s)
		if err := readTable(ctx, s, testPath, bad, test); err != nil {
			return err
		}
		if err := bad.err(); err != nil {
			return err
		}
		teIdx = make([]int, test.n)
		for i := range teIdx {
			teIdx[i] = i
		}
		ld.Test = encodeTable(s, test, teIdx, groups)
	} else if teIdx != nil {
		ld.Test = encodeTable(s, train, teIdx, groups)
	}
	bad.record(ld)
	return nil
}

func newRawTable(s *Schema) *rawTable {
	return &rawTable{num: make([][]float64, len(s.Columns)), cat: make([][]string, len(s.Columns))}
}

// readTable appends the rows of path that fit s to t; the others go to bad. Values of
// categorical columns and labels are checked against the lists s gives (a list not given
// accepts any).
func readTable(ctx context.Context, s *Schema, path string, bad *badRows, t *rawTable) error {
	r, closeFile, err := openMaybeGzip(path)
	if err != nil {
		return err
	}
	defer closeFile()
	cr := csv.NewReader(r)
	if s.Format == FormatTSV {
		cr.Comma = '\t'
		cr.LazyQuotes = true
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return readRecords(ctx, s, cr, path, bad, t)
}

// records are the records of a table, the first its header: a csv.Reader, or the JSON
// lines of inference rows (jsonRecords). A record that cannot be read at all is a
// *csv.ParseError or a *BadRowError.
type records interface {
	Read() ([]string, error)
	// FieldPos returns the line (and column) where field of the last record read starts.
	FieldPos(field int) (line, column int)
}

// readRecords is readTable for records of path already opened.
func readRecords(ctx context.Context, s *Schema, cr records, path string, bad *badRows, t *rawTable) error {
	file := filepath.Base(path)
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("data: %s: empty file, want a header row naming the columns: %w", path, ErrFormat)
	}
	if err != nil {
		return fmt.Errorf("data: %s: header: %v: %w", path, err, ErrFormat)
	}
	header = slices.Clone(header)
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	col := func(name, key string) (int, error) {
		i := slices.Index(header, name)
		if i < 0 {
			return 0, fmt.Errorf("data: %s: no column %q (%s) in the header; it has %s: %w", path, name, key, strings.Join(header, ", "), ErrFormat)
		}
		return i, nil
	}
	featCol := make([]int, len(s.Columns))
	cats := make([]map[string]int32, len(s.Columns))
	for j, c := range s.Columns {
		featCol[j] = -1
		if c.Type == ColumnIgnore {
			continue
		}
		if featCol[j], err = col(c.Name, fmt.Sprintf("columns[%d]", j)); err != nil {
			return err
		}
		if c.Type == ColumnCategorical && len(c.Categories) > 0 {
			cats[j] = indexOf(c.Categories)
		}
	}
	labelCol, targetCol, groupCol := -1, -1, -1
	var classes map[string]int32
	if l := s.Label; l != nil {
		if labelCol, err = col(l.Column, "label.column"); err != nil {
			return err
		}
		if len(l.Classes) > 0 {
			classes = indexOf(l.Classes)
		}
	}
	if s.Target != nil {
		if targetCol, err = col(s.Target.Column, "target.column"); err != nil {
			return err
		}
	}
	if s.Group != "" {
		if groupCol, err = col(s.Group, "group"); err != nil {
			return err
		}
	}
	missing := s.missingSet()
	num := make([]float64, len(s.Columns))
	catv := make([]string, len(s.Columns))
	for {
		if t.n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrFieldCount) {
				bad.add(&BadRowError{File: file, Line: pe.Line, Column: strconv.Itoa(pe.Column), Reason: pe.Err.Error()})
				continue
			}
			var be *BadRowError
			if errors.As(err, &be) {
				bad.add(be)
				continue
			}
			return fmt.Errorf("data: %s: %w", path, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue // a blank line
			}
			bad.add(&BadRowError{File: file, Line: line, Reason: fmt.Sprintf("%d columns, the header has %d", len(rec), len(header))})
			continue
		}
		colName := func(i int) string { return fmt.Sprintf("%d (%q)", i+1, header[i]) }
		var rowErr *BadRowError
		fail := func(i int, format string, args ...any) {
			if rowErr == nil {
				rowErr = &BadRowError{File: file, Line: line, Column: colName(i), Reason: fmt.Sprintf(format, args...)}
			}
		}
		for j, c := range s.Columns {
			i := featCol[j]
			if i < 0 {
				continue
			}
			v := strings.TrimSpace(rec[i])
			isMissing := missing[v]
			if isMissing && (c.Missing == "" || c.Missing == MissingError) {
				fail(i, "missing value %q (set missing: mean or zero on the column to fill it, or fix the row)", v)
				break
			}
			if c.Type == ColumnCategorical {
				switch {
				case isMissing:
					catv[j] = missingCell
				case cats[j] != nil:
					if _, ok := cats[j][v]; !ok {
						if c.Unknown != MissingZero {
							fail(i, "category %q is not one of the column's categories %q (add it, or set unknown: zero)", v, c.Categories)
						}
						catv[j] = missingCell
						continue
					}
					catv[j] = v
				default:
					catv[j] = v
				}
				continue
			}
			switch {
			case isMissing && c.Missing == MissingZero:
				num[j] = 0
			case isMissing:
				num[j] = math.NaN() // filled with the mean when encoded
			default:
				x, err := strconv.ParseFloat(v, 64)
				if err != nil || math.IsInf(x, 0) {
					fail(i, "%q is not a finite number", v)
				}
				num[j] = x
			}
		}
		var label string
		var target float64
		if labelCol >= 0 && rowErr == nil {
			label = strings.TrimSpace(rec[labelCol])
			if classes != nil {
				if _, ok := classes[label]; !ok {
					fail(labelCol, "label %q is not one of the classes %q", label, s.Label.Classes)
				}
			} else if missing[label] {
				fail(labelCol, "missing label %q", label)
			}
		}
		if targetCol >= 0 && rowErr == nil {
			v := strings.TrimSpace(rec[targetCol])
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
				fail(targetCol, "target %q is not a finite number", v)
			}
			target = x
		}
		if rowErr != nil {
			bad.add(rowErr)
			continue
		}
		for j, c := range s.Columns {
			switch {
			case featCol[j] < 0:
			case c.Type == ColumnCategorical:
				t.cat[j] = append(t.cat[j], catv[j])
			default:
				t.num[j] = append(t.num[j], num[j])
			}
		}
		if labelCol >= 0 {
			t.label = append(t.label, label)
		}
		if targetCol >= 0 {
			t.target = append(t.target, target)
		}
		if groupCol >= 0 {
			t.group = append(t.group, strings.TrimSpace(rec[groupCol]))
		}
		t.n++
	}
	return nil
}

// fitTableStatistics fills the normalisation statistics s lacks from the rows idx of t
// (the training rows), returning what it fitted.
func fitTableStatistics(s *Schema, t *rawTable, idx []int) []string {
	var fitted []string
	for j := range s.Columns {
		c := &s.Columns[j]
		if c.Type != "" && c.Type != ColumnNumeric {
			continue
		}
		vals := t.num[j]
		needMean := (c.Normalize == "" || c.Normalize == NormalizeStandard) && (c.Mean == nil || c.Std == nil)
		needMean = needMean || (c.Missing == MissingMean && c.Mean == nil)
		if needMean {
			m, sd := meanStd(vals, idx)
			var what []string
			if c.Mean == nil {
				c.Mean = &m
				what = append(what, "mean")
			}
			if c.Std == nil && (c.Normalize == "" || c.Normalize == NormalizeStandard) {
				c.Std = &sd
				what = append(what, "std")
			}
			fitted = append(fitted, fmt.Sprintf("columns[%d] (%s): %s", j, c.Name, strings.Join(what, ", ")))
		}
		if c.Normalize == NormalizeMinMax && (c.Min == nil || c.Max == nil) {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, i := range idx {
				if v := vals[i]; !math.IsNaN(v) {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
			if math.IsInf(lo, 0) {
				lo, hi = 0, 1
			}
			if hi <= lo {
				hi = lo + 1
			}
			c.Min, c.Max = &lo, &hi
			fitted = append(fitted, fmt.Sprintf("columns[%d] (%s): min, max", j, c.Name))
		}
	}
	if tg := s.Target; tg != nil && tg.Normalize != NormalizeNone && (tg.Mean == nil || tg.Std == nil) {
		m, sd := meanStd(t.target, idx)
		if tg.Mean == nil {
			tg.Mean = &m
		}
		if tg.Std == nil {
			tg.Std = &sd
		}
		fitted = append(fitted, fmt.Sprintf("target (%s): mean, std", tg.Column))
	}
	return fitted
}

// meanStd returns the mean and the population standard deviation of vals[idx], skipping
// NaNs; a constant (or empty) column gets std 1 so it maps to 0 rather than dividing by 0.
func meanStd(vals []float64, idx []int) (mean, std float64) {
	n := 0
	for _, i := range idx {
		if v := vals[i]; !math.IsNaN(v) {
			mean += v
			n++
		}
	}
	if n == 0 {
		return 0, 1
	}
	mean /= float64(n)
	for _, i := range idx {
		if v := vals[i]; !math.IsNaN(v) {
			std += (v - mean) * (v - mean)
		}
	}
	std = math.Sqrt(std / float64(n))
	if std == 0 {
		std = 1
	}
	return mean, std
}

// encodeTable builds the dataset of rows idx of t under the resolved schema s. An example
// is its columns' features back to back, in column order: a numeric column's normalised
// value; a one-hot column's indicators; an ordinal column's index/(k−1); an embedded
// column's category index, or −1 for a missing or unknown value (Dataset.Embedded lists
// them).
func encodeTable(s *Schema, t *rawTable, idx []int, groups []string) *Dataset {
	dim := s.FeatureDim()
	d := &Dataset{N: len(idx), Dim: dim, X: make([]float64, len(idx)*dim), Task: s.Task(), Embedded: s.Embedded()}
	type colEnc struct {
		scale, shift float64 // numeric: x·scale + shift
		fill         float64 // raw value of a missing numeric cell
		cats         map[string]int32
		k            int
	}
	encs := make([]colEnc, len(s.Columns))
	for j, c := range s.Columns {
		e := &encs[j]
		switch c.Type {
		case ColumnIgnore:
		case ColumnCategorical:
			e.cats, e.k = indexOf(c.Categories), len(c.Categories)
		default:
			e.scale = 1
			switch c.Normalize {
			case "", NormalizeStandard:
				e.scale, e.shift = 1 / *c.Std, -*c.Mean / *c.Std
			case NormalizeMinMax:
				r := *c.Max - *c.Min
				e.scale, e.shift = 1/r, -*c.Min/r
			}
			if c.Mean != nil {
				e.fill = *c.Mean
			}
			if slices.Contains(s.rawEstimated, j) {
				e.fill = rawMissing // raw values: a missing cell stays marked until ApplyEstimates
			}
		}
	}
	for k, i := range idx {
		row := d.X[k*dim : (k+1)*dim]
		at := 0
		for j, c := range s.Columns {
			e := encs[j]
			switch c.Type {
			case ColumnIgnore:
			case ColumnCategorical:
				id, ok := e.cats[t.cat[j][i]]
				if c.Encoding == EncodeEmbedding {
					row[at] = -1 // missing or unknown: the zero vector
					if ok {
						row[at] = float64(id)
					}
					at++
					continue
				}
				if c.Encoding == EncodeOrdinal {
					if ok && e.k > 1 {
						row[at] = float64(id) / float64(e.k-1)
					}
					at++
					continue
				}
				if ok {
					row[at+int(id)] = 1
				}
				at += e.k
			default:
				v := t.num[j][i]
				if math.IsNaN(v) {
					v = e.fill
				}
				row[at] = v*e.scale + e.shift
				at++
			}
		}
	}
	if l := s.Label; l != nil {
		ids := indexOf(l.Classes)
		d.Y = make([]int32, len(idx))
		for k, i := range idx {
			d.Y[k] = ids[t.label[i]]
		}
		d.NumClasses, d.ClassNames = len(l.Classes), slices.Clone(l.Classes)
	}
	if tg := s.Target; tg != nil {
		mean, std := 0.0, 1.0
		if tg.Normalize != NormalizeNone {
			mean, std = *tg.Mean, *tg.Std
			d.ValueNormalization = &Normalization{Mean: []float64{mean}, Std: []float64{std}}
		}
		d.Values = make([]float64, len(idx))
		for k, i := range idx {
			d.Values[k] = (t.target[i] - mean) / std
		}
		d.NumValues, d.ValueNames = 1, []string{tg.Column}
	}
	if t.group != nil {
		d.Group, d.GroupNames = groupIDs(t.group, idx, groups)
	}
	return d
}

// groupIDs numbers the groups of the rows idx by their place in names (the training
// file's groups, sorted); a group names does not hold is appended to it.
func groupIDs(group []string, idx []int, names []string) ([]int32, []string) {
	names = slices.Clone(names)
	ids := indexOf(names)
	out := make([]int32, len(idx))
	for k, i := range idx {
		g, ok := ids[group[i]]
		if !ok {
			g = int32(len(names))
			names = append(names, group[i])
			ids[group[i]] = g
		}
		out[k] = g
	}
	return out, names
}
