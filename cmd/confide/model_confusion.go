package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/confide-fl/confide/metrics"
)

// confusionGrid is a confusion matrix as a heat map's grid: column c is the predicted
// class, row r counts from the bottom (the first true class is drawn at the top), and the
// value is the fraction of the true class's rows predicted as c (its recall on the
// diagonal), so that classes of different sizes share one colour scale.
type confusionGrid struct {
	counts [][]int64
}

func (g confusionGrid) Dims() (c, r int) { return len(g.counts), len(g.counts) }
func (g confusionGrid) X(c int) float64  { return float64(c) }
func (g confusionGrid) Y(r int) float64  { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 {
	row := g.counts[len(g.counts)-1-r]
	var n int64
	for _, v := range row {
		n += v
	}
	if n == 0 {
		return 0
	}
	return float64(row[c]) / float64(n)
}
func (g confusionGrid) Min() float64 { return 0 }
func (g confusionGrid) Max() float64 { return 1 }

// writeConfusionPNG draws rep's confusion matrix as a heat map of row fractions, with the
// counts written in the cells when there are at most 20 classes.
func writeConfusionPNG(path, title string, rep metrics.Report) error {
	k := len(rep.Confusion)
	grid := confusionGrid{rep.Confusion}
	pal := palette.Reverse(moreland.BlackBody()).Palette(64) // light: few rows, dark: most rows
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "predicted class"
	p.Y.Label.Text = "true class"
	p.Add(plotter.NewHeatMap(grid, pal))
	name := func(i int) string {
		if i < len(rep.PerClass) && rep.PerClass[i].Name != "" {
			return rep.PerClass[i].Name
		}
		return fmt.Sprint(i)
	}
	every := max(1, k/20) // label at most about 20 ticks an axis
	var xt, yt []plot.Tick
	for i := 0; i < k; i++ {
		label := ""
		if i%every == 0 {
			label = name(i)
		}
		xt = append(xt, plot.Tick{Value: float64(i), Label: label})
		yt = append(yt, plot.Tick{Value: float64(k - 1 - i), Label: label})
	}
	p.X.Tick.Marker = plot.ConstantTicks(xt)
	p.Y.Tick.Marker = plot.ConstantTicks(yt)
	if k <= 20 {
		var xys plotter.XYLabels
		for r := 0; r < k; r++ {
			for c := 0; c < k; c++ {
				xys.XYs = append(xys.XYs, plotter.XY{X: float64(c), Y: float64(k - 1 - r)})
				xys.Labels = append(xys.Labels, fmt.Sprint(rep.Confusion[r][c]))
			}
		}
		labels, err := plotter.NewLabels(xys)
		if err != nil {
			return err
		}
		for i := range labels.TextStyle {
			st := &labels.TextStyle[i]
			st.Color = color.Black
			if grid.Z(int(xys.XYs[i].X), int(xys.XYs[i].Y)) > 0.5 {
				st.Color = color.White // on a dark cell
			}
			st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
			st.Font.Size = vg.Points(max(5, 11-float64(k)/3))
		}
		p.Add(labels)
	}
	side := vg.Length(10+0.5*float64(min(k, 60))) * vg.Centimeter
	if err := p.Save(side+2*vg.Centimeter, side, path); err != nil {
		return fmt.Errorf("--confusion-png %s: %w", path, err)
	}
	return nil
}
