package server_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server"
)

// statsSchema is a regression table whose two features and target are estimated: a range
// and neither mean nor std.
const statsSchema = `
format: csv
columns:
  - {name: x1, range: [0, 20]}
  - {name: x2, range: [-5, 5]}
target: {column: y, range: [0, 80]}
`

// writeStatsClients writes one CSV file per client, with shifted x1 per client (so the
// pooled statistics differ from any one client's), and returns the paths and the pooled
// values of x1, x2 and y.
func writeStatsClients(t *testing.T, clients, rows int) (paths []string, pooled [3][]float64) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	for k := range clients {
		var b strings.Builder
		b.WriteString("x1,x2,y\n")
		for range rows {
			x1 := 8 + float64(k) + 2*rng.NormFloat64()
			x2 := 3 * (rng.Float64() - 0.5)
			y := 3*x1 + x2 + rng.NormFloat64()
			fmt.Fprintf(&b, "%.6f,%.6f,%.6f\n", x1, x2, y)
			for i, v := range []float64{x1, x2, y} {
				pooled[i] = append(pooled[i], v)
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("client-%d.csv", k))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths, pooled
}

func meanStdOf(v []float64) (float64, float64) {
	var s, ss float64
	for _, x := range v {
		s += x
	}
	m := s / float64(len(v))
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(v)))
}

