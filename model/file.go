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

// Model file format, version 2 (little-endian):
//
//	magic    8 bytes  "CONFIDEM"
//	version  uint32   2
//	specLen  uint32   length of the spec JSON (≤ 1 MiB)
//	spec     specLen bytes of JSON (Spec)
//	metaLen  uint32   length of the metadata JSON (≤ Limits.MaxMetaBytes)
//	meta     metaLen bytes of JSON (Meta: class names, input normalisation, tokenizer,
//	         provenance)
//	n        uint64   number of parameters
//	params   n float64 (IEEE 754 bits)
//	sha256   32 bytes over everything before it
//
// Version 1 is the same without metaLen and meta; it still loads, with a zero Meta. The
// checksum is verified before anything is parsed, so truncation and bit flips are reported
// as ErrCorrupt rather than read as a different model. Unknown keys in the spec or the
// metadata are errors: a field that changes what a file means needs a new version.
const (
	fileMagic   = "CONFIDEM"
	fileVersion = 2
	maxSpecLen  = 1 << 20
)

// ErrCorrupt reports a model file that is truncated, damaged or not a model file.
var ErrCorrupt = errors.New("corrupt model file")

// Marshal encodes the model's spec, metadata and parameters in the model file format.
// It does not check the metadata (Save does): a file with metadata that ValidateMeta
// refuses does not load, and a non-finite number in the metadata, which JSON cannot hold,
// is a programming error that panics.
func (m *Model) Marshal() []byte {
	spec, meta := m.Spec.JSON(), m.Meta.JSON()
	buf := make([]byte, 0, 8+4+4+len(spec)+4+len(meta)+8+8*len(m.Params)+sha256.Size)
	buf = append(buf, fileMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, fileVersion)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(spec)))
	buf = append(buf, spec...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(meta)))
	buf = append(buf, meta...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(m.Params)))
	for _, p := range m.Params {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p))
	}
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...)
}

// Unmarshal decodes a model file whose spec is within DefaultLimits.
func Unmarshal(data []byte) (*Model, error) { return Limits{}.Unmarshal(data) }

// Unmarshal decodes a model file (version 1 or 2) whose spec and metadata are within l.
// The spec is validated and the parameter count it implies compared with the stored
// vector's length before the model is built, so a file declaring a huge model is an
// error, not an allocation; the metadata's length is checked against l.MaxMetaBytes
// before it is decoded, and its content against the spec (ValidateMeta).
func (l Limits) Unmarshal(data []byte) (*Model, error) {
	l = l.withDefaults()
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
	version := binary.LittleEndian.Uint32(r)
	if version != 1 && version != fileVersion {
		return nil, fmt.Errorf("model file version %d is not supported (this build reads versions 1 and %d); upgrade confide", version, fileVersion)
	}
	r = r[4:]
	// section returns the next length-prefixed section of r, at most limit bytes, leaving
	// at least rest bytes after it.
	section := func(name string, limit int, limitName string, rest int) ([]byte, error) {
		if len(r) < 4 {
			return nil, corrupt("%s length: truncated", name)
		}
		n := binary.LittleEndian.Uint32(r)
		r = r[4:]
		if uint64(n) > uint64(limit) {
			return nil, fmt.Errorf("model file: %s of %d bytes exceeds the limit %d (%s)", name, n, limit, limitName)
		}
		if uint64(n)+uint64(rest) > uint64(len(r)) {
			return nil, corrupt("%s length %d exceeds the file", name, n)
		}
		s := r[:n]
		r = r[n:]
		return s, nil
	}
	specJSON, err := section("spec", maxSpecLen, "1 MiB", 8)
	if err != nil {
		return nil, err
	}
	var spec Spec
	if err := decodeStrict(specJSON, &spec); err != nil {
		return nil, corrupt("spec: %v", err)
	}
	var metaJSON []byte
	if version >= 2 {
		if metaJSON, err = section("metadata", l.MaxMetaBytes, "model.Limits.MaxMetaBytes", 8); err != nil {
			return nil, err
		}
	}
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
	var meta Meta
	if version >= 2 {
		// Decoding allocates per array element: count them first (an upper bound, cheaply)
		// against what a model of this spec can use, so that a hostile section of many
		// tiny values costs a multiple of the spec's sizes, not of the section's.
		if v, limit := jsonCommas(metaJSON), metaValueBound(spec); v > limit {
			return nil, fmt.Errorf("model file: the metadata holds %d values, more than a model of this spec uses (%d)", v, limit)
		}
		if err := decodeStrict(metaJSON, &meta); err != nil {
			return nil, corrupt("metadata: %v", err)
		}
		if err := l.ValidateMeta(spec, meta); err != nil {
			return nil, fmt.Errorf("model file: %w", err)
		}
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
	m.Meta = meta
	return m, nil
}

// jsonCommas counts the commas of JSON b outside strings: one fewer than the values of its
// arrays and objects (for valid JSON).
func jsonCommas(b []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == ',':
			n++
		}
	}
	return n
}

// metaValueBound is the most commas valid metadata for spec can hold: a class name per
// output, a token per id, a mean and a std per input, and fields and short lists (shape,
// privacy guarantees) below 512. Duplicated JSON keys could exceed it; Marshal writes none.
func metaValueBound(spec Spec) int {
	s := spec.withDefaults()
	return s.Output + s.Vocab + 2*s.Input + 512
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

// Save writes the model to path atomically: a temporary file in the same directory is
// written, synced and renamed over path, so a crash leaves either the old or the new file.
// Metadata that Load would refuse (ValidateMeta) is an error and nothing is written.
func (m *Model) Save(path string) error {
	if err := unlimited.ValidateMeta(m.Spec, m.Meta); err != nil {
		return fmt.Errorf("save model %s: %w", path, err)
	}
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
