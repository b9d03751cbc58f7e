package blob

import (
	"errors"
	"fmt"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// ErrTooLarge is wrapped by the errors of an Assembler whose header announces more bytes than
// its limit allows; the other errors are malformed streams.
var ErrTooLarge = errors.New("payload too large")

// Assembler rebuilds the blobs of a streamed task or result: a header announces each blob's
// name, size and digest, and the bytes follow in chunks. The server (results) and the client
// (tasks) both use it, because the header comes from the other side and may lie:
//
//   - NewAssembler checks each announced size against what remains of the limit before
//     adding it, so no sum of sizes can overflow, and allocates nothing;
//   - Add grows the buffer as chunks arrive, never beyond the announced total, so memory
//     follows the bytes actually received, not the bytes promised;
//   - Finish checks the count and every digest and hands each blob its slice.
//
// An Assembler is used by one goroutine.
type Assembler struct {
	blobs []*pb.Blob
	total int64
	buf   []byte
}

// minGrowth is the first allocation of an Assembler that receives data.
const minGrowth = 64 << 10

// NewAssembler checks the blob headers (non-negative sizes, no inline data) and that their
// sizes add up to at most limit bytes. The blobs are filled in by Finish.
func NewAssembler(blobs []*pb.Blob, limit int64) (*Assembler, error) {
	remaining := max(limit, 0)
	var total int64
	for _, b := range blobs {
		if b == nil {
			return nil, errors.New("blob header missing")
		}
		if b.Size < 0 || len(b.Data) != 0 {
			return nil, fmt.Errorf("blob %q header: size %d, %d inline bytes; send sizes in the header and bytes as chunks", b.Name, b.Size, len(b.Data))
		}
		if b.Size > remaining {
			return nil, fmt.Errorf("blob %q of %d bytes exceeds the %d bytes left of the limit of %d: %w", b.Name, b.Size, remaining, limit, ErrTooLarge)
		}
		remaining -= b.Size
		total += b.Size
	}
	return &Assembler{blobs: blobs, total: total}, nil
}

// Total returns the number of bytes the header announced.
func (a *Assembler) Total() int64 { return a.total }

// Received returns the number of bytes added so far.
func (a *Assembler) Received() int64 { return int64(len(a.buf)) }

// Add appends a chunk of the stream. It refuses bytes beyond the announced total.
func (a *Assembler) Add(chunk []byte) error {
	n := int64(len(a.buf))
	if int64(len(chunk)) > a.total-n {
		return fmt.Errorf("more bytes than the header's blob sizes announce (%d)", a.total)
	}
	if need := len(a.buf) + len(chunk); need > cap(a.buf) {
		// Double, but never past the announced total: a peer that announces much and sends
		// little costs only what it sent.
		c := int(min(int64(max(2*cap(a.buf), need, minGrowth)), a.total))
		grown := make([]byte, len(a.buf), c)
		copy(grown, a.buf)
		a.buf = grown
	}
	a.buf = append(a.buf, chunk...)
	return nil
}

// Finish checks that every announced byte arrived, gives each blob its data and verifies
// the digests. It returns the blobs of the header.
func (a *Assembler) Finish() ([]*pb.Blob, error) {
	if n := int64(len(a.buf)); n != a.total {
		return nil, fmt.Errorf("stream ended after %d of the %d announced bytes", n, a.total)
	}
	var off int64
	for _, b := range a.blobs {
		b.Data = a.buf[off : off+b.Size : off+b.Size]
		off += b.Size
		if err := Verify(b); err != nil {
			return nil, err
		}
	}
	return a.blobs, nil
}
