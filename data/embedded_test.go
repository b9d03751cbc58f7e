package data

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fastai's emb_sz_rule, min(600, round(1.6·n^0.56)), evaluated in Python for these n.
func TestDefaultEmbeddingDimIsFastaisRule(t *testing.T) {
	for _, tc := range []struct{ k, want int }{{1, 2}, {2, 2}, {5, 4}, {10, 6}, {100, 21}, {10000, 278}, {1 << 20, 600}} {
		if got := DefaultEmbeddingDim(tc.k); got != tc.want {
			t.Errorf("DefaultEmbeddingDim(%d) = %d, want %d", tc.k, got, tc.want)
		}
	}
}

func TestLoadSchemaEmbeddedColumnHoldsTheCategoryIndex(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "houses.csv", houseCSV+"up,3,yes,Z,10,100,low\n,3,yes,A,10,100,low\n")
	spec := `
format: csv
path: houses.csv
label: {column: band, classes: [low, mid, high]}
columns:
  - {name: region, type: categorical, encoding: embedding, dim: 3, categories: [east, north, south, west], unknown: zero, missing: zero}
  - {name: rooms, mean: 4, std: 1}
  - {name: energy, type: categorical, encoding: embedding, categories: [A, B, C], unknown: zero}
`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.FeatureDim(); got != 3 {
		t.Fatalf("FeatureDim = %d, want 3 (one feature an embedded column)", got)
	}
	want := []EmbeddedColumn{{Name: "region", Column: 0, Categories: 4, Dim: 3}, {Name: "energy", Column: 2, Categories: 3, Dim: DefaultEmbeddingDim(3)}}
	if got := s.Embedded(); !slices.Equal(got, want) {
		t.Fatalf("Embedded() = %+v, want %+v", got, want)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	d := ld.Train
	if !slices.Equal(d.Embedded, want) {
		t.Errorf("Dataset.Embedded = %+v, want %+v", d.Embedded, want)
	}
	var region, energy []float64
	for i := range d.N {
		region = append(region, d.X[i*d.Dim])
		energy = append(energy, d.X[i*d.Dim+2])
	}
	// Rows: north A, north B, south C, south A, east B, east C, west A, west B; "up" is
	// unknown (unknown: zero), the empty region missing (missing: zero), Z an unknown energy.
	if w := []float64{1, 1, 2, 2, 0, 0, 3, 3, -1, -1}; !slices.Equal(region, w) {
		t.Errorf("region indices %v, want %v", region, w)
	}
	if w := []float64{0, 1, 2, 0, 1, 2, 0, 1, -1, 0}; !slices.Equal(energy, w) {
		t.Errorf("energy indices %v, want %v", energy, w)
	}
	if sub := d.Subset([]int{8, 0}); !slices.Equal(sub.Embedded, want) || &sub.Embedded[0] == &d.Embedded[0] {
		t.Errorf("Subset's Embedded %+v is not a copy of %+v", sub.Embedded, want)
	}

	// Without unknown: zero, an unknown category is a bad row naming file, line and column.
	s.Columns[2].Unknown = ""
	_, err = LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true})
	var bad *BadRowError
	if !errors.As(err, &bad) || bad.File != "houses.csv" || bad.Line != 10 || !strings.Contains(bad.Column, "energy") || !strings.Contains(bad.Reason, `"Z"`) {
		t.Errorf("err = %v, want houses.csv:10 column energy naming category Z", err)
	}
}

