package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/train"
)

// serveFlags configure 'confide model serve'.
type serveFlags struct {
	listen, grpcListen string
	maxBatch           int
	maxWait            time.Duration
	maxInputs          int
	maxBodyMB          int
	shutdownTimeout    time.Duration
}

// serveResult is what serve prints when it stops (-o json: one object).
type serveResult struct {
	Model      string  `json:"model"`
	Listen     string  `json:"listen"`
	GRPCListen string  `json:"grpc_listen,omitempty"`
	Requests   int64   `json:"requests"`
	Examples   int64   `json:"examples"`
	Seconds    float64 `json:"seconds"`
}

func newModelServeCmd(g *globalOptions) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve FILE --listen ADDR",
		Short: "Serve a model's predictions over HTTP (POST /v1/predict) and gRPC, with dynamic batching and Prometheus metrics",
		Long: `Serve a model file's predictions.

HTTP (--listen):
  POST /v1/predict  {"inputs": [INPUT, ...], "normalized": false}
                    INPUT is an array of raw feature values (pixels 0–255 for the image
                    datasets; the model file's normalisation is applied unless "normalized"
                    is true), a string of text (text models: encoded with the tokenizer the
                    model file records), or an object {"id": ..., "features": [...]},
                    {"id": ..., "text": "..."} or {"id": ..., "png": "<base64 PNG>"} (image
                    models: converted to grey, resized to the model's image shape).
                    Answers {"classes": [...], "predictions": [{"index", "id", "class",
                    "class_id", "probability", "probabilities"}, ...]}; a malformed body or an
                    input the model cannot read gets 400 with {"error": "..."} naming the
                    input and what the model expects.
  GET /healthz      200 while serving, 503 once shutting down
  GET /metrics      Prometheus metrics: requests by protocol and code, request latency,
                    batch sizes, forward-pass time, examples

gRPC (--grpc-listen): confide.v1.Inference/Predict (proto/confide/v1/inference.proto), the
same inputs and answers, INVALID_ARGUMENT for inputs the model cannot read; the standard
health service and reflection.

Dynamic batching: the inputs of requests that arrive together share forward passes, of at
most --max-batch inputs; while other requests are in flight, a batch waits up to
--max-wait for them; a lone request runs at once. An int8 model (confide model quantize)
runs its int8 kernels.

SIGINT or SIGTERM stops the server gracefully: /healthz and the gRPC health service turn
to not serving, new connections are refused, requests in flight finish (for at most
--shutdown-timeout), then it exits 0.`,
		Example: `  confide model serve mnist.confide --listen 127.0.0.1:8080
  curl -s localhost:8080/v1/predict -d '{"inputs": [{"id": "a", "png": "'$(base64 -w0 digit.png)'"}]}'
  confide model serve spam.confide --listen :8080 --grpc-listen :9090 --max-batch 64 --max-wait 2ms`,
		Args: modelFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runModelServe(ctx, g, cmd.OutOrStdout(), args[0], f, func(httpAddr, grpcAddr string) {
				msg := fmt.Sprintf("confide model serve: %s on http://%s", args[0], httpAddr)
				if grpcAddr != "" {
					msg += " and gRPC " + grpcAddr
				}
				g.announce(os.Stderr, "%s", msg)
			})
		},
	}
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8080", "HTTP address (host:port) of /v1/predict, /healthz and /metrics")
	cmd.Flags().StringVar(&f.grpcListen, "grpc-listen", "", "gRPC address (host:port) of confide.v1.Inference (default: no gRPC)")
	cmd.Flags().IntVar(&f.maxBatch, "max-batch", 64, "most inputs in one forward pass")
	cmd.Flags().DurationVar(&f.maxWait, "max-wait", 2*time.Millisecond, "longest a batch waits for requests in flight to join it")
	cmd.Flags().IntVar(&f.maxInputs, "max-inputs", 4096, "most inputs in one request")
	cmd.Flags().IntVar(&f.maxBodyMB, "max-body-mb", 64, "largest request body (HTTP) or message (gRPC), in MiB")
	cmd.Flags().DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, how long requests in flight may take to finish")
	return cmd
}

