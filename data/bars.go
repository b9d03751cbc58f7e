package data

import "math/rand/v2"

// Bars generates n 8×8 images (Shape [8 8], pixels about 0 and 1) of a horizontal (class
// 0) or vertical (class 1) bar at a random inner row or column, with Gaussian pixel noise
// of standard deviation 0.1: a small image task for tests and examples of feature stages
// built from oriented filters (the scattering transform separates it at J = 1, L = 4).
func Bars(n int, rng *rand.Rand) *Dataset {
	ds := &Dataset{Name: "bars", N: n, Dim: 64, Shape: []int{8, 8}, X: make([]float64, 64*n), Y: make([]int32, n), NumClasses: 2, ClassNames: []string{"horizontal", "vertical"}}
	for i := 0; i < n; i++ {
		c, p := rng.IntN(2), 1+rng.IntN(6)
		ds.Y[i] = int32(c)
		img := ds.X[64*i : 64*(i+1)]
		for k := 0; k < 8; k++ {
			if c == 0 {
				img[p*8+k] = 1
			} else {
				img[k*8+p] = 1
			}
		}
		for k := range img {
			img[k] += 0.1 * rng.NormFloat64()
		}
	}
	return ds
}
