package client_test

import (
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/secagg/identitytest"
	"github.com/confide-fl/confide/server"
)

// TestRecordingServerSeesNothingDataDependentInTheClear runs the same federation twice —
// real ModelTrainers with DP-SGD and their ledgers, authenticated secure aggregation
// (K = 3, t = 2, certified identities, signed uploads, spot-checked decryption),
// federated evaluation, two rounds — over clients whose data differ in size, in label
// balance and in every value, and records everything the server receives in the clear:
// joins and every result's header (status, reason, example count, metrics) with the names
// and sizes of its blobs. The two transcripts must be identical: nothing a curious server
// reads outside the ciphertexts depends on the clients' data. (The ciphertexts' contents
// differ, as they must; the server only ever decrypts their sums.) The decrypted
// aggregates do differ between the runs, and that is all the server learns.
func TestRecordingServerSeesNothingDataDependentInTheClear(t *testing.T) {
	record := func(variant uint64) (transcript []string, rounds []server.RoundRecord) {
		cfg := server.Config{
			Rounds: 2, Model: blobSpec, Seed: 3,
			Sampling:  server.SamplingConfig{MinFit: 3, MinAvailable: 3, FractionEvaluate: 1},
			Training:  server.TrainingConfig{Epochs: 1, BatchSize: 10, LR: 0.1, WeightScale: 500},
			DP:        server.DPConfig{NoiseMultiplier: 1, MaxGradNorm: 1, UpdateClipNorm: 5, SampleRate: 0.1},
			SecAgg:    server.SecAggConfig{Enabled: true, CommitteeSize: 3, Threshold: 2, LogN: 12},
			Deadlines: server.DeadlineConfig{Fit: time.Minute, KeySetup: time.Minute, Decrypt: time.Minute, Evaluate: time.Minute},
		}
		ca, err := identitytest.NewCA(5)
		if err != nil {
			t.Fatal(err)
		}
		verifier, err := secagg.NewVerifier([]*x509.Certificate{ca.Certificate()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		coord, err := server.New(cfg, server.Options{Verifier: verifier})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"a", "b", "c"}
		parties := map[string]*client.Party{}
		queue := map[string][]*pb.Task{}
		var step func(ev server.Event)
		step = func(ev server.Event) {
			r, err := coord.Step(ev)
			if err != nil {
				t.Fatalf("step %T: %v", ev, err)
			}
			for _, rec := range r.Persist {
				if rr, ok := rec.(server.RoundRecord); ok {
					rounds = append(rounds, rr)
				}
			}
			for _, e := range r.Send {
				queue[e.To] = append(queue[e.To], e.Task)
			}
			for _, v := range r.Revoke {
				queue[v.To] = slices.DeleteFunc(queue[v.To], func(t *pb.Task) bool { return t.TaskId == v.TaskID })
			}
			for _, w := range r.Work { // the driver's work, answered at once
				step(w.Run())
			}
		}
		for i, id := range ids {
			// The data differ between the variants: sizes, labels, values.
			n := 150 + 50*i + int(variant)*97
			train := skewedBlobs(n, 0.5+0.3*float64(variant), 10*variant+uint64(i)+1)
			test := skewedBlobs(40+int(variant)*23, 0.5, 100*variant+uint64(i)+7)
			tr, err := client.NewModelTrainer(client.ModelTrainerConfig{Train: train, Test: test, Budget: &dp.Budget{Epsilon: 20, Delta: 1e-5}, Seed: uint64(i) + 1})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ident, err := ca.Issue(id)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := secagg.NewSigner(ident.Certificate, ident.Key)
			if err != nil {
				t.Fatal(err)
			}
			p, err := client.NewParty(client.PartyConfig{
				ClientID: id, SecAggRandomness: secagg.DeterministicRandomness(7, id), RequireSecureAggregation: true, MinNoiseMultiplier: 0.5,
				Signer: signer, Verifier: verifier,
			}, tr)
			if err != nil {
				t.Fatal(err)
			}
			parties[id] = p
			join := server.Join{ClientID: id, CommitteeEligible: true}
			transcript = append(transcript, fmt.Sprintf("join %+v", join))
			step(join)
		}
		for progress := true; progress; {
			progress = false
			for _, id := range ids {
				if len(queue[id]) == 0 {
					continue
				}
				task := queue[id][0]
				queue[id] = queue[id][1:]
				res, err := parties[id].Handle(t.Context(), task)
				if err != nil {
					t.Fatal(err)
				}
				transcript = append(transcript, clearView(id, res))
				step(server.ResultIn{ClientID: id, Result: res})
				progress = true
			}
		}
		return transcript, rounds
	}
	a, roundsA := record(0)
	b, roundsB := record(1)
	if len(roundsA) != 2 || len(roundsB) != 2 || roundsA[1].Failed || roundsB[1].Failed {
		t.Fatalf("rounds %+v / %+v: want two successful rounds each", roundsA, roundsB)
	}
	var kinds []string
	for _, line := range a {
		kinds = append(kinds, strings.Fields(line)[2])
	}
	for _, want := range []string{"TASK_KIND_KEY_SETUP", "TASK_KIND_FIT", "TASK_KIND_DECRYPT", "TASK_KIND_EVALUATE"} {
		if !slices.Contains(kinds, want) {
			t.Fatalf("the transcript holds no %s result:\n%s", want, strings.Join(a, "\n"))
		}
	}
	if len(a) != len(b) {
		t.Fatalf("transcripts of %d and %d messages:\n%s\n---\n%s", len(a), len(b), strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("message %d differs with the clients' data:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	// The decrypted aggregates are what the server may learn, and they do differ.
	if roundsA[1].Metrics["train_loss"] == roundsB[1].Metrics["train_loss"] {
		t.Fatalf("the decrypted training loss is the same for different data (%v): the statistics were not aggregated", roundsA[1].Metrics["train_loss"])
	}
	t.Logf("%d messages identical; decrypted train loss %.4f vs %.4f", len(a), roundsA[1].Metrics["train_loss"], roundsB[1].Metrics["train_loss"])
}

// clearView is what the server reads of a result outside the ciphertexts.
func clearView(client string, r *pb.Result) string {
	var blobs []string
	for _, b := range r.GetBlobs() {
		blobs = append(blobs, fmt.Sprintf("%s:%d", b.GetName(), len(b.GetData())))
	}
	var metrics []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.GetMetrics() {
			if !yield(k) {
				return
			}
		}
	}) {
		metrics = append(metrics, fmt.Sprintf("%s=%.17g", k, r.GetMetrics()[k]))
	}
	return fmt.Sprintf("%s %s %v round=%d status=%v reason=%q examples=%d metrics=%v blobs=%v",
		client, r.GetTaskId(), r.GetKind(), r.GetRound(), r.GetStatus(), r.GetReason(), r.GetNumExamples(), metrics, blobs)
}

// skewedBlobs is blobs with a fraction p of label 1.
func skewedBlobs(n int, p float64, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 2))
	ds := &data.Dataset{Name: "blobs", N: n, Dim: 4, X: make([]float64, 4*n), Y: make([]int32, n), NumClasses: 2}
	for i := 0; i < n; i++ {
		var y int32
		if rng.Float64() < p {
			y = 1
		}
		ds.Y[i] = y
		for j := 0; j < 4; j++ {
			ds.X[4*i+j] = float64(2*y-1) + 0.8*rng.NormFloat64()
		}
	}
	return ds
}