// TestStatisticsRound runs a federation whose dataset schema leaves the means and stds to
// estimate, with real trainers on their own CSV files, in the clear and under secure
// aggregation: the statistics round runs before round 1, the estimates are within 6
// standard errors of the noise of the pooled values, every client's ledger holds the
// release (noise multiplier z, one step at sample rate 1), the server's record-level ε
// includes it, the fit tasks ship the estimates, and no client sends its sums unnoised.
func TestStatisticsRound(t *testing.T) {
	const (
		clients = 4
		rows    = 1000
		z       = 2.0
	)
	paths, pooled := writeStatsClients(t, clients, rows)
	schema, err := data.ParseSchema([]byte(statsSchema), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(schema.Estimates()); got != 3 {
		t.Fatalf("estimates: %d, want 3", got)
	}
	k := 3.0
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("secagg=%v", secure), func(t *testing.T) {
			cfg := baseConfig(1, clients)
			if secure {
				cfg = secAggConfig(1, clients, 3, 2)
				cfg.SecAgg.MinContributions = 2
			}
			cfg.Model = model.Spec{Type: model.TypeMLP, Input: 2, Output: 1, Loss: model.LossMSE}
			cfg.Dataset = schema
			cfg.DP.NoiseMultiplier, cfg.DP.SampleRate, cfg.DP.Steps = 1, 0.05, 10
			cfg.DP.StatisticsNoiseMultiplier = z
			cfg.Sampling.MinAvailable = clients
			c, err := server.New(cfg, server.Options{})
			if err != nil {
				t.Fatal(err)
			}
			parties := map[string]*client.Party{}
			trainers := map[string]*client.ModelTrainer{}
			for i := range clients {
				id := fmt.Sprintf("c%d", i)
				mt, err := client.NewModelTrainer(client.ModelTrainerConfig{Source: &client.DataSource{Path: paths[i], Seed: 1}, Budget: &dp.Budget{Epsilon: 50, Delta: 1e-5}, Seed: uint64(i + 1)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { mt.Close() })
				p, err := client.NewParty(client.PartyConfig{ClientID: id, Noise: dp.NewDeterministicNoise(uint64(10 + i))}, mt)
				if err != nil {
					t.Fatal(err)
				}
				parties[id], trainers[id] = p, mt
			}
			d := &statsDriver{t: t, c: c, parties: parties, queue: map[string][]*pb.Task{}}
			for _, id := range slices.Sorted(mapKeys(parties)) {
				d.step(server.Join{ClientID: id, CommitteeEligible: true})
			}
			d.run()
			if !c.Finished() {
				t.Fatalf("federation did not finish: phase %s, round %d", c.Phase(), c.Round())
			}

			// The estimates, against the pooled truth.
			var est *server.StatisticsEstimated
			for _, n := range d.notices {
				if e, ok := n.(server.StatisticsEstimated); ok {
					if e.Failed {
						t.Fatalf("statistics round failed: %s", e.Reason)
					}
					est = &e
				}
			}
			if est == nil {
				t.Fatal("no StatisticsEstimated notice")
			}
			// Noise on every sum: each client adds all of N(0, z²·3k) in the clear, its
			// share N(0, z²·3k/m) under secure aggregation.
			share := z * math.Sqrt(3*k)
			if secure {
				share /= math.Sqrt(float64(cfg.SecAgg.MinContributions))
			}
			sumStd := share * math.Sqrt(clients)
			nTotal := float64(clients * rows)
			for i, name := range []string{"columns[0] (x1)", "columns[1] (x2)", "target (y)"} {
				lo, hi := []float64{0, -5, 0}[i], []float64{20, 5, 80}[i]
				h := (hi - lo) / 2
				m, s := meanStdOf(pooled[i])
				got := est.Estimates[name]
				// Standard error of Σu/n (and of √(Σu²/n − ·)) from the noise on the
				// count and the sums, in the column's units.
				se := h * sumStd * 3 / nTotal
				if math.Abs(got[0]-m) > 6*se || math.Abs(got[1]-s) > 6*se/max(s/h, 0.05) {
					t.Errorf("%s: estimated mean %.4f std %.4f, pooled %.4f %.4f (6 standard errors of the mean: %.4f)", name, got[0], got[1], m, s, 6*se)
				}
				t.Logf("%s: estimated mean %.4f std %.4f, pooled %.4f %.4f", name, got[0], got[1], m, s)
			}

			// No clear statistics: every statistics result is encrypted under secure
			// aggregation, and in the clear differs from the exact sums by noise of the
			// calibrated size.
			var devs []float64
			for _, a := range d.answered {
				if a.result.Kind != pb.TaskKind_TASK_KIND_STATISTICS {
					continue
				}
				if secure {
					if _, err := blob.Find(a.result.Blobs, blob.Update); err == nil {
						t.Fatalf("client %s sent a plaintext statistics blob under secure aggregation", a.client)
					}
					if _, err := blob.Find(a.result.Blobs, blob.EncryptedUpdate); err != nil {
						t.Fatalf("client %s: %v", a.client, err)
					}
					continue
				}
				b, err := blob.Find(a.result.Blobs, blob.Update)
				if err != nil {
					t.Fatal(err)
				}
				sent, err := blob.DecodeFloats(b, 9)
				if err != nil {
					t.Fatal(err)
				}
				i := int(a.client[1] - '0')
				exact, _, err := schema.StatisticsSums(context.Background(), paths[i], false, 0)
				if err != nil {
					t.Fatal(err)
				}
				for j := range exact {
					devs = append(devs, (sent[j]-exact[j])/share)
				}
			}
			if !secure {
				if len(devs) != clients*9 {
					t.Fatalf("%d plaintext statistics values, want %d", len(devs), clients*9)
				}
				var ss float64
				for _, v := range devs {
					ss += v * v
				}
				// 36 standard normals: their root mean square is within [0.6, 1.4] but
				// for a 1e-5 chance (χ²₃₆).
				if rms := math.Sqrt(ss / float64(len(devs))); rms < 0.6 || rms > 1.4 {
					t.Errorf("the sent statistics differ from the exact sums by %.3f noise standard deviations (RMS), want about 1", rms)
				}
			}

			// Every client's ledger has the release; the server's ε includes it.
			wantEps, err := accountant.Epsilon([]accountant.Step{{NoiseMultiplier: z, SampleRate: 1, Steps: 1}}, 1e-5, accountant.Config{})
			if err != nil {
				t.Fatal(err)
			}
			for id, mt := range trainers {
				hist, _ := mt.Ledger().History()
				if !slices.ContainsFunc(hist, func(s dp.StepRecord) bool { return s.NoiseMultiplier == z && s.SampleRate == 1 && s.Steps == 1 }) {
					t.Errorf("client %s's ledger holds %+v, no statistics release (z %g, q 1, 1 step)", id, hist, z)
				}
			}
			var first map[string]float64 = map[string]float64{}
			for _, n := range d.notices {
				if p, ok := n.(server.PrivacySpent); ok && !p.Reported {
					if _, seen := first[p.ClientID]; !seen {
						first[p.ClientID] = p.Epsilon
					}
				}
			}
			for id := range parties {
				if got := first[id]; math.Abs(got-wantEps.Epsilon) > 1e-9*wantEps.Epsilon {
					t.Errorf("client %s: the server's first ε %.6g, want the statistics release's %.6g", id, got, wantEps.Epsilon)
				}
			}

			// The fit tasks ship the estimated schema.
			for _, task := range d.sent {
				if f := task.GetFit(); f != nil {
					s, err := data.ParseSchemaJSON(f.GetDatasetSchema())
					if err != nil {
						t.Fatal(err)
					}
					if len(s.Estimates()) != 0 || s.Columns[0].Mean == nil || math.Abs(*s.Columns[0].Mean-est.Estimates["columns[0] (x1)"][0]) > 0 {
						t.Fatalf("fit task ships schema %s, not the estimated one", f.GetDatasetSchema())
					}
				}
			}
		})
	}
}

