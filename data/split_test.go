package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestStratifiedSplit(t *testing.T) {
	strata := labelsWithCounts([]int{100, 41, 5, 1}, 3)
	train, test, err := StratifiedSplit(strata, 0.2, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(train), test...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("train ∪ test is not [0, %d): %v", len(strata), all)
		}
	}
	if !slices.IsSorted(train) || !slices.IsSorted(test) {
		t.Fatal("index lists not sorted")
	}
	got := make([]int, 4)
	for _, i := range test {
		got[strata[i]]++
	}
	// round(0.2 × size): 20, 8, 1, 0.
	if !slices.Equal(got, []int{20, 8, 1, 0}) {
		t.Fatalf("test examples per stratum %v, want [20 8 1 0]", got)
	}
	_, test2, _ := StratifiedSplit(strata, 0.2, rand.New(rand.NewPCG(1, 1)))
	if fmt.Sprint(test) != fmt.Sprint(test2) {
		t.Fatal("same seed, different split")
	}
	for _, f := range []float64{-0.1, 1.5} {
		if _, _, err := StratifiedSplit(strata, f, rand.New(rand.NewPCG(1, 1))); err == nil {
			t.Errorf("test fraction %v accepted", f)
		}
	}
}
