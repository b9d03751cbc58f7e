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

// Model file format, version 3 (little-endian):
//
//	magic    8 bytes  "CONFIDEM"
//	version  uint32   3
//	specLen  uint32   length of the spec JSON (≤ 1 MiB, plus a quarter of the file for the
//	         mask of a pruned model)
//	spec     specLen bytes of JSON (Spec)
//	metaLen  uint32   length of the metadata JSON (≤ Limits.MaxMetaBytes)
//	meta     metaLen bytes of JSON (Meta: class names, input normalisation, tokenizer,
//	         provenance, the precision the layer math ran in when not float64)
//	quantLen uint32   length of the quantisation JSON (≤ 1 MiB; 0 for float64 parameters)
//	quant    quantLen bytes of JSON (Quantization: precision, activations, the tensors)
//	n        uint64   number of parameters
//	params   float64: n float64 (IEEE 754 bits);
//	         int8: for each quantised tensor in order, a float32 scale per channel and its
//	         Rows×Cols values as int8, then every other parameter as float64, in order;
//	         in both, the parameters a mask prunes are left out (they are zero)
//	sha256   32 bytes over everything before it
//
// Version 2 is the same without quantLen and quant, version 1 also without metaLen and
// meta (its Meta is zero); both still load, and Save writes version 2 for a model that
// needs nothing of version 3 (a float64 model without a mask), so older readers read it.
// The checksum is verified before anything is parsed, so truncation and bit flips are
// reported as ErrCorrupt rather than read as a different model. Unknown keys in the spec,
// the metadata or the quantisation are errors: a field that changes what a file means
// needs a new version.
const (
	fileMagic   = "CONFIDEM"
	fileVersion = 3
	maxSpecLen  = 1 << 20
	maxQuantLen = 1 << 20
)

// ErrCorrupt reports a model file that is truncated, damaged or not a model file.
var ErrCorrupt = errors.New("corrupt model file")

// FileVersion is the format version Marshal writes for the model: 3 when it is quantised,
// pruned (its spec has a mask) or its provenance lists compression steps, else 2.
func (m *Model) FileVersion() uint32 {
	if m.quant != nil || m.Spec.Mask != nil || (m.Meta.Provenance != nil && len(m.Meta.Provenance.Compression) > 0) {
		return 3
	}
	return 2
}

// Marshal encodes the model's spec, metadata and parameters in the model file format.
// It does not check the metadata (Save does): a file with metadata that ValidateMeta
// refuses does not load, and a non-finite number in the metadata, which JSON cannot hold,
// is a programming error that panics.
func (m *Model) Marshal() []byte {
	md := m.Meta
	md.ComputePrecision = m.precision
	spec, meta := m.Spec.JSON(), md.JSON()
	version := m.FileVersion()
	var quant []byte
	if m.quant != nil {
		var err error
		if quant, err = json.Marshal(m.quant); err != nil {
			panic(fmt.Sprintf("model: quantization does not marshal: %v", err))
		}
	}
	size := m.ParamBytes()
	buf := make([]byte, 0, 8+4+4+int64(len(spec))+4+int64(len(meta))+4+int64(len(quant))+8+size+sha256.Size)
	buf = append(buf, fileMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, version)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(spec)))
	buf = append(buf, spec...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(meta)))
	buf = append(buf, meta...)
	if version >= 3 {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(quant)))
		buf = append(buf, quant...)
	}
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(m.Params)))
	mask := m.Spec.Mask
	stored := func(i int) bool { return version < 3 || mask == nil || !mask.IsPruned(i) }
	inTensor := make([]bool, len(m.Params))
	if m.quant != nil {
		for _, t := range m.quant.Tensors {
			for _, s := range t.Scales {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(s))
			}
			for k, v := range t.Values {
				if stored(t.Offset + k) {
					buf = append(buf, byte(v))
				}
				inTensor[t.Offset+k] = true
			}
		}
	}
	for i, p := range m.Params {
		if !inTensor[i] && stored(i) {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p))
		}
	}
	sum := sha256.Sum256(buf)
	return append(buf, sum[:]...)
}

// Unmarshal decodes a model file whose spec is within DefaultLimits.
func Unmarshal(data []byte) (*Model, error) { return Limits{}.Unmarshal(data) }

// Unmarshal decodes a model file (version 1, 2 or 3) whose spec and metadata are within l.
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
	if version < 1 || version > fileVersion {
		return nil, fmt.Errorf("model file version %d is not supported (this build reads versions 1 to %d); upgrade confide", version, fileVersion)
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
	// A pruned model's spec holds its mask, n/6 bytes for n parameters that take at least n
	// bytes of the file: a quarter of the file on top of the 1 MiB bounds it.
	specJSON, err := section("spec", maxSpecLen+len(r)/4, "1 MiB and a quarter of the file", 8)
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
	var quant *Quantization
	if version >= 3 {
		quantJSON, err := section("quantization", maxQuantLen, "1 MiB", 8)
		if err != nil {
			return nil, err
		}
		if len(quantJSON) > 0 {
			quant = &Quantization{}
			if err := decodeStrict(quantJSON, quant); err != nil {
				return nil, corrupt("quantization: %v", err)
			}
		}
	}
	n := binary.LittleEndian.Uint64(r)
	r = r[8:]
	want, err := l.NumParams(spec)
	if err != nil {
		return nil, fmt.Errorf("model file: %w", err)
	}
	if uint64(want) != n {
		return nil, corrupt("spec needs %d parameters, file holds %d", want, n)
	}
	// Version 3 leaves out the parameters the mask prunes (the spec's mask covers n, as
	// NumParams checked).
	mask := spec.Mask
	if version < 3 {
		mask = nil
	}
	if quant == nil {
		stored := n
		if mask != nil {
			stored -= uint64(mask.Pruned())
		}
		if uint64(len(r))%8 != 0 || stored != uint64(len(r))/8 {
			return nil, corrupt("header says %d parameters (%d stored), file holds %d bytes of them", n, stored, len(r))
		}
	} else if err := quant.checkSizes(n, mask, len(r)); err != nil {
		return nil, corrupt("%v", err)
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
	if quant != nil {
		if err := m.checkQuantization(quant); err != nil {
			return nil, fmt.Errorf("model file: %w", err)
		}
		if r, err = m.readQuantized(quant, mask, r); err != nil {
			return nil, fmt.Errorf("model file: %w", err)
		}
	}
	for i, k := 0, 0; i < len(m.Params); i++ {
		if quant != nil && quant.covers(i) || mask != nil && mask.IsPruned(i) {
			continue
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(r[8*k:]))
		k++
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("model file: parameter %d is %v: the model diverged before it was saved", i, v)
		}
		m.Params[i] = v
	}
	if quant != nil {
		m.setQuant(quant)
	}
	m.ApplyMask() // a pruned parameter reads as zero, whatever (noise, rounding) it holds
	m.precision, meta.ComputePrecision = meta.ComputePrecision, Float64
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