// statsDriver is an in-memory transport for trainers of any type (network's are fakes).
type statsDriver struct {
	t        *testing.T
	c        *server.Coordinator
	parties  map[string]*client.Party
	queue    map[string][]*pb.Task
	notices  []server.Notice
	sent     []*pb.Task
	answered []answered
}

func (d *statsDriver) step(ev server.Event) {
	d.t.Helper()
	r, err := d.c.Step(ev)
	if err != nil {
		d.t.Fatalf("step %T: %v", ev, err)
	}
	d.notices = append(d.notices, r.Notices...)
	for _, e := range r.Send {
		d.queue[e.To] = append(d.queue[e.To], e.Task)
		d.sent = append(d.sent, e.Task)
	}
	for _, v := range r.Revoke {
		d.queue[v.To] = slices.DeleteFunc(d.queue[v.To], func(t *pb.Task) bool { return t.TaskId == v.TaskID })
	}
	for _, w := range r.Work {
		d.step(w.Run())
	}
}

func (d *statsDriver) run() {
	d.t.Helper()
	for progress := true; progress && !d.c.Finished(); {
		progress = false
		for _, id := range slices.Sorted(mapKeys(d.parties)) {
			if len(d.queue[id]) == 0 {
				continue
			}
			task := d.queue[id][0]
			d.queue[id] = d.queue[id][1:]
			res, err := d.parties[id].Handle(context.Background(), task)
			if err != nil {
				d.t.Fatalf("client %s: %v", id, err)
			}
			if res.Status != pb.ResultStatus_RESULT_STATUS_OK {
				d.t.Logf("client %s task %s: %v %s", id, task.TaskId, res.Status, res.Reason)
			}
			d.answered = append(d.answered, answered{id, res})
			d.step(server.ResultIn{ClientID: id, Result: res})
			progress = true
		}
		if !progress && !d.c.Finished() {
			d.step(server.Tick{Elapsed: time.Second})
			progress = d.c.Now() < 10*time.Minute
		}
	}
}

