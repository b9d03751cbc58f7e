package sim_test

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/sim"
	"github.com/confide-fl/confide/train"
)

// barsFeatures is a scattering stage for data.Bars' 8×8 images; its shape comes from the
// dataset. (GroupNorm of single channels would erase which orientation is strong.)
func barsFeatures() *model.FeatureSpec {
	return &model.FeatureSpec{Type: model.FeaturesScattering, J: 1, L: 4, Norm: model.FeatureNormGroup, Groups: 1}
}

// barsFederation: 6 clients of 50 bar images, 3 a round, a linear classifier on scattering
// features, DP-SGD and secure aggregation.
func barsFederation() sim.Config {
	c := withDPAndSecAgg(small())
	c.Clients, c.ClientsPerRound, c.Rounds = 6, 3, 4
	c.Model = model.Spec{Type: model.TypeMLP, Hidden: []int{}, Features: barsFeatures()}
	c.Training = sim.TrainingConfig{Epochs: 2, BatchSize: 25, LR: 1, Momentum: 0.5}
	c.DP.NoiseMultiplier = 0.5
	return c
}

func barsData() (trainSet, testSet *data.Dataset) {
	return data.Bars(300, rand.New(rand.NewPCG(1, 1))), data.Bars(200, rand.New(rand.NewPCG(2, 2)))
}

// runBars runs c on barsData with its results in a temporary directory (c.ResultsDir) and
// no plots, and returns the report and the data.
func runBars(t *testing.T, c sim.Config) (rep *sim.Report, c2 sim.Config, trainSet, testSet *data.Dataset) {
	t.Helper()
	c.ResultsDir = t.TempDir()
	no := false
	c.Plots = &no
	trainSet, testSet = barsData()
	rep, err := sim.Run(t.Context(), c, sim.Options{Train: trainSet, Test: testSet})
	if err != nil {
		t.Fatal(err)
	}
	return rep, c, trainSet, testSet
}

