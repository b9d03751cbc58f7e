package explain

import (
	"fmt"
	"html"
	"image"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Drawing: attributions are coloured on one diverging scale centred at zero (Moreland's
// blue–red), red for evidence for the explained class and blue against, the scale's ends
// at ± the largest |attribution| of the example, so every example uses its full range.

// ImageAttribution is one image and its attributions, for SaliencyPNG.
type ImageAttribution struct {
	// Title names the example (e.g. its index, label and prediction).
	Title string
	// Pixels are the rows×cols grey levels as the model reads them (drawn from their
	// minimum, black, to their maximum, white); Values their attributions.
	Pixels, Values []float64
}

// pixelScale is the side, in image pixels, of one input pixel in SaliencyPNG.
const pixelScale = 8

// SaliencyPNG draws one row per example: the image, its attributions, and the
// attributions over the image (side by side, then overlaid), as a PNG.
func SaliencyPNG(w io.Writer, rows, cols int, examples []ImageAttribution) error {
	if len(examples) == 0 {
		return fmt.Errorf("explain: no examples to draw")
	}
	for i, e := range examples {
		if len(e.Pixels) != rows*cols || len(e.Values) != rows*cols {
			return fmt.Errorf("explain: example %d has %d pixels and %d attributions, want %d×%d", i, len(e.Pixels), len(e.Values), rows, cols)
		}
	}
	grid := make([][]*plot.Plot, len(examples))
	for i, e := range examples {
		scale := maxAbs(e.Values)
		grey := greyImage(e.Pixels, rows, cols)
		heat := attributionImage(e.Values, rows, cols, scale, nil)
		over := attributionImage(e.Values, rows, cols, scale, e.Pixels)
		grid[i] = []*plot.Plot{
			imagePlot(grey, rows, cols, e.Title),
			imagePlot(heat, rows, cols, fmt.Sprintf("attributions (red +, blue −; ±%.3g)", scale)),
			imagePlot(over, rows, cols, "overlay"),
		}
	}
	side := vg.Length(max(cols, rows)*pixelScale) * vg.Inch / vgimg.DefaultDPI
	return drawGrid(w, grid, 3*(side+vg.Centimeter), vg.Length(len(examples))*(side+1.5*vg.Centimeter))
}

// AttentionPanel is one attention map for AttentionPNG.
type AttentionPanel struct {
	Title string
	// Weights is L×L (rows: query positions, columns: key positions).
	Weights []float64
}

// maxLabel bounds a token label's characters on the attention maps' axes.
const maxLabel = 14

// AttentionPNG draws attention maps of L tokens (labelled on both axes: queries down the
// side, keys along the bottom), the panels in rows of at most perRow, as a PNG.
func AttentionPNG(w io.Writer, tokens []string, panels []AttentionPanel, perRow int) error {
	L := len(tokens)
	if len(panels) == 0 || L == 0 {
		return fmt.Errorf("explain: no attention maps to draw")
	}
	for i, p := range panels {
		if len(p.Weights) != L*L {
			return fmt.Errorf("explain: attention map %d has %d weights, want %d×%d", i, len(p.Weights), L, L)
		}
	}
	perRow = max(1, min(perRow, len(panels)))
	labels := make([]string, L)
	for i, t := range tokens {
		labels[i] = shortToken(t)
	}
	pal := palette.Reverse(moreland.BlackBody()).Palette(64)
	var grid [][]*plot.Plot
	for i, p := range panels {
		if i%perRow == 0 {
			grid = append(grid, nil)
		}
		pl := plot.New()
		pl.Title.Text = fmt.Sprintf("%s\ndarkest: weight %.2f", p.Title, maxAbs(p.Weights))
		pl.X.Label.Text = "key token"
		pl.Y.Label.Text = "query token"
		hm := plotter.NewHeatMap(attentionGrid{w: p.Weights, n: L, max: max(maxAbs(p.Weights), 1e-12)}, pal)
		pl.Add(hm)
		var xt, yt []plot.Tick
		for t, lab := range labels {
			xt = append(xt, plot.Tick{Value: float64(t), Label: lab})
			yt = append(yt, plot.Tick{Value: float64(L - 1 - t), Label: lab})
		}
		pl.X.Tick.Marker = plot.ConstantTicks(xt)
		pl.Y.Tick.Marker = plot.ConstantTicks(yt)
		pl.X.Tick.Label.Rotation = math.Pi / 2
		pl.X.Tick.Label.XAlign, pl.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
		size := vg.Points(max(5, min(9, 400/float64(L))))
		pl.X.Tick.Label.Font.Size, pl.Y.Tick.Label.Font.Size = size, size
		grid[len(grid)-1] = append(grid[len(grid)-1], pl)
	}
	for len(grid[len(grid)-1]) < perRow { // empty panels keep the last row's alignment
		grid[len(grid)-1] = append(grid[len(grid)-1], nil)
	}
	side := vg.Length(6+0.3*float64(L)) * vg.Centimeter
	return drawGrid(w, grid, vg.Length(perRow)*side, vg.Length(len(grid))*side)
}

// attentionGrid is an L×L map as a heat map's grid: column c is key c, row r counts from
// the bottom, so the first query is drawn at the top. The colours span 0 to the map's
// largest weight: over many keys the weights are small, and a 0–1 scale would hide them.
type attentionGrid struct {
	w   []float64
	n   int
	max float64
}

func (g attentionGrid) Dims() (c, r int)   { return g.n, g.n }
func (g attentionGrid) X(c int) float64    { return float64(c) }
func (g attentionGrid) Y(r int) float64    { return float64(r) }
func (g attentionGrid) Z(c, r int) float64 { return g.w[(g.n-1-r)*g.n+c] }
func (g attentionGrid) Min() float64       { return 0 }
func (g attentionGrid) Max() float64       { return 1 }

// TokenAttribution is one text and the attribution of each of its tokens, for TokenHTML
// and TokenPNG.
type TokenAttribution struct {
	Title  string
	Tokens []string
	Values []float64
}

func (t TokenAttribution) check() error {
	if len(t.Tokens) != len(t.Values) {
		return fmt.Errorf("explain: %d tokens and %d attributions", len(t.Tokens), len(t.Values))
	}
	return nil
}

// TokenHTML writes a self-contained HTML page with one paragraph per text, every token a
// span coloured by its attribution (its value in the span's title).
func TokenHTML(w io.Writer, title string, texts []TokenAttribution) error {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n", html.EscapeString(title))
	b.WriteString("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.9}span.t{padding:1px 2px;border-radius:3px}</style>\n</head><body>\n")
	fmt.Fprintf(&b, "<h1>%s</h1>\n<p>Red: evidence for the explained class, blue: against; the colour's strength is the token's share of the text's largest |attribution|.</p>\n", html.EscapeString(title))
	for _, t := range texts {
		if err := t.check(); err != nil {
			return err
		}
		scale := maxAbs(t.Values)
		fmt.Fprintf(&b, "<h2>%s</h2>\n<p>", html.EscapeString(t.Title))
		for i, tok := range t.Tokens {
			c := tokenColour(t.Values[i], scale)
			fmt.Fprintf(&b, "<span class=\"t\" style=\"background:rgb(%d,%d,%d)\" title=\"%.4g\">%s</span> ", c.R, c.G, c.B, t.Values[i], html.EscapeString(tok))
		}
		b.WriteString("</p>\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// TokenPNG draws the texts as TokenHTML does, wrapped at a fixed width, as a PNG.
func TokenPNG(w io.Writer, texts []TokenAttribution) error {
	if len(texts) == 0 {
		return fmt.Errorf("explain: no texts to draw")
	}
	const (
		width  = 18 * vg.Centimeter
		margin = 0.5 * vg.Centimeter
	)
	body := textStyle(10)
	head := textStyle(11)
	lineH := body.Height("Mg") * 1.5
	// Lay every text out first: the canvas's height must be known before drawing.
	type placed struct {
		x, y vg.Length // from the top left
		tok  string
		c    color.RGBA
	}
	var items []placed
	var titles []placed
	y := margin
	for _, t := range texts {
		if err := t.check(); err != nil {
			return err
		}
		titles = append(titles, placed{x: margin, y: y, tok: t.Title})
		y += head.Height(t.Title) * 1.6
		scale := maxAbs(t.Values)
		x := margin
		for i, tok := range t.Tokens {
			tw := body.Width(tok) + 3
			if x+tw > width-margin && x > margin {
				x, y = margin, y+lineH
			}
			items = append(items, placed{x: x, y: y, tok: tok, c: tokenColour(t.Values[i], scale)})
			x += tw + body.Width(" ")
		}
		y += lineH * 2
	}
	height := y + margin
	img := vgimg.New(width, height)
	dc := draw.New(img)
	top := func(p placed, h vg.Length) vg.Point { return vg.Point{X: p.x, Y: height - p.y - h} }
	for _, p := range titles {
		dc.FillText(head, top(p, head.Height(p.tok)), p.tok)
	}
	for _, p := range items {
		h := body.Height(p.tok)
		o := top(p, h)
		tw := body.Width(p.tok) + 3
		dc.FillPolygon(p.c, []vg.Point{{X: o.X, Y: o.Y - 2}, {X: o.X + tw, Y: o.Y - 2}, {X: o.X + tw, Y: o.Y + h + 1}, {X: o.X, Y: o.Y + h + 1}})
		dc.FillText(body, vg.Point{X: o.X + 1.5, Y: o.Y}, p.tok)
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func textStyle(size float64) text.Style {
	return text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(size)), XAlign: draw.XLeft, YAlign: draw.YBottom, Handler: plot.DefaultTextHandler}
}

// tokenColour is white blended toward the diverging scale's colour of v by |v|/scale.
func tokenColour(v, scale float64) color.RGBA {
	c := diverging(v, scale)
	t := 0.0
	if scale > 0 {
		t = math.Min(1, math.Abs(v)/scale)
	}
	mix := func(a uint8) uint8 { return uint8(math.Round(255*(1-t) + float64(a)*t)) }
	return color.RGBA{R: mix(c.R), G: mix(c.G), B: mix(c.B), A: 255}
}

// diverging returns the blue–red colour of v on the scale [−scale, scale].
func diverging(v, scale float64) color.RGBA {
	cm := moreland.SmoothBlueRed()
	if scale <= 0 {
		scale = 1
	}
	cm.SetMin(-scale)
	cm.SetMax(scale)
	c, err := cm.At(math.Max(-scale, math.Min(scale, v)))
	if err != nil {
		return color.RGBA{R: 255, G: 255, B: 255, A: 255}
	}
	r, g, b, _ := c.RGBA()
	return color.RGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 255}
}

// greyImage returns the pixels as a grey image, pixelScale times enlarged, from their
// minimum (black) to their maximum (white).
func greyImage(px []float64, rows, cols int) image.Image {
	lo, hi := minMax(px)
	img := image.NewRGBA(image.Rect(0, 0, cols*pixelScale, rows*pixelScale))
	for r := range rows {
		for c := range cols {
			g := greyLevel(px[r*cols+c], lo, hi)
			fillPixel(img, r, c, color.RGBA{R: g, G: g, B: g, A: 255})
		}
	}
	return img
}

func greyLevel(v, lo, hi float64) uint8 {
	if hi <= lo {
		return 0
	}
	return uint8(math.Round(255 * (v - lo) / (hi - lo)))
}

// attributionImage colours the attributions on the diverging scale; over the pixels, when
// given, a pixel's colour is its grey level blended toward its attribution's colour by
// |attribution|/scale.
func attributionImage(vals []float64, rows, cols int, scale float64, over []float64) image.Image {
	lo, hi := minMax(over)
	img := image.NewRGBA(image.Rect(0, 0, cols*pixelScale, rows*pixelScale))
	for r := range rows {
		for c := range cols {
			v := vals[r*cols+c]
			col := diverging(v, scale)
			if over != nil {
				g := float64(greyLevel(over[r*cols+c], lo, hi)) * 0.6 // dimmed so colour shows on white strokes
				t := 0.0
				if scale > 0 {
					t = math.Min(1, math.Abs(v)/scale)
				}
				mix := func(a uint8) uint8 { return uint8(math.Round(g*(1-t) + float64(a)*t)) }
				col = color.RGBA{R: mix(col.R), G: mix(col.G), B: mix(col.B), A: 255}
			}
			fillPixel(img, r, c, col)
		}
	}
	return img
}

func fillPixel(img *image.RGBA, r, c int, col color.RGBA) {
	for y := r * pixelScale; y < (r+1)*pixelScale; y++ {
		for x := c * pixelScale; x < (c+1)*pixelScale; x++ {
			img.SetRGBA(x, y, col)
		}
	}
}

// imagePlot is a plot showing img alone, with a title.
func imagePlot(img image.Image, rows, cols int, title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.HideAxes()
	p.Add(plotter.NewImage(img, 0, 0, float64(cols), float64(rows)))
	return p
}

// drawGrid draws plots (nil cells stay empty) into a width×height PNG.
func drawGrid(w io.Writer, grid [][]*plot.Plot, width, height vg.Length) error {
	img := vgimg.New(width, height)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(grid), Cols: len(grid[0]), PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align(grid, t, dc)
	for i, row := range grid {
		for j, p := range row {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// shortToken is a token as an axis label: at most maxLabel characters.
func shortToken(t string) string {
	r := []rune(t)
	if len(r) > maxLabel {
		return string(r[:maxLabel-1]) + "…"
	}
	return t
}

// minMax returns the least and the largest of v (+Inf and −Inf when v is empty).
func minMax(v []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
