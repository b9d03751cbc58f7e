package blob

import (
	"math"
	"strings"
	"testing"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

func TestFloatsRoundTripAndRejects(t *testing.T) {
	v := []float64{1.5, -2, 0, math.SmallestNonzeroFloat64}
	got, err := DecodeFloats(EncodeFloats(v), len(v))
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("value %d: %v, want %v", i, got[i], v[i])
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want int
		msg  string
	}{
		{"ragged", make([]byte, 9), -1, "whole number"},
		{"wrong-length", EncodeFloats([]float64{1}), 2, "has 1 values, want 2"},
		{"nan", EncodeFloats([]float64{1, math.NaN()}), 2, "value 1 is NaN"},
		{"inf", EncodeFloats([]float64{math.Inf(-1)}), 1, "value 0 is -Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeFloats(tc.b, tc.want); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestFindVerifies(t *testing.T) {
	b := New(Params, []byte("abc"))
	if d, err := Find([]*pb.Blob{b}, Params); err != nil || string(d) != "abc" {
		t.Fatalf("Find = %q, %v", d, err)
	}
	if _, err := Find([]*pb.Blob{b}, Update); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing blob: %v", err)
	}
	bad := New(Params, []byte("abc"))
	bad.Data = []byte("abd")
	if _, err := Find([]*pb.Blob{bad}, Params); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("corrupted blob: %v", err)
	}
	short := New(Params, []byte("abc"))
	short.Data = short.Data[:2]
	if _, err := Find([]*pb.Blob{short}, Params); err == nil || !strings.Contains(err.Error(), "announced 3") {
		t.Fatalf("short blob: %v", err)
	}
	if _, err := Find([]*pb.Blob{b, b}, Params); err == nil {
		t.Fatal("duplicate blob accepted")
	}
}
