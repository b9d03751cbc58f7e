package aggregator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// Summing (the aggregator's half of server/partials.go). With a Verifier the relay keeps
// the fit uploads of its clients instead of relaying them: it learns each fit task from the
// task it relays (the session, the parameters, the number of values an upload encrypts),
// checks a client's upload as the server's Aggregator would (secagg.Subtotal.Check), and
// forwards the client's result with the upload's commitment root (blob HeldUpload) in its
// place. Once the server has accepted that result it adds the upload to the round's
// Subtotal; an upload the server refused (a late one) is never added. The server asks for
// the partial sum when the round stops collecting (TASK_KIND_PARTIAL_SUM over the
// Aggregation service, pulled by Run) and relays its members' spot-check challenges
// (TASK_KIND_OPEN). An upload that fails the aggregator's checks is relayed unchanged, so
// the server refuses it as it would without an aggregator.
//
// State: the subtotals of the current round (and the one before, until it is decrypted);
// nothing is written anywhere, so a restarted aggregator has lost them, and the server
// drops the clients it held from that round only.

// fitTask is what the relay learnt of a fit task it relayed to one of its clients.
type fitTask struct {
	client  string
	round   uint64
	session secagg.SessionID
	spec    *pb.SecAggSpec
}

// roundKey names a round's subtotal.
type roundKey struct {
	session secagg.SessionID
	round   uint64
}

// subtotal is the relay's sum of one round's fit uploads.
type subtotal struct {
	mu sync.Mutex
	st *secagg.Subtotal
	// inflight counts uploads checked and forwarded as held whose server verdict is not
	// back: the partial sum waits for them.
	inflight int
	changed  *sync.Cond
}

// summing reports whether the relay sums its clients' fit uploads.
func (r *Relay) summing() bool { return r.cfg.Verifier != nil && r.cfg.Name != "" }

// noteTask records a fit task relayed to client (the task's header).
func (r *Relay) noteTask(client string, t *pb.Task) {
	if !r.summing() || t.GetKind() != pb.TaskKind_TASK_KIND_FIT {
		return
	}
	sa := t.GetFit().GetSecagg()
	if sa == nil || sa.GetUploadValues() <= 0 || len(sa.GetSession()) != len(secagg.SessionID{}) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, old := range r.tasks {
		if old.round+1 < t.GetRound() {
			delete(r.tasks, id)
		}
	}
	r.tasks[t.GetTaskId()] = fitTask{client: client, round: t.GetRound(), session: secagg.SessionID(sa.GetSession()), spec: sa}
}

// subtotalFor returns the subtotal of task's round, starting it if needed (and forgetting
// those of rounds before the previous one).
func (r *Relay) subtotalFor(task fitTask) (*subtotal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := roundKey{task.session, task.round}
	if s, ok := r.sums[key]; ok {
		return s, nil
	}
	sp := task.spec.GetParams()
	params, err := secagg.NewParameters(client.SecAggLiteral(sp))
	if err != nil {
		return nil, fmt.Errorf("the fit task's secure-aggregation parameters: %w", err)
	}
	cc := secagg.CommitteeConfig{Size: int(sp.GetCommitteeSize()), Threshold: int(sp.GetThreshold()), MinContributions: int(sp.GetMinContributions())}
	st, err := secagg.NewSubtotal(params, secagg.AggregatorConfig{Session: task.session, Round: task.round, Dim: int(task.spec.GetUploadValues()),
		Committee: cc, Workers: 2, Purpose: secagg.PurposeFit, Verifier: r.cfg.Verifier}, r.cfg.Name)
	if err != nil {
		return nil, err
	}
	for k := range r.sums {
		if k.round+1 < task.round {
			delete(r.sums, k)
		}
	}
	s := &subtotal{st: st}
	s.changed = sync.NewCond(&s.mu)
	r.sums[key] = s
	return s, nil
}

