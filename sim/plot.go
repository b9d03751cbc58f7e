package sim

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// writePlots draws accuracy.png and loss.png (central test set, per round, with the
// contributors' training loss), epsilon.png (the largest ε any client spent, when DP-SGD
// is on) and bytes.png (payload bytes per round, down and up).
func writePlots(dir, name string, initial *evaluation, rows []RoundMetrics, dp bool) error {
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
		label string
		xy    plotter.XYs
		color color.Color
	}
	blue, orange := color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255}
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
		if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, filepath.Join(dir, file)); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		return nil
	}
	if err := draw("accuracy.png", name+": test accuracy", "accuracy", 0, series{"", acc, blue}); err != nil {
		return err
	}
	if err := draw("loss.png", name+": loss", "cross-entropy", 0, series{"test", loss, blue}, series{"train (contributors)", trainLoss, orange}); err != nil {
		return err
	}
	if dp {
		if err := draw("epsilon.png", name+": privacy spent (largest client ε)", "ε", 0, series{"", eps, blue}); err != nil {
			return err
		}
	}
	return draw("bytes.png", name+": payload per round", "MB", 0, series{"down (tasks)", down, blue}, series{"up (results)", up, orange})
}
