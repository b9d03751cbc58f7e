package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// StratifiedSplit splits the indices [0, len(strata)) into a training and a test set so
// that every stratum (a class label, a device, a mailbox) sends round(testFraction × its
// size) of its examples, chosen at random, to the test set. Both index lists are in
// increasing order. Use it with Dataset.Y for a label-stratified split (the spam corpus)
// or with Dataset.Group for a per-device one (FedProx's 90/10 split of Synthetic).
func StratifiedSplit(strata []int32, testFraction float64, rng *rand.Rand) (train, test []int, err error) {
	if err := checkRNG("stratified split", rng); err != nil {
		return nil, nil, err
	}
	if !(testFraction >= 0 && testFraction <= 1) {
		return nil, nil, fmt.Errorf("data: test fraction %v, want in [0, 1]", testFraction)
	}
	by := map[int32][]int{}
	var keys []int32
	for i, s := range strata {
		if _, ok := by[s]; !ok {
			keys = append(keys, s)
		}
		by[s] = append(by[s], i)
	}
	slices.Sort(keys) // map order is random; the draw must not be
	for _, k := range keys {
		idx := by[k]
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		nt := int(math.Round(testFraction * float64(len(idx))))
		test = append(test, idx[:nt]...)
		train = append(train, idx[nt:]...)
	}
	slices.Sort(train)
	slices.Sort(test)
	return train, test, nil
}
