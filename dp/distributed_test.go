package dp

import (
	"math"
	"strings"
	"testing"
)

// TestDistributedStepSumClip: the sum clip leaves room for the noise share's norm bound,
// and an update clip too small for one example's gradient after it is refused, naming the
// settings to change.
func TestDistributedStepSumClip(t *testing.T) {
	s := DistributedStep{NoiseMultiplier: 6, MaxGradNorm: 1, SampleRate: 0.5, WeightScale: 48, LR: 2, UpdateClip: 10, Shares: 9, Dim: 2002}
	r, err := s.SumClip()
	if err != nil {
		t.Fatal(err)
	}
	want := 10*0.5*48/2.0 - 2*(math.Sqrt(2002)+DistributedTail)
	if math.Abs(r-want) > 1e-12 || s.ShareNoiseMultiplier() != 2 {
		t.Fatalf("sum clip %v and share multiplier %v, want %v and 2", r, s.ShareNoiseMultiplier(), want)
	}
	// The update's bound: lr·(R + share·C·(√d + t))/(q·ws) is exactly the update clip.
	if got := s.LR * (r + 2*(math.Sqrt(2002)+DistributedTail)) / (0.5 * 48); math.Abs(got-10) > 1e-12 {
		t.Fatalf("bound on ‖Δ‖ %v, want the update clip 10", got)
	}
	s.UpdateClip = 4
	if _, err := s.SumClip(); err == nil || !strings.Contains(err.Error(), "raise dp.update_clip_norm") {
		t.Fatalf("update clip 4: %v, want a refusal naming dp.update_clip_norm", err)
	}
	s.UpdateClip, s.Shares = 10, 0
	if _, err := s.SumClip(); err == nil {
		t.Fatal("0 shares accepted")
	}
}
