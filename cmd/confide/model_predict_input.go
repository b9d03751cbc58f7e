package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
)

// Input formats of predict.
const (
	formatCSV   = "csv"
	formatTSV   = "tsv"
	formatJSONL = "jsonl"
	formatIDX   = "idx"
	formatPNG   = "png"
)

// predictInput is one input of predict: raw dense features or a text, and the id the
// input file gave it (if any).
type predictInput struct {
	ID   any
	X    []float64
	Text *string
}

// inputSpec is what the model reads, for the readers and their errors: the model, and the
// dataset schema its file records (nil: none).
type inputSpec struct {
	m      *model.Model
	schema *data.Schema
}

// textField is the JSON field (or CSV column) of a text model's inputs: the text column of
// its recorded schema, "text" without one.
func (s inputSpec) textField() string {
	if sc := s.schema; sc != nil && sc.Text != nil && sc.Text.Column != "" {
		return sc.Text.Column
	}
	return "text"
}

// text reports whether the model's inputs are texts: a sequence model's, or an mlp's
// trained on a bag of words (bag).
func (s inputSpec) text() bool { return s.m.Spec.IsSequence() || s.bag() }

// bag reports whether the model reads a text as a bag of words (its recorded schema's
// text.encoding: bag).
func (s inputSpec) bag() bool {
	return s.schema != nil && s.schema.Format == data.FormatJSONL && s.schema.Text.IsBag()
}

// encodeBags sets the features of every input, a text, to its bag of words as the model's
// recorded schema encodes it.
func (s inputSpec) encodeBags(ins []predictInput) error {
	bag, err := data.NewBagEncoder(s.schema.Text)
	if err != nil {
		return err
	}
	if bag.Dim() != s.dim() {
		return fmt.Errorf("the recorded schema's bag of words has %d features, the model reads %d", bag.Dim(), s.dim())
	}
	var ids []int32
	for i := range ins {
		ins[i].X = make([]float64, bag.Dim())
		ids = bag.Encode(ins[i].X, *ins[i].Text, ids)
	}
	return nil
}

func (s inputSpec) dim() int { return s.m.Spec.Input }
func (s inputSpec) expected() string {
	if s.text() {
		return "text (" + inputShape(s.m) + ")"
	}
	return inputShape(s.m)
}

// maxInputLine bounds one line of a CSV or JSONL input (a long e-mail, an image as numbers).
const maxInputLine = 64 << 20

// detectFormat returns the input format of path: --format, else from its name.
func detectFormat(path, format string) (string, error) {
	switch format {
	case formatCSV, formatTSV, formatJSONL, formatIDX, formatPNG:
		return format, nil
	case "":
	default:
		return "", usageErr("--format %q unknown (use csv, tsv, jsonl, idx or png)", format)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return formatPNG, nil
	}
	name := strings.ToLower(strings.TrimSuffix(filepath.Base(path), ".gz"))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return formatCSV, nil
	case strings.HasSuffix(name, ".tsv"), strings.HasSuffix(name, ".tab"):
		return formatTSV, nil
	case strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"), strings.HasSuffix(name, ".json"):
		return formatJSONL, nil
	case strings.HasSuffix(name, ".png"):
		return formatPNG, nil
	case strings.Contains(name, "idx"), strings.Contains(name, "ubyte"):
		return formatIDX, nil
	}
	return "", usageErr("--input %s: cannot tell its format from its name: pass --format csv, tsv, jsonl, idx or png", path)
}

// readInputs reads every input of path in format for the model.
func readInputs(path, format string, s inputSpec, invert bool) ([]predictInput, error) {
	if format == formatPNG {
		return readPNGs(path, s, invert)
	}
	if format == formatIDX {
		return readIDXInputs(path, s)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("--input: %v", err)
	}
	defer f.Close()
	if format == formatCSV {
		return readCSVInputs(f, path, s)
	}
	return readJSONLInputs(f, path, s)
}

