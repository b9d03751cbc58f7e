package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func denseFixture() *Dataset {
	return &Dataset{
		Name: "dense", N: 4, Dim: 2, Shape: []int{1, 2},
		X:          []float64{0, 1, 10, 11, 20, 21, 30, 31},
		Y:          []int32{0, 1, 2, 1},
		NumClasses: 3, ClassNames: []string{"a", "b", "c"},
		Group: []int32{0, 0, 1, 1}, GroupNames: []string{"g0", "g1"},
	}
}

func textFixture() *Dataset {
	return &Dataset{
		Name: "text", N: 3, SeqLen: 3, VocabSize: 5,
		Tokens:  []int32{2, 3, 4, 2, 0, 0, 4, 4, 0},
		Lengths: []int32{3, 1, 2},
		Targets: []int32{3, 4, 2, 3, -1, -1, 4, 2, -1},
		Task:    TaskNextToken,
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(d *Dataset)
		text   bool
		want   string // "" for valid
	}{
		{"dense valid", func(d *Dataset) {}, false, ""},
		{"text valid", func(d *Dataset) {}, true, ""},
		{"negative N", func(d *Dataset) { d.N = -1 }, false, "negative"},
		{"both forms", func(d *Dataset) { d.SeqLen = 3 }, false, "both"},
		{"no features", func(d *Dataset) { d.X, d.Dim = nil, 0 }, false, "no features"},
		{"X length", func(d *Dataset) { d.X = d.X[:7] }, false, "len(X) = 7"},
		{"shape", func(d *Dataset) { d.Shape = []int{3} }, false, "Shape [3]"},
		{"NaN feature", func(d *Dataset) { d.X[5] = math.NaN() }, false, "example 2, feature 1"},
		{"label range", func(d *Dataset) { d.Y[3] = 3 }, false, "Y[3] = 3"},
		{"class names", func(d *Dataset) { d.ClassNames = d.ClassNames[:2] }, false, "ClassNames"},
		{"no classes", func(d *Dataset) { d.NumClasses = 0 }, false, "NumClasses = 0"},
		{"group range", func(d *Dataset) { d.Group[1] = 2 }, false, "Group[1] = 2"},
		{"group length", func(d *Dataset) { d.Group = d.Group[:1] }, false, "len(Group)"},
		{"unknown task", func(d *Dataset) { d.Task = 7 }, false, "unknown Task"},
		{"token range", func(d *Dataset) { d.Tokens[1] = 5 }, true, "Tokens[0][1] = 5"},
		{"pad after length", func(d *Dataset) { d.Tokens[4] = 2 }, true, "want PadID"},
		{"length range", func(d *Dataset) { d.Lengths[2] = 4 }, true, "Lengths[2] = 4"},
		{"target past length", func(d *Dataset) { d.Targets[8] = 1 }, true, "Targets[2][2] = 1"},
		{"target range", func(d *Dataset) { d.Targets[0] = 9 }, true, "Targets[0][0] = 9"},
		{"targets length", func(d *Dataset) { d.Targets = d.Targets[:3] }, true, "len(Targets)"},
		{"Y on next-token", func(d *Dataset) { d.Y = []int32{0, 0, 0} }, true, "Y set"},
		{"vocab", func(d *Dataset) { d.VocabSize = 0 }, true, "VocabSize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := denseFixture()
			if c.text {
				d = textFixture()
			}
			c.mutate(d)
			err := d.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestSubset(t *testing.T) {
	d := denseFixture()
	before := fmt.Sprintf("%+v", *d)
	s := d.Subset([]int{3, 1, 3})
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.N != 3 || !slices.Equal(s.X, []float64{30, 31, 10, 11, 30, 31}) || !slices.Equal(s.Y, []int32{1, 1, 1}) || !slices.Equal(s.Group, []int32{1, 0, 1}) {
		t.Fatalf("subset = %+v", *s)
	}
	s.X[0], s.ClassNames[0], s.Shape[0] = -1, "z", 9
	if after := fmt.Sprintf("%+v", *d); after != before {
		t.Fatalf("writing the subset changed the source:\n%s\n%s", before, after)
	}

	tx := textFixture().Subset([]int{2, 0})
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tx.Tokens, []int32{4, 4, 0, 2, 3, 4}) || !slices.Equal(tx.Targets, []int32{4, 2, -1, 3, 4, 2}) || !slices.Equal(tx.Lengths, []int32{2, 3}) {
		t.Fatalf("text subset = %+v", *tx)
	}
	if e := d.Subset(nil); e.N != 0 || e.Validate() != nil {
		t.Fatalf("empty subset: %+v %v", *e, e.Validate())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Subset with an index out of range did not panic")
		}
	}()
	d.Subset([]int{4})
}

func TestBatchIterator(t *testing.T) {
	cases := []struct {
		n, size  int
		dropLast bool
		shuffle  bool
		batches  int
	}{
		{10, 3, false, false, 4},
		{10, 3, true, false, 3},
		{10, 5, true, true, 2},
		{10, 20, false, true, 1},
		{10, 20, true, true, 0},
		{0, 4, false, true, 0},
		{7, 1, false, true, 7},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("n=%d/size=%d/dropLast=%v/shuffle=%v", c.n, c.size, c.dropLast, c.shuffle), func(t *testing.T) {
			it, err := NewBatchIterator(c.n, c.size, c.dropLast)
			if err != nil {
				t.Fatal(err)
			}
			if it.NumBatches() != c.batches {
				t.Errorf("NumBatches = %d, want %d", it.NumBatches(), c.batches)
			}
			var rng *rand.Rand
			if c.shuffle {
				rng = rand.New(rand.NewPCG(1, 2))
			}
			for epoch := 0; epoch < 2; epoch++ {
				it.Reset(rng)
				var seen []int
				nb := 0
				for b, ok := it.Next(); ok; b, ok = it.Next() {
					nb++
					if len(b) > c.size || (c.dropLast && len(b) != c.size) {
						t.Fatalf("batch of %d", len(b))
					}
					seen = append(seen, b...)
				}
				if nb != c.batches {
					t.Fatalf("epoch %d: %d batches, want %d", epoch, nb, c.batches)
				}
				want := c.n
				if c.dropLast {
					want = c.n / c.size * c.size
				}
				if len(seen) != want {
					t.Fatalf("epoch %d: %d indices, want %d", epoch, len(seen), want)
				}
				slices.Sort(seen)
				if len(slices.Compact(seen)) != len(seen) {
					t.Fatalf("epoch %d: repeated index in %v", epoch, seen)
				}
			}
		})
	}
	if _, err := NewBatchIterator(5, 0, false); err == nil {
		t.Error("batch size 0 accepted")
	}
}

