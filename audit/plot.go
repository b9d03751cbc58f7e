package audit

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WritePlot draws the bound of every candidate of b's sweep against its number of guesses,
// one line per strategy, with the claimed ε as a horizontal line when it is finite (claimed
// nil: no DP), and saves it as a PNG at path.
func WritePlot(path, title string, b Bound, claimed *float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "guesses"
	p.Y.Label.Text = fmt.Sprintf("ε lower bound (%.0f%% confidence)", 100*b.Confidence)
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	colors := map[Strategy]color.Color{
		TopOnly:      color.RGBA{R: 31, G: 119, B: 180, A: 255},
		TopAndBottom: color.RGBA{R: 255, G: 127, B: 14, A: 255},
	}
	labels := map[Strategy]string{TopOnly: "guess 'in' for the top scores", TopAndBottom: "guess 'in' for the top, 'out' for the bottom"}
	top := 0.0
	for _, s := range []Strategy{TopOnly, TopAndBottom} {
		var xy plotter.XYs
		for _, pt := range b.Curve {
			if pt.Strategy == s {
				xy = append(xy, plotter.XY{X: float64(pt.Guesses), Y: pt.EpsilonLower})
				top = math.Max(top, pt.EpsilonLower)
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, pts.Color = colors[s], colors[s]
		pts.Radius = vg.Points(2)
		p.Add(l, pts)
		p.Legend.Add(labels[s], l, pts)
	}
	if claimed != nil && !math.IsInf(*claimed, 0) && !math.IsNaN(*claimed) {
		f := plotter.NewFunction(func(float64) float64 { return *claimed })
		f.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		f.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(f)
		p.Legend.Add(fmt.Sprintf("claimed ε = %.3g", *claimed), f)
		top = math.Max(top, *claimed)
	}
	p.X.Min, p.X.Max = 0, float64(b.Canaries)
	p.Y.Max = math.Max(1, 1.35*top)
	p.Legend.Top = true
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, path); err != nil {
		return fmt.Errorf("audit: plot %s: %w", path, err)
	}
	return nil
}
