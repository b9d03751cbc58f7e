package model

import (
	"strings"
	"testing"
)

// A spec whose feature count would exhaust memory on a real dataset is refused up front.
func TestFeatureSpecRefusesHugeOutputs(t *testing.T) {
	f := FeatureSpec{Type: FeaturesScattering, J: 4, L: 32, Shape: []int{128, 128}}
	err := f.Validate(128 * 128)
	if err == nil || !strings.Contains(err.Error(), "lower l or j") {
		t.Fatalf("J=4 L=32 on 128×128 (%d features): got %v, want a refusal naming l and j", f.OutDim(), err)
	}
	ok := FeatureSpec{Type: FeaturesScattering, J: 2, L: 8, Shape: []int{28, 28}}
	if err := ok.Validate(784); err != nil {
		t.Fatalf("MNIST's spec: %v", err)
	}
}
