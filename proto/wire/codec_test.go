package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/confide-fl/confide/proto/confide/v1"
)

// split cuts b into pieces of random sizes, as HTTP/2 frames deliver a message.
func split(b []byte, r *rand.Rand) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(40))
		out = append(out, mem.SliceBuffer(bytes.Clone(b[:n])))
		b = b[n:]
	}
	return out
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

func messages() []proto.Message {
	return []proto.Message{
		&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: payload(1000)}},
		&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: payload(127)}}, // one-byte length
		&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: payload(128)}}, // two-byte length
		&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: payload(1 << 16)}},
		&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: nil}},
		&pb.TaskChunk{Part: &pb.TaskChunk_Task{Task: &pb.Task{TaskId: "t-1", Round: 3}}},
		&pb.TaskChunk{Part: &pb.TaskChunk_NoTask{NoTask: &pb.NoTask{RetryAfterMs: 100}}},
		&pb.TaskChunk{},
		&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: payload(5000)}},
		&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: []byte{}}},
		&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: &pb.Result{TaskId: "t-1"}}},
		&pb.ResultChunk{},
		&pb.HeartbeatResponse{Round: 7, Finished: true},
	}
}

// TestSameBytesAsProtoCodec: what Codec writes is what gRPC's proto codec writes.
func TestSameBytesAsProtoCodec(t *testing.T) {
	std := encoding.GetCodecV2("proto")
	for _, m := range messages() {
		want, err := std.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Codec{}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want.Materialize()) {
			t.Errorf("%T %v: codec wrote % x…, proto codec % x…", m, m, head(got.Materialize()), head(want.Materialize()))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// TestRoundTrip: Codec reads back what it and the proto codec write, split into frames at
// random places.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range messages() {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			got := m.ProtoReflect().New().Interface()
			if err := (Codec{}).Unmarshal(split(b, r), got); err != nil {
				t.Fatalf("%T: %v", m, err)
			}
			if !proto.Equal(m, got) {
				t.Errorf("%T: round trip gave %v, want %v", m, got, m)
			}
		}
	}
}

// TestUnmarshalResetsTheMessage: as proto.Unmarshal, reading into a used message replaces it.
func TestUnmarshalResetsTheMessage(t *testing.T) {
	b, _ := proto.Marshal(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: []byte{1, 2, 3}}})
	m := &pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: &pb.Result{TaskId: "old"}}}
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.GetData(), []byte{1, 2, 3}) || m.GetResult() != nil {
		t.Fatalf("got %v", m)
	}
}

// TestUnmarshalDoesNotAlias: the data read is the message's own, not the frames' buffers
// (which gRPC returns to its pool).
func TestUnmarshalDoesNotAlias(t *testing.T) {
	b, _ := proto.Marshal(&pb.TaskChunk{Part: &pb.TaskChunk_Data{Data: []byte{9, 9, 9}}})
	var m pb.TaskChunk
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &m); err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] = 0
	if !bytes.Equal(m.GetData(), []byte{9, 9, 9}) {
		t.Fatalf("data changed with the frame's buffer: %v", m.GetData())
	}
}

// FuzzUnmarshalAgreesWithProto: on any input, split anywhere, Codec accepts what
// proto.Unmarshal accepts and produces the same message.
func FuzzUnmarshalAgreesWithProto(f *testing.F) {
	for _, m := range messages() {
		b, _ := proto.Marshal(m)
		f.Add(b, uint64(1), false)
		f.Add(b, uint64(2), true)
	}
	f.Add([]byte{resultDataTag, 0x83, 0x00, 1, 2, 3}, uint64(3), true) // non-minimal length
	f.Add([]byte{resultDataTag, 5, 1, 2}, uint64(4), true)             // truncated
	f.Add([]byte{resultDataTag, 1, 1, resultDataTag, 1, 2}, uint64(5), true)
	f.Fuzz(func(t *testing.T, b []byte, seed uint64, task bool) {
		r := rand.New(rand.NewPCG(seed, 0))
		var want, got proto.Message = &pb.ResultChunk{}, &pb.ResultChunk{}
		if task {
			want, got = &pb.TaskChunk{}, &pb.TaskChunk{}
		}
		wantErr := proto.Unmarshal(b, want)
		gotErr := Codec{}.Unmarshal(split(b, r), got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("% x: proto.Unmarshal error %v, codec error %v", b, wantErr, gotErr)
		}
		if wantErr == nil {
			if !proto.Equal(want, got) {
				t.Fatalf("% x: codec read %v, proto.Unmarshal %v", b, got, want)
			}
		}
	})
}

// BenchmarkUnmarshal compares reading a 1 MiB data chunk delivered as 16 KiB frames.
func BenchmarkUnmarshal(b *testing.B) {
	msg, _ := proto.Marshal(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: payload(1 << 20)}})
	var frames mem.BufferSlice
	for off := 0; off < len(msg); off += 16 << 10 {
		frames = append(frames, mem.SliceBuffer(msg[off:min(off+16<<10, len(msg))]))
	}
	for _, c := range []encoding.CodecV2{encoding.GetCodecV2("proto"), Codec{}} {
		b.Run(map[bool]string{true: "wire", false: "grpc-proto"}[c == Codec{}], func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var m pb.ResultChunk
				if err := c.Unmarshal(frames, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestChunkFieldsAreKnown: the fast paths read and write a chunk as its data field alone,
// which is right only while the chunks have exactly the fields below; a field added to
// TaskChunk or ResultChunk must be taught to Marshal and dataField first.
func TestChunkFieldsAreKnown(t *testing.T) {
	for _, tc := range []struct {
		m      proto.Message
		fields []string
		data   int
	}{
		{&pb.TaskChunk{}, []string{"task", "no_task", "data"}, taskDataTag >> 3},
		{&pb.ResultChunk{}, []string{"result", "data"}, resultDataTag >> 3},
	} {
		fs := tc.m.ProtoReflect().Descriptor().Fields()
		if fs.Len() != len(tc.fields) {
			t.Fatalf("%T has %d fields, the codec knows %v", tc.m, fs.Len(), tc.fields)
		}
		for _, name := range tc.fields {
			if fs.ByName(protoreflect.Name(name)) == nil {
				t.Fatalf("%T has no field %s", tc.m, name)
			}
		}
		if d := fs.ByName("data"); int(d.Number()) != tc.data || d.Kind() != protoreflect.BytesKind || d.ContainingOneof() == nil {
			t.Fatalf("%T.data is field %d of kind %v, the codec writes field %d (bytes, in the oneof)", tc.m, d.Number(), d.Kind(), tc.data)
		}
	}
}
