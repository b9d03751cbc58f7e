package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"
)

// A rounds.csv as confide sim writes it (header abridged): rounds without a central
// evaluation have an empty accuracy and are skipped.
const roundsCSV = `round,failed,accuracy,loss
1,false,0.5,0.69
2,false,,
3,false,0.75,0.4
`

func TestReadColumn(t *testing.T) {
	for _, tc := range []struct {
		column  string
		want    plotter.XYs
		wantErr string
	}{
		{"accuracy", plotter.XYs{{X: 1, Y: 0.5}, {X: 3, Y: 0.75}}, ""},
		{"loss", plotter.XYs{{X: 1, Y: 0.69}, {X: 3, Y: 0.4}}, ""},
		{"epsilon", nil, "no columns round and epsilon"},
	} {
		t.Run(tc.column, func(t *testing.T) {
			got, err := readColumn(strings.NewReader(roundsCSV), tc.column)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("readColumn = %v, %v; want %v", got, err, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("point %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReadColumnWithoutValues(t *testing.T) {
	if _, err := readColumn(strings.NewReader("round,accuracy\n1,\n"), "accuracy"); err == nil {
		t.Fatal("a column without values was accepted")
	}
}

func TestDrawWritesAPNG(t *testing.T) {
	out := filepath.Join(t.TempDir(), "curves.png")
	runs := []run{{name: "a", xy: plotter.XYs{{X: 1, Y: 0.5}, {X: 2, Y: 0.6}}}, {name: "b", xy: plotter.XYs{{X: 1, Y: 0.7}}}}
	if err := draw(out, "t", "accuracy", 0.9, runs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("%s: %d bytes (%v), want a PNG", out, len(b), err)
	}
}