// hold takes a client's fit result with its upload: it checks the upload, forwards the
// result as held and, once the server accepted it, adds the upload to the round's sum. It
// reports false when the upload is to be relayed as it is (not a fit task it knows, or an
// upload that fails the checks: the server refuses it as it would).
func (r *Relay) hold(ctx context.Context, c caller, res *pb.Result, blobs []*pb.Blob) (bool, *pb.PushResultResponse, error) {
	r.mu.Lock()
	task, ok := r.tasks[res.GetTaskId()]
	r.mu.Unlock()
	if !ok || task.client != c.cert {
		return false, nil, nil
	}
	data, err := blob.Find(blobs, blob.EncryptedUpdate)
	if err != nil {
		return false, nil, nil
	}
	sum, err := r.subtotalFor(task)
	if err != nil {
		r.log.Warn("cannot sum the round's uploads; relaying them", "round", task.round, "err", err)
		return false, nil, nil
	}
	// The upload is checked, and later added, chunk by chunk from its bytes (as the server's
	// Aggregator.AddBinary reads them), never decoded whole; data stays unchanged until
	// hold returns.
	errNotTheTasks := errors.New("not the upload of this client's task")
	sum.mu.Lock()
	checked, err := sum.st.CheckBinary(data, func(clientID, taskID string) error {
		if clientID != c.cert || taskID != res.GetTaskId() {
			return errNotTheTasks
		}
		return nil
	})
	if err == nil {
		sum.inflight++
	}
	sum.mu.Unlock()
	if errors.Is(err, errNotTheTasks) {
		return false, nil, nil
	}
	if err != nil {
		r.log.Warn("upload fails the checks; relaying it for the server to refuse", "client", c.cert, "task", res.GetTaskId(), "err", err)
		return false, nil, nil
	}
	defer func() {
		sum.mu.Lock()
		sum.inflight--
		sum.changed.Broadcast()
		sum.mu.Unlock()
	}()
	root := checked.Root()
	header := &pb.Result{TaskId: res.TaskId, Kind: res.Kind, Round: res.Round, Status: res.Status, Reason: res.Reason,
		NumExamples: res.NumExamples, Metrics: res.Metrics, Blobs: []*pb.Blob{blob.New(blob.HeldUpload, root[:])}}
	resp, err := r.pushUpstream(r.upstream(ctx, c), r.up.PushResult, header)
	if status.Code(err) == codes.FailedPrecondition {
		// The server does not take held uploads from this aggregator (any more), or the
		// task's phase ended: relay the upload itself, which it takes or refuses on its own.
		r.log.Warn("the server refused the held upload; relaying it", "client", c.cert, "task", res.GetTaskId(), "err", err)
		return false, nil, nil
	}
	if err != nil {
		return true, nil, err
	}
	sum.mu.Lock()
	err = sum.st.AddChecked(checked)
	sum.mu.Unlock()
	if err == nil {
		r.held.Add(1)
	} else {
		// The server holds the client as summed here: it counts it as a failure when the
		// partial sum does not list it.
		r.log.Warn("upload accepted by the server could not be added", "client", c.cert, "task", res.GetTaskId(), "err", err)
	}
	return true, resp, nil
}

// Summed returns the number of client uploads the relay has summed so far.
func (r *Relay) Summed() int { return int(r.held.Load()) }

// pushUpstream streams a result (header, then its blobs' data) through push.
func (r *Relay) pushUpstream(ctx context.Context, push func(context.Context, ...grpc.CallOption) (grpc.ClientStreamingClient[pb.ResultChunk, pb.PushResultResponse], error), res *pb.Result) (*pb.PushResultResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := push(ctx)
	if err != nil {
		return nil, err
	}
	header := &pb.Result{TaskId: res.TaskId, Kind: res.Kind, Round: res.Round, Status: res.Status, Reason: res.Reason, NumExamples: res.NumExamples, Metrics: res.Metrics}
	for _, b := range res.Blobs {
		header.Blobs = append(header.Blobs, &pb.Blob{Name: b.Name, Size: b.Size, Sha256: b.Sha256})
	}
	send := func(c *pb.ResultChunk) error {
		if err := up.Send(c); err != nil {
			if errors.Is(err, io.EOF) {
				_, err = up.CloseAndRecv() // the server ended the stream: its status says why
			}
			return err
		}
		return nil
	}
	if err := send(&pb.ResultChunk{Part: &pb.ResultChunk_Result{Result: header}}); err != nil {
		return nil, err
	}
	step := r.cfg.MaxChunkBytes / 2
	for _, b := range res.Blobs {
		for off := 0; off < len(b.Data); off += step {
			if err := send(&pb.ResultChunk{Part: &pb.ResultChunk_Data{Data: b.Data[off:min(off+step, len(b.Data))]}}); err != nil {
				return nil, err
			}
		}
	}
	return up.CloseAndRecv()
}

