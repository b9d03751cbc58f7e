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
//     adding it, so no sum of sizes can overflow;
//   - the blobs' bytes go into one buffer of the announced total, allocated once: at once
//     when the receiver has admitted the total (reserved memory for it, as the server
//     charges an upload's declared size to its upload budget), otherwise only once the
//     bytes received make up half of what it did not admit; until then Add keeps the
//     chunks as they arrive. A header that lies thus makes the receiver allocate at most
//     what it admitted plus twice the bytes actually sent, and never more than the limit;
//   - Add refuses bytes beyond the announced total, Finish a stream that ended short; it
//     checks every digest and hands each blob its slice of the buffer.
//
// Each byte is copied into the buffer once: from its chunk, or by the codec straight from
// the received frames (Room). An admitted upload never exists twice: the buffer holds it,
// plus at most the one chunk being copied; keeping every chunk and concatenating them at
// the end held two whole copies for a moment. Growing one buffer by doubling instead moves
// each byte about three times: a 100 MB upload on loopback took 0.6–2.2 s that way
// (TestPushThroughputAgainstRawTCP in server).
//
// An Assembler is used by one goroutine.
type Assembler struct {
	blobs    []*pb.Blob
	total    int64
	allocAt  int64    // received bytes at which buf is allocated
	chunks   [][]byte // the chunks received while buf is nil
	buf      []byte
	received int64
}

// NewAssembler checks the blob headers (non-negative sizes, no inline data) and that their
// sizes add up to at most limit bytes. admitted is how many bytes the caller has reserved
// for this stream (0: none): when it covers the announced total, the buffer is allocated
// here. The blobs are filled in by Finish.
func NewAssembler(blobs []*pb.Blob, limit, admitted int64) (*Assembler, error) {
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
	// Half of what is not admitted, rounded up (written so that nothing overflows).
	unadmitted := total - min(max(admitted, 0), total)
	a := &Assembler{blobs: blobs, total: total, allocAt: unadmitted/2 + unadmitted%2}
	if a.allocAt == 0 && total > 0 {
		a.buf = make([]byte, 0, total)
	}
	return a, nil
}

// Total returns the number of bytes the header announced.
func (a *Assembler) Total() int64 { return a.total }

// Received returns the number of bytes added so far.
func (a *Assembler) Received() int64 { return a.received }

// Room returns where the next bytes go once the buffer is allocated: an empty slice of it
// with the capacity of the bytes still to come (nil before). A receiver that has the next
// chunk written there (proto/wire does, for a chunk whose data part is Room's slice) saves
// Add its copy.
func (a *Assembler) Room() []byte {
	if a.buf == nil {
		return nil
	}
	return a.buf[len(a.buf):len(a.buf)]
}

// Add takes a chunk of the stream. Until the buffer is allocated it keeps the chunk, so the
// caller must not change chunk afterwards (a chunk unmarshalled from a protobuf message is
// its own copy); then it copies the chunk into the buffer, unless the chunk was written in
// place (Room). It refuses bytes beyond the announced total.
func (a *Assembler) Add(chunk []byte) error {
	n := int64(len(chunk))
	if n > a.total-a.received {
		return fmt.Errorf("more bytes than the header's blob sizes announce: a chunk of %d after %d of the %d announced bytes", n, a.received, a.total)
	}
	if n == 0 {
		return nil
	}
	if a.buf != nil && &chunk[0] == &a.buf[:len(a.buf)+1][len(a.buf)] { // written in Room
		a.buf = a.buf[:len(a.buf)+len(chunk)]
		a.received += n
		return nil
	}
	a.received += n
	if a.buf == nil && a.received < a.allocAt {
		a.chunks = append(a.chunks, chunk)
		return nil
	}
	if a.buf == nil {
		a.buf = make([]byte, 0, a.total)
		for _, c := range a.chunks {
			a.buf = append(a.buf, c...)
		}
		a.chunks = nil
	}
	a.buf = append(a.buf, chunk...)
	return nil
}

// Finish checks that every announced byte arrived, gives each blob its data and verifies
// the digests. It returns the blobs of the header.
func (a *Assembler) Finish() ([]*pb.Blob, error) {
	if a.received != a.total {
		return nil, fmt.Errorf("stream ended after %d of the %d announced bytes", a.received, a.total)
	}
	// received == total > 0 reaches allocAt, so buf holds every byte (nil when total is 0).
	buf := a.buf
	a.buf = nil
	var off int64
	for _, b := range a.blobs {
		b.Data = buf[off : off+b.Size : off+b.Size]
		off += b.Size
		if err := Verify(b); err != nil {
			return nil, err
		}
	}
	return a.blobs, nil
}