// runModelServe serves path until ctx ends, then shuts down gracefully. ready, when not
// nil, is called with the listening addresses.
func runModelServe(ctx context.Context, g *globalOptions, w io.Writer, path string, f *serveFlags, ready func(httpAddr, grpcAddr string)) error {
	switch {
	case f.maxBatch <= 0:
		return usageErr("--max-batch %d: must be ≥ 1", f.maxBatch)
	case f.maxWait < 0:
		return usageErr("--max-wait %v: must be ≥ 0", f.maxWait)
	case f.maxInputs <= 0:
		return usageErr("--max-inputs %d: must be ≥ 1", f.maxInputs)
	case f.maxBodyMB <= 0 || f.maxBodyMB > 2047:
		return usageErr("--max-body-mb %d: must be in [1, 2047]", f.maxBodyMB)
	case f.shutdownTimeout <= 0:
		return usageErr("--shutdown-timeout %v: must be > 0", f.shutdownTimeout)
	case f.listen == "":
		return usageErr("--listen is required: the HTTP address, e.g. 127.0.0.1:8080")
	}
	mf, err := loadModelFile(path)
	if err != nil {
		return err
	}
	svc, err := newInferenceService(path, mf.m, f)
	if err != nil {
		return err
	}
	defer svc.batch.close()
	hl, err := net.Listen("tcp", f.listen)
	if err != nil {
		return usageErr("--listen %s: %v (pick another address)", f.listen, err)
	}
	httpSrv := &http.Server{Handler: svc.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	var gs *grpc.Server
	var hs *health.Server
	var gl net.Listener
	if f.grpcListen != "" {
		if gl, err = net.Listen("tcp", f.grpcListen); err != nil {
			hl.Close()
			return usageErr("--grpc-listen %s: %v (pick another address)", f.grpcListen, err)
		}
		limit := f.maxBodyMB << 20
		gs = grpc.NewServer(grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit))
		pb.RegisterInferenceServer(gs, &inferenceGRPC{svc: svc})
		hs = health.NewServer()
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus(pb.Inference_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(gs, hs)
		reflection.Register(gs)
	}
	start := time.Now()
	errc := make(chan error, 2)
	go func() { errc <- httpSrv.Serve(hl) }()
	grpcAddr := ""
	if gs != nil {
		grpcAddr = gl.Addr().String()
		go func() { errc <- gs.Serve(gl) }()
	}
	slog.Info("model server listening", "model", path, "http", hl.Addr().String(), "grpc", grpcAddr, "precision", mf.m.Precision(), "max_batch", f.maxBatch, "max_wait", f.maxWait)
	if ready != nil {
		ready(hl.Addr().String(), grpcAddr)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	// Graceful shutdown: report not serving, refuse new connections, let requests in
	// flight finish, then stop the batcher (deferred).
	svc.serving.Store(false)
	if hs != nil {
		hs.Shutdown()
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		httpSrv.Close()
	}
	if gs != nil {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			gs.Stop()
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	res := serveResult{Model: path, Listen: hl.Addr().String(), GRPCListen: grpcAddr, Requests: svc.requests.Load(), Examples: svc.examples.Load(), Seconds: time.Since(start).Seconds()}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "served %s requests (%s inputs) in %.0fs; stopped\n", thousands(int(res.Requests)), thousands(int(res.Examples)), res.Seconds)
	})
}

// inferenceService answers predictions of one model for the HTTP and gRPC front ends.
type inferenceService struct {
	path      string
	m         *model.Model // the batcher's model: read only outside it
	spec      inputSpec
	enc       *data.TextEncoder
	names     []string
	maxInputs int
	maxBody   int64
	batch     *batcher
	serving   atomic.Bool

	requests, examples atomic.Int64
	reg                *prometheus.Registry
	reqCount           *prometheus.CounterVec
	reqSeconds         *prometheus.HistogramVec
	batchSize          prometheus.Histogram
	batchSeconds       prometheus.Histogram
	exampleCount       prometheus.Counter
}

