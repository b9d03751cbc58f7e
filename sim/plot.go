package sim

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plotGuides are the horizontal reference lines of the plots, drawn when configured (> 0):
// the target accuracy on accuracy.png, every client's ε budget on epsilon.png.
type plotGuides struct {
	targetAccuracy, budgetEpsilon float64
}

// guideColor draws the guides (dashed), apart from the series' blue and orange.
var guideColor = color.RGBA{R: 214, G: 39, B: 40, A: 255}

// writePlots draws accuracy.png and loss.png (central test set, per round, with the
// contributors' training loss), epsilon.png (the largest ε any client spent, when DP-SGD
// is on) and bytes.png (payload bytes per round, down and up), with the guides.
func writePlots(dir, name string, initial *evaluation, rows []RoundMetrics, dp bool, guides plotGuides) error {
	var acc, loss, trainLoss, eps, down, up plotter.XYs
	if initial != nil {
		acc = append(acc, plotter.XY{X: 0, Y: initial.accuracy})
		loss = append(loss, plotter.XY{X: 0, Y: initial.loss})
	}
	for _, m := range rows {
		x := float64(m.Round)
		if m.Accuracy != nil {
			acc = append(acc, plotter.XY{X: x, Y: *m.Accuracy})
		}
		if m.Loss != nil {
			loss = append(loss, plotter.XY{X: x, Y: *m.Loss})
		}
		if m.TrainLoss != nil {
			trainLoss = append(trainLoss, plotter.XY{X: x, Y: *m.TrainLoss})
		}
		eps = append(eps, plotter.XY{X: x, Y: m.Epsilon})
		down = append(down, plotter.XY{X: x, Y: float64(m.BytesDown) / 1e6})
		up = append(up, plotter.XY{X: x, Y: float64(m.BytesUp) / 1e6})
	}
	type series struct {
		label  string
		xy     plotter.XYs
		color  color.Color
		dashed bool // a guide: a dashed line without points
	}
	blue, orange := color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255}
	// A guide spans the rounds plotted: from round 0 (the initial model) or 1 to the last.
	x0, x1 := 1.0, 1.0
	if initial != nil {
		x0 = 0
	}
	if len(rows) > 0 {
		x1 = max(x0+1, float64(rows[len(rows)-1].Round))
	}
	guide := func(label string, y float64) series {
		if !(y > 0) {
			return series{}
		}
		return series{label: label, xy: plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, color: guideColor, dashed: true}
	}
	draw := func(file, title, ylabel string, ymin float64, ss ...series) error {
		p := plot.New()
		p.Y.Min = ymin
		p.Title.Text = title
		p.X.Label.Text = "round"
		p.Y.Label.Text = ylabel
		p.Add(plotter.NewGrid())
		for _, s := range ss {
			if len(s.xy) == 0 {
				continue
			}
			if s.dashed {
				l, err := plotter.NewLine(s.xy)
				if err != nil {
					return err
				}
				l.Color, l.Dashes = s.color, []vg.Length{vg.Points(5), vg.Points(3)}
				p.Add(l)
				p.Legend.Add(s.label, l)
				p.Y.Max = max(p.Y.Max, 1.08*s.xy[0].Y) // room above a guide at the top
				continue
			}
			l, pts, err := plotter.NewLinePoints(s.xy)
			if err != nil {
				return err
			}
			l.Color, pts.Color = s.color, s.color
			pts.Radius = vg.Points(1.5)
			p.Add(l, pts)
			if s.label != "" {
				p.Legend.Add(s.label, l, pts)
			}
		}
		p.Legend.Top = true
		// A rising first series leaves the top left free for the legend.
		if xy := ss[0].xy; len(xy) > 1 && xy[len(xy)-1].Y > xy[0].Y {
			p.Legend.Left = true
		}
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, file)); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		return nil
	}
	if err := draw("accuracy.png", name+": test accuracy", "accuracy", 0, series{xy: acc, color: blue},
		guide(fmt.Sprintf("target %.3g", guides.targetAccuracy), guides.targetAccuracy)); err != nil {
		return err
	}
	if err := draw("loss.png", name+": loss", "cross-entropy", 0, series{label: "test", xy: loss, color: blue}, series{label: "train (contributors)", xy: trainLoss, color: orange}); err != nil {
		return err
	}
	if dp {
		if err := draw("epsilon.png", name+": privacy spent (largest client ε)", "ε", 0, series{xy: eps, color: blue},
			guide(fmt.Sprintf("budget ε = %.3g", guides.budgetEpsilon), guides.budgetEpsilon)); err != nil {
			return err
		}
	}
	return draw("bytes.png", name+": payload per round", "MB", 0, series{label: "down (tasks)", xy: down, color: blue}, series{label: "up (results)", xy: up, color: orange})
}
