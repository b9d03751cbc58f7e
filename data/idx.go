package data

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrFormat is wrapped by every error about a file whose content does not follow its
// format (bad magic number, truncated data, a field of the wrong type), as opposed to an
// error opening or reading it.
var ErrFormat = errors.New("malformed data")

// IDXType is the element type code of an IDX file (LeCun et al., "THE MNIST DATABASE",
// file format section): the third byte of the magic number.
type IDXType byte

// The IDX element types. MNIST and Fashion-MNIST use IDXUint8 only; the others are read
// too, since the format defines them.
const (
	IDXUint8   IDXType = 0x08
	IDXInt8    IDXType = 0x09
	IDXInt16   IDXType = 0x0B
	IDXInt32   IDXType = 0x0C
	IDXFloat32 IDXType = 0x0D
	IDXFloat64 IDXType = 0x0E
)

// Size returns the element size in bytes, or 0 for an unknown type.
func (t IDXType) Size() int {
	switch t {
	case IDXUint8, IDXInt8:
		return 1
	case IDXInt16:
		return 2
	case IDXInt32, IDXFloat32:
		return 4
	case IDXFloat64:
		return 8
	}
	return 0
}

// String names the type as the format's description does.
func (t IDXType) String() string {
	switch t {
	case IDXUint8:
		return "unsigned byte"
	case IDXInt8:
		return "signed byte"
	case IDXInt16:
		return "short"
	case IDXInt32:
		return "int"
	case IDXFloat32:
		return "float"
	case IDXFloat64:
		return "double"
	}
	return fmt.Sprintf("unknown type 0x%02x", byte(t))
}

// MaxIDXBytes bounds the element data of one IDX file, so a corrupt header claiming huge
// dimensions is rejected before anything is allocated.
const MaxIDXBytes = 1 << 32

// IDX is the content of one IDX file: its element type, its dimensions (outermost
// first) and its elements, stored as in the file: big-endian, row-major.
type IDX struct {
	Type IDXType
	Dims []int
	Data []byte
}

// Len returns the number of elements (the product of Dims).
func (x *IDX) Len() int {
	n := 1
	for _, d := range x.Dims {
		n *= d
	}
	return n
}

// Float64 returns element i (in row-major order) converted to float64.
func (x *IDX) Float64(i int) float64 {
	switch x.Type {
	case IDXUint8:
		return float64(x.Data[i])
	case IDXInt8:
		return float64(int8(x.Data[i]))
	case IDXInt16:
		return float64(int16(binary.BigEndian.Uint16(x.Data[2*i:])))
	case IDXInt32:
		return float64(int32(binary.BigEndian.Uint32(x.Data[4*i:])))
	case IDXFloat32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(x.Data[4*i:])))
	case IDXFloat64:
		return math.Float64frombits(binary.BigEndian.Uint64(x.Data[8*i:]))
	}
	panic(fmt.Sprintf("data: IDX element of %v", x.Type))
}

// ReadIDX reads one IDX file from r, gzip-compressed or raw (recognised by the gzip magic
// bytes). It checks the magic number, the element type, that every dimension is
// positive, and that the data holds exactly the product of the dimensions elements: a
// truncated file, trailing bytes or a corrupt gzip stream is an error wrapping ErrFormat.
func ReadIDX(r io.Reader) (*IDX, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil && len(head) < 2 {
		if err == io.EOF {
			return nil, fmt.Errorf("idx: empty or %d-byte file: %w", len(head), ErrFormat)
		}
		return nil, fmt.Errorf("idx: %w", err)
	}
	var src io.Reader = br
	compressed := head[0] == 0x1f && head[1] == 0x8b
	if compressed {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("idx: gzip header: %v: %w", err, ErrFormat)
		}
		defer zr.Close()
		zr.Multistream(false)
		src = zr
	}
	x, err := readIDX(src)
	if err != nil {
		return nil, err
	}
	// One more read must find the end: anything else is trailing data, or (for gzip)
	// the stream's checksum failing, which gzip reports at the end.
	var one [1]byte
	n, err := io.ReadFull(src, one[:])
	switch {
	case n > 0:
		return nil, fmt.Errorf("idx: trailing bytes after %d elements of %v (dims %v): %w", x.Len(), x.Type, x.Dims, ErrFormat)
	case err == io.EOF:
		return x, nil
	default:
		if err = readErr(err); !errors.Is(err, ErrFormat) {
			err = fmt.Errorf("%v: %w", err, ErrFormat)
		}
		return nil, fmt.Errorf("idx: end of data: %w", err)
	}
}

func readIDX(r io.Reader) (*IDX, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("idx: magic number: %w", readErr(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("idx: magic number % x does not start with two zero bytes (not an IDX file?): %w", magic, ErrFormat)
	}
	t := IDXType(magic[2])
	if t.Size() == 0 {
		return nil, fmt.Errorf("idx: magic number % x: %v: %w", magic, t, ErrFormat)
	}
	nd := int(magic[3])
	if nd == 0 {
		return nil, fmt.Errorf("idx: magic number % x declares 0 dimensions: %w", magic, ErrFormat)
	}
	dimBuf := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, dimBuf); err != nil {
		return nil, fmt.Errorf("idx: %d dimension sizes: %w", nd, readErr(err))
	}
	x := &IDX{Type: t, Dims: make([]int, nd)}
	size := int64(t.Size())
	for i := range x.Dims {
		d := binary.BigEndian.Uint32(dimBuf[4*i:])
		if d == 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("idx: dimension %d has size %d, want 1 to %d: %w", i, d, math.MaxInt32, ErrFormat)
		}
		x.Dims[i] = int(d)
		size *= int64(d)
		if size > MaxIDXBytes {
			return nil, fmt.Errorf("idx: dimensions %v… of %v exceed %d bytes: %w", x.Dims[:i+1], t, int64(MaxIDXBytes), ErrFormat)
		}
	}
	// Grow the buffer as data arrives rather than trusting the header with one
	// allocation: a truncated file then costs only what it holds.
	var buf bytes.Buffer
	buf.Grow(int(min(size, 1<<26)))
	n, err := io.CopyN(&buf, r, size)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("idx: truncated: %d of %d data bytes for dims %v of %v: %w", n, size, x.Dims, t, ErrFormat)
		}
		return nil, fmt.Errorf("idx: data after %d of %d bytes: %w", n, size, readErr(err))
	}
	x.Data = buf.Bytes()
	return x, nil
}

// readErr turns an early end of input into an ErrFormat error and passes others through.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated file: %w", ErrFormat)
	}
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt) {
		return fmt.Errorf("%v: %w", err, ErrFormat)
	}
	return err
}

// ReadIDXFile reads the IDX file at path (gzip-compressed or raw).
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	x, err := ReadIDX(f)
	if err != nil {
		return nil, fmt.Errorf("data: %s: %w", path, err)
	}
	return x, nil
}