// checkSavedModelReadsRaw: the model a run saved in dir reads raw images (its feature stage
// included) to the run's final accuracy on testSet.
func checkSavedModelReadsRaw(t *testing.T, dir string, testSet *data.Dataset, final float64) {
	t.Helper()
	m, err := model.Load(filepath.Join(dir, "model.confide"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := train.Evaluate(m, testSet, 64)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Accuracy != final {
		t.Fatalf("saved model on raw images: accuracy %v, the run's final %v", raw.Accuracy, final)
	}
}

// TestFeatureStageComputedOnceAndLearns: with model.features, the stage runs once over the
// training and test sets (and no client recomputes it: their views hold the features), the
// federation learns on both transports, and the saved global model reads raw images.
func TestFeatureStageComputedOnceAndLearns(t *testing.T) {
	for _, transport := range []string{sim.TransportMemory, sim.TransportGRPC} {
		t.Run(transport, func(t *testing.T) {
			c := barsFederation()
			c.Transport = transport
			rep, c, trainSet, testSet := runBars(t, c)
			s := rep.Summary
			if s.FeatureExamples != trainSet.N+testSet.N || !strings.Contains(s.Features, "scattering J=1 L=4 on [8 8]") {
				t.Fatalf("features %q over %d examples, want the stage once over %d", s.Features, s.FeatureExamples, trainSet.N+testSet.N)
			}
			for _, r := range rep.Rounds {
				if r.Failed || r.Contributors != 3 {
					t.Fatalf("round %d: failed=%v %q, %d contributors", r.Round, r.Failed, r.Reason, r.Contributors)
				}
			}
			if s.FinalAccuracy == nil || *s.FinalAccuracy < 0.9 || (s.InitialAccuracy != nil && *s.FinalAccuracy <= *s.InitialAccuracy) {
				t.Fatalf("accuracy %v → %v, want it to improve to ≥ 0.9", deref(s.InitialAccuracy), deref(s.FinalAccuracy))
			}
			if !(s.Privacy.Epsilon > 0) {
				t.Fatalf("ε = %v with DP-SGD", s.Privacy.Epsilon)
			}
			// The parameter vector is the linear layer's alone: (5 channels × 4×4 + 1) × 2.
			if want := (barsFeatures().Channels()*16 + 1) * 2; s.Parameters != want {
				t.Fatalf("%d parameters, want %d (the layers after the feature stage)", s.Parameters, want)
			}
			checkSavedModelReadsRaw(t, c.ResultsDir, testSet, *s.FinalAccuracy)
		})
	}
}

// TestFeatureStageFeedsACNN: a cnn on the scattering map (5 channels of 4×4, channels-last)
// trains in a federation on the features the sim computed once (the clients accept them as
// the task model's stage), learns, and its saved model reads raw images.
func TestFeatureStageFeedsACNN(t *testing.T) {
	c := barsFederation()
	c.Model = model.Spec{Type: model.TypeCNN, Features: barsFeatures(), Activation: model.ActTanh,
		Conv: []model.ConvSpec{{Filters: 4, Kernel: 3, Padding: 1}}}
	rep, c, trainSet, testSet := runBars(t, c)
	s := rep.Summary
	for _, r := range rep.Rounds {
		if r.Failed || r.Contributors != 3 {
			t.Fatalf("round %d: failed=%v %q, %d contributors, %d errors", r.Round, r.Failed, r.Reason, r.Contributors, r.Errors)
		}
	}
	if s.FeatureExamples != trainSet.N+testSet.N {
		t.Fatalf("features over %d examples, want the stage once over %d", s.FeatureExamples, trainSet.N+testSet.N)
	}
	if s.FinalAccuracy == nil || *s.FinalAccuracy < 0.9 {
		t.Fatalf("accuracy %v → %v, want ≥ 0.9", deref(s.InitialAccuracy), deref(s.FinalAccuracy))
	}
	// A 3×3 conv from the 5 channels to 4, then 4×4×4 → 2.
	if want := 3*3*5*4 + 4 + 4*4*4*2 + 2; s.Parameters != want {
		t.Fatalf("%d parameters, want %d (the conv block and the output layer)", s.Parameters, want)
	}
	checkSavedModelReadsRaw(t, c.ResultsDir, testSet, *s.FinalAccuracy)
}

// TestFeatureConfigErrorsNameTheKey: bad model.features keys are named with their fix,
// before any data is loaded, and so is a shape that does not fit the data.
func TestFeatureConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*model.Spec)
		want string
	}{
		{"type", func(s *model.Spec) { s.Features.Type = "pca" }, `model.features.type = "pca": unknown (use scattering)`},
		{"j", func(s *model.Spec) { s.Features.J = 0 }, "model.features.j = 0: must be in [1, 6]"},
		{"l", func(s *model.Spec) { s.Features.L = 99 }, "model.features.l = 99"},
		{"groups", func(s *model.Spec) { s.Features.Groups = 7 }, "model.features.groups = 7: must divide the 5 channels"},
		{"groups without norm", func(s *model.Spec) { s.Features.Norm = "" }, "model.features.groups = 1 without norm: group"},
		{"norm", func(s *model.Spec) { s.Features.Norm = "batch" }, `model.features.norm = "batch": unknown (use group, or omit it)`},
		{"shape", func(s *model.Spec) { s.Features.Shape = []int{64} }, "model.features.shape = [64]: give the image's [rows, cols]"},
		{"j vs shape", func(s *model.Spec) { s.Features.J, s.Features.Shape = 4, []int{8, 8} }, "model.features.j = 4: 2^j = 16 exceeds the image shape"},
		{"sequence model", func(s *model.Spec) { s.Type = model.TypeLSTM }, "model.features: a feature stage reads dense images; use model.type: mlp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := barsFederation()
			c.Dataset.Name = "mnist"
			tc.edit(&c.Model)
			err := c.WithDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	c := barsFederation()
	c.Dataset.Name = "mnist"
	if err := c.WithDefaults().Validate(); err != nil {
		t.Fatalf("the unedited config is invalid: %v", err)
	}
	c = barsFederation()
	c.Model.Features.Shape = []int{8, 9}
	trainSet, testSet := barsData()
	if _, err := sim.Run(t.Context(), c, sim.Options{Train: trainSet, Test: testSet}); err == nil || !strings.Contains(err.Error(), "features.shape = [8 9] has 72 pixels but the model's input is 64") {
		t.Fatalf("error %v, want one naming features.shape against the data", err)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
