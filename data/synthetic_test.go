package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestSynthetic(t *testing.T) {
	cases := []struct {
		opts SyntheticOptions
		name string
	}{
		{SyntheticOptions{Alpha: 0, Beta: 0}, "synthetic(0,0)"},
		{SyntheticOptions{Alpha: 0.5, Beta: 0.5}, "synthetic(0.5,0.5)"},
		{SyntheticOptions{Alpha: 1, Beta: 1}, "synthetic(1,1)"},
		{SyntheticOptions{IID: true}, "synthetic-iid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, parts, err := Synthetic(c.opts, rand.New(rand.NewPCG(1, 0)))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			if d.Name != c.name || d.Dim != 60 || d.NumClasses != 10 || len(parts) != 30 || len(d.GroupNames) != 30 || d.GroupNames[29] != "f_00029" {
				t.Fatalf("name %q dim %d classes %d devices %d", d.Name, d.Dim, d.NumClasses, len(parts))
			}
			checkExactCover(t, parts, d.N)
			natural, err := PartitionNatural(d.Group, d.NumGroups())
			if err != nil || fmt.Sprint(natural) != fmt.Sprint(parts) {
				t.Fatalf("returned partition differs from the natural one by Group: %v", err)
			}
			for k, p := range parts {
				if len(p) < 50 {
					t.Errorf("device %d has %d examples, want ≥ 50", k, len(p))
				}
			}
			d2, _, _ := Synthetic(c.opts, rand.New(rand.NewPCG(1, 0)))
			if !slices.Equal(d.X, d2.X) || !slices.Equal(d.Y, d2.Y) {
				t.Fatal("same seed, different data")
			}
		})
	}
}

// TestSyntheticStatistics checks the distributional claims of the construction over
// many devices: sizes follow ⌊LogNormal(4, 2)⌋ + 50, feature j of x has variance
// j^(−1.2) around the device mean, and a model per device skews the label mixes.
func TestSyntheticStatistics(t *testing.T) {
	d, parts, err := Synthetic(SyntheticOptions{Alpha: 1, Beta: 1, NumDevices: 400}, rand.New(rand.NewPCG(2, 0)))
	if err != nil {
		t.Fatal(err)
	}
	// The median of LogNormal(4, 2) is e^4 ≈ 54.6, so the median size is about 104.
	sizes := make([]int, len(parts))
	for k, p := range parts {
		sizes[k] = len(p)
	}
	slices.Sort(sizes)
	if med := sizes[len(sizes)/2]; med < 90 || med > 120 {
		t.Errorf("median device size %d, want ≈ 104", med)
	}
	if sizes[len(sizes)-1] < 10*sizes[len(sizes)/2] {
		t.Errorf("largest device %d is not heavy-tailed against median %d", sizes[len(sizes)-1], sizes[len(sizes)/2])
	}
	// Within-device variance of features 1 and 10 (0-based 0 and 9), pooled.
	for _, j := range []int{0, 9} {
		var ss float64
		var n int
		for _, p := range parts {
			var m float64
			for _, i := range p {
				m += d.X[i*d.Dim+j]
			}
			m /= float64(len(p))
			for _, i := range p {
				e := d.X[i*d.Dim+j] - m
				ss += e * e
			}
			n += len(p) - 1
		}
		want := math.Pow(float64(j+1), -1.2)
		if got := ss / float64(n); math.Abs(got-want) > 0.05*want {
			t.Errorf("feature %d: within-device variance %.4f, want %.4f", j+1, got, want)
		}
	}

	skew := func(opts SyntheticOptions) float64 {
		opts.NumDevices = 100
		d, parts, err := Synthetic(opts, rand.New(rand.NewPCG(3, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return LabelSkew(d.Y, d.NumClasses, parts)
	}
	iid, s00, s11 := skew(SyntheticOptions{IID: true}), skew(SyntheticOptions{}), skew(SyntheticOptions{Alpha: 1, Beta: 1})
	t.Logf("mean label TV: iid %.3f, (0,0) %.3f, (1,1) %.3f", iid, s00, s11)
	if iid > 0.15 || s00 < 0.5 || s11 < 0.5 {
		t.Errorf("mean label TV iid %.3f, (0,0) %.3f, (1,1) %.3f: want ≤ 0.15 for iid, ≥ 0.5 with a model per device", iid, s00, s11)
	}
}

// TestSyntheticAlphaLeavesLabels pins a property of the construction: u_k shifts every
// entry of W_k and b_k alike, adding u_k(Σx + 1) to every logit, so with the same draws
// the labels do not depend on α.
func TestSyntheticAlphaLeavesLabels(t *testing.T) {
	a, _, _ := Synthetic(SyntheticOptions{Alpha: 0, Beta: 1}, rand.New(rand.NewPCG(4, 0)))
	b, _, _ := Synthetic(SyntheticOptions{Alpha: 5, Beta: 1}, rand.New(rand.NewPCG(4, 0)))
	if !slices.Equal(a.X, b.X) {
		t.Fatal("α changed the inputs")
	}
	differ := 0
	for i := range a.Y {
		if a.Y[i] != b.Y[i] {
			differ++
		}
	}
	// Only rounding can break a near tie.
	if differ > a.N/1000 {
		t.Errorf("%d of %d labels differ between α = 0 and α = 5", differ, a.N)
	}
}

func TestSyntheticErrors(t *testing.T) {
	cases := []struct {
		opts SyntheticOptions
		want string
	}{
		{SyntheticOptions{Alpha: -1}, "α = -1"},
		{SyntheticOptions{Beta: math.NaN()}, "β = NaN"},
		{SyntheticOptions{NumClasses: 1}, "1 classes"},
		{SyntheticOptions{NumDevices: -3}, "-3 devices"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, _, err := Synthetic(c.opts, rand.New(rand.NewPCG(1, 0)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
