// Package wire is the gRPC codec of the federation's service: protobuf, as gRPC's own
// codec encodes it, with one difference in how the bulk messages move through memory.
//
// A task or a result travels as chunks (pb.TaskChunk, pb.ResultChunk) whose data part is a
// slice of a model or an update of up to hundreds of megabytes. gRPC's proto codec marshals
// every chunk into a fresh buffer (a copy of the data), and on receipt joins the chunk's
// HTTP/2 frames into one buffer (a copy) that proto.Unmarshal copies again into the message.
// For a chunk that holds only data, this codec writes the field's tag and length and hands
// gRPC the caller's slice itself, and on receipt copies the frames' bytes once, straight
// into the message's data. Everything else — other messages, chunks with a header part,
// and any input that is not exactly one data field — goes through gRPC's proto codec, so the
// bytes on the wire are the same as with it and a peer using the default codec cannot tell.
//
// As with any gRPC message, a chunk's data must not be modified after Send until the
// stream has ended: the codec does not copy it, and gRPC writes it (and keeps it for
// retries) after Send returns. The data is otherwise read-only to gRPC.
package wire

import (
	"encoding/binary"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec this one defers to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// Field tags (field number << 3 | wire type 2, length-delimited) of the data parts.
const (
	taskDataTag   = 3<<3 | 2 // TaskChunk.data = 3
	resultDataTag = 2<<3 | 2 // ResultChunk.data = 2
)

// Codec is the codec; it names itself "proto", as the content it reads and writes is.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// ServerOption makes a gRPC server use Codec for every call.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(Codec{}) }

// CallOption makes a client's calls use Codec (as grpc.WithDefaultCallOptions(CallOption())).
func CallOption() grpc.CallOption { return grpc.ForceCodecV2(Codec{}) }

// Name implements encoding.CodecV2.
func (Codec) Name() string { return "proto" }

// protoCodec is gRPC's own proto codec, taken once: a codec registered later under the
// same name (this one, or another library's) does not replace it.
var protoCodec = encoding.GetCodecV2("proto")

func fallback() encoding.CodecV2 { return protoCodec }

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	var tag byte
	var data []byte
	switch m := v.(type) {
	case *pb.TaskChunk:
		d, ok := m.GetPart().(*pb.TaskChunk_Data)
		if !ok || len(m.ProtoReflect().GetUnknown()) > 0 {
			return fallback().Marshal(v)
		}
		tag, data = taskDataTag, d.Data
	case *pb.ResultChunk:
		d, ok := m.GetPart().(*pb.ResultChunk_Data)
		if !ok || len(m.ProtoReflect().GetUnknown()) > 0 {
			return fallback().Marshal(v)
		}
		tag, data = resultDataTag, d.Data
	default:
		return fallback().Marshal(v)
	}
	head := make([]byte, 1, 1+binary.MaxVarintLen64)
	head[0] = tag
	head = binary.AppendUvarint(head, uint64(len(data)))
	out := mem.BufferSlice{mem.SliceBuffer(head)}
	if len(data) > 0 {
		out = append(out, mem.SliceBuffer(data))
	}
	return out, nil
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *pb.TaskChunk:
		if payload, ok := dataField(data, taskDataTag); ok {
			proto.Reset(m)
			m.Part = &pb.TaskChunk_Data{Data: payload}
			return nil
		}
	case *pb.ResultChunk:
		if payload, ok := dataField(data, resultDataTag); ok {
			proto.Reset(m)
			m.Part = &pb.ResultChunk_Data{Data: payload}
			return nil
		}
	}
	return fallback().Unmarshal(data, v)
}

// dataField returns a copy of the bytes of the length-delimited field tag when data is
// exactly that one field (a one-byte tag, a minimal varint length, the bytes) and false
// otherwise, in which case the caller leaves the message to the proto codec.
func dataField(data mem.BufferSlice, tag byte) ([]byte, bool) {
	total := data.Len()
	var head [1 + binary.MaxVarintLen64]byte
	n := 0
	for _, b := range data {
		n += copy(head[n:], b.ReadOnlyData())
		if n == len(head) {
			break
		}
	}
	if n < 2 || head[0] != tag {
		return nil, false
	}
	size, k := binary.Uvarint(head[1:n])
	// k ≤ 0: truncated or overlong varint. A non-minimal varint (a trailing 0x80…00) is
	// valid protobuf but not what a marshaller writes: the proto codec takes those.
	if k <= 0 || (k > 1 && head[k] == 0) || size != uint64(total-1-k) {
		return nil, false
	}
	out := make([]byte, size)
	skip, off := 1+k, 0
	for _, b := range data {
		d := b.ReadOnlyData()
		if skip >= len(d) {
			skip -= len(d)
			continue
		}
		off += copy(out[off:], d[skip:])
		skip = 0
	}
	return out, true
}
