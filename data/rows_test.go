package data

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// rowsSchema is a complete schema of houseCSV (as a model file records it).
const rowsSchema = `
format: csv
label: {column: band, classes: [high, low, mid]}
group: region
columns:
  - {name: rooms, mean: 4, std: 2}
  - {name: garden, type: categorical, categories: ["no", "yes"]}
  - {name: energy, type: categorical, encoding: ordinal, categories: [A, B, C], unknown: zero}
  - {name: age, missing: mean, mean: 40, std: 20}
`

// TestEncodeRowsMatchesTraining: rows read for inference — without the label, with the
// columns in another order, as TSV or as JSON lines — encode exactly as LoadSchema encodes
// the same rows for training (the reference).
func TestEncodeRowsMatchesTraining(t *testing.T) {
	dir := t.TempDir()
	s, err := ParseSchema([]byte(rowsSchema), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{Path: writeFile(t, dir, "houses.csv", houseCSV), NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ld.Train.X
	noLabel := `id,age,energy,garden,rooms
a,10,A,yes,3
b,NA,B,no,4
c,30,C,yes,5
d,20,A,no,2
e,40,B,yes,6
f,50,C,no,3
g,60,A,yes,4
h,70,B,no,5
`
	jsonl := `{"id": "a", "rooms": 3, "garden": "yes", "energy": "A", "age": 10, "band": "low"}
{"id": "b", "rooms": 4, "garden": "no", "energy": "B", "age": null}

{"id": "c", "rooms": "5", "garden": "yes", "energy": "C", "age": 30}
{"id": "d", "rooms": 2, "garden": "no", "energy": "A", "age": 20}
{"id": "e", "rooms": 6, "garden": "yes", "energy": "B", "age": 40}
{"id": "f", "rooms": 3, "garden": "no", "energy": "C", "age": 50}
{"id": "g", "rooms": 4, "garden": "yes", "energy": "A", "age": 60}
{"id": "h", "rooms": 5e0, "garden": "no", "energy": "B", "age": 70}
`
	for _, tc := range []struct {
		name, file, format, content string
		ids                         bool
	}{
		{"csv with label", "with-label.csv", FormatCSV, houseCSV, false},
		{"csv without label, reordered, ids", "rows.csv", FormatCSV, noLabel, true},
		{"tsv", "rows.tsv", FormatTSV, strings.ReplaceAll(noLabel, ",", "\t"), true},
		{"jsonl", "rows.jsonl", FormatJSONL, jsonl, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.EncodeRows(context.Background(), writeFile(t, dir, tc.file, tc.content), tc.format, "id")
			if err != nil {
				t.Fatal(err)
			}
			if got := rows.Features; got.N != 8 || got.Dim != ld.Train.Dim || !slices.Equal(got.X, want) {
				t.Fatalf("features %v (N %d, Dim %d), want %v", got.X, got.N, got.Dim, want)
			}
			if tc.ids != (rows.IDs != nil) || (tc.ids && strings.Join(rows.IDs, "") != "abcdefgh") {
				t.Errorf("ids %q, want them %v", rows.IDs, tc.ids)
			}
		})
	}
}

// TestEncodeRowsBadRowsNameLineAndColumn: a row that does not fit names its file, line and
// column, in csv and in JSON lines.
func TestEncodeRowsBadRowsNameLineAndColumn(t *testing.T) {
	dir := t.TempDir()
	s, err := ParseSchema([]byte(rowsSchema), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, format, content string
		want                        []string
	}{
		{"csv not a number", "a.csv", FormatCSV, "rooms,garden,energy,age\n3,yes,A,1\nthree,no,B,2\n",
			[]string{"a.csv:3: column 1 (\"rooms\")", "not a finite number"}},
		{"csv unknown category", "b.csv", FormatCSV, "rooms,garden,energy,age\n3,maybe,A,1\n",
			[]string{"b.csv:2: column 2 (\"garden\")", `category "maybe"`}},
		{"csv missing where not allowed", "c.csv", FormatCSV, "rooms,garden,energy,age\n,yes,A,1\n",
			[]string{"c.csv:2: column 1 (\"rooms\")", "missing value"}},
		{"csv column absent", "d.csv", FormatCSV, "rooms,energy,age\n3,A,1\n",
			[]string{`no column "garden"`}},
		{"jsonl missing key", "e.jsonl", FormatJSONL, "{\"rooms\": 3, \"garden\": \"yes\", \"age\": 1}\n\n{\"garden\": \"no\", \"age\": 2}\n",
			[]string{"e.jsonl:3: column 1 (\"rooms\")", "missing value"}},
		{"jsonl not an object", "f.jsonl", FormatJSONL, "{\"rooms\": 3, \"garden\": \"yes\", \"age\": 1}\n[1, 2]\n",
			[]string{"f.jsonl:2", "not a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.EncodeRows(context.Background(), writeFile(t, dir, tc.file, tc.content), tc.format, "")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v is not ErrFormat", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestEncodeRowsNeedsACompleteSchema: statistics still to be estimated are refused.
func TestEncodeRowsNeedsACompleteSchema(t *testing.T) {
	s, err := ParseSchema([]byte(strings.Replace(rowsSchema, "mean: 4, std: 2", "range: [0, 10]", 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EncodeRows(context.Background(), "rows.csv", FormatCSV, ""); !errors.Is(err, ErrStatisticsPending) {
		t.Fatalf("err %v, want ErrStatisticsPending", err)
	}
}