func newInferenceService(path string, m *model.Model, f *serveFlags) (*inferenceService, error) {
	if m.Spec.Loss == model.LossMSE {
		return nil, usageErr("model %s is a regression model (loss mse): serve answers classifiers (loss cross_entropy)", path)
	}
	s := &inferenceService{path: path, m: m, spec: inputSpec{m: m}, maxInputs: f.maxInputs, maxBody: int64(f.maxBodyMB) << 20}
	if s.spec.text() {
		if m.Meta.Tokenizer == nil {
			return nil, usageErr("model %s records no tokenizer: its text inputs cannot be encoded; use a model file written by this confide", path)
		}
		var err error
		if s.enc, err = train.TextEncoder(m.Meta.Tokenizer); err != nil {
			return nil, usageErr("model %s: tokenizer: %v", path, err)
		}
	}
	s.names = m.Meta.OutputNames(m.Spec)
	if s.names == nil {
		s.names = make([]string, m.Spec.Output)
		for i := range s.names {
			s.names[i] = strconv.Itoa(i)
		}
	}
	s.reg = prometheus.NewRegistry()
	s.reqCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "confide_serve_requests_total", Help: "Prediction requests answered, by protocol (http, grpc) and status code."}, []string{"protocol", "code"})
	s.reqSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "confide_serve_request_seconds", Help: "Time from a prediction request's arrival to its answer, by protocol.",
		Buckets: prometheus.ExponentialBuckets(1e-4, 2, 16)}, []string{"protocol"})
	s.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "confide_serve_batch_examples", Help: "Inputs per forward pass (dynamic batching).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11)})
	s.batchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "confide_serve_batch_seconds", Help: "Time of one forward pass, with input encoding.",
		Buckets: prometheus.ExponentialBuckets(1e-5, 2, 18)})
	s.exampleCount = prometheus.NewCounter(prometheus.CounterOpts{Name: "confide_serve_examples_total", Help: "Inputs predicted."})
	s.reg.MustRegister(s.reqCount, s.reqSeconds, s.batchSize, s.batchSeconds, s.exampleCount, collectors.NewGoCollector())
	p := &predictor{m: m, enc: s.enc} // normalisation happens per request, before batching
	s.batch = newBatcher(f.maxBatch, f.maxWait, func(in []predictInput) ([][]float64, error) { return p.predict(in, 0) },
		func(n int, d time.Duration) {
			s.batchSize.Observe(float64(n))
			s.batchSeconds.Observe(d.Seconds())
			s.exampleCount.Add(float64(n))
		})
	s.serving.Store(true)
	return s, nil
}

// inputError is a request the model cannot read: HTTP 400, gRPC InvalidArgument.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badInput(format string, a ...any) error { return &inputError{msg: fmt.Sprintf(format, a...)} }

// prepare checks every input against the model and normalises raw features (unless
// normalized): nothing of a request runs unless all its inputs fit.
func (s *inferenceService) prepare(ins []predictInput, normalized bool) error {
	switch {
	case len(ins) == 0:
		return badInput("no inputs: send {\"inputs\": [...]} with at least one input; the model reads %s", s.spec.expected())
	case len(ins) > s.maxInputs:
		return badInput("%d inputs: at most %d a request (--max-inputs)", len(ins), s.maxInputs)
	}
	for i := range ins {
		in := &ins[i]
		switch {
		case s.spec.text() && in.Text == nil:
			return badInput("input %d holds features; the model reads %s: send a string, or {\"text\": \"...\"}", i, s.spec.expected())
		case !s.spec.text() && in.Text != nil:
			return badInput("input %d holds text; the model reads %s: send an array of %d numbers (or {\"png\": ...} for an image model)", i, s.spec.expected(), s.spec.dim())
		case !s.spec.text() && len(in.X) != s.spec.dim():
			return badInput("input %d has %d values; the model reads %s", i, len(in.X), s.spec.expected())
		case s.spec.text() && s.m.Spec.Task == model.TaskNextToken && len(s.enc.Encode(nil, *in.Text)) == 0:
			return badInput("input %d: empty text: a language model needs at least one token of context", i)
		}
		if !s.spec.text() {
			for j, v := range in.X {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return badInput("input %d: value %d is %v: features must be finite numbers", i, j, v)
				}
			}
			if norm := s.m.Meta.Input; norm != nil && !normalized {
				x := make([]float64, len(in.X))
				norm.Normalize(x, in.X)
				in.X = x
			}
			// A bad category index would fail the forward pass of the batch it shares with
			// other requests: refuse it with this request alone.
			if len(s.m.Spec.Embeddings) > 0 {
				if err := s.m.Spec.CheckCategoryIndices(in.X); err != nil {
					return badInput("input %d: %v", i, err)
				}
			}
		}
	}
	return nil
}

