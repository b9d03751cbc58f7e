package server_test

import (
	"fmt"
	"testing"

	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/server"
)

// Left open, secure_aggregation.max_contributors is what secagg's overflow budget allows
// for the federation's parameters (clip bound, weights, scale, ring), up to secagg's
// default: the count passes secagg's check, and one more fails it. The float encoding
// (value_bits 0), whose budget depends on them; the packed encoding's is secagg's default
// at any of these clips.
func TestMaxContributorsComesFromSecAggsBudget(t *testing.T) {
	for _, tc := range []struct {
		clip, weight float64
		logScale     int
	}{
		{1, 1, 0}, {10, 1, 0}, {50, 1, 0}, {50, 0.5, 0}, {10, 1, 40}, {3, 2, 42},
	} {
		t.Run(fmt.Sprintf("clip%g_weight%g_scale%d", tc.clip, tc.weight, tc.logScale), func(t *testing.T) {
			c := server.Config{Rounds: 1, Model: model.Spec{Type: model.TypeMLP, Input: 4, Output: 2},
				Sampling: server.SamplingConfig{MinAvailable: 3},
				DP:       server.DPConfig{UpdateClipNorm: tc.clip},
				SecAgg:   server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, MaxWeight: tc.weight, LogScale: tc.logScale, ValueBits: new(0)}}
			c = c.WithDefaults()
			n := c.SecAgg.MaxContributors
			lit := secagg.ParametersLiteral{LogScale: tc.logScale, ClipBound: tc.clip, MaxWeight: tc.weight, MaxContributors: n}
			if _, err := secagg.NewParameters(lit); err != nil {
				t.Fatalf("max_contributors %d: secagg refuses it: %v", n, err)
			}
			if n == secagg.DefaultMaxContributors {
				return // capped by the default, not the budget
			}
			lit.MaxContributors = n + 1
			if _, err := secagg.NewParameters(lit); err == nil {
				t.Fatalf("max_contributors %d, but secagg's budget allows %d", n, n+1)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("the defaulted config does not validate: %v", err)
			}
		})
	}
}
