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
