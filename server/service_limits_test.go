package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// pushHeader opens a PushResult stream and sends a result header for task with blobs of
// the given sizes, then the data chunks.
func pushHeader(ctx context.Context, api pb.FederationClient, task *pb.Task, sizes []int64, data ...[]byte) (grpc.ClientStreamingClient[pb.ResultChunk, pb.PushResultResponse], error) {
	st, err := api.PushResult(ctx)
	if err != nil {
		return nil, err
	}
	header := &pb.Result{TaskId: task.TaskId, Kind: task.Kind, Round: task.Round, Status: pb.ResultStatus_RESULT_STATUS_OK, NumExamples: 10}
	for _, n := range sizes {
		header.Blobs = append(header.Blobs, &pb.Blob{Name: blob.Update, Size: n})
	}
	if err := st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: header}}); err != nil {
		return st, err
	}
	for _, d := range data {
		if err := st.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: d}}); err != nil {
			return st, err
		}
	}
	return st, nil
}

func pushAndClose(ctx context.Context, api pb.FederationClient, task *pb.Task, sizes []int64, data ...[]byte) error {
	st, err := pushHeader(ctx, api, task, sizes, data...)
	if st == nil {
		return err
	}
	_, err = st.CloseAndRecv()
	return err
}

// Blob sizes MaxInt64 and 2 add up to a negative total that used to pass the limit check and
// panic in make: the server must refuse them and keep serving.
func TestServiceSurvivesWrappingBlobSizes(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctxA, ctxB := s.join(t, "a"), s.join(t, "b")
	task, _ := pullTask(t, s.api, ctxA)
	for _, sizes := range [][]int64{{math.MaxInt64, 2}, {2, math.MaxInt64}, {math.MaxInt64}, {-1, 1}} {
		err := pushAndClose(ctxA, s.api, task, sizes)
		if c := status.Code(err); c != codes.ResourceExhausted && c != codes.InvalidArgument {
			t.Fatalf("sizes %v: err = %v, want a refusal", sizes, err)
		}
	}
	// The server still works: both clients finish the round.
	update := blob.EncodeFloats(make([]float64, 8))
	if err := pushAndClose(ctxA, s.api, task, []int64{64}, update[:16], update[16:32], update[32:48], update[48:]); err != nil {
		t.Fatalf("valid push after the attack: %v", err)
	}
	taskB, _ := pullTask(t, s.api, ctxB)
	if err := pushAndClose(ctxB, s.api, taskB, []int64{64}, update[:16], update[16:32], update[32:48], update[48:]); err != nil {
		t.Fatalf("valid push of b: %v", err)
	}
	<-s.svc.Done()
}

// A header is refused before any data is read when its task does not exist, is not the
// caller's, or announces more than the task can produce (8 float64 values here), even
// below the service-wide limit.
func TestServiceRefusesResultHeadersBeforeReadingData(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctxA, ctxB := s.join(t, "a"), s.join(t, "b")
	task, _ := pullTask(t, s.api, ctxA)
	ghost := &pb.Task{TaskId: "fit-r1-999", Kind: task.Kind, Round: task.Round}
	wantCode(t, pushAndClose(ctxA, s.api, ghost, []int64{4000}), codes.NotFound, "never issued")
	wantCode(t, pushAndClose(ctxB, s.api, task, []int64{4000}), codes.PermissionDenied, "another client")
	wantCode(t, pushAndClose(ctxA, s.api, task, []int64{65}), codes.ResourceExhausted, "exceeds the server's limit")
	wantCode(t, pushAndClose(ctxA, s.api, task, []int64{32, 33}), codes.ResourceExhausted, "exceeds the server's limit")
}

// A client may have one upload in flight: of two concurrent PushResult streams that each
// wait for the rest of their data, the one that reached the server second is refused at
// once, and the other completes.
func TestServiceAllowsOneUploadPerClient(t *testing.T) {
	s := startService(t, baseConfig(1, 2))
	ctxA := s.join(t, "a")
	s.join(t, "b") // the round starts with two clients
	task, _ := pullTask(t, s.api, ctxA)
	update := blob.EncodeFloats(make([]float64, 8))
	type outcome struct {
		i   int
		err error
	}
	done := make(chan outcome, 2)
	var streams [2]grpc.ClientStreamingClient[pb.ResultChunk, pb.PushResultResponse]
	for i := range streams {
		st, err := pushHeader(ctxA, s.api, task, []int64{64}, update[:16])
		// io.EOF: the server already ended this stream (the refusal, if it is the second);
		// RecvMsg returns its status.
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		streams[i] = st
		go func() { done <- outcome{i, st.RecvMsg(new(pb.PushResultResponse))} }()
	}
	refused := <-done
	wantCode(t, refused.err, codes.ResourceExhausted, "one at a time")
	other := streams[1-refused.i]
	for _, d := range [][]byte{update[16:32], update[32:48], update[48:]} {
		if err := other.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: d}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if o := <-done; o.err != nil {
		t.Fatalf("the upload in flight failed: %v", o.err)
	}
}

// TestServiceBoundsUploadMemory: uploads hold their declared bytes of MaxUploadBytes while
// they are received, so a second upload waits until the first is done (or is refused
// after UploadSlotWait), however many upload slots are free.
func TestServiceBoundsUploadMemory(t *testing.T) {
	coord, err := server.New(baseConfig(1, 2), server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := startServiceWith(t, coord, server.ServiceConfig{JoinToken: "tok", TickInterval: 20 * time.Millisecond, MaxChunkBytes: 16, MaxResultBytes: 4096,
		MaxPullWait: 200 * time.Millisecond, MaxClients: 2, MaxUploadBytes: 100, UploadSlotWait: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctxA, ctxB := s.join(t, "a"), s.join(t, "b")
	taskA, _ := pullTask(t, s.api, ctxA)
	taskB, _ := pullTask(t, s.api, ctxB)
	update := blob.EncodeFloats(make([]float64, 8)) // 64 bytes each: two do not fit in 100
	first, err := pushHeader(ctxA, s.api, taskA, []int64{64}, update[:16])
	if err != nil {
		t.Fatal(err)
	}
	// a's first data chunk has arrived once the server counts its bytes: a holds its 64.
	for deadline := time.Now().Add(5 * time.Second); receivedBytes(t, s.svc) < 16; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a's first chunk never arrived")
		}
	}
	// b's upload waits for a's bytes and is refused when UploadSlotWait passes.
	start := time.Now()
	wantCode(t, pushAndClose(ctxB, s.api, taskB, []int64{64}, update[:16], update[16:32], update[32:48], update[48:]), codes.ResourceExhausted, "upload memory")
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("b's upload was refused after %v, before UploadSlotWait", waited)
	}
	// Once a's upload is done, b's goes through.
	for _, d := range [][]byte{update[16:32], update[32:48], update[48:]} {
		if err := first.Send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: d}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.CloseAndRecv(); err != nil {
		t.Fatalf("a's upload: %v", err)
	}
	if err := pushAndClose(ctxB, s.api, taskB, []int64{64}, update[:16], update[16:32], update[32:48], update[48:]); err != nil {
		t.Fatalf("b's upload after a's: %v", err)
	}
}

// receivedBytes is the service's confide_received_bytes_total.
func receivedBytes(t *testing.T, svc *server.Service) float64 {
	t.Helper()
	mfs, err := svc.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "confide_received_bytes_total" && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