// readCSVInputs reads rows of features (a header row optional; a column named id is the
// input's id) or, for a text model, a text column (header required).
func readCSVInputs(r io.Reader, path string, s inputSpec) ([]predictInput, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	var ins []predictInput
	idCol, textCol := -1, -1
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, usageErr("--input %s: %v", path, err)
		}
		if row == 1 && isHeader(rec) {
			for j, h := range rec {
				switch name := strings.TrimSpace(h); {
				case strings.EqualFold(name, "id"):
					idCol = j
				case strings.EqualFold(name, s.textField()):
					textCol = j
				}
			}
			if s.text() && textCol < 0 {
				return nil, usageErr("--input %s: the model reads %s: give a CSV with a header naming a text column (or JSONL)", path, s.expected())
			}
			continue
		}
		if s.text() && textCol < 0 {
			return nil, usageErr("--input %s: the model reads %s: give a CSV with a header naming a text column (or JSONL)", path, s.expected())
		}
		in := predictInput{}
		if idCol >= 0 && idCol < len(rec) {
			in.ID = rec[idCol]
		}
		if s.text() {
			if textCol >= len(rec) {
				return nil, usageErr("--input %s: row %d has no text column", path, row)
			}
			t := rec[textCol]
			in.Text = &t
			ins = append(ins, in)
			continue
		}
		for j, v := range rec {
			if j == idCol || j == textCol {
				continue
			}
			x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, usageErr("--input %s: row %d, column %d: %q is not a number", path, row, j+1, v)
			}
			in.X = append(in.X, x)
		}
		if len(in.X) != s.dim() {
			return nil, usageErr("--input %s: row %d has %d values; the model reads %s", path, row, len(in.X), s.expected())
		}
		ins = append(ins, in)
	}
	return ins, nil
}

// isHeader reports whether a CSV record is a header: some field is not a number.
func isHeader(rec []string) bool {
	for _, f := range rec {
		if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err != nil {
			return true
		}
	}
	return false
}

// readJSONLInputs reads one input a line: a string (text), an array of numbers (features),
// or an object with "text" (or the text field of the model's recorded schema) or
// "features" and an optional "id".
func readJSONLInputs(r io.Reader, path string, s inputSpec) ([]predictInput, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxInputLine)
	var ins []predictInput
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if field := s.textField(); s.text() && field != "text" && b[0] == '{' {
			// The dataset's own records: their text field is the text.
			var obj map[string]json.RawMessage
			if json.Unmarshal(b, &obj) == nil && obj[field] != nil && obj["text"] == nil {
				obj["text"] = obj[field]
				delete(obj, field)
				b, _ = json.Marshal(obj)
			}
		}
		in, err := parseJSONInput(b)
		if err != nil {
			return nil, usageErr("--input %s: line %d: %v (each line: a string of text, an array of numbers, or an object with \"text\" or \"features\" and an optional \"id\")", path, line, err)
		}
		switch {
		case s.text() && in.Text == nil:
			return nil, usageErr("--input %s: line %d holds features; the model reads %s: give {\"text\": \"...\"}", path, line, s.expected())
		case !s.text() && in.Text != nil:
			return nil, usageErr("--input %s: line %d holds text; the model reads %s: give an array of %d numbers", path, line, s.expected(), s.dim())
		case !s.text() && len(in.X) != s.dim():
			return nil, usageErr("--input %s: line %d has %d values; the model reads %s", path, line, len(in.X), s.expected())
		}
		ins = append(ins, in)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usageErr("--input %s: a line is longer than %d MiB", path, maxInputLine>>20)
		}
		return nil, usageErr("--input %s: %v", path, err)
	}
	return ins, nil
}

