package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/confide-fl/confide/internal/atomicfile"
)

// Model file format, version 1 (little-endian):
//
//	magic    8 bytes  "CONFIDEM"
//	version  uint32   1
//	specLen  uint32   length of the spec JSON (≤ 1 MiB)
//	spec     specLen bytes of JSON (Spec)
//	n        uint64   number of parameters
//	params   n float64 (IEEE 754 bits)
//	sha256   32 bytes over everything before it
//
// The checksum is verified before anything is parsed, so truncation and bit flips are
// reported as ErrCorrupt rather than read as a different model.
const (
	fileMagic   = "CONFIDEM"
	fileVersion = 1
	maxSpecLen  = 1 << 20
)

// ErrCorrupt reports a model file that is truncated, damaged or not a model file.
var ErrCorrupt = errors.New("corrupt model file")

// Marshal encodes the model's spec and parameters in the model file format.
func (m *Model) Marshal() []byte {
	spec := m.Spec.JSON()
	buf := make([]byte, 0, 8+4+4+len(spec)+8+8*len(m.Params)+sha256.Size)
	buf = append(buf, fileMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, fileVersion)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(spec)))
	buf = append(buf, spec...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(m.Params)))
	for _, p := range m.Params {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p))
	}
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...)
}

// Unmarshal decodes a model file whose spec is within DefaultLimits.
func Unmarshal(data []byte) (*Model, error) { return Limits{}.Unmarshal(data) }

// Unmarshal decodes a model file whose spec is within l. The spec is validated and the
// parameter count it implies compared with the stored vector's length before the model is
// built, so a file declaring a huge model is an error, not an allocation.
func (l Limits) Unmarshal(data []byte) (*Model, error) {
	corrupt := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	if len(data) < len(fileMagic) || string(data[:len(fileMagic)]) != fileMagic {
		return nil, corrupt("not a Confide model file (bad magic)")
	}
	if len(data) < len(fileMagic)+4+4+8+sha256.Size {
		return nil, corrupt("file is %d bytes: truncated", len(data))
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, corrupt("checksum mismatch: the file is truncated or damaged")
	}
	r := body[len(fileMagic):]
	if v := binary.LittleEndian.Uint32(r); v != fileVersion {
		return nil, fmt.Errorf("model file version %d is not supported (this build reads version %d); upgrade confide", v, fileVersion)
	}
	specLen := binary.LittleEndian.Uint32(r[4:])
	r = r[8:]
	if specLen > maxSpecLen || uint64(specLen)+8 > uint64(len(r)) {
		return nil, corrupt("spec length %d exceeds the file", specLen)
	}
	var spec Spec
	dec := json.NewDecoder(bytes.NewReader(r[:specLen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, corrupt("spec: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, corrupt("spec: data after the JSON object")
	}
	r = r[specLen:]
	n := binary.LittleEndian.Uint64(r)
	r = r[8:]
	if uint64(len(r))%8 != 0 || n != uint64(len(r))/8 {
		return nil, corrupt("header says %d parameters, file holds %d bytes of them", n, len(r))
	}
	want, err := l.NumParams(spec)
	if err != nil {
		return nil, fmt.Errorf("model file: %w", err)
	}
	if uint64(want) != n {
		return nil, corrupt("spec needs %d parameters, file holds %d", want, n)
	}
	m, err := newWithFeatures(spec, nil, l)
	if err != nil {
		return nil, fmt.Errorf("model file: %w", err)
	}
	if len(m.Params) != want {
		return nil, fmt.Errorf("model file: the spec counts %d parameters but builds %d (a bug in model.Limits.NumParams)", want, len(m.Params))
	}
	for i := range m.Params {
		v := math.Float64frombits(binary.LittleEndian.Uint64(r[8*i:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("model file: parameter %d is %v: the model diverged before it was saved", i, v)
		}
		m.Params[i] = v
	}
	return m, nil
}

// Save writes the model to path atomically: a temporary file in the same directory is
// written, synced and renamed over path, so a crash leaves either the old or the new file.
func (m *Model) Save(path string) error {
	return atomicfile.Write(path, m.Marshal(), 0o644)
}

// Load reads a model file.
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	m, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}
