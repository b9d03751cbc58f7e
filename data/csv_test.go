package data

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadCSVFile(t *testing.T) {
	d, err := LoadCSVFile(filepath.Join("testdata", "tabular.csv"), CSVOptions{Label: "species"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Name != "tabular" || d.N != 4 || d.Dim != 3 ||
		!slices.Equal(d.X[:3], []float64{5.1, 3.5, 1.4}) ||
		!slices.Equal(d.ClassNames, []string{"setosa", "versicolor", "virginica"}) ||
		!slices.Equal(d.Y, []int32{0, 1, 2, 0}) {
		t.Fatalf("got %+v", d)
	}
}

func TestLoadCSV(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		opts    CSVOptions
		dim     int
		y       []int32
		classes []string
		x0      []float64
	}{
		{"label first by default", "y,a,b\n1,0.5,2\n0,1e3,-4\n", CSVOptions{}, 2, []int32{1, 0}, []string{"0", "1"}, []float64{0.5, 2}},
		{"label last by index", "a,b,y\n0.5,2,3\n1,2,0\n", CSVOptions{LabelIndex: -1}, 2, []int32{3, 0}, []string{"0", "1", "2", "3"}, []float64{0.5, 2}},
		{"no header semicolon", "1;2;a\n3;4;b\n", CSVOptions{NoHeader: true, Comma: ';', LabelIndex: 2}, 2, []int32{0, 1}, []string{"a", "b"}, []float64{1, 2}},
		{"fixed classes", "y,a\nham,1\nspam,2\n", CSVOptions{ClassNames: []string{"spam", "ham"}}, 1, []int32{1, 0}, []string{"spam", "ham"}, []float64{1}},
		{"spaces trimmed", "y, a\n 1 , 2.5 \n", CSVOptions{}, 1, []int32{1}, []string{"0", "1"}, []float64{2.5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := LoadCSV(strings.NewReader(c.in), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			if d.Dim != c.dim || !slices.Equal(d.Y, c.y) || !slices.Equal(d.ClassNames, c.classes) || !slices.Equal(d.X[:d.Dim], c.x0) {
				t.Fatalf("got Dim %d Y %v classes %v X %v", d.Dim, d.Y, d.ClassNames, d.X)
			}
		})
	}
}

func TestLoadCSVErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		opts CSVOptions
		want string
	}{
		{"not a number", "y,a,b\n1,2,3\n0,x,3\n", CSVOptions{}, `line 3, column 2 ("a"): "x" is not a number`},
		{"missing value", "y,a\n1,\n", CSVOptions{}, "line 2, column 2 (\"a\"): \"\" is empty"},
		{"infinite", "y,a\n1,Inf\n", CSVOptions{}, "not finite"},
		{"ragged row", "y,a\n1,2\n1,2,3\n", CSVOptions{}, "line 3"},
		{"unknown label column", "y,a\n1,2\n", CSVOptions{Label: "class"}, `no column named "class"`},
		{"label name without header", "1,2\n", CSVOptions{NoHeader: true, Label: "y"}, "NoHeader"},
		{"label index out of range", "y,a\n1,2\n", CSVOptions{LabelIndex: 5}, "out of range"},
		{"one column", "y\n1\n", CSVOptions{}, "at least one feature"},
		{"no rows", "y,a\n", CSVOptions{}, "no data rows"},
		{"empty", "", CSVOptions{}, "no data rows"},
		{"label not in fixed classes", "y,a\ncat,1\n", CSVOptions{ClassNames: []string{"dog"}}, `data row 1: label "cat"`},
		{"bad quote", "y,a\n1,\"2\n", CSVOptions{}, "line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := LoadCSV(strings.NewReader(c.in), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %+v, error %v; want error containing %q", d, err, c.want)
			}
		})
	}
}

func TestStandardizer(t *testing.T) {
	train := &Dataset{N: 4, Dim: 2, X: []float64{1, 5, 2, 5, 3, 5, 4, 5}, Y: make([]int32, 4), NumClasses: 1}
	test := &Dataset{N: 1, Dim: 2, X: []float64{5, 6}, Y: make([]int32, 1), NumClasses: 1}
	before := slices.Clone(train.X)
	s, err := FitStandardizer(train)
	if err != nil {
		t.Fatal(err)
	}
	// Feature 0: mean 2.5, population std sqrt(1.25); feature 1 constant → std 1.
	if !approxEqual(s.Mean[0], 2.5) || !approxEqual(s.Std[0], math.Sqrt(1.25)) || s.Mean[1] != 5 || s.Std[1] != 1 {
		t.Fatalf("fit = %+v", s)
	}
	tr, err := s.Apply(train)
	if err != nil {
		t.Fatal(err)
	}
	var m, v float64
	for i := 0; i < tr.N; i++ {
		m += tr.X[2*i]
		v += tr.X[2*i] * tr.X[2*i]
	}
	if !approxEqual(m/4, 0) || !approxEqual(v/4, 1) || tr.X[1] != 0 {
		t.Fatalf("standardised train = %v", tr.X)
	}
	te, _ := s.Apply(test)
	if !approxEqual(te.X[0], 2.5/math.Sqrt(1.25)) || te.X[1] != 1 {
		t.Fatalf("standardised test = %v", te.X)
	}
	if !slices.Equal(train.X, before) {
		t.Fatal("Apply modified its input")
	}
	if _, err := s.Apply(&Dataset{N: 1, Dim: 3, X: make([]float64, 3)}); err == nil || !strings.Contains(err.Error(), "fitted on 2") {
		t.Fatalf("dimension mismatch: %v", err)
	}
	if _, err := FitStandardizer(&Dataset{Dim: 2, X: []float64{}}); err == nil {
		t.Fatal("fit on an empty dataset accepted")
	}
	if _, err := (&Standardizer{}).Apply(train); err == nil {
		t.Fatal("unfitted standardizer accepted")
	}
}

func TestMinMaxScaler(t *testing.T) {
	train := &Dataset{N: 3, Dim: 2, X: []float64{0, 7, 5, 7, 10, 7}, Y: make([]int32, 3), NumClasses: 1}
	s, err := FitMinMax(train)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := s.Apply(train)
	if !slices.Equal(tr.X, []float64{0, 0, 0.5, 0, 1, 0}) {
		t.Fatalf("scaled train = %v", tr.X)
	}
	te, _ := s.Apply(&Dataset{N: 1, Dim: 2, X: []float64{20, 8}, Y: []int32{0}, NumClasses: 1})
	if !slices.Equal(te.X, []float64{2, 1}) {
		t.Fatalf("scaled test = %v (values outside the fitted range are not clipped)", te.X)
	}
}

func approxEqual(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
