package data

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const houseCSV = `region,rooms,garden,energy,age,price,band
north,3,yes,A,10,100,low
north,4,no,B,NA,200,mid
south,5,yes,C,30,300,high
south,2,no,A,20,150,low
east,6,yes,B,40,350,high
east,3,no,C,50,180,low
west,4,yes,A,60,250,mid
west,5,no,B,70,280,mid
`

func TestLoadSchemaCSVClassifyFitsOnTrainingRowsOnly(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "houses.csv", houseCSV)
	spec := `
format: csv
path: houses.csv
test_fraction: 0.25
group: region
label: {column: band}
columns:
  - {name: rooms}
  - {name: garden, type: categorical}
  - {name: energy, type: categorical, encoding: ordinal, categories: [A, B, C]}
  - {name: age, missing: mean}
`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	tr, te := ld.Train, ld.Test
	if tr.N+te.N != 8 || te.N == 0 {
		t.Fatalf("split %d + %d, want 8 rows with a test part", tr.N, te.N)
	}
	// rooms (1) + garden one-hot (2: no, yes) + energy ordinal (1) + age (1).
	if tr.Dim != 5 {
		t.Fatalf("Dim = %d, want 5", tr.Dim)
	}
	if got := strings.Join(tr.ClassNames, ","); got != "high,low,mid" {
		t.Errorf("classes %s, want high,low,mid (sorted labels)", got)
	}
	if got := strings.Join(tr.GroupNames, ","); got != "east,north,south,west" {
		t.Errorf("groups %s", got)
	}
	// The fitted standardisation makes the training rows' rooms mean 0, std 1.
	var sum, sq float64
	for i := range tr.N {
		v := tr.X[i*tr.Dim]
		sum += v
		sq += v * v
	}
	if m := sum / float64(tr.N); math.Abs(m) > 1e-12 || math.Abs(sq/float64(tr.N)-1) > 1e-12 {
		t.Errorf("training rooms mean %v, mean square %v; want 0 and 1 (fitted on the training rows)", m, sq/float64(tr.N))
	}
	rs := ld.Schema.Columns[0]
	if rs.Mean == nil || rs.Std == nil || ld.Schema.Columns[1].Categories == nil {
		t.Fatalf("the applied schema lacks the fitted statistics or categories: %+v", ld.Schema.Columns)
	}
	if len(ld.Fitted) == 0 {
		t.Error("Fitted is empty, want what was fitted")
	}
	if err := ld.Schema.ValidateFederated(); err != nil {
		t.Errorf("the applied schema should be complete enough for a federation: %v", err)
	}
	// Encoding a row by hand: energy B is ordinal 1/2; garden yes is [0 1].
	b, err := ld.Schema.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("houses.csv")) {
		t.Errorf("the shipped schema carries the server's path: %s", b)
	}
	fed, err := ParseSchemaJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoadSchema(context.Background(), fed, LoadOptions{Path: filepath.Join(dir, "houses.csv"), NoTestSplit: true, Federated: true})
	if err != nil {
		t.Fatal(err)
	}
	if all.Train.N != 8 || all.Test != nil || len(all.Fitted) != 0 {
		t.Fatalf("federated load: %d rows, test %v, fitted %v", all.Train.N, all.Test, all.Fitted)
	}
	row := all.Train.X[6*5 : 7*5] // west,4,yes,A,60
	if row[1] != 0 || row[2] != 1 || row[3] != 0 {
		t.Errorf("row 7 garden/energy encoding %v, want garden [0 1], energy A = 0", row[1:4])
	}
	age := ld.Schema.Columns[3]
	if got := all.Train.X[1*5+4]; math.Abs(got) > 1e-12 {
		t.Errorf("a missing age with missing: mean encodes as %v, want 0 (the mean, standardised)", got)
	}
	if want := (60 - *age.Mean) / *age.Std; math.Abs(row[4]-want) > 1e-12 {
		t.Errorf("age 60 encodes as %v, want %v", row[4], want)
	}
}

func TestLoadSchemaCSVRegressionAndGlob(t *testing.T) {
	dir := t.TempDir()
	lines := strings.Split(strings.TrimSpace(houseCSV), "\n")
	writeFile(t, dir, "data/train-a.csv", strings.Join(append(lines[:1:1], lines[1:5]...), "\n"))
	writeFile(t, dir, "data/train-b.csv", strings.Join(append(lines[:1:1], lines[5:7]...), "\n"))
	writeFile(t, dir, "data/test.csv", strings.Join(append(lines[:1:1], lines[7:]...), "\n"))
	spec := `
format: csv
path: data/train-*.csv
test_path: data/test.csv
target: {column: price}
columns: [{name: rooms, normalize: minmax}, {name: age, missing: zero, normalize: none}]
`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ld.Train.N != 6 || ld.Test.N != 2 || ld.Train.Task != TaskRegress || ld.Train.NumValues != 1 {
		t.Fatalf("train %d, test %d, task %v", ld.Train.N, ld.Test.N, ld.Train.Task)
	}
	vn := ld.Train.ValueNormalization
	if vn == nil {
		t.Fatal("no value normalisation")
	}
	// Raw prices come back from Values through the normalisation.
	if got := ld.Test.Values[1]*vn.Std[0] + vn.Mean[0]; math.Abs(got-280) > 1e-9 {
		t.Errorf("test price %v, want 280", got)
	}
	// minmax on the training rows: rooms 2…6.
	if c := ld.Schema.Columns[0]; *c.Min != 2 || *c.Max != 6 {
		t.Errorf("rooms min/max %v/%v, want 2/6", *c.Min, *c.Max)
	}
	if got := ld.Train.X[1*2+1]; got != 0 {
		t.Errorf("missing age with missing: zero and normalize: none = %v, want 0", got)
	}
}

