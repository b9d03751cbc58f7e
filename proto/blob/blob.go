// Package blob builds and reads the named binary payloads (confidev1.Blob) that tasks and
// results of the federation protocol carry: parameter and update vectors as little-endian
// float64, and opaque secure-aggregation messages. Both the server and the client use it,
// so a vector is encoded and validated the same way on either side.
//
// Decoding never panics: wrong sizes, digests that do not match, and non-finite values are
// errors naming the blob and the problem.
package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// Names of the blobs of confide.v1 tasks and results.
const (
	Params          = "params"
	Control         = "control" // SCAFFOLD's server control variate
	PublicKey       = "public_key"
	Update          = "update"
	EncryptedUpdate = "encrypted_update"
	Announcement    = "announcement"
	Roster          = "roster"
	Dealing         = "dealing"
	Delivery        = "delivery"
	Request         = "request"
	Share           = "share"
	Challenge       = "challenge"
	Opening         = "opening"
	// Hierarchical aggregation (service Aggregation).
	HeldUpload = "held_upload" // a fit result whose upload an aggregator holds: its 32-byte commitment root
	PartialSum = "partial_sum" // an aggregator's secagg.PartialSum
)

// New returns a blob holding data, with its size and SHA-256 digest.
func New(name string, data []byte) *pb.Blob {
	sum := sha256.Sum256(data)
	return &pb.Blob{Name: name, Size: int64(len(data)), Sha256: sum[:], Data: data}
}

// Verify checks that the blob's data has the announced size and digest.
func Verify(b *pb.Blob) error {
	if b == nil {
		return fmt.Errorf("blob: missing")
	}
	if int64(len(b.Data)) != b.Size {
		return fmt.Errorf("blob %q: %d bytes, header announced %d", b.Name, len(b.Data), b.Size)
	}
	if len(b.Sha256) != 0 {
		sum := sha256.Sum256(b.Data)
		if !bytes.Equal(sum[:], b.Sha256) {
			return fmt.Errorf("blob %q: SHA-256 does not match its data (corrupted in transit)", b.Name)
		}
	}
	return nil
}

// Find returns the data of the blob called name, verified, or an error naming what is missing.
func Find(blobs []*pb.Blob, name string) ([]byte, error) {
	var found *pb.Blob
	for _, b := range blobs {
		if b.GetName() == name {
			if found != nil {
				return nil, fmt.Errorf("blob %q appears twice", name)
			}
			found = b
		}
	}
	if found == nil {
		return nil, fmt.Errorf("blob %q missing", name)
	}
	if err := Verify(found); err != nil {
		return nil, err
	}
	return found.Data, nil
}

// EncodeFloats returns v as little-endian float64 bytes.
func EncodeFloats(v []float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

// DecodeFloats reads a little-endian float64 vector of want values (any length if want < 0)
// and refuses non-finite values.
func DecodeFloats(b []byte, want int) ([]float64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("vector of %d bytes is not a whole number of float64 values", len(b))
	}
	n := len(b) / 8
	if want >= 0 && n != want {
		return nil, fmt.Errorf("vector has %d values, want %d", n, want)
	}
	v := make([]float64, n)
	for i := range v {
		x := math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("vector value %d is %v, want a finite number", i, x)
		}
		v[i] = x
	}
	return v, nil
}
