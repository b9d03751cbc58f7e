package client

import (
	"errors"
	"math"
	"strings"
	"testing"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// TestUserLevelNoiseFloor: a client with min-user-level-noise-multiplier z refuses a
// user-level task whose own numbers make less noise than z on the smallest decrypted sum —
// a hostile server's noise_variance or noise_std lowered, or central mode — and accepts one
// that makes at least z.
func TestUserLevelNoiseFloor(t *testing.T) {
	const clip, dim, minContrib = 2.0, 1830, 4
	params := func(variance uint64) secagg.Parameters {
		p, err := secagg.NewParameters(secagg.ParametersLiteral{LogN: 13, ValueBits: 16, ClipBound: clip, NoiseVariance: variance})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	sa := &pb.SecAggSpec{Params: &pb.SecAggParams{MinContributions: minContrib}}
	step := 2 * clip / float64(1<<16-1)
	l2 := clip/step + math.Sqrt(dim)
	honest := uint64(math.Ceil(1.5 * 1.5 * l2 * l2 / minContrib)) // z = 1.5, as the server sizes it
	p := &Party{cfg: PartyConfig{MinUserLevelNoiseMultiplier: 1.4}}
	ul := &pb.UserLevelDPSpec{}
	for _, tc := range []struct {
		name   string
		ul     *pb.UserLevelDPSpec
		sa     *pb.SecAggSpec
		params secagg.Parameters
		refuse string
	}{
		{"discrete, as sized", ul, sa, params(honest), ""},
		{"discrete, variance lowered", ul, sa, params(1), "noise multiplier of"},
		{"float shares, as sized", &pb.UserLevelDPSpec{NoiseStd: 1.5 * clip / 2}, sa, secagg.Parameters{}, ""},
		{"float shares, lowered", &pb.UserLevelDPSpec{NoiseStd: 1.0 * clip / 2}, sa, secagg.Parameters{}, "noise multiplier of 1 "},
		{"central with secure aggregation", ul, sa, secagg.Parameters{}, "central mode"},
		{"central in the clear", ul, nil, secagg.Parameters{}, "central mode"},
		{"no user-level DP", nil, sa, secagg.Parameters{}, ""},
	} {
		err := p.checkUserLevelFloor(tc.ul, clip, tc.sa, tc.params, dim)
		switch {
		case tc.refuse == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse) || !errors.Is(err, ErrBudgetExceeded)):
			t.Errorf("%s: %v, want a refusal naming %q", tc.name, err, tc.refuse)
		}
	}
	p.cfg.MinUserLevelNoiseMultiplier = 0
	if err := p.checkUserLevelFloor(ul, clip, nil, secagg.Parameters{}, dim); err != nil {
		t.Errorf("no floor: %v", err)
	}
}

// TestDiscreteUpdateGoesToOneCommittee: a server that asks again for a round's update under
// a second key committee — to have two committees open it, each with fresh discrete noise —
// is refused; the same committee, an update without discrete noise, or a fresh round is not.
func TestDiscreteUpdateGoesToOneCommittee(t *testing.T) {
	made := &madeUpdate{Round: 3, Session: []byte("committee-A")}
	if err := made.resendableTo([]byte("committee-B")); err == nil || !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "another key committee") {
		t.Fatalf("a second committee: %v, want a refusal", err)
	}
	for name, tc := range map[string]struct {
		made    *madeUpdate
		session []byte
	}{
		"same committee":     {made, []byte("committee-A")},
		"no discrete noise":  {&madeUpdate{Round: 3}, nil},
		"nothing made yet":   {nil, []byte("committee-B")},
		"float mode re-send": {made, nil},
	} {
		if err := tc.made.resendableTo(tc.session); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDistributedNoiseBindsTheCommittee: an update that carries only a share of its
// noise (record-level dp.distributed, user-level noise shares) or whose discrete noise is
// drawn at encryption is tied to the committee it was made for, so a server that restarts
// the round under a second committee — to open the round's sum with and without it — is
// refused; an update with its whole noise (local DP-SGD) is not tied.
func TestDistributedNoiseBindsTheCommittee(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *pb.FitSpec
		lit  secagg.ParametersLiteral
		want bool
	}{
		{"record-level distributed", &pb.FitSpec{Dp: &pb.DPSpec{NoiseMultiplier: 2, Distributed: true}}, secagg.ParametersLiteral{}, true},
		{"user-level float shares", &pb.FitSpec{UserLevelDp: &pb.UserLevelDPSpec{NoiseStd: 0.1}}, secagg.ParametersLiteral{}, true},
		{"user-level discrete", &pb.FitSpec{UserLevelDp: &pb.UserLevelDPSpec{}}, secagg.ParametersLiteral{NoiseVariance: 9}, true},
		{"local DP-SGD", &pb.FitSpec{Dp: &pb.DPSpec{NoiseMultiplier: 2}}, secagg.ParametersLiteral{}, false},
		{"user-level central", &pb.FitSpec{UserLevelDp: &pb.UserLevelDPSpec{}}, secagg.ParametersLiteral{}, false},
	} {
		if got := noiseBindsCommittee(tc.spec, tc.lit); got != tc.want {
			t.Errorf("%s: binds the committee %v, want %v", tc.name, got, tc.want)
		}
		if !tc.want {
			continue
		}
		made := &madeUpdate{Round: 3, Session: []byte("committee-A")}
		if err := made.resendableTo([]byte("committee-B")); !errors.Is(err, ErrBudgetExceeded) {
			t.Errorf("%s: re-sent to a second committee: %v", tc.name, err)
		}
	}
}