// predict answers one request: validates and normalises its inputs, runs them through the
// batcher and turns the outputs into predictions. t is the request's announcement.
func (s *inferenceService) predict(ctx context.Context, t *ticket, ins []predictInput, normalized bool) ([]prediction, error) {
	if !s.serving.Load() {
		return nil, errStopped
	}
	if err := s.prepare(ins, normalized); err != nil {
		return nil, err
	}
	probs, err := s.batch.submit(ctx, t, ins)
	if err != nil {
		return nil, err
	}
	preds := make([]prediction, len(ins))
	for i, p := range probs {
		c := metrics.ArgMax(p)
		preds[i] = prediction{Index: i, ID: ins[i].ID, Class: s.names[c], ClassID: c, Probability: p[c], Probabilities: p}
	}
	s.requests.Add(1)
	s.examples.Add(int64(len(ins)))
	return preds, nil
}

// pngInput decodes a PNG image for an image model, as predict reads PNG files.
func (s *inferenceService) pngInput(b []byte, i int) ([]float64, error) {
	in := s.m.Meta.Input
	if s.spec.text() || in == nil || in.Kind != model.InputImage || len(in.Shape) != 2 {
		return nil, badInput("input %d is a PNG image; the model reads %s (PNG images need a model file recording an image input)", i, s.spec.expected())
	}
	img, err := decodePNGFrom(bytes.NewReader(b))
	if err != nil {
		return nil, badInput("input %d: %v", i, err)
	}
	return resizeGrey(img, in.Shape[0], in.Shape[1]), nil
}

// httpRequest is the body of POST /v1/predict.
type httpRequest struct {
	Inputs     []json.RawMessage `json:"inputs"`
	Normalized bool              `json:"normalized"`
}

// httpResponse is its answer.
type httpResponse struct {
	Classes     []string     `json:"classes"`
	Predictions []prediction `json:"predictions"`
}

func (s *inferenceService) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/predict", s.servePredict)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		code, st := http.StatusOK, "serving"
		if !s.serving.Load() {
			code, st = http.StatusServiceUnavailable, "shutting down"
		}
		writeJSON(w, code, map[string]any{"status": st, "model": s.path, "precision": s.m.Precision()})
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

func (s *inferenceService) servePredict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := s.batch.announce() // a batch being collected waits for this request while it is decoded
	defer t.release()
	code := http.StatusOK
	defer func() {
		s.reqCount.WithLabelValues("http", strconv.Itoa(code)).Inc()
		s.reqSeconds.WithLabelValues("http").Observe(time.Since(start).Seconds())
	}()
	fail := func(c int, err error) {
		code = c
		writeJSON(w, c, map[string]string{"error": err.Error()})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, fmt.Errorf("use POST with a JSON body {\"inputs\": [...]}"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d MiB (--max-body-mb)", s.maxBody>>20))
			return
		}
		fail(http.StatusBadRequest, fmt.Errorf("reading the body: %v", err))
		return
	}
	ins, normalized, err := s.parseHTTP(body)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	preds, err := s.predict(r.Context(), t, ins, normalized)
	var bad *inputError
	switch {
	case errors.As(err, &bad):
		fail(http.StatusBadRequest, err)
		return
	case errors.Is(err, errStopped):
		fail(http.StatusServiceUnavailable, err)
		return
	case err != nil:
		fail(http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, httpResponse{Classes: s.names, Predictions: preds})
}

