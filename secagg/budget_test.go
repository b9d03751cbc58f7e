package secagg

import (
	"errors"
	"fmt"
	"testing"
)

// MaxContributorsFor is the overflow budget's edge: its count passes NewParameters, one
// more fails with the budget's FieldError.
func TestMaxContributorsForIsTheBudgetsEdge(t *testing.T) {
	for _, lit := range []ParametersLiteral{
		{},
		{ClipBound: 10},
		{ClipBound: 50, MaxWeight: 0.5},
		{ClipBound: 3, LogScale: 40},
		{LogN: 12, ClipBound: 5},
		{ClipBound: 1e6, LogScale: 20},
		{ValueBits: 16, Primes: 2, ClipBound: 1}, // packed: the headroom bits
	} {
		t.Run(fmt.Sprintf("logN%d_C%g_W%g_scale%d_bits%d", lit.LogN, lit.ClipBound, lit.MaxWeight, lit.LogScale, lit.ValueBits), func(t *testing.T) {
			n, err := MaxContributorsFor(lit)
			if err != nil {
				t.Fatal(err)
			}
			lit.MaxContributors = n
			if _, err := NewParameters(lit); err != nil {
				t.Fatalf("MaxContributorsFor = %d, but NewParameters refuses it: %v", n, err)
			}
			lit.MaxContributors = n + 1
			_, err = NewParameters(lit)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != FieldMaxContributors {
				t.Fatalf("MaxContributorsFor = %d, but %d is accepted too (err %v)", n, n+1, err)
			}
		})
	}
	// Not even one update fits: the budget's error.
	_, err := MaxContributorsFor(ParametersLiteral{ClipBound: 1e9})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != FieldMaxContributors {
		t.Fatalf("ClipBound 1e9: err %v, want the overflow budget's FieldError", err)
	}
}

// A FieldError names its fields as this package does, or as the caller's configuration does.
func TestFieldErrorNamesFieldsByTheCallersKeys(t *testing.T) {
	_, err := NewParameters(ParametersLiteral{MaxContributors: 5000})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != FieldMaxContributors || fe.Value != 5000 {
		t.Fatalf("err %v, want a FieldError of MaxContributors 5000", err)
	}
	got := fe.Explain(func(f Field) string { return "<" + string(f) + ">" })
	want := "overflow budget exceeded: <MaxContributors> 5000 × per-client bound 1 (max of <ClipBound>×<MaxWeight>, <MaxWeight>, 1) × 2^<LogScale> (2^45)"
	if len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("Explain = %q, want it to start %q", got, want)
	}
	if s := err.Error(); s[:len("secagg: overflow budget exceeded: MaxContributors 5000")] != "secagg: overflow budget exceeded: MaxContributors 5000" {
		t.Fatalf("Error = %q", s)
	}
	p, _ := NewParameters(ParametersLiteral{})
	err = CommitteeConfig{Size: 4, Threshold: 5, MinContributions: 2}.Validate(p)
	if !errors.As(err, &fe) || fe.Field != FieldThreshold || err.Error() != "secagg: Threshold 5: must be 2…committee Size (4); with t = 1 any single member could decrypt an individual update" {
		t.Fatalf("err %v", err)
	}
}