// TestDistributedNoiseChecksTheTask: a fit task with dp.distributed is refused unless it is
// one plain-SGD DP-SGD step under secure aggregation whose update fits the clip whatever
// the data; an accepted one fills the trainer's share count, divisor and sum clip.
func TestDistributedNoiseChecksTheTask(t *testing.T) {
	const dim = 2002
	good := func() *pb.FitSpec {
		return &pb.FitSpec{Optimizer: "sgd", LearningRate: 1, WeightScale: 40, UpdateClipNorm: 10,
			Dp:     &pb.DPSpec{NoiseMultiplier: 4, MaxGradNorm: 1, SampleRate: 1, Steps: 1, Distributed: true},
			Secagg: &pb.SecAggSpec{Params: &pb.SecAggParams{CommitteeSize: 5, Threshold: 3, MinContributions: 16}}}
	}
	cfg := FitConfigFromSpec(good())
	if err := distributedNoise(&cfg, good(), dim); err != nil {
		t.Fatal(err)
	}
	wantR := 10*1*40/1.0 - 4/math.Sqrt(16)*(math.Sqrt(dim)+12)
	if cfg.DP.NoiseShares != 16 || cfg.DP.ExpectedBatch != 40 || math.Abs(cfg.DP.SumClip-wantR) > 1e-9 {
		t.Fatalf("filled shares %d, divisor %v, sum clip %v; want 16, 40, %v", cfg.DP.NoiseShares, cfg.DP.ExpectedBatch, cfg.DP.SumClip, wantR)
	}
	tc := TrainConfig(cfg, 55, 1)
	if tc.DP.NoiseShares != 16 || tc.DP.ExpectedBatch != 40 || tc.DP.SumClip != cfg.DP.SumClip || tc.DP.NoiseMultiplier != 4 {
		t.Fatalf("trainer's DP config %+v does not carry the distributed fields", tc.DP)
	}
	for _, bad := range []struct {
		name   string
		change func(*pb.FitSpec)
		want   string
	}{
		{"no secure aggregation", func(s *pb.FitSpec) { s.Secagg = nil }, "needs secure aggregation"},
		{"two steps", func(s *pb.FitSpec) { s.Dp.Steps = 2 }, "one DP-SGD step"},
		{"adam", func(s *pb.FitSpec) { s.Optimizer = "adam" }, "plain SGD"},
		{"nesterov", func(s *pb.FitSpec) { s.Nesterov, s.Momentum = true, 0.9 }, "plain SGD"},
		{"warmup", func(s *pb.FitSpec) { s.Warmup = 3 }, "plain SGD"},
		{"user-level", func(s *pb.FitSpec) { s.UserLevelDp = &pb.UserLevelDPSpec{} }, "user-level"},
		{"scaffold", func(s *pb.FitSpec) { s.Scaffold = &pb.ScaffoldSpec{} }, "SCAFFOLD"},
		{"packed encoding", func(s *pb.FitSpec) { s.Secagg.Params.ValueBits = 14 }, "float encoding"},
		{"no noise", func(s *pb.FitSpec) { s.Dp.NoiseMultiplier = 0 }, "noise multiplier"},
		{"clip too small for the noise", func(s *pb.FitSpec) { s.UpdateClipNorm = 0.5 }, "raise dp.update_clip_norm"},
	} {
		s := good()
		bad.change(s)
		cfg := FitConfigFromSpec(s)
		if err := distributedNoise(&cfg, s, dim); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error naming %q", bad.name, err, bad.want)
		}
	}
}
