package explain

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
)

func TestSaliencyPNG(t *testing.T) {
	const rows, cols = 6, 5
	px, vals := make([]float64, rows*cols), make([]float64, rows*cols)
	for i := range px {
		px[i] = float64(i % 3)
		vals[i] = float64(i - rows*cols/2)
	}
	var buf bytes.Buffer
	if err := SaliencyPNG(&buf, rows, cols, []ImageAttribution{{Title: "a", Pixels: px, Values: vals}, {Title: "b", Pixels: px, Values: vals}}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < b.Dy() {
		t.Fatalf("three panels side by side, two examples: %v is taller than wide", b)
	}
	if err := SaliencyPNG(&buf, rows, cols, []ImageAttribution{{Pixels: px, Values: vals[1:]}}); err == nil {
		t.Fatal("mismatched sizes: no error")
	}
}

func TestDivergingColours(t *testing.T) {
	if c := diverging(1, 1); c.R <= c.B {
		t.Fatalf("positive attribution %v is not red", c)
	}
	if c := diverging(-1, 1); c.B <= c.R {
		t.Fatalf("negative attribution %v is not blue", c)
	}
	if c := tokenColour(0, 1); c.R != 255 || c.G != 255 || c.B != 255 {
		t.Fatalf("zero attribution %v is not white", c)
	}
}

func TestAttentionPNG(t *testing.T) {
	tokens := []string{"free", "money", "<unknown>", "averyveryverylongtoken"}
	L := len(tokens)
	w := make([]float64, L*L)
	for q := range L {
		for k := range L {
			w[q*L+k] = 1 / float64(L)
		}
	}
	var buf bytes.Buffer
	panels := []AttentionPanel{{Title: "layer 1, head 1", Weights: w}, {Title: "layer 1, head 2", Weights: w}, {Title: "layer 2, mean", Weights: w}}
	if err := AttentionPNG(&buf, tokens, panels, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := AttentionPNG(&buf, tokens[:3], panels, 2); err == nil {
		t.Fatal("map of 4×4 with 3 tokens: no error")
	}
}

func TestTokenHTMLAndPNG(t *testing.T) {
	texts := []TokenAttribution{{Title: "mail <1>", Tokens: []string{"click", "<b>here</b>", "now"}, Values: []float64{0.5, -0.25, 0}}}
	var buf bytes.Buffer
	if err := TokenHTML(&buf, "spam & ham", texts); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"&lt;b&gt;here&lt;/b&gt;", "mail &lt;1&gt;", "spam &amp; ham", `title="-0.25"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>here") {
		t.Error("a token is not escaped")
	}
	buf.Reset()
	if err := TokenPNG(&buf, texts); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	if err := TokenPNG(&buf, []TokenAttribution{{Tokens: []string{"a"}}}); err == nil {
		t.Fatal("1 token, 0 attributions: no error")
	}
}