// parseHTTP decodes a /v1/predict body into inputs.
func (s *inferenceService) parseHTTP(body []byte) ([]predictInput, bool, error) {
	const form = `send {"inputs": [INPUT, ...]}, INPUT an array of numbers, a string of text, or {"id": ..., "features" | "text" | "png": ...}`
	var req httpRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, false, badInput("malformed JSON: %v (%s; the model reads %s)", err, form, s.spec.expected())
	}
	if dec.More() {
		return nil, false, badInput("malformed JSON: data after the request object (%s)", form)
	}
	if req.Inputs == nil {
		return nil, false, badInput("no \"inputs\" (%s; the model reads %s)", form, s.spec.expected())
	}
	ins := make([]predictInput, len(req.Inputs))
	for i, raw := range req.Inputs {
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '{' {
			var obj struct {
				ID       any       `json:"id"`
				Text     *string   `json:"text"`
				Features []float64 `json:"features"`
				PNG      []byte    `json:"png"`
			}
			d := json.NewDecoder(bytes.NewReader(raw))
			d.DisallowUnknownFields()
			if err := d.Decode(&obj); err != nil {
				return nil, false, badInput("input %d: %v (an object holds \"id\" and one of \"features\", \"text\", \"png\" (base64))", i, err)
			}
			n := 0
			for _, set := range []bool{obj.Text != nil, obj.Features != nil, obj.PNG != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return nil, false, badInput("input %d: an object needs exactly one of \"features\", \"text\" and \"png\"; the model reads %s", i, s.spec.expected())
			}
			ins[i] = predictInput{ID: obj.ID, Text: obj.Text, X: obj.Features}
			if obj.PNG != nil {
				x, err := s.pngInput(obj.PNG, i)
				if err != nil {
					return nil, false, err
				}
				ins[i].X = x
			}
			continue
		}
		in, err := parseJSONInput(raw)
		if len(raw) == 0 || err != nil {
			return nil, false, badInput("input %d: %v (%s; the model reads %s)", i, err, form, s.spec.expected())
		}
		ins[i] = in
	}
	return ins, req.Normalized, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// inferenceGRPC is the gRPC front end of an inferenceService.
type inferenceGRPC struct {
	pb.UnimplementedInferenceServer
	svc *inferenceService
}

var _ pb.InferenceServer = (*inferenceGRPC)(nil)

func (g *inferenceGRPC) Predict(ctx context.Context, req *pb.PredictRequest) (resp *pb.PredictResponse, err error) {
	s := g.svc
	start := time.Now()
	t := s.batch.announce()
	defer t.release()
	defer func() {
		s.reqCount.WithLabelValues("grpc", status.Code(err).String()).Inc()
		s.reqSeconds.WithLabelValues("grpc").Observe(time.Since(start).Seconds())
	}()
	ins := make([]predictInput, len(req.GetInputs()))
	for i, in := range req.GetInputs() {
		if in.GetId() != "" {
			ins[i].ID = in.GetId()
		}
		switch v := in.GetValue().(type) {
		case *pb.PredictInput_Features:
			ins[i].X = v.Features.GetValues()
			if ins[i].X == nil {
				ins[i].X = []float64{}
			}
		case *pb.PredictInput_Text:
			t := v.Text
			ins[i].Text = &t
		case *pb.PredictInput_Png:
			x, err := s.pngInput(v.Png, i)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			ins[i].X = x
		default:
			return nil, status.Errorf(codes.InvalidArgument, "input %d holds no value: set features, text or png; the model reads %s", i, s.spec.expected())
		}
	}
	preds, err := s.predict(ctx, t, ins, req.GetNormalized())
	var bad *inputError
	switch {
	case errors.As(err, &bad):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errStopped):
		return nil, status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, status.FromContextError(err).Err()
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp = &pb.PredictResponse{Classes: s.names, Predictions: make([]*pb.Prediction, len(preds))}
	for i, p := range preds {
		id, _ := p.ID.(string)
		resp.Predictions[i] = &pb.Prediction{Index: int32(p.Index), Id: id, Class: p.Class, ClassId: int32(p.ClassID), Probability: p.Probability, Probabilities: p.Probabilities}
	}
	return resp, nil
}