// The federation's path: the shipped schema keeps encoding and dim, and a client encodes
// its own file to the same indices.
func TestShippedSchemaKeepsEmbeddings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "houses.csv", houseCSV)
	s, err := ParseSchema([]byte(`{format: csv, path: houses.csv, label: {column: band}, columns: [{name: rooms}, {name: region, type: categorical, encoding: embedding, dim: 2}]}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ld.Schema.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	fed, err := ParseSchemaJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fed.Embedded(), []EmbeddedColumn{{Name: "region", Column: 1, Categories: 4, Dim: 2}}; !slices.Equal(got, want) {
		t.Fatalf("shipped schema's Embedded() = %+v, want %+v", got, want)
	}
	cl, err := LoadSchema(context.Background(), fed, LoadOptions{Path: filepath.Join(dir, "houses.csv"), NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cl.Train.X, ld.Train.X) {
		t.Errorf("a client's encoding %v differs from the server's %v", cl.Train.X, ld.Train.X)
	}
}

func TestSchemaEmbeddingValidation(t *testing.T) {
	for _, tc := range []struct{ name, columns, want string }{
		{"dim above the bound", `[{name: a, type: categorical, encoding: embedding, dim: 1025}]`, "columns[0] (a).dim = 1025: must be in [1, 1024]"},
		{"negative dim", `[{name: a, type: categorical, encoding: embedding, dim: -1}]`, "columns[0] (a).dim = -1"},
		{"dim on one_hot", `[{name: a, type: categorical, dim: 4}]`, "columns[0] (a).dim applies to encoding: embedding"},
		{"dim on numeric", `[{name: a, dim: 4}]`, "categories, encoding, unknown and dim apply to type categorical"},
		{"misspelt encoding", `[{name: a, type: categorical, encoding: embed}]`, `encoding = "embed": use one_hot, ordinal or embedding`},
		{"mean on embedding", `[{name: a, type: categorical, encoding: embedding, missing: mean}]`, "a categorical column has none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSchema([]byte(`{format: csv, label: {column: y}, columns: `+tc.columns+`}`), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateEmbeddedIndices(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float64
		emb  []EmbeddedColumn
		want string
	}{
		{"index past the categories", []float64{0, 3}, []EmbeddedColumn{{Name: "c", Column: 1, Categories: 3, Dim: 2}}, "want a category index in [0, 3)"},
		{"fractional index", []float64{0, 0.5}, []EmbeddedColumn{{Name: "c", Column: 1, Categories: 3, Dim: 2}}, "= 0.5"},
		{"below -1", []float64{0, -2}, []EmbeddedColumn{{Name: "c", Column: 1, Categories: 3, Dim: 2}}, "= -2"},
		{"column outside the row", []float64{0, 1}, []EmbeddedColumn{{Name: "c", Column: 2, Categories: 3, Dim: 2}}, "feature 2 outside the 2 features"},
		{"column twice", []float64{0, 1}, []EmbeddedColumn{{Column: 1, Categories: 3, Dim: 2}, {Column: 1, Categories: 3, Dim: 2}}, "embedded twice"},
		{"no categories", []float64{0, 0}, []EmbeddedColumn{{Column: 1, Categories: 0, Dim: 2}}, "want both > 0"},
		{"valid, missing", []float64{0, -1}, []EmbeddedColumn{{Column: 1, Categories: 3, Dim: 2}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dataset{Name: "t", N: 1, Dim: 2, X: tc.x, Y: []int32{0}, NumClasses: 2, Embedded: tc.emb}
			err := d.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("err = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzLoadSchemaEmbedded: whatever a client's file holds, reading it with a schema that
// embeds a column either fails with an error or gives examples whose embedded feature is a
// category index or −1 (Dataset.Validate), never a panic.
func FuzzLoadSchemaEmbedded(f *testing.F) {
	for _, seed := range []string{
		"shop,x,label\ns1,0.5,a\n,1,b\nzz,2,a\n",
		"x,shop,label\n1,s0,a\n2,s2,b\n",
		"shop,x,label\ns1,NaN,a\ns1,1e400,b\n\"s2\",3,c\n",
		"shop;x;label\n",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, table string, unknownZero bool) {
		dir := t.TempDir()
		writeFile(t, dir, "t.csv", table)
		unknown := ""
		if unknownZero {
			unknown = ", unknown: zero"
		}
		s, err := ParseSchema([]byte(`{format: csv, path: t.csv, label: {column: label}, columns: [{name: x, mean: 0, std: 1, missing: zero}, {name: shop, type: categorical, encoding: embedding, dim: 3, missing: zero, categories: [s0, s1, s2]`+unknown+`}]}`), dir)
		if err != nil {
			t.Fatal(err)
		}
		ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true, SkipBadRows: true})
		if err != nil {
			return
		}
		d := ld.Train
		for i := range d.N {
			if v := d.X[i*d.Dim+1]; v != float64(int(v)) || v < -1 || v > 2 {
				t.Fatalf("example %d: shop feature %v, want an index in [−1, 3)", i, v)
			}
		}
	})
}