// Run pulls and does what the server asks of the aggregator itself (its partial sums and
// openings) until ctx ends; it returns nil then. Without summing it returns at once.
func (r *Relay) Run(ctx context.Context) error {
	if !r.summing() {
		return nil
	}
	for ctx.Err() == nil {
		task, blobs, err := r.pullWork(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.log.Debug("pulling the server's work failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if task == nil {
			continue
		}
		res := r.work(ctx, task, blobs)
		if _, err := r.pushUpstream(ctx, r.agg.PushWork, res); err != nil {
			r.log.Warn("the server refused the aggregator's result", "task", task.GetTaskId(), "kind", task.GetKind().String(), "err", err)
		}
	}
	return nil
}

// pullWork waits for the aggregator's next task and its blobs (nil: none yet).
func (r *Relay) pullWork(ctx context.Context) (*pb.Task, []*pb.Blob, error) {
	stream, err := r.agg.PullWork(ctx, &pb.PullTaskRequest{WaitMs: 15000})
	if err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	task := first.GetTask()
	if task == nil {
		if nt := first.GetNoTask(); nt != nil && nt.GetFinished() {
			select { // the federation finished: nothing more will come
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return nil, nil, nil
	}
	asm, err := blob.NewAssembler(task.Blobs, 1<<30)
	if err != nil {
		return nil, nil, err
	}
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if err := asm.Add(c.GetData()); err != nil {
			return nil, nil, err
		}
	}
	blobs, err := asm.Finish()
	return task, blobs, err
}

// work does an aggregator task and returns its result.
func (r *Relay) work(ctx context.Context, task *pb.Task, blobs []*pb.Blob) *pb.Result {
	res := &pb.Result{TaskId: task.GetTaskId(), Kind: task.GetKind(), Round: task.GetRound(), Status: pb.ResultStatus_RESULT_STATUS_OK}
	var (
		name string
		data []byte
		err  error
	)
	switch task.GetKind() {
	case pb.TaskKind_TASK_KIND_PARTIAL_SUM:
		name = blob.PartialSum
		data, err = r.partial(ctx, task)
	case pb.TaskKind_TASK_KIND_OPEN:
		name = blob.Opening
		data, err = r.openUploads(blobs)
	default:
		err = fmt.Errorf("task kind %v is not an aggregator's", task.GetKind())
	}
	if err != nil {
		r.log.Warn("aggregator task failed", "task", task.GetTaskId(), "kind", task.GetKind().String(), "err", err)
		res.Status, res.Reason = pb.ResultStatus_RESULT_STATUS_FAILED, err.Error()
		return res
	}
	res.Blobs = []*pb.Blob{blob.New(name, data)}
	return res
}

// partial returns the marshalled partial sum of the round the task names, once every
// upload whose held result is still on its way to the server has its verdict.
func (r *Relay) partial(ctx context.Context, task *pb.Task) ([]byte, error) {
	spec := task.GetPartialSum()
	if len(spec.GetSession()) != len(secagg.SessionID{}) {
		return nil, errors.New("the partial-sum task names no session")
	}
	r.mu.Lock()
	sum := r.sums[roundKey{secagg.SessionID(spec.GetSession()), task.GetRound()}]
	r.mu.Unlock()
	if sum == nil {
		return nil, fmt.Errorf("this aggregator holds no upload of round %d (it restarted?)", task.GetRound())
	}
	stop := context.AfterFunc(ctx, func() {
		sum.mu.Lock()
		sum.changed.Broadcast()
		sum.mu.Unlock()
	})
	defer stop()
	sum.mu.Lock()
	defer sum.mu.Unlock()
	for sum.inflight > 0 && ctx.Err() == nil {
		sum.changed.Wait()
	}
	if want, got := len(spec.GetTaskIds()), sum.st.Count(); got != want {
		r.log.Warn("the server lists another number of held uploads than this aggregator summed", "round", task.GetRound(), "server", want, "summed", got)
	}
	p, err := sum.st.Partial()
	if err != nil {
		return nil, err
	}
	if r.tamper != nil {
		p = r.tamper(task.GetRound(), p)
	}
	r.log.Info("forwarding the round's partial sum", "round", task.GetRound(), "uploads", len(p.Commitments))
	return p.MarshalBinary()
}

// openUploads answers a member's challenge that the server relays.
func (r *Relay) openUploads(blobs []*pb.Blob) ([]byte, error) {
	data, err := blob.Find(blobs, blob.Challenge)
	if err != nil {
		return nil, err
	}
	var ch secagg.Challenge
	if err := ch.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	r.mu.Lock()
	sum := r.sums[roundKey{ch.Session, ch.Round}]
	r.mu.Unlock()
	if sum == nil {
		return nil, fmt.Errorf("this aggregator holds no partial sum of round %d (it restarted?)", ch.Round)
	}
	sum.mu.Lock()
	defer sum.mu.Unlock()
	o, err := sum.st.Open(&ch)
	if err != nil {
		return nil, err
	}
	return o.MarshalBinary()
}

// notifyDisconnected relays the closing of a client connection: the server takes the
// clients whose sessions ran over it offline, as it would for its own connections.
func (r *Relay) notifyDisconnected(conn uint64) {
	r.mu.Lock()
	var gone []string
	for id, s := range r.byClient {
		if s.conn == conn {
			gone = append(gone, id)
		}
	}
	r.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	slices.Sort(gone)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.agg.ClientsDisconnected(ctx, &pb.ClientsDisconnectedRequest{Clients: gone}); err != nil && status.Code(err) != codes.Canceled {
			r.log.Debug("disconnect notice not delivered", "clients", len(gone), "err", err)
		}
	}()
}