func TestLoadSchemaBadRowsNameFileLineColumn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.csv", `a,b,label
1,2,x
3,oops,y
4,5
6,7,z
,8,x
9,10,x
`)
	spec := `{format: csv, path: bad.csv, label: {column: label, classes: [x, y]}, columns: [{name: a}, {name: b}]}`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadSchema(context.Background(), s, LoadOptions{})
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want bad rows (ErrFormat)", err)
	}
	for _, want := range []string{
		`bad.csv:3: column 2 ("b"): "oops" is not a finite number`,
		`bad.csv:4: 2 columns, the header has 3`,
		`bad.csv:5: column 3 ("label"): label "z" is not one of the classes`,
		`bad.csv:6: column 1 ("a"): missing value`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{SkipBadRows: true, NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	if ld.Skipped != 4 || ld.Train.N != 2 || len(ld.Bad) != 4 {
		t.Errorf("skipped %d, kept %d, shown %d; want 4, 2, 4", ld.Skipped, ld.Train.N, len(ld.Bad))
	}
}

func TestSchemaValidateFederatedNamesWhatIsMissing(t *testing.T) {
	s, err := ParseSchema([]byte(`{format: csv, target: {column: y}, columns: [{name: a}, {name: c, type: categorical}, {name: m, normalize: minmax}, {name: n, normalize: none}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	err = s.ValidateFederated()
	if err == nil {
		t.Fatal("a schema without statistics passed ValidateFederated")
	}
	for _, want := range []string{"target: mean and std", "columns[0] (a): mean and std", "columns[1] (c).categories", "columns[2] (m): min and max"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "(n)") {
		t.Errorf("normalize: none needs no statistics: %v", err)
	}
	for _, tc := range []struct{ spec, want string }{
		{`{format: csv, label: {column: y}, columns: [{name: a, type: categorical, encoding: embedded}]}`, "use one_hot, ordinal or embedding"},
		{`{format: parquet}`, `format "parquet" unknown`},
		{`{format: csv, columns: [{name: a}]}`, "neither label nor target"},
		{`{format: csv, label: {column: y}, columns: [{name: y}]}`, "cannot be its own label"},
		{`{format: csv, label: {column: y}, colums: [{name: a}]}`, "field colums not found"},
	} {
		if _, err := ParseSchema([]byte(tc.spec), ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestLoadSchemaJSONL(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "mail.jsonl", `{"text": "cheap pills now", "label": "spam", "box": "a"}
{"text": "meeting at noon", "label": "ham", "box": "a"}
{"text": "cheap cheap offer", "label": "spam", "box": "b"}
not json
{"text": "lunch at noon", "label": "ham", "box": "b"}
{"text": 5, "label": "ham", "box": "b"}
`)
	spec := `{format: jsonl, path: mail.jsonl, group: box, label: {column: label, classes: [ham, spam]}, text: {max_len: 4, min_count: 1}}`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSchema(context.Background(), s, LoadOptions{}); err == nil || !strings.Contains(err.Error(), "mail.jsonl:4: not a JSON object") ||
		!strings.Contains(err.Error(), `mail.jsonl:6: column "text": the text must be a string`) {
		t.Fatalf("err = %v, want lines 4 and 6 named", err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{SkipBadRows: true, NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	d := ld.Train
	if d.N != 4 || d.SeqLen != 4 || ld.Skipped != 2 || d.NumGroups() != 2 {
		t.Fatalf("N %d SeqLen %d skipped %d groups %d", d.N, d.SeqLen, ld.Skipped, d.NumGroups())
	}
	if v := ld.Schema.Text.Vocab; len(v) == 0 || v[0] != "cheap" {
		t.Errorf("vocabulary %v, want the most frequent word first", v)
	}
	if d.Y[0] != 1 || d.Y[1] != 0 {
		t.Errorf("labels %v, want spam=1, ham=0", d.Y)
	}
	if err := ld.Schema.ValidateFederated(); err != nil {
		t.Errorf("applied schema: %v", err)
	}
}

func TestLoadSchemaImageFolders(t *testing.T) {
	dir := t.TempDir()
	solid := func(name string, c color.Color, w, h int) {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, c)
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, b.String())
	}
	solid("train/black/a.png", color.Black, 8, 6)
	solid("train/white/b.png", color.White, 3, 5)
	solid("train/white/c.png", color.RGBA{R: 255, A: 255}, 4, 4)
	writeFile(t, dir, "train/white/notes.txt", "not an image")
	spec := `{format: images, path: train, image: {height: 2, width: 2, grey: true}}`
	s, err := ParseSchema([]byte(spec), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true}); err == nil || !strings.Contains(err.Error(), "white/notes.txt: not a PNG or JPEG image") {
		t.Fatalf("err = %v, want notes.txt named", err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true, SkipBadRows: true})
	if err != nil {
		t.Fatal(err)
	}
	d := ld.Train
	if d.N != 3 || d.Dim != 4 || len(d.Shape) != 2 || strings.Join(d.ClassNames, ",") != "black,white" {
		t.Fatalf("N %d Dim %d Shape %v classes %v", d.N, d.Dim, d.Shape, d.ClassNames)
	}
	for k, want := range []float64{0, 1, 0.299} {
		for _, v := range d.X[k*4 : (k+1)*4] {
			if math.Abs(v-want) > 1e-9 {
				t.Errorf("image %d pixel %v, want %v (a solid image resized stays solid; red is luma 0.299)", k, v, want)
			}
		}
	}
}

func TestResizeIntoAveragesAreas(t *testing.T) {
	// A 4×1 ramp 0, 1/3, 2/3, 1 shrunk to 2×1 averages pairs: 1/6 and 5/6.
	img := image.NewGray(image.Rect(0, 0, 4, 1))
	for x, v := range []uint8{0, 85, 170, 255} {
		img.SetGray(x, 0, color.Gray{Y: v})
	}
	dst := make([]float64, 2)
	resizeInto(dst, img, 1, 2, true)
	if math.Abs(dst[0]-1.0/6) > 1e-9 || math.Abs(dst[1]-5.0/6) > 1e-9 {
		t.Errorf("resized ramp %v, want [1/6 5/6]", dst)
	}
}

func TestSyntheticHousingIsDeterministic(t *testing.T) {
	gen := func() string {
		var b bytes.Buffer
		if err := SyntheticHousing(&b, "south", 50, rand.New(rand.NewPCG(3, 4))); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a, b := gen(), gen()
	if a != b {
		t.Fatal("two runs with the same seed differ")
	}
	if n := strings.Count(a, "\n"); n != 51 {
		t.Errorf("%d lines, want header + 50", n)
	}
	if err := SyntheticHousing(&bytes.Buffer{}, "atlantis", 1, rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("an unknown region was accepted")
	}
}

func TestSchemaUnmarshalYAMLInlineOrFile(t *testing.T) {
	dir := t.TempDir()
	spec := writeFile(t, dir, "s.yaml", "format: csv\nlabel: {column: y, classes: [a, b]}\ncolumns: [{name: x, normalize: none}]\n")
	var cfg struct {
		A *Schema `yaml:"a"`
		B *Schema `yaml:"b"`
	}
	doc := "a: " + spec + "\nb: {format: csv, target: {column: y, normalize: none}, columns: [{name: x, normalize: none}]}\n"
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.A.Name != "s" || cfg.A.Label.Classes[1] != "b" || cfg.B.Task() != TaskRegress {
		t.Fatalf("decoded %+v and %+v", cfg.A, cfg.B)
	}
	if err := yaml.Unmarshal([]byte("b: {format: csv, target: {column: y}, columns: [{name: x, nromalize: none}]}"), &cfg); err == nil || !strings.Contains(err.Error(), "nromalize") {
		t.Errorf("an unknown key inline: err = %v", err)
	}
}

func TestLoadSchemaTSVAndIDX(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "t.tsv", "x\tname with, comma\ty\n1\ta, b\tp\n2\tc\tq\n3\ta, b\tq\n")
	s, err := ParseSchema([]byte(`{format: tsv, path: t.tsv, label: {column: y}, columns: [{name: x, normalize: none}, {name: "name with, comma", type: categorical}]}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := LoadSchema(context.Background(), s, LoadOptions{NoTestSplit: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := ld.Train; d.N != 3 || d.Dim != 3 || d.X[1] != 1 || d.X[2] != 0 || strings.Join(d.ClassNames, ",") != "p,q" {
		t.Fatalf("tsv: N %d Dim %d X %v classes %v", d.N, d.Dim, d.X, d.ClassNames)
	}
	idx := filepath.Join(dir, "idx")
	if err := os.Mkdir(idx, 0o755); err != nil {
		t.Fatal(err)
	}
	writeIDXSet(t, idx, func(b string) string { return b + ".gz" }, true, []byte{1, 0, 9, 3})
	s, err = ParseSchema([]byte(`{format: idx, path: idx, label: {classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]}}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	ld, err = LoadSchema(context.Background(), s, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ld.Train.N != 4 || ld.Test.N != 2 || ld.Train.Dim != 6 || ld.Train.Y[2] != 9 {
		t.Fatalf("idx: train %d test %d dim %d", ld.Train.N, ld.Test.N, ld.Train.Dim)
	}
}
