package blob

import (
	"errors"
	"math"
	"strings"
	"testing"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

func headerOf(bs ...*pb.Blob) []*pb.Blob {
	out := make([]*pb.Blob, len(bs))
	for i, b := range bs {
		out[i] = &pb.Blob{Name: b.Name, Size: b.Size, Sha256: b.Sha256}
	}
	return out
}

func TestAssemblerRebuildsBlobsFromChunks(t *testing.T) {
	a, b := New(Params, []byte("hello, ")), New(Update, []byte("world"))
	asm, err := NewAssembler(headerOf(a, b), 12)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"hel", "lo, wo", "", "rld"} {
		if err := asm.Add([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := asm.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0].Data) != "hello, " || string(got[1].Data) != "world" {
		t.Fatalf("blobs %q %q", got[0].Data, got[1].Data)
	}
	if cap(got[0].Data) != len(got[0].Data) {
		t.Fatal("a blob's slice reaches into the next blob")
	}
}

// Sizes whose sum wraps int64 must be refused before anything is allocated (the sum of
// MaxInt64 and 2 is negative and used to pass a "total > limit" check).
func TestAssemblerRefusesOverflowingAndOversizedHeaders(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int64
		limit int64
		want  string
		large bool
	}{
		{"wrapping-sum", []int64{math.MaxInt64, 2}, 1 << 30, "exceeds", true},
		{"wrapping-sum-second", []int64{2, math.MaxInt64}, 1 << 30, "exceeds", true},
		{"many-large", []int64{1 << 62, 1 << 62, 1 << 62, 1 << 62}, math.MaxInt64, "exceeds", true},
		{"over-limit", []int64{600, 600}, 1000, "exceeds the 400 bytes left", true},
		{"negative", []int64{-1}, 1000, "size -1", false},
		{"negative-limit", []int64{1}, -5, "exceeds", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []*pb.Blob
			for _, s := range tc.sizes {
				hdr = append(hdr, &pb.Blob{Name: Update, Size: s})
			}
			_, err := NewAssembler(hdr, tc.limit)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrTooLarge) != tc.large {
				t.Fatalf("err = %v, want %q (too large: %v)", err, tc.want, tc.large)
			}
		})
	}
	if _, err := NewAssembler([]*pb.Blob{{Name: Update, Size: 3, Data: []byte("abc")}}, 10); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Fatalf("inline data: %v", err)
	}
	if _, err := NewAssembler([]*pb.Blob{nil}, 10); err == nil {
		t.Fatal("nil blob header accepted")
	}
}

func TestAssemblerRefusesBadStreams(t *testing.T) {
	b := New(Update, []byte("abcdef"))
	asm, _ := NewAssembler(headerOf(b), 100)
	if err := asm.Add([]byte("abcdefg")); err == nil || !strings.Contains(err.Error(), "more bytes than") {
		t.Fatalf("too many bytes: %v", err)
	}
	asm, _ = NewAssembler(headerOf(b), 100)
	asm.Add([]byte("abc"))
	if _, err := asm.Finish(); err == nil || !strings.Contains(err.Error(), "after 3 of the 6") {
		t.Fatalf("short stream: %v", err)
	}
	asm, _ = NewAssembler(headerOf(b), 100)
	asm.Add([]byte("abcdeX"))
	if _, err := asm.Finish(); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("corrupted stream: %v", err)
	}
}

// A peer that announces a large payload and sends a few bytes costs about what it sent.
func TestAssemblerGrowsWithTheDataNotTheAnnouncement(t *testing.T) {
	asm, err := NewAssembler([]*pb.Blob{{Name: Update, Size: 1 << 40}}, 1<<41)
	if err != nil {
		t.Fatal(err)
	}
	if err := asm.Add(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	held := func(a *Assembler) (n int) {
		for _, c := range a.chunks {
			n += cap(c)
		}
		return n
	}
	if n := held(asm); n > 1000 {
		t.Fatalf("the assembler holds %d bytes after 1000 bytes of an announced 1 TiB", n)
	}
	small, _ := NewAssembler([]*pb.Blob{{Name: Update, Size: 10}}, 100)
	small.Add(make([]byte, 4))
	if err := small.Add(make([]byte, 7)); err == nil {
		t.Fatal("11 bytes of an announced 10 accepted")
	}
	if n := held(small); n != 4 {
		t.Fatalf("the assembler holds %d bytes after 4 of an announced 10", n)
	}
}
