package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/metrics"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/train"
)

// testServer runs 'confide model serve' on loopback until the test ends; stop shuts it
// down gracefully and returns its error and stdout.
type testServer struct {
	url, grpcAddr string
	stop          func() (string, error)
}

func startServe(t *testing.T, path string, args ...string) *testServer {
	t.Helper()
	f := &serveFlags{listen: "127.0.0.1:0", grpcListen: "127.0.0.1:0", maxBatch: 64, maxWait: 2 * time.Millisecond, maxInputs: 4096, maxBodyMB: 64, shutdownTimeout: 10 * time.Second}
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--max-batch":
			fmt.Sscan(args[i+1], &f.maxBatch)
		case "--max-body-mb":
			fmt.Sscan(args[i+1], &f.maxBodyMB)
		case "--max-inputs":
			fmt.Sscan(args[i+1], &f.maxInputs)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runModelServe(ctx, &globalOptions{output: "json"}, &out, path, f, func(h, g string) { ready <- [2]string{h, g} })
	}()
	var addrs [2]string
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve did not start: %v", err)
	}
	s := &testServer{url: "http://" + addrs[0], grpcAddr: addrs[1]}
	stopped := false
	s.stop = func() (string, error) {
		if !stopped {
			stopped = true
			cancel()
			err := <-done
			return out.String(), err
		}
		return out.String(), nil
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// post sends a /v1/predict body and returns the status and the decoded answer.
func post(t *testing.T, c *http.Client, url string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := c.Post(url+"/v1/predict", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var obj map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, obj
}

// forwardProbs is the model's softmax output for raw (unnormalised) images.
func forwardProbs(t *testing.T, m *model.Model, rawX []float64) []float64 {
	t.Helper()
	x := slices.Clone(rawX)
	m.Meta.Input.Normalize(x, x)
	out, err := m.Forward(&model.Input{X: x, B: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float64, out.Cols)
	metrics.Softmax(p, out.Row(0))
	return p
}

// rawImages are MNIST-shaped test images as raw 0–255 values.
func rawImages(test *data.Dataset) [][]float64 {
	imgs := make([][]float64, test.N)
	for i := range imgs {
		imgs[i] = make([]float64, 784)
		for j := range 784 {
			imgs[i][j] = math.Round(test.X[i*784+j] * 255)
		}
	}
	return imgs
}

func TestModelServeHTTPAndGRPC(t *testing.T) {
	path, m, _, test := tinyMNISTModel(t)
	imgs := rawImages(test)
	s := startServe(t, path, "--max-body-mb", "1", "--max-inputs", "50")
	c := &http.Client{Timeout: 10 * time.Second}

	// Features, an object with an id, and a PNG of image 2: the model's probabilities.
	g := image.NewGray(image.Rect(0, 0, 28, 28))
	for j, v := range imgs[2] {
		g.Pix[j] = byte(v)
	}
	var pngBytes bytes.Buffer
	png.Encode(&pngBytes, g)
	body, _ := json.Marshal(map[string]any{"inputs": []any{imgs[0], map[string]any{"id": "one", "features": imgs[1]}, map[string]any{"id": 7, "png": base64.StdEncoding.EncodeToString(pngBytes.Bytes())}}})
	code, res := post(t, c, s.url, body)
	if code != http.StatusOK {
		t.Fatalf("status %d: %v", code, res)
	}
	preds := res["predictions"].([]any)
	if len(preds) != 3 || len(res["classes"].([]any)) != 10 {
		t.Fatalf("answer %v", res)
	}
	for i, p := range preds {
		pm := p.(map[string]any)
		want := forwardProbs(t, m, imgs[i])
		got := pm["probabilities"].([]any)
		for k := range want {
			if math.Abs(got[k].(float64)-want[k]) > 1e-9 {
				t.Fatalf("input %d: probabilities %v, forward pass %v", i, got, want)
			}
		}
		if pm["index"] != float64(i) || pm["class"] != data.MNISTClassNames[metrics.ArgMax(want)] {
			t.Fatalf("prediction %v", pm)
		}
	}
	if preds[1].(map[string]any)["id"] != "one" || preds[2].(map[string]any)["id"] != 7.0 {
		t.Fatalf("ids %v %v", preds[1], preds[2])
	}

	// Malformed bodies and inputs the model cannot read: 400 naming what it expects.
	bigJSON := `{"inputs": [[` + strings.Repeat("1,", 600_000) + `1]]}`
	for _, tc := range []struct {
		name, body string
		code       int
		want       []string
	}{
		{"malformed", `{"inputs": [[1, 2`, 400, []string{"malformed JSON", "784 features (a greyscale image of 28×28)"}},
		{"unknown-key", `{"input": [[1]]}`, 400, []string{`unknown field "input"`}},
		{"no-inputs", `{}`, 400, []string{`no "inputs"`}},
		{"empty", `{"inputs": []}`, 400, []string{"no inputs"}},
		{"size", `{"inputs": [[1, 2, 3]]}`, 400, []string{"input 0 has 3 values; the model reads 784 features (a greyscale image of 28×28)"}},
		{"text", `{"inputs": ["a digit"]}`, 400, []string{"input 0 holds text"}},
		{"two-values", `{"inputs": [{"text": "a", "features": [1]}]}`, 400, []string{"exactly one of"}},
		{"bad-png", `{"inputs": [{"png": "aGVsbG8="}]}`, 400, []string{"input 0", "not a PNG"}},
		{"not-json-input", `{"inputs": [true]}`, 400, []string{"input 0"}},
		{"too-many", `{"inputs": [` + strings.TrimSuffix(strings.Repeat(`[1],`, 51), ",") + `]}`, 400, []string{"51 inputs: at most 50"}},
		{"too-large", bigJSON, 413, []string{"larger than 1 MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res := post(t, c, s.url, []byte(tc.body))
			msg, _ := res["error"].(string)
			if code != tc.code {
				t.Fatalf("status %d (%q), want %d", code, msg, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
	resp, err := c.Get(s.url + "/v1/predict")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/predict: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// gRPC: the same predictions; InvalidArgument naming the expected shape; health.
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gc := pb.NewInferenceClient(conn)
	gr, err := gc.Predict(t.Context(), &pb.PredictRequest{Inputs: []*pb.PredictInput{
		{Id: "a", Value: &pb.PredictInput_Features{Features: &pb.Features{Values: imgs[0]}}},
		{Value: &pb.PredictInput_Png{Png: pngBytes.Bytes()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]float64{forwardProbs(t, m, imgs[0]), forwardProbs(t, m, imgs[2])} {
		p := gr.Predictions[i]
		if math.Abs(p.Probabilities[3]-want[3]) > 1e-9 || p.ClassId != int32(metrics.ArgMax(want)) {
			t.Fatalf("gRPC prediction %d: %v, want %v", i, p, want)
		}
	}
	if gr.Predictions[0].Id != "a" || len(gr.Classes) != 10 {
		t.Fatalf("gRPC answer %v", gr)
	}
	_, err = gc.Predict(t.Context(), &pb.PredictRequest{Inputs: []*pb.PredictInput{{Value: &pb.PredictInput_Features{Features: &pb.Features{Values: []float64{1, 2}}}}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "input 0 has 2 values; the model reads 784 features (a greyscale image of 28×28)") {
		t.Fatalf("wrong size over gRPC: %v", err)
	}
	_, err = gc.Predict(t.Context(), &pb.PredictRequest{Inputs: []*pb.PredictInput{{Id: "empty"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "holds no value") {
		t.Fatalf("empty input over gRPC: %v", err)
	}
	hc, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{Service: "confide.v1.Inference"})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", hc, err)
	}

	// Health and metrics.
	resp, err = c.Get(s.url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	resp, err = c.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`confide_serve_requests_total{code="200",protocol="http"} 1`, `confide_serve_requests_total{code="400",protocol="http"} 10`, `confide_serve_requests_total{code="413",protocol="http"} 1`,
		`confide_serve_requests_total{code="InvalidArgument",protocol="grpc"} 2`, "confide_serve_examples_total 5", "confide_serve_batch_examples_bucket"} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// SIGINT/SIGTERM end the context: a graceful stop, exit 0, one JSON object.
	out, err := s.stop()
	if err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	res = oneJSONObject(t, out)
	if res["requests"] != 2.0 || res["examples"] != 5.0 {
		t.Fatalf("summary %v", res)
	}
	if _, err := c.Get(s.url + "/healthz"); err == nil {
		t.Fatal("the stopped server still answers")
	}
}

// A text model answers raw text (its tokenizer) over HTTP and gRPC; an int8 model serves its
// int8 forward pass.
func TestModelServeTextAndInt8(t *testing.T) {
	mails := filepath.Join("..", "..", "data", "testdata", "mails.jsonl")
	c, err := data.LoadSpamAssassin(mails, data.SpamOptions{MaxLen: 8}, rand.New(rand.NewPCG(3, 0x7370616d)))
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeTransformer, Vocab: c.Train.VocabSize, Embed: 8, Heads: 2, FF: 16, Layers: 1, MaxLen: 8, Output: 2}
	meta := train.DatasetMeta(c.Train, spec)
	dir := t.TempDir()
	path, m := saveModel(t, dir, "spam.confide", spec, meta)
	if err := m.Quantize(model.QuantizeOptions{}); err != nil {
		t.Fatal(err)
	}
	q := filepath.Join(dir, "int8.confide")
	if err := m.Save(q); err != nil {
		t.Fatal(err)
	}
	enc, err := train.TextEncoder(meta.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	text := "Subject: cheap meds\n\nBuy now, limited offer!!!"
	ids := enc.Encode(nil, text)
	fw, err := m.Forward(&model.Input{Tokens: ids, B: 1, T: len(ids)})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, 2)
	metrics.Softmax(want, fw.Row(0))
	s := startServe(t, q)
	code, res := post(t, http.DefaultClient, s.url, []byte(fmt.Sprintf(`{"inputs": [%q, {"id": "b", "text": %q}, [1, 2]]}`, text, text)))
	if code != 400 || !strings.Contains(res["error"].(string), "input 2 holds features; the model reads text (token ids below") {
		t.Fatalf("features for a text model: %d %v", code, res)
	}
	code, res = post(t, http.DefaultClient, s.url, []byte(fmt.Sprintf(`{"inputs": [%q, {"id": "b", "text": %q}]}`, text, text)))
	if code != 200 {
		t.Fatalf("%d %v", code, res)
	}
	for _, p := range res["predictions"].([]any) {
		got := p.(map[string]any)["probabilities"].([]any)
		if math.Abs(got[1].(float64)-want[1]) > 1e-12 {
			t.Fatalf("served %v, the int8 forward pass gives %v", got, want)
		}
	}
	resp, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h["precision"] != "int8" {
		t.Fatalf("healthz %v", h)
	}
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gr, err := pb.NewInferenceClient(conn).Predict(t.Context(), &pb.PredictRequest{Inputs: []*pb.PredictInput{{Value: &pb.PredictInput_Text{Text: text}}}})
	if err != nil || math.Abs(gr.Predictions[0].Probabilities[1]-want[1]) > 1e-12 {
		t.Fatalf("gRPC text: %v %v", gr, err)
	}
	_ = path
}

// The batcher runs requests that arrive while a batch runs together, up to max-batch
// inputs a pass, hands each its own outputs, and fails what is queued when it stops.
func TestBatcherBatchesConcurrentRequests(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	run := func(in []predictInput) ([][]float64, error) {
		mu.Lock()
		sizes = append(sizes, len(in))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release // hold the first batch while the others queue
		}
		out := make([][]float64, len(in))
		for i, x := range in {
			out[i] = []float64{x.X[0]}
		}
		return out, nil
	}
	b := newBatcher(4, time.Hour, run, nil) // no time limit: batches close on size or when nothing more is in flight
	var wg sync.WaitGroup
	results := make([][][]float64, 7)
	submit := func(k, n int) {
		defer wg.Done()
		in := make([]predictInput, n)
		for i := range in {
			in[i].X = []float64{float64(100*k + i)}
		}
		out, err := b.submit(context.Background(), nil, in)
		if err != nil {
			t.Error(err)
		}
		results[k] = out
	}
	wg.Add(1)
	go submit(0, 1)
	batches := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sizes)
	}
	for b.inFlight.Load() != 0 || batches() == 0 { // the first batch is running
		time.Sleep(time.Millisecond)
	}
	for k := 1; k < 7; k++ {
		wg.Add(1)
		go submit(k, 1+k%2) // 1, 2, 1, 2, 1, 2 inputs: 9 in all
	}
	for b.inFlight.Load() != 6 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	total := 0
	for _, s := range sizes[1:] {
		total += s
		if s > 4+1 { // a batch closes once it holds 4; the last request may take it to 5
			t.Fatalf("batch of %d inputs, max-batch 4", s)
		}
	}
	if sizes[0] != 1 || total != 9 || len(sizes) > 4 {
		t.Fatalf("batches %v: want the first alone, then the 9 waiting inputs in at most 3 batches", sizes)
	}
	for k, out := range results {
		for i, o := range out {
			if o[0] != float64(100*k+i) {
				t.Fatalf("request %d got %v", k, out)
			}
		}
	}
	b.close()
	if _, err := b.submit(context.Background(), b.announce(), []predictInput{{X: []float64{1}}}); !errors.Is(err, errStopped) {
		t.Fatalf("submit after close: %v", err)
	}
}

// loadStats are the results of a load test.
type loadStats struct {
	Requests, Concurrency int
	P50, P99              time.Duration
	PerSecond             float64
	MeanBatch             float64
}

// loadTest sends n requests (bodies in turn), conc at a time, and measures latency and
// throughput; every answer must be 200.
func loadTest(t *testing.T, url string, bodies [][]byte, n, conc int) loadStats {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	lat := make([]time.Duration, n)
	var next sync.Mutex
	k := 0
	var wg sync.WaitGroup
	var failed error
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				i := k
				k++
				next.Unlock()
				if i >= n {
					return
				}
				t0 := time.Now()
				resp, err := c.Post(url+"/v1/predict", "application/json", bytes.NewReader(bodies[i%len(bodies)]))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i] = time.Since(t0)
				if err != nil {
					next.Lock()
					failed = err
					next.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		t.Fatalf("load test: %v", failed)
	}
	slices.Sort(lat)
	st := loadStats{Requests: n, Concurrency: conc, P50: lat[n/2], P99: lat[n*99/100], PerSecond: float64(n) / elapsed.Seconds()}
	resp, err := c.Get(url + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var sum, count float64
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "confide_serve_batch_examples_sum "); ok {
				fmt.Sscan(v, &sum)
			}
			if v, ok := strings.CutPrefix(line, "confide_serve_batch_examples_count "); ok {
				fmt.Sscan(v, &count)
			}
		}
		if count > 0 {
			st.MeanBatch = sum / count
		}
	}
	return st
}

// The acceptance load test: 1,000 requests of one image, 32 at a time, on loopback; every
// answer 200, requests batched together. It reports p50/p99 latency and throughput. By
// default on a 784-256-128-10 MLP of random weights; CONFIDE_SERVE_LOAD_MODEL names a
// model file to serve instead and CONFIDE_SERVE_LOAD_IDX an IDX file of its images (the
// README's numbers: the MNIST model of 'confide train --epochs 5' and the test images):
//
//	CONFIDE_SERVE_LOAD_MODEL=mnist.confide CONFIDE_SERVE_LOAD_IDX=t10k-images-idx3-ubyte.gz go test ./cmd/confide -run TestModelServeLoad -v
func TestModelServeLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	path := os.Getenv("CONFIDE_SERVE_LOAD_MODEL")
	var imgs [][]float64
	if path == "" {
		dir := writeTinyMNIST(t, 10, 64)
		_, test, err := data.LoadMNIST(dir)
		if err != nil {
			t.Fatal(err)
		}
		spec := model.Spec{Type: model.TypeMLP, Input: 784, Hidden: []int{256, 128}, Output: 10}
		path, _ = saveModel(t, t.TempDir(), "mlp.confide", spec, train.DatasetMeta(test, spec))
		imgs = rawImages(test)
	} else {
		idx := os.Getenv("CONFIDE_SERVE_LOAD_IDX")
		if idx == "" {
			t.Fatal("CONFIDE_SERVE_LOAD_MODEL needs CONFIDE_SERVE_LOAD_IDX: an IDX file of inputs")
		}
		x, err := data.ReadIDXFile(idx)
		if err != nil {
			t.Fatal(err)
		}
		per := x.Len() / x.Dims[0]
		for i := range min(x.Dims[0], 1000) {
			img := make([]float64, per)
			for j := range per {
				img[j] = x.Float64(i*per + j)
			}
			imgs = append(imgs, img)
		}
	}
	bodies := make([][]byte, len(imgs))
	for i, img := range imgs {
		bodies[i], _ = json.Marshal(map[string]any{"inputs": [][]float64{img}})
	}
	s := startServe(t, path)
	loadTest(t, s.url, bodies, 100, 8) // warm up: connections, buffers
	st := loadTest(t, s.url, bodies, 1000, 32)
	t.Logf("%s: %d requests of one input, %d at a time: p50 %.2f ms, p99 %.2f ms, %.0f requests/s; %.1f inputs a forward pass on average (warm-up included)",
		filepath.Base(path), st.Requests, st.Concurrency, st.P50.Seconds()*1e3, st.P99.Seconds()*1e3, st.PerSecond, st.MeanBatch)
	if st.MeanBatch <= 1 {
		t.Fatalf("mean batch %.2f: concurrent requests were not batched", st.MeanBatch)
	}
}
