package sim

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// guidePixels counts the pixels of the guides' colour in a PNG.
func guidePixels(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if sameColour(img, x, y) {
				n++
			}
		}
	}
	return n
}

// sameColour says the pixel is the guides' red, lightened by antialiasing: far more red
// than green and blue, which are about equal (unlike the series' blue and orange).
func sameColour(img image.Image, x, y int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	r, g, b = r>>8, g>>8, b>>8
	return r > 150 && r > g+70 && max(g, b)-min(g, b) < 40
}

// The accuracy plot draws the target accuracy and the ε plot every client's budget, when
// they are configured, and nothing of the guides' colour otherwise.
func TestPlotsDrawTheTargetAndTheBudget(t *testing.T) {
	var rows []RoundMetrics
	for r := 1; r <= 10; r++ {
		acc := 0.5 + 0.04*float64(r)
		rows = append(rows, RoundMetrics{Round: r, Accuracy: &acc, Epsilon: 0.5 * float64(r)})
	}
	for _, tc := range []struct {
		name   string
		guides plotGuides
		want   map[string]bool // file → has a guide
	}{
		{"none", plotGuides{}, map[string]bool{"accuracy.png": false, "epsilon.png": false}},
		{"target", plotGuides{targetAccuracy: 0.8}, map[string]bool{"accuracy.png": true, "epsilon.png": false}},
		{"budget", plotGuides{budgetEpsilon: 8}, map[string]bool{"accuracy.png": false, "epsilon.png": true}},
		{"both", plotGuides{targetAccuracy: 0.8, budgetEpsilon: 8}, map[string]bool{"accuracy.png": true, "epsilon.png": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writePlots(dir, "test", &evaluation{accuracy: 0.1, loss: 2.3}, rows, true, tc.guides); err != nil {
				t.Fatal(err)
			}
			for file, want := range tc.want {
				// A dashed line across the plot is hundreds of pixels; a legend swatch alone is not.
				if n := guidePixels(t, filepath.Join(dir, file)); (n > 200) != want {
					t.Errorf("%s: %d pixels of the guides' colour, want a guide: %v", file, n, want)
				}
			}
		})
	}
}