func parseJSONInput(b []byte) (predictInput, error) {
	var in predictInput
	switch b[0] {
	case '"':
		var t string
		if err := json.Unmarshal(b, &t); err != nil {
			return in, err
		}
		in.Text = &t
	case '[':
		if err := json.Unmarshal(b, &in.X); err != nil {
			return in, fmt.Errorf("not an array of numbers: %v", err)
		}
	case '{':
		var obj struct {
			ID       any       `json:"id"`
			Text     *string   `json:"text"`
			Features []float64 `json:"features"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return in, err
		}
		if (obj.Text == nil) == (obj.Features == nil) {
			return in, errors.New(`the object needs exactly one of "text" and "features"`)
		}
		in.ID, in.Text, in.X = obj.ID, obj.Text, obj.Features
	default:
		return in, errors.New("not JSON")
	}
	return in, nil
}

// readIDXInputs reads an IDX file of N examples (N×rows×cols images, or N×features); a file
// of one example's shape is one input.
func readIDXInputs(path string, s inputSpec) ([]predictInput, error) {
	if s.text() {
		return nil, usageErr("--input %s: an IDX file holds numbers; the model reads %s (use jsonl)", path, s.expected())
	}
	x, err := data.ReadIDXFile(path)
	if err != nil {
		return nil, usageErr("--input: %v", err)
	}
	want := s.dim()
	dims := x.Dims
	per := 1
	for _, d := range dims[1:] {
		per *= d
	}
	n := dims[0]
	if len(dims) == 1 || per != want {
		if x.Len() == want { // one example
			n, per, dims = 1, want, append([]int{1}, dims...)
		} else {
			return nil, usageErr("--input %s: IDX dims %v hold examples of %d values; the model reads %s (dims N×%s)",
				path, x.Dims, per, s.expected(), shapeText(s))
		}
	}
	if in := s.m.Meta.Input; in != nil && len(in.Shape) > 0 && len(dims) > 2 && !slices.Equal(dims[1:], in.Shape) {
		return nil, usageErr("--input %s: IDX dims %v; the model reads examples of shape %v (dims N×%s)", path, x.Dims, in.Shape, shapeText(s))
	}
	ins := make([]predictInput, n)
	for i := range ins {
		ins[i].X = make([]float64, per)
		for j := range per {
			ins[i].X[j] = x.Float64(i*per + j)
		}
	}
	return ins, nil
}

// shapeText is the model's example shape for messages: "28×28", or the feature count.
func shapeText(s inputSpec) string {
	if in := s.m.Meta.Input; in != nil && len(in.Shape) > 0 {
		parts := make([]string, len(in.Shape))
		for i, d := range in.Shape {
			parts[i] = strconv.Itoa(d)
		}
		return strings.Join(parts, "×")
	}
	return strconv.Itoa(s.dim())
}

// readPNGs reads one PNG, or every .png of a directory (sorted by name), as greyscale images
// resized to the image shape the model file records; pixel values are 0–255 (after --invert:
// 255 minus the grey level).
func readPNGs(path string, s inputSpec, invert bool) ([]predictInput, error) {
	in := s.m.Meta.Input
	if s.text() || in == nil || in.Kind != model.InputImage || len(in.Shape) != 2 {
		return nil, usageErr("--input %s: PNG images need a model file recording an image input; this model reads %s", path, s.expected())
	}
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, usageErr("--input: %v", err)
	} else if st.IsDir() {
		all, err := filepath.Glob(filepath.Join(path, "*.png"))
		if err != nil {
			return nil, usageErr("--input: %v", err)
		}
		if len(all) == 0 {
			return nil, usageErr("--input %s: the directory holds no .png files", path)
		}
		slices.Sort(all)
		files = all
	}
	rows, cols := in.Shape[0], in.Shape[1]
	var ins []predictInput
	for _, file := range files {
		img, err := decodePNG(file)
		if err != nil {
			return nil, usageErr("--input %s: %v", file, err)
		}
		x := resizeGrey(img, rows, cols)
		if invert {
			for i := range x {
				x[i] = 255 - x[i]
			}
		}
		ins = append(ins, predictInput{ID: filepath.Base(file), X: x})
	}
	return ins, nil
}

// maxPNGPixels bounds a decoded image (its header is checked before the pixels are read).
const maxPNGPixels = 1 << 26

func decodePNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodePNGFrom(f)
}

// decodePNGFrom decodes a PNG image of at most maxPNGPixels from r.
func decodePNGFrom(r io.Reader) (image.Image, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(64)
	if err != nil && len(head) == 0 {
		return nil, fmt.Errorf("not a PNG file: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		return nil, fmt.Errorf("not a PNG file: %v", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPNGPixels {
		return nil, fmt.Errorf("%d×%d pixels: larger than %d pixels", cfg.Width, cfg.Height, maxPNGPixels)
	}
	img, err := png.Decode(br)
	if err != nil {
		return nil, fmt.Errorf("decoding the PNG: %v", err)
	}
	return img, nil
}

// resizeGrey returns img as rows×cols grey levels in [0, 255], row-major: colours become
// luminance (color.GrayModel, ITU-R BT.601 weights), transparency is composited over black
// (the background of MNIST-style images), and each output pixel is the mean of 4×4 samples
// of its area of the source, which averages when shrinking and interpolates by nearest
// sample when enlarging.
func resizeGrey(img image.Image, rows, cols int) []float64 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float64, rows*cols)
	const sub = 4
	for i := range rows {
		for j := range cols {
			sum := 0.0
			for si := range sub {
				for sj := range sub {
					y := b.Min.Y + min(h-1, int((float64(i)+(float64(si)+0.5)/sub)*float64(h)/float64(rows)))
					x := b.Min.X + min(w-1, int((float64(j)+(float64(sj)+0.5)/sub)*float64(w)/float64(cols)))
					g := color.Gray16Model.Convert(img.At(x, y)).(color.Gray16)
					sum += float64(g.Y) / 257
				}
			}
			out[i*cols+j] = sum / (sub * sub)
		}
	}
	return out
}
