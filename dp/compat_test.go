package dp_test

import (
	"math"
	"testing"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/dpsgd"
)

// The noise sources plug straight into the DP-SGD optimizer.
var (
	_ dpsgd.Noise = (*dp.SecureNoise)(nil)
	_ dpsgd.Noise = (*dp.DeterministicNoise)(nil)
)

func TestSecureRandIsUsableAndUnseeded(t *testing.T) {
	a, err := dp.SecureRand()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := dp.SecureRand()
	same := 0
	for i := 0; i < 64; i++ {
		if a.Uint64() == b.Uint64() {
			same++
		}
	}
	if same > 0 {
		t.Errorf("two SecureRand streams agreed on %d of 64 words", same)
	}
	// Poisson sampling at rate 0.1 over 100000 records: the count is within 6 standard
	// deviations (√(n·q·(1−q)) ≈ 95) of 10000.
	n := 0
	for i := 0; i < 100000; i++ {
		if a.Float64() < 0.1 {
			n++
		}
	}
	if math.Abs(float64(n)-10000) > 6*95 {
		t.Errorf("Bernoulli(0.1) count %d of 100000", n)
	}
}

func TestAddGaussianPanicsOnInvalidStd(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AddGaussian with std −1 must panic")
		}
	}()
	dp.NewDeterministicNoise(1).AddGaussian([]float64{0}, -1)
}
