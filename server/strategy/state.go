package strategy

import (
	"encoding/binary"
	"fmt"
	"math"
)

// encodeVectors writes the vectors as a count, then for each its length and little-endian
// float64 values.
func encodeVectors(vs ...[]float64) []byte {
	size := 4
	for _, v := range vs {
		size += 8 + 8*len(v)
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vs)))
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
	}
	return b
}

// decodeVectors reads want vectors written by encodeVectors; it never panics on bad input.
func decodeVectors(b []byte, want int) ([][]float64, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("truncated state (%d bytes)", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n != want {
		return nil, fmt.Errorf("state holds %d vectors, want %d", n, want)
	}
	b = b[4:]
	out := make([][]float64, n)
	for k := range out {
		if len(b) < 8 {
			return nil, fmt.Errorf("state truncated at vector %d", k)
		}
		l := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if l > uint64(len(b)/8) {
			return nil, fmt.Errorf("state vector %d claims %d values, %d bytes left", k, l, len(b))
		}
		v := make([]float64, l)
		for i := range v {
			v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		b = b[8*l:]
		out[k] = v
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("state has %d trailing bytes", len(b))
	}
	return out, nil
}
