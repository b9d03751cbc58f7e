package blob

import (
	"bytes"
	"errors"
	"fmt"
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
	asm, err := NewAssembler(headerOf(a, b), 12, 0)
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
			_, err := NewAssembler(hdr, tc.limit, tc.limit)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrTooLarge) != tc.large {
				t.Fatalf("err = %v, want %q (too large: %v)", err, tc.want, tc.large)
			}
		})
	}
	if _, err := NewAssembler([]*pb.Blob{{Name: Update, Size: 3, Data: []byte("abc")}}, 10, 10); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Fatalf("inline data: %v", err)
	}
	if _, err := NewAssembler([]*pb.Blob{nil}, 10, 10); err == nil {
		t.Fatal("nil blob header accepted")
	}
}

func TestAssemblerRefusesBadStreams(t *testing.T) {
	b := New(Update, []byte("abcdef"))
	for _, admitted := range []int64{0, 6} {
		asm, _ := NewAssembler(headerOf(b), 100, admitted)
		if err := asm.Add([]byte("abcdefg")); err == nil || !strings.Contains(err.Error(), "more bytes than") {
			t.Fatalf("admitted %d: too many bytes: %v", admitted, err)
		}
		asm, _ = NewAssembler(headerOf(b), 100, admitted)
		asm.Add([]byte("abc"))
		if _, err := asm.Finish(); err == nil || !strings.Contains(err.Error(), "after 3 of the 6") {
			t.Fatalf("admitted %d: short stream: %v", admitted, err)
		}
		asm, _ = NewAssembler(headerOf(b), 100, admitted)
		asm.Add([]byte("abcdeX"))
		if _, err := asm.Finish(); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("admitted %d: corrupted stream: %v", admitted, err)
		}
	}
}

// held returns the bytes an assembler holds: its kept chunks and its buffer.
func held(a *Assembler) int64 {
	n := int64(cap(a.buf))
	for _, c := range a.chunks {
		n += int64(cap(c))
	}
	return n
}

// A header that lies (announces more or fewer bytes than follow) is refused, and until
// then the assembler holds at most what the receiver admitted plus twice the bytes sent;
// a stream whose total was admitted is held once, in one buffer, never beside its chunks.
func TestAssemblerMemoryFollowsTheAdmittedAndReceivedBytes(t *testing.T) {
	const tib = int64(1) << 40
	for _, tc := range []struct {
		name      string
		announced int64
		admitted  int64
		chunks    []int // sizes sent
		want      string
	}{
		{"announces-1TiB-sends-1000", tib, 0, []int{1000}, "after 1000 of the 1099511627776 announced"},
		{"announces-1TiB-admits-1000-sends-1000", tib, 1000, []int{1000}, "after 1000 of the 1099511627776 announced"},
		{"announces-1000-sends-400", 1000, 0, []int{100, 100, 100, 100}, "after 400 of the 1000 announced"},
		{"announces-1000-admitted-sends-400", 1000, 1000, []int{100, 100, 100, 100}, "after 400 of the 1000 announced"},
		{"announces-10-sends-11", 10, 0, []int{4, 7}, "more bytes than the header's blob sizes announce: a chunk of 7 after 4 of the 10"},
		{"announces-10-admitted-sends-11", 10, 10, []int{4, 7}, "more bytes than the header's blob sizes announce: a chunk of 7 after 4 of the 10"},
		{"honest-unadmitted", 1000, 0, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}, ""},
		{"honest-odd-unadmitted", 999, 0, []int{499, 1, 499}, ""},
		{"honest-part-admitted", 1000, 600, []int{150, 150, 700}, ""},
		{"honest-admitted", 1000, 1000, []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100}, ""},
		{"honest-over-admitted", 1000, 1 << 20, []int{1000}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if tc.announced < 1<<20 {
				data = make([]byte, tc.announced)
				for i := range data {
					data[i] = byte(i * 7)
				}
			}
			hdr := []*pb.Blob{{Name: Update, Size: tc.announced}}
			if tc.want == "" {
				hdr = headerOf(New(Update, data))
			}
			asm, err := NewAssembler(hdr, 2*tib, tc.admitted)
			if err != nil {
				t.Fatal(err)
			}
			check := func(step string) {
				t.Helper()
				if n, bound := held(asm), tc.admitted+2*asm.Received(); n > bound {
					t.Fatalf("%s: holds %d bytes, more than the %d admitted plus twice the %d received", step, n, tc.admitted, asm.Received())
				}
				if tc.admitted >= tc.announced && (held(asm) != tc.announced || len(asm.chunks) != 0) {
					t.Fatalf("%s: an admitted stream of %d bytes: the buffer holds %d and %d chunks are kept beside it", step, tc.announced, cap(asm.buf), len(asm.chunks))
				}
			}
			check("before any chunk")
			var off int
			var addErr error
			for i, n := range tc.chunks {
				chunk := make([]byte, n)
				copy(chunk, data[min(off, len(data)):])
				off += n
				if addErr = asm.Add(chunk); addErr != nil {
					break
				}
				check(fmt.Sprintf("after chunk %d", i))
			}
			got, err := asm.Finish()
			if addErr != nil {
				err = addErr
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[0].Data, data) {
				t.Fatal("the blob's bytes differ from those sent")
			}
		})
	}
}