func TestBatchesDeterministic(t *testing.T) {
	run := func() [][]int {
		var out [][]int
		for b := range Batches(50, 7, false, rand.New(rand.NewPCG(42, 0))) {
			out = append(out, slices.Clone(b))
		}
		return out
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("same seed gave different batches")
	}
	var seq []int
	for b := range Batches(5, 2, false, nil) {
		seq = append(seq, b...)
	}
	if !slices.Equal(seq, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("nil rng order = %v", seq)
	}
}

func TestGather(t *testing.T) {
	d := denseFixture()
	var b Batch
	d.Gather(&b, []int{2, 0})
	if b.N != 2 || !slices.Equal(b.X, []float64{20, 21, 0, 1}) || !slices.Equal(b.Y, []int32{2, 0}) || b.Tokens != nil || b.Targets != nil {
		t.Fatalf("dense batch = %+v", b)
	}
	x0 := &b.X[0]
	d.Gather(&b, []int{1})
	if &b.X[0] != x0 || !slices.Equal(b.X, []float64{10, 11}) {
		t.Fatal("smaller batch did not reuse the buffer")
	}
	tx := textFixture()
	var tb Batch
	tx.Gather(&tb, []int{1, 2})
	if !slices.Equal(tb.Tokens, []int32{2, 0, 0, 4, 4, 0}) || !slices.Equal(tb.Lengths, []int32{1, 2}) ||
		!slices.Equal(tb.Targets, []int32{3, -1, -1, 4, 2, -1}) || tb.X != nil || tb.Y != nil {
		t.Fatalf("text batch = %+v", tb)
	}
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"index out of range", func() { d.GatherX(make([]float64, 2), []int{4}) }},
		{"negative index", func() { d.GatherY(make([]int32, 1), []int{-1}) }},
		{"short destination", func() { d.GatherX(make([]float64, 3), []int{0, 1}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			c.f()
		})
	}
}

func TestGatherAllocatesNothing(t *testing.T) {
	d := syntheticDense(1000, 32, 10, 1)
	it, _ := NewBatchIterator(d.N, 64, false)
	var b Batch
	rng := rand.New(rand.NewPCG(3, 4))
	it.Reset(rng)
	for idx, ok := it.Next(); ok; idx, ok = it.Next() {
		d.Gather(&b, idx)
	}
	allocs := testing.AllocsPerRun(5, func() {
		it.Reset(rng)
		for idx, ok := it.Next(); ok; idx, ok = it.Next() {
			d.Gather(&b, idx)
		}
	})
	if allocs != 0 {
		t.Fatalf("an epoch of Gather allocated %v times, want 0", allocs)
	}
}

// syntheticDense returns n random examples of dim features and labels in [0, classes).
func syntheticDense(n, dim, classes int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0))
	d := &Dataset{Name: "random", N: n, Dim: dim, X: make([]float64, n*dim), Y: make([]int32, n), NumClasses: classes}
	for i := range d.X {
		d.X[i] = rng.NormFloat64()
	}
	for i := range d.Y {
		d.Y[i] = int32(rng.IntN(classes))
	}
	return d
}

func BenchmarkGather(b *testing.B) {
	for _, c := range []struct{ n, dim, batch int }{{60000, 784, 64}, {60000, 784, 256}} {
		b.Run(fmt.Sprintf("n=%d/dim=%d/batch=%d", c.n, c.dim, c.batch), func(b *testing.B) {
			d := syntheticDense(c.n, c.dim, 10, 1)
			it, _ := NewBatchIterator(d.N, c.batch, true)
			rng := rand.New(rand.NewPCG(1, 1))
			it.Reset(rng)
			var bt Batch
			b.SetBytes(int64(c.batch * c.dim * 8))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				idx, ok := it.Next()
				if !ok {
					it.Reset(rng)
					idx, _ = it.Next()
				}
				d.Gather(&bt, idx)
			}
		})
	}
	b.Run("text/n=10000/seq=80/batch=32", func(b *testing.B) {
		n, seq := 10000, 80
		d := &Dataset{N: n, SeqLen: seq, VocabSize: 70, Tokens: make([]int32, n*seq), Lengths: make([]int32, n), Targets: make([]int32, n*seq), Task: TaskNextToken}
		it, _ := NewBatchIterator(n, 32, true)
		rng := rand.New(rand.NewPCG(1, 1))
		it.Reset(rng)
		var bt Batch
		b.ReportAllocs()
		for b.Loop() {
			idx, ok := it.Next()
			if !ok {
				it.Reset(rng)
				idx, _ = it.Next()
			}
			d.Gather(&bt, idx)
		}
	})
}
