package dpsgd_test

import (
	"fmt"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/dpsgd"
)

// A model Confide does not know computes its per-example gradients itself; Gradients clips
// each to C and releases their noisy mean, as DP-SGD's step does. Noise multiplier 0 here
// so the output is exact; a client uses dp.NewSecureNoise and σ from its task.
func ExampleGradients() {
	g, err := dpsgd.NewGradients(2, dp.NewDeterministicNoise(1), dpsgd.Config{NoiseMultiplier: 0, MaxGradNorm: 1, ExpectedBatch: 2})
	if err != nil {
		panic(err)
	}
	_ = g.Add([]float64{3, 4})   // norm 5: clipped to (0.6, 0.8)
	_ = g.Add([]float64{0, 0.5}) // within C: kept
	out := make([]float64, 2)
	st, _ := g.Release(out) // (sum + noise) / expected batch
	fmt.Printf("gradient %.2f, batch %d, clipped %d\n", out, st.Batch, st.Clipped)
	// Output: gradient [0.30 0.65], batch 2, clipped 1
}
