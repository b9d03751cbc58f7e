package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// encodeIDX returns an IDX file with the given header and element bytes.
func encodeIDX(t IDXType, dims []int, elems []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, byte(t), byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(elems)
	return b.Bytes()
}

func gzipBytes(p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func TestReadIDXTypes(t *testing.T) {
	be := binary.BigEndian
	i16 := make([]byte, 4)
	be.PutUint16(i16, uint16(0xFFFE)) // -2
	be.PutUint16(i16[2:], 300)
	i32 := make([]byte, 8)
	be.PutUint32(i32, uint32(0xFFFFFFF9)) // -7
	be.PutUint32(i32[4:], 70000)
	f32 := make([]byte, 8)
	be.PutUint32(f32, math.Float32bits(1.5))
	be.PutUint32(f32[4:], math.Float32bits(-0.25))
	f64 := make([]byte, 16)
	be.PutUint64(f64, math.Float64bits(math.Pi))
	be.PutUint64(f64[8:], math.Float64bits(-1e300))
	cases := []struct {
		typ   IDXType
		dims  []int
		elems []byte
		want  []float64
	}{
		{IDXUint8, []int{2, 2}, []byte{0, 1, 128, 255}, []float64{0, 1, 128, 255}},
		{IDXInt8, []int{3}, []byte{0x80, 0xFF, 5}, []float64{-128, -1, 5}},
		{IDXInt16, []int{2}, i16, []float64{-2, 300}},
		{IDXInt32, []int{1, 2}, i32, []float64{-7, 70000}},
		{IDXFloat32, []int{2, 1}, f32, []float64{1.5, -0.25}},
		{IDXFloat64, []int{1, 1, 2}, f64, []float64{math.Pi, -1e300}},
	}
	for _, c := range cases {
		raw := encodeIDX(c.typ, c.dims, c.elems)
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/gzip=%v", c.typ, gz), func(t *testing.T) {
				in := raw
				if gz {
					in = gzipBytes(raw)
				}
				x, err := ReadIDX(bytes.NewReader(in))
				if err != nil {
					t.Fatal(err)
				}
				if x.Type != c.typ || fmt.Sprint(x.Dims) != fmt.Sprint(c.dims) || x.Len() != len(c.want) {
					t.Fatalf("got type %v dims %v len %d, want %v %v %d", x.Type, x.Dims, x.Len(), c.typ, c.dims, len(c.want))
				}
				for i, w := range c.want {
					if g := x.Float64(i); g != w {
						t.Errorf("element %d = %v, want %v", i, g, w)
					}
				}
			})
		}
	}
}

func TestReadIDXRejects(t *testing.T) {
	valid := encodeIDX(IDXUint8, []int{2, 3}, []byte{1, 2, 3, 4, 5, 6})
	gz := gzipBytes(valid)
	badCRC := append([]byte(nil), gz...)
	badCRC[len(badCRC)-8] ^= 0xFF
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"one byte", []byte{0}, "empty"},
		{"short magic", []byte{0, 0, 8}, "truncated"},
		{"nonzero magic", append([]byte{1}, valid[1:]...), "two zero bytes"},
		{"unknown type", encodeIDX(0x0A, []int{1}, []byte{0}), "unknown type"},
		{"zero dims", []byte{0, 0, 8, 0}, "0 dimensions"},
		{"short dims", valid[:6], "dimension sizes"},
		{"zero size dim", encodeIDX(IDXUint8, []int{0, 3}, nil), "dimension 0 has size 0"},
		{"huge dims", encodeIDX(IDXFloat64, []int{1 << 30, 1 << 30}, nil), "exceed"},
		{"truncated data", valid[:len(valid)-1], "truncated: 5 of 6"},
		{"trailing bytes", append(append([]byte(nil), valid...), 7), "trailing"},
		{"truncated gzip", gz[:len(gz)-12], "truncated"},
		{"gzip bad checksum", badCRC, "checksum"},
		{"gzip bad header", []byte{0x1f, 0x8b, 0, 0}, "gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := ReadIDX(bytes.NewReader(c.in))
			if err == nil {
				t.Fatalf("got %v dims %v, want error containing %q", x.Type, x.Dims, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
		})
	}
}

func TestReadIDXFileNamesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad-idx1-ubyte")
	if err := os.WriteFile(p, []byte{0, 0, 8, 1, 0, 0, 0, 9}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadIDXFile(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v, want it to name %s", err, p)
	}
}

// FuzzReadIDX checks that arbitrary input never panics, and that whatever is accepted is
// self-consistent. Seeds: testdata/fuzz/FuzzReadIDX.
func FuzzReadIDX(f *testing.F) {
	f.Add(encodeIDX(IDXUint8, []int{2, 2}, []byte{1, 2, 3, 4}))
	f.Add(gzipBytes(encodeIDX(IDXInt16, []int{1, 2}, []byte{0, 1, 0, 2})))
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(x.Data) != x.Len()*x.Type.Size() {
			t.Fatalf("accepted %d data bytes for dims %v of %v", len(x.Data), x.Dims, x.Type)
		}
		if x.Len() > 0 {
			_ = x.Float64(x.Len() - 1)
		}
	})
}