// A chunk written in Room's slice (as proto/wire writes a received chunk) is taken
// without a copy; a chunk elsewhere is copied; Room is nil until the buffer exists.
func TestAssemblerTakesChunksWrittenInItsRoom(t *testing.T) {
	data := []byte("0123456789")
	hdr := headerOf(New(Update, data))
	if r := mustAssembler(t, headerOf(hdr...), 0).Room(); r != nil {
		t.Fatalf("Room before the buffer exists: %d bytes of room, want nil", cap(r))
	}
	asm := mustAssembler(t, hdr, int64(len(data)))
	room := asm.Room()
	if len(room) != 0 || cap(room) != len(data) {
		t.Fatalf("Room: len %d cap %d, want 0 and %d", len(room), cap(room), len(data))
	}
	chunk := append(room, data[:4]...) // what the codec does: the bytes land in the buffer
	if err := asm.Add(chunk); err != nil {
		t.Fatal(err)
	}
	chunk[0] = 'X' // in place: the buffer sees it
	if cap(asm.Room()) != 6 {
		t.Fatalf("Room after 4 of 10 bytes: cap %d, want 6", cap(asm.Room()))
	}
	elsewhere := bytes.Clone(data[4:])
	if err := asm.Add(elsewhere); err != nil {
		t.Fatal(err)
	}
	elsewhere[0] = 'Y' // copied: the buffer does not
	got, err := asm.Finish()
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("the in-place chunk changed after Add, yet Finish says %v (data %q)", err, got)
	}
	if string(asm.blobs[0].Data) != "X123456789" {
		t.Fatalf("assembled %q, want the in-place chunk's change and not the copied one's", asm.blobs[0].Data)
	}
}

func mustAssembler(t *testing.T, hdr []*pb.Blob, admitted int64) *Assembler {
	t.Helper()
	a, err := NewAssembler(hdr, 1<<20, admitted)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// BenchmarkAssemble100MB streams a 100 MB upload in the server's 1 MiB chunks, each a fresh
// allocation as gRPC's unmarshalling makes it, and reports the most the assembler holds at
// once (peak-B, chunks and buffer: with the total admitted, the upload once) besides B/op.
func BenchmarkAssemble100MB(b *testing.B) {
	const size, chunk = 100 << 20, 1 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	hdr := headerOf(New(Update, data))
	for _, admitted := range []int64{0, size} {
		b.Run(fmt.Sprintf("admitted=%d", admitted), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(size)
			var peak int64
			for b.Loop() {
				asm, err := NewAssembler(headerOf(hdr...), size, admitted)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < size; off += chunk {
					c := make([]byte, chunk)
					copy(c, data[off:])
					before, allocated := held(asm), asm.buf != nil
					if err := asm.Add(c); err != nil {
						b.Fatal(err)
					}
					if !allocated && asm.buf != nil { // the kept chunks were copied into the new buffer
						before += int64(cap(asm.buf))
					}
					peak = max(peak, before+chunk, held(asm)+chunk)
				}
				if _, err := asm.Finish(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak), "peak-B")
		})
	}
}
