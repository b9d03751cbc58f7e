package sim_test

import (
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
)

// A cnn federation takes its image shape from the dataset and learns the bars with DP-SGD
// and secure aggregation.
func TestCNNFederationLearns(t *testing.T) {
	c := withDPAndSecAgg(small())
	c.Clients, c.ClientsPerRound, c.Rounds = 6, 3, 4
	c.Model = model.Spec{Type: model.TypeCNN, Activation: model.ActTanh,
		Conv: []model.ConvSpec{{Filters: 4, Kernel: 3, Padding: 1, Groups: 2, Pool: model.Pool2DMax}}}
	c.Training = sim.TrainingConfig{Epochs: 2, BatchSize: 25, LR: 1, Momentum: 0.5}
	c.DP.NoiseMultiplier = 0.5
	rep, _, _, _ := runBars(t, c)
	s := rep.Summary
	// The dataset's 8×8 images: a 3×3 convolution of 4 filters (40), GroupNorm (8), 2×2
	// max-pooling to 4×4×4 and the output layer (64·2 + 2).
	if s.Model != model.TypeCNN || s.Parameters != 178 {
		t.Fatalf("model %s of %d parameters, want cnn of 178", s.Model, s.Parameters)
	}
	if s.FinalAccuracy == nil || *s.FinalAccuracy < 0.9 {
		t.Fatalf("accuracy %v → %v, want ≥ 0.9", deref(s.InitialAccuracy), deref(s.FinalAccuracy))
	}
}
