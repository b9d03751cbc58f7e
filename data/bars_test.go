package data

import (
	"math/rand/v2"
	"testing"
)

// TestBarsAreValidImagesOfBothClasses: Bars returns a valid dataset of 8×8 images with a
// bar of ones along a row (class 0) or a column (class 1).
func TestBarsAreValidImagesOfBothClasses(t *testing.T) {
	ds := Bars(200, rand.New(rand.NewPCG(1, 2)))
	if err := ds.Validate(); err != nil {
		t.Fatal(err)
	}
	count := [2]int{}
	for i := 0; i < ds.N; i++ {
		img := ds.X[64*i : 64*(i+1)]
		c := ds.Y[i]
		count[c]++
		// The brightest line of the image is a row for class 0, a column for class 1.
		bestRow, bestCol := 0.0, 0.0
		for a := 0; a < 8; a++ {
			r, col := 0.0, 0.0
			for b := 0; b < 8; b++ {
				r += img[a*8+b]
				col += img[b*8+a]
			}
			bestRow, bestCol = max(bestRow, r), max(bestCol, col)
		}
		if (c == 0) != (bestRow > bestCol) {
			t.Fatalf("example %d of class %d: brightest row %.2f, column %.2f", i, c, bestRow, bestCol)
		}
	}
	if count[0] < 70 || count[1] < 70 {
		t.Fatalf("class counts %v of 200", count)
	}
}
