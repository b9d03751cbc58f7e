// Command plotcurves draws the per-round test accuracy of several `confide sim` runs into one
// PNG, reading each run's rounds.csv (the column named accuracy; rounds without a central
// evaluation are skipped). scripts/sweep-spam.sh uses it to overlay strategies:
//
//	go run ./scripts/plotcurves -o curves.png -title "…" -target 0.9 fedavg=a/rounds.csv scaffold=b/rounds.csv
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func main() {
	out := flag.String("o", "curves.png", "the PNG to write")
	title := flag.String("title", "test accuracy", "the plot's title")
	column := flag.String("column", "accuracy", "the rounds.csv column to draw")
	target := flag.Float64("target", 0, "draw a dashed line at this value (0: none)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: plotcurves [flags] NAME=rounds.csv ...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var runs []run
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok || name == "" || path == "" {
			fmt.Fprintf(os.Stderr, "plotcurves: %q: want NAME=rounds.csv\n", arg)
			os.Exit(2)
		}
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "plotcurves: %v\n", err)
			os.Exit(1)
		}
		xy, err := readColumn(f, *column)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "plotcurves: %s: %v\n", path, err)
			os.Exit(1)
		}
		runs = append(runs, run{name: name, xy: xy})
	}
	if err := draw(*out, *title, *column, *target, runs); err != nil {
		fmt.Fprintf(os.Stderr, "plotcurves: %v\n", err)
		os.Exit(1)
	}
}

// run is one curve: a run's name and its (round, value) points.
type run struct {
	name string
	xy   plotter.XYs
}

// readColumn reads the rows of a rounds.csv with a value in column, as (round, value).
func readColumn(r io.Reader, column string) (plotter.XYs, error) {
	rd := csv.NewReader(r)
	header, err := rd.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	ri, ci := slices.Index(header, "round"), slices.Index(header, column)
	if ri < 0 || ci < 0 {
		return nil, fmt.Errorf("no columns round and %s in the header %v", column, header)
	}
	var xy plotter.XYs
	for {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec[ci] == "" {
			continue // no evaluation this round
		}
		x, err1 := strconv.ParseFloat(rec[ri], 64)
		y, err2 := strconv.ParseFloat(rec[ci], 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(xy)+2, err)
		}
		xy = append(xy, plotter.XY{X: x, Y: y})
	}
	if len(xy) == 0 {
		return nil, fmt.Errorf("no values in column %s", column)
	}
	return xy, nil
}

// palette is matplotlib's tab10, the colours of the sim's own plots.
var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
	color.RGBA{R: 140, G: 86, B: 75, A: 255},
	color.RGBA{R: 227, G: 119, B: 194, A: 255},
}

func draw(file, title, ylabel string, target float64, runs []run) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "round"
	p.Y.Label.Text = ylabel
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	last := 1.0
	for i, r := range runs {
		l, pts, err := plotter.NewLinePoints(r.xy)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		c := palette[i%len(palette)]
		l.Color, pts.Color, pts.Radius = c, c, vg.Points(1.5)
		p.Add(l, pts)
		p.Legend.Add(r.name, l, pts)
		last = max(last, r.xy[len(r.xy)-1].X)
	}
	if target > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: target}, {X: last, Y: target}})
		if err != nil {
			return err
		}
		l.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("target %.3g", target), l)
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.YOffs = vg.Points(10)
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, file); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
