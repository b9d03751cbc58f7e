package data

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Rows are the rows of a table read for inference (EncodeRows): their encoded features,
// and the value of each row's id column when the table has one.
type Rows struct {
	// Features holds the rows encoded as the schema encodes them, without labels or
	// targets (Features.Task is the schema's task).
	Features *Dataset
	// IDs[i] is row i's id column value; nil when the table has no id column.
	IDs []string
}

// EncodeRows reads the rows of a table (path; gzipped or not) for inference with a model
// trained on the schema: format csv or tsv (a header row naming the columns), or jsonl
// (one JSON object a line, keyed by column name; a missing key or null is a missing
// value). The feature columns are found by name and encoded exactly as in training: the
// same categories, missing-value rules and normalisation statistics. The label, target and
// group columns may be there or not: they are ignored. idColumn, when the table has a
// column of that name, gives each row's id (Rows.IDs). Every row must fit: the error names
// the file, the line and the column of the first bad rows.
//
// The schema must be complete (a model file's recorded schema is): its categories and
// statistics listed, none left to estimate.
func (s *Schema) EncodeRows(ctx context.Context, path, format, idColumn string) (*Rows, error) {
	if s.Format != FormatCSV && s.Format != FormatTSV {
		return nil, fmt.Errorf("data: rows of a table are read with a csv or tsv dataset's schema, not %s", s.Format)
	}
	if err := s.ValidateFederated(); err != nil {
		return nil, err
	}
	if est := s.Estimates(); len(est) > 0 {
		return nil, fmt.Errorf("data: dataset spec: the mean and std of %s are not known: %w", est[0].Name, ErrStatisticsPending)
	}
	c := s.clone()
	c.Label, c.Target, c.Group = nil, nil, ""
	bad := &badRows{}
	t := newRawTable(c)
	switch format {
	case FormatCSV, FormatTSV:
		c.Format = format
		if idColumn != "" {
			header, err := tableHeader(path, format)
			if err != nil {
				return nil, err
			}
			if slices.Contains(header, idColumn) {
				c.Group = idColumn
			}
		}
		if err := readTable(ctx, c, path, bad, t); err != nil {
			return nil, err
		}
	case FormatJSONL:
		jr, err := readJSONRecords(path, c, idColumn)
		if err != nil {
			return nil, err
		}
		if slices.Contains(jr.header, idColumn) {
			c.Group = idColumn
		}
		if err := readRecords(ctx, c, jr, path, bad, t); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("data: rows of format %q: use csv, tsv or jsonl", format)
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	idx := make([]int, t.n)
	for i := range idx {
		idx[i] = i
	}
	c.Group = ""
	d := encodeTable(c, t, idx, nil)
	d.Name = filepath.Base(path)
	return &Rows{Features: d, IDs: t.group}, nil
}

// tableHeader returns the header row of a csv or tsv file.
func tableHeader(path, format string) ([]string, error) {
	r, closeFile, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	cr := csv.NewReader(r)
	if format == FormatTSV {
		cr.Comma = '\t'
		cr.LazyQuotes = true
	}
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("data: %s: header: %v: %w", path, err, ErrFormat)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	return header, nil
}

// jsonRecords are the JSON lines of a file as the records of a table (see records): the
// header lists the schema's feature columns and the id column, and each object gives a
// record of their values as a csv file would hold them.
type jsonRecords struct {
	header []string
	rows   [][]string
	lines  []int
	errs   []*BadRowError // by row: a line that is not a JSON object
	next   int            // the next record; 0 is the header
}

// readJSONRecords reads the objects of a JSON-lines file. A number keeps its text; true
// and false are the words; a missing key and null become a missing value of s.
func readJSONRecords(path string, s *Schema, idColumn string) (*jsonRecords, error) {
	r, closeFile, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFile()
	file := filepath.Base(path)
	jr := &jsonRecords{}
	var objs []map[string]any
	hasID := false
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		b, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("data: %s: line %d: %w", path, line, rerr)
		}
		if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 {
			dec := json.NewDecoder(bytes.NewReader(trimmed))
			dec.UseNumber()
			var obj map[string]any
			var bad *BadRowError
			if err := dec.Decode(&obj); err != nil || dec.More() || obj == nil {
				reason := "not a JSON object"
				if err != nil {
					reason += ": " + err.Error()
				}
				bad, obj = &BadRowError{File: file, Line: line, Reason: reason}, nil
			} else if _, ok := obj[idColumn]; ok && idColumn != "" {
				hasID = true
			}
			objs, jr.lines, jr.errs = append(objs, obj), append(jr.lines, line), append(jr.errs, bad)
		}
		if rerr == io.EOF {
			break
		}
	}
	for _, c := range s.Columns {
		if c.Type != ColumnIgnore && !slices.Contains(jr.header, c.Name) {
			jr.header = append(jr.header, c.Name)
		}
	}
	if hasID && !slices.Contains(jr.header, idColumn) {
		jr.header = append(jr.header, idColumn)
	}
	// null must read as one of the schema's missing-value markers.
	missing := ""
	if !s.missingSet()[""] {
		missing = "null" // no marker at all: a null is a bad value
		if len(s.MissingValues) > 0 {
			missing = s.MissingValues[0]
		}
	}
	jr.rows = make([][]string, len(objs))
	for k, obj := range objs {
		if obj == nil {
			continue
		}
		rec := make([]string, len(jr.header))
		for i, name := range jr.header {
			rec[i] = jsonCell(obj[name], missing)
		}
		jr.rows[k] = rec
	}
	return jr, nil
}

// jsonCell is a JSON value as a table's cell (nil: a missing key or null).
func jsonCell(v any, missing string) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return missing
	}
	b, _ := json.Marshal(v) // an array or an object: no value a column takes
	return string(b)
}

func (j *jsonRecords) Read() ([]string, error) {
	if j.next == 0 {
		j.next++
		return slices.Clone(j.header), nil
	}
	i := j.next - 1
	if i >= len(j.rows) {
		return nil, io.EOF
	}
	j.next++
	if e := j.errs[i]; e != nil {
		return nil, e
	}
	return j.rows[i], nil
}

func (j *jsonRecords) FieldPos(int) (line, column int) {
	if i := j.next - 2; i >= 0 && i < len(j.lines) {
		return j.lines[i], 1
	}
	return 1, 1
}