// TestCheckpointsRecordEstimatedSchema: once the statistics round's record is appended, the
// model files of later rounds carry the estimated schema, which decodes as a complete
// federation schema.
func TestCheckpointsRecordEstimatedSchema(t *testing.T) {
	schema, err := data.ParseSchema([]byte(statsSchema), "")
	if err != nil {
		t.Fatal(err)
	}
	est, err := schema.WithStatistics([]float64{100, 10, 40, 100, -5, 30, 100, 20, 50})
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := est.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	spec := model.Spec{Type: model.TypeMLP, Input: 2, Output: 1, Loss: model.LossMSE}
	n, err := spec.NumParams()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cs, err := server.NewCheckpointStore(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Append([]server.Record{server.StatisticsRecord{Schema: shipped, NoiseMultiplier: 5}, server.RoundRecord{Round: 1, Params: make([]float64, n)}}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(filepath.Join(dir, "latest.confide"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := data.ParseSchemaJSON(m.Meta.Dataset)
	if err != nil {
		t.Fatalf("the model file's dataset %s: %v", m.Meta.Dataset, err)
	}
	if len(got.Estimates()) != 0 || *got.Columns[0].Mean != *est.Columns[0].Mean || *got.Target.Std != *est.Target.Std {
		t.Fatalf("the model file's dataset %s, want the estimated schema %s", m.Meta.Dataset, shipped)
	}
}

// A server that sends the statistics task again and again, to average the clients' noise
// away, gets each answer charged to the client's ledger and is refused once the client's
// budget would be exceeded: every release it receives is accounted, so averaging k of them
// costs what k releases cost.
func TestStatisticsReplayIsChargedAndRefusedAtTheBudget(t *testing.T) {
	paths, _ := writeStatsClients(t, 2, 200)
	schema, err := data.ParseSchema([]byte(statsSchema), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(1, 2)
	cfg.Model = model.Spec{Type: model.TypeMLP, Input: 2, Output: 1, Loss: model.LossMSE}
	cfg.Dataset = schema
	cfg.DP.NoiseMultiplier, cfg.DP.SampleRate, cfg.DP.Steps = 1, 0.05, 10
	cfg.DP.StatisticsNoiseMultiplier = 2
	cfg.Sampling.MinAvailable = 2
	c, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The task the coordinator issues, captured and replayed by a hostile server.
	var task *pb.Task
	for _, id := range []string{"c0", "c1"} {
		r, err := c.Step(server.Join{ClientID: id, CommitteeEligible: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Send {
			if e.To == "c0" && e.Task.GetStatistics() != nil {
				task = e.Task
			}
		}
	}
	if task == nil {
		t.Fatal("the coordinator sent c0 no statistics task")
	}
	mt, err := client.NewModelTrainer(client.ModelTrainerConfig{Source: &client.DataSource{Path: paths[0], Seed: 1}, Budget: &dp.Budget{Epsilon: 4, Delta: 1e-5}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mt.Close() })
	p, err := client.NewParty(client.PartyConfig{ClientID: "c0", Noise: dp.NewDeterministicNoise(3)}, mt)
	if err != nil {
		t.Fatal(err)
	}
	answered, prev := 0, 0.0
	for range 100 {
		res, err := p.Handle(t.Context(), task)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != pb.ResultStatus_RESULT_STATUS_OK {
			if res.Status != pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET {
				t.Fatalf("replay %d: %v (%s), want a refusal on the privacy budget", answered+1, res.Status, res.Reason)
			}
			break
		}
		answered++
		eps, _ := mt.Ledger().Spent()
		if eps <= prev {
			t.Fatalf("answer %d left the ledger at ε %v (before: %v): a release not charged", answered, eps, prev)
		}
		prev = eps
	}
	_, charges := mt.Ledger().History()
	if answered == 0 || answered == 100 || charges != int64(answered) || prev > 4 {
		t.Fatalf("%d answers to 100 replays, %d ledger charges, ε spent %v of 4: want every answer charged and a refusal within the budget", answered, charges, prev)
	}
	t.Logf("a replayed statistics task (z = 2): %d answers charged (ε %.3g of 4), then refused", answered, prev)
}
