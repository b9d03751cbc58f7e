package sim

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/train"
)

// Report is the outcome of a run: the summary and the per-round table.
type Report struct {
	Summary Summary        `json:"summary"`
	Rounds  []RoundMetrics `json:"rounds"`
}

// Summary is what `confide sim -o json` prints.
type Summary struct {
	Name       string `json:"name"`
	Dataset    string `json:"dataset"`
	Partition  string `json:"partition"`
	Model      string `json:"model"`
	Parameters int    `json:"parameters"`
	// Features describes the model's fixed feature stage (none: empty); it ran once over
	// the FeatureExamples of the training and test sets, in FeatureSeconds (part of
	// SetupSeconds).
	Features        string  `json:"features,omitempty"`
	FeatureExamples int     `json:"feature_examples,omitempty"`
	FeatureSeconds  float64 `json:"feature_seconds,omitempty"`
	Strategy        string  `json:"strategy"`
	Transport       string  `json:"transport"`
	Clients         int     `json:"clients"`
	ClientsPerRound int     `json:"clients_per_round"`
	Seed            uint64  `json:"seed"`
	// Rounds is the number of rounds completed (fewer than RoundsPlanned when the target
	// was reached or the run was interrupted), RoundsFailed those that could not update
	// the model.
	Rounds        int `json:"rounds"`
	RoundsPlanned int `json:"rounds_planned"`
	RoundsFailed  int `json:"rounds_failed"`
	// Interrupted says the run was stopped (SIGINT, a cancelled context) before its last
	// round: the round in flight was abandoned, and everything else describes the rounds
	// completed and the model they produced.
	Interrupted bool `json:"interrupted"`
	// Accuracies on the central test set: of the initial model, after the last round,
	// and the best of any evaluated round.
	InitialAccuracy *float64 `json:"initial_accuracy,omitempty"`
	FinalAccuracy   *float64 `json:"final_accuracy,omitempty"`
	FinalLoss       *float64 `json:"final_loss,omitempty"`
	BestAccuracy    *float64 `json:"best_accuracy,omitempty"`
	BestRound       int      `json:"best_round,omitempty"`
	// TargetAccuracy and the first round whose evaluation reached it (null: not reached).
	TargetAccuracy float64 `json:"target_accuracy,omitempty"`
	RoundsToTarget *int    `json:"rounds_to_target,omitempty"`
	Privacy        Privacy `json:"privacy"`
	// SecureAggregation is on when the server saw only the sum of encrypted updates.
	SecureAggregation bool `json:"secure_aggregation"`
	CommitteeSize     int  `json:"committee_size,omitempty"`
	Threshold         int  `json:"threshold,omitempty"`
	// ValueBits is the encoding of the encrypted updates (secure_aggregation.value_bits as
	// the server applied it): the packed encoding's bits per value, or 0 for the float
	// encoding; absent without secure aggregation.
	ValueBits *int `json:"value_bits,omitempty"`
	// WallSeconds is the time the rounds took (SetupSeconds: data, partition, model);
	// SecondsPerRound their mean; VirtualSeconds the simulated time (memory transport).
	WallSeconds     float64 `json:"wall_seconds"`
	SetupSeconds    float64 `json:"setup_seconds"`
	SecondsPerRound float64 `json:"seconds_per_round"`
	VirtualSeconds  float64 `json:"virtual_seconds,omitempty"`
	// ParallelEfficiency is the share of GOMAXPROCS × WallSeconds in which the Go runtime
	// had work for its processors (1 − idle / total of runtime/metrics' CPU classes): below
	// 1 when cores wait, on a round's last client or on serial work between rounds (an
	// overestimate: the runtime's own spinning counts as work). Other processes competing
	// for the cores do not lower it, unlike CPU time over wall time.
	ParallelEfficiency float64 `json:"parallel_efficiency"`
	// BytesUp and BytesDown are the payload bytes clients sent and received.
	BytesUp    int64  `json:"bytes_up"`
	BytesDown  int64  `json:"bytes_down"`
	Workers    int    `json:"workers"`
	ResultsDir string `json:"results_dir,omitempty"`
}

// Privacy says what the run's ε means. Its JSON carries "dp" (DPSGD) and, without DP-SGD,
// "epsilon": null and "epsilon_mean": null: no guarantee (ε = ∞), not perfect privacy.
type Privacy struct {
	DPSGD           bool    `json:"dp_sgd"`
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	MaxGradNorm     float64 `json:"max_grad_norm,omitempty"`
	// Epsilon is the worst case over clients: the largest ε at Delta any client's ledger
	// holds; EpsilonMean averages the clients that trained (ClientsAccounted).
	Epsilon          float64 `json:"epsilon"`
	EpsilonMean      float64 `json:"epsilon_mean"`
	Delta            float64 `json:"delta"`
	ClientsAccounted int     `json:"clients_accounted"`
	// UpdateClipNorm is the user-level bound on every client update (DP-FedAvg clipping;
	// 0: none). It bounds each client's influence; it adds no noise of its own.
	UpdateClipNorm float64 `json:"update_clip_norm,omitempty"`
	Meaning        string  `json:"meaning"`
	// Noise names the source of DP noise and Poisson sampling.
	Noise string `json:"noise"`
	// Accountant is dp.accountant, the accountant of every ε of the run: rdp or prv.
	Accountant string `json:"accountant,omitempty"`
	// UserLevel is the federation's user-level DP (dp.user_level), beside the record-level
	// ε above; nil when it is off.
	UserLevel *UserLevelPrivacy `json:"user_level,omitempty"`
}

// MarshalJSON writes p with "dp" and, without DP-SGD, null ε fields.
func (p Privacy) MarshalJSON() ([]byte, error) {
	type plain Privacy
	out := struct {
		DP bool `json:"dp"`
		plain
		Epsilon     *float64 `json:"epsilon"`
		EpsilonMean *float64 `json:"epsilon_mean"`
	}{DP: p.DPSGD, plain: plain(p)}
	if p.DPSGD {
		out.Epsilon, out.EpsilonMean = &p.Epsilon, &p.EpsilonMean
	}
	return json.Marshal(out)
}

// UserLevelPrivacy is what the run's user-level (ε, δ) means: DP-FedAvg over Rounds rounds,
// each client taking part with probability SampleRate, noise multiplier NoiseMultiplier
// on the sum of updates clipped to (the final) Clip.
type UserLevelPrivacy struct {
	Mode            string  `json:"mode"`
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	SampleRate      float64 `json:"sample_rate"`
	Rounds          int     `json:"rounds"`
	Adaptive        bool    `json:"adaptive_clipping"`
	Clip            float64 `json:"clip"`
	// CountSensitivity is the adaptive clip's indicator sum's sensitivity (½: clients send
	// the centred indicator), MinContributions the fewest updates any decrypted sum holds
	// (distributed mode: the noise shares are sized for it).
	CountSensitivity float64 `json:"count_sensitivity,omitempty"`
	MinContributions int     `json:"min_contributions,omitempty"`
	// UpdateNoiseMultiplier is the least ratio, over the released rounds, of the noise
	// standard deviation on an update coordinate of the released sum to the round's clip
	// (z_Δ), and CountNoiseStd the least noise on the indicator sum (σ_b): the mechanism as
	// it ran. Its noise multiplier is (z_Δ⁻² + (CountSensitivity/σ_b)²)^(−½), which must
	// be the accounted NoiseMultiplier.
	UpdateNoiseMultiplier float64 `json:"update_noise_multiplier,omitempty"`
	CountNoiseStd         float64 `json:"count_noise_std,omitempty"`
	Accountant            string  `json:"accountant"`
	Meaning               string  `json:"meaning"`
}

// userLevelMeaning and privacyMeaning say what the ε of each level means, naming the
// accountant (RDP or PRV).
func userLevelMeaning(acct string) string {
	return "user-level (client-level) DP of each client's whole dataset: DP-FedAvg, updates clipped on the clients, " +
		"Gaussian noise on their sum, " + acct + " accountant of the Poisson-subsampled Gaussian over the rounds"
}

// discreteUserLevelMeaning is userLevelMeaning for the distributed discrete Gaussian.
const discreteUserLevelMeaning = "user-level (client-level) DP of each client's update (zero-out neighbours: who takes part is public): " +
	"DP-FedAvg, updates clipped, quantised and noised on the clients with integer shares of the distributed discrete Gaussian " +
	"(Kairouz, Liu and Steinke 2021), RDP composed over the rounds with every round charged in full (no amplification by sampling)"

func privacyMeaning(acct string) string {
	return "record-level (example-level) DP of each client's local data: DP-SGD on the client, " +
		"composed by the client's " + acct + " accountant over the rounds that client trained in; epsilon is the worst case over clients"
}

const (
	noiseSecure        = "secure (AES-128-CTR keyed from crypto/rand, the operating system)"
	noiseDeterministic = "DETERMINISTIC: seeded from the run's seed for reproducibility; this run's ε is not a privacy guarantee"
)

func (r *run) report() (*Report, error) {
	rows := r.rec.close()
	c := r.cfg
	s := Summary{
		Name: c.Name, Dataset: c.Dataset.Name, Partition: c.Partition, Model: r.spec.Type, Strategy: c.Strategy.Name,
		Transport: c.Transport, Clients: r.pop.n, ClientsPerRound: c.ClientsPerRound, Seed: c.Seed,
		Rounds: len(rows), RoundsPlanned: c.Rounds, Interrupted: r.interrupted, TargetAccuracy: c.TargetAccuracy,
		SecureAggregation: c.SecureAggregation.Enabled, Workers: c.Workers,
	}
	if s.SecureAggregation {
		s.CommitteeSize, s.Threshold = c.SecureAggregation.CommitteeSize, c.SecureAggregation.Threshold
		if b := r.fed.SecAgg.ValueBits; b != nil {
			s.ValueBits = new(*b)
		}
	}
	if m, err := model.New(r.spec, rand.New(rand.NewPCG(0, 0))); err == nil {
		s.Parameters = m.NumParams()
	}
	if f := r.spec.Features; f != nil {
		s.Features, s.FeatureExamples, s.FeatureSeconds = f.String(), r.featureExamples, r.featureSeconds
	}
	if ev, ok := r.eval.result(0); ok {
		a := ev.accuracy
		s.InitialAccuracy = &a
	}
	for _, row := range rows {
		if row.Failed {
			s.RoundsFailed++
		}
		if row.Accuracy != nil {
			a, l := *row.Accuracy, *row.Loss
			s.FinalAccuracy, s.FinalLoss = &a, &l
			if s.BestAccuracy == nil || a > *s.BestAccuracy {
				b := a
				s.BestAccuracy, s.BestRound = &b, row.Round
			}
		}
		s.BytesUp += row.BytesUp
		s.BytesDown += row.BytesDown
		s.VirtualSeconds = max(s.VirtualSeconds, row.VirtualSeconds)
	}
	if s.Dataset == "" {
		s.Dataset = r.train.Name
	}
	if c.Transport != TransportMemory {
		s.BytesUp, s.BytesDown = r.grpcBytesUp, r.grpcBytesDown
	}
	if t := r.eval.targetRound(); t > 0 {
		n := int(t)
		s.RoundsToTarget = &n
	}
	s.SetupSeconds = r.driveStart.Sub(r.start).Seconds()
	s.WallSeconds = time.Since(r.driveStart).Seconds()
	s.ParallelEfficiency = r.driveCPU.parallelEfficiency(readCPUUse())
	if len(rows) > 0 {
		s.SecondsPerRound = s.WallSeconds / float64(len(rows))
	}
	method, _ := c.DP.accountant() // validated with the config
	acctName := strings.ToUpper(method.String())
	p := Privacy{DPSGD: c.dpOn(), Delta: c.DP.Delta, UpdateClipNorm: c.DP.UpdateClipNorm, Meaning: privacyMeaning(acctName), Noise: noiseSecure}
	if p.DPSGD || c.DP.UserLevel.On() {
		p.Accountant = method.String()
	}
	if p.DPSGD {
		p.NoiseMultiplier, p.MaxGradNorm = c.DP.NoiseMultiplier, c.DP.MaxGradNorm
		if c.DP.DeterministicNoise {
			p.Noise = noiseDeterministic
		}
		eps, err := r.epsilons()
		if err != nil {
			return nil, err
		}
		for _, e := range eps {
			p.Epsilon = max(p.Epsilon, e)
			p.EpsilonMean += e
		}
		if len(eps) > 0 {
			p.EpsilonMean /= float64(len(eps))
		}
		p.ClientsAccounted = len(eps)
	} else {
		p.Meaning = "no DP (ε = ∞): without DP-SGD the clients' data has no record-level differential-privacy guarantee"
		p.Noise = "none"
	}
	if u := c.DP.UserLevel; u.On() {
		meaning := userLevelMeaning(acctName)
		if r.fed.DiscreteUserLevel() {
			meaning = discreteUserLevelMeaning
		}
		ul := &UserLevelPrivacy{Mode: u.Mode, Delta: r.fed.DP.UserLevel.Delta, NoiseMultiplier: u.NoiseMultiplier, Adaptive: u.IsAdaptive(), Clip: u.Clip, Meaning: meaning}
		if u.IsAdaptive() {
			ul.Clip = u.Adaptive.InitialClip
			// What one client can move the indicator sum by, from the value clients send.
			ul.CountSensitivity = max(math.Abs(dp.ClipIndicator(0, 1)), math.Abs(dp.ClipIndicator(2, 1)))
		}
		if u.Mode == server.UserLevelDistributed {
			ul.MinContributions = r.fed.SecAgg.MinContributions
		}
		for _, row := range rows {
			if row.UpdateClip > 0 {
				ul.Clip = row.UpdateClip
			}
			if row.Failed || !(row.UpdateClip > 0) || row.SumNoiseStd == 0 {
				continue
			}
			if z := row.SumNoiseStd / row.UpdateClip; ul.UpdateNoiseMultiplier == 0 || z < ul.UpdateNoiseMultiplier {
				ul.UpdateNoiseMultiplier = z
			}
			if c := row.CountNoiseStd; c > 0 && (ul.CountNoiseStd == 0 || c < ul.CountNoiseStd) {
				ul.CountNoiseStd = c
			}
		}
		if rec := r.rec.userLevelRecord(); rec != nil {
			ul.Epsilon, ul.Delta, ul.SampleRate, ul.Rounds = rec.Epsilon, rec.Delta, rec.SampleRate, rec.Rounds
			ul.Accountant = rec.Accounting
		}
		if c.DP.DeterministicNoise {
			p.Noise = noiseDeterministic
		} else if !p.DPSGD {
			p.Noise = noiseSecure
		}
		p.UserLevel = ul
	}
	s.Privacy = p
	if c.ResultsDir != "-" {
		s.ResultsDir = r.resultsDir()
	}
	return &Report{Summary: s, Rounds: rows}, nil
}

// epsilons reads every client ledger: the ε each client that trained has spent.
func (r *run) epsilons() ([]float64, error) {
	r.mu.Lock()
	ks := make([]int, 0, len(r.states))
	for k := range r.states {
		ks = append(ks, k)
	}
	r.mu.Unlock()
	slices.Sort(ks)
	var out []float64
	for _, k := range ks {
		snap, err := client.ReadLedger(r.states[k].store)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the client never trained
		}
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", r.id(k), err)
		}
		res, err := accountant.Epsilon(snap.History, snap.Budget.Delta, accountant.Config{Method: snap.Accountant})
		if err != nil {
			return nil, fmt.Errorf("client %s: %w", r.id(k), err)
		}
		if res.Epsilon > 0 {
			out = append(out, res.Epsilon)
		}
	}
	return out, nil
}

// resultsDir is where the run writes its results (decided once, at the start).
func (r *run) resultsDir() string {
	r.dirOnce.Do(func() {
		r.dir = r.cfg.ResultsDir
		if r.dir == "" {
			r.dir = filepath.Join("results", r.cfg.Name+"-"+r.start.Format("20060102-150405"))
		}
	})
	return r.dir
}

// writeResults writes summary.json, rounds.json, rounds.csv, config.yaml, model.confide and
// the plots into the results directory.
func writeResults(r *run, rep *Report) error {
	dir := r.resultsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results_dir %s: %w (choose another results_dir)", dir, err)
	}
	writeJSON := func(name string, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644)
	}
	if err := writeJSON("summary.json", rep.Summary); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := writeJSON("rounds.json", rep.Rounds); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := writeCSV(filepath.Join(dir, "rounds.csv"), rep.Rounds); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	// The configuration as run: model sizes from the data, the coordinator's defaults.
	cfg := r.cfg
	cfg.Model = r.spec
	cfg.Deadlines = r.fed.Deadlines
	cfg.MinAvailable = r.fed.Sampling.MinAvailable
	if cfg.SecureAggregation.Enabled {
		cfg.SecureAggregation = r.fed.SecAgg
		cfg.DP.UpdateClipNorm = r.fed.DP.UpdateClipNorm
	}
	cfg.DP.UserLevel = r.fed.DP.UserLevel
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("results: config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), b, 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	m, err := model.New(r.spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return err
	}
	if err := m.SetParams(r.coord.Released()); err != nil {
		return err
	}
	if err := m.SetPrecision(r.precision); err != nil { // the file records what it was trained in
		return err
	}
	if m.Meta, err = modelMeta(r, rep.Summary); err != nil {
		return fmt.Errorf("results: model: %w", err)
	}
	if err := m.Save(filepath.Join(dir, "model.confide")); err != nil {
		return fmt.Errorf("results: model: %w", err)
	}
	if *r.cfg.Plots {
		guides := plotGuides{targetAccuracy: r.cfg.TargetAccuracy, budgetEpsilon: r.cfg.DP.BudgetEpsilon}
		if err := writePlots(dir, r.cfg.Name, r.initialAccuracy(), rep.Rounds, r.cfg.dpOn(), guides); err != nil {
			return fmt.Errorf("results: plots: %w", err)
		}
	}
	return nil
}

// modelMeta is what model.confide records beside the parameters: how to read raw inputs
// (from the training set, and a dataset spec's schema as the rows were encoded with it)
// and how the model was trained, with the run's DP guarantees.
func modelMeta(r *run, s Summary) (model.Meta, error) {
	meta, err := train.SchemaMeta(r.train, r.spec, r.schema)
	if err != nil {
		return model.Meta{}, err
	}
	p := model.NewProvenance(model.TrainedSim)
	p.Dataset, p.Strategy, p.Rounds, p.Clients, p.Seed = s.Dataset, s.Strategy, s.Rounds, s.Clients, s.Seed
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }
	if q := s.Privacy; q.DPSGD && finite(q.Epsilon) {
		p.Privacy = append(p.Privacy, model.PrivacyGuarantee{Level: model.PrivacyRecord, Mechanism: "DP-SGD, " + strings.ToUpper(q.Accountant) + " accountant; noise " + q.Noise,
			Epsilon: q.Epsilon, Delta: q.Delta, NoiseMultiplier: q.NoiseMultiplier, Meaning: q.Meaning})
	}
	if u := s.Privacy.UserLevel; u != nil && finite(u.Epsilon) {
		p.Privacy = append(p.Privacy, model.PrivacyGuarantee{Level: model.PrivacyUser, Mechanism: "DP-FedAvg (" + u.Mode + "), " + u.Accountant + "; noise " + s.Privacy.Noise,
			Epsilon: u.Epsilon, Delta: u.Delta, NoiseMultiplier: u.NoiseMultiplier, Meaning: u.Meaning})
	}
	meta.Provenance = p
	return meta, nil
}

func (r *run) initialAccuracy() *evaluation {
	if ev, ok := r.eval.result(0); ok {
		return &ev
	}
	return nil
}

// csvColumns are the columns of rounds.csv, in order; r2, rmse and mae (in the target's
// units) are a regression model's and empty for a classifier; iterate_accuracy and
// iterate_loss the global iterate's when the released model is an average
// (strategy.ema_decay), empty otherwise.
var csvColumns = []string{"round", "failed", "sampled", "contributors", "dropped", "late", "refused", "errors",
	"accuracy", "loss", "r2", "rmse", "mae", "train_loss", "train_accuracy", "federated_accuracy", "federated_loss", "iterate_accuracy", "iterate_loss", "epsilon",
	"bytes_down", "bytes_up", "examples", "virtual_seconds", "wall_seconds", "eval_seconds", "elapsed_seconds", "reason"}

func writeCSV(path string, rows []RoundMetrics) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(csvColumns)
	opt := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', 8, 64)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
	for _, m := range rows {
		w.Write([]string{
			strconv.Itoa(m.Round), strconv.FormatBool(m.Failed), strconv.Itoa(m.Sampled), strconv.Itoa(m.Contributors),
			strconv.Itoa(m.Dropped), strconv.Itoa(m.Late), strconv.Itoa(m.Refused), strconv.Itoa(m.Errors),
			opt(m.Accuracy), opt(m.Loss), opt(m.R2), opt(m.RMSE), opt(m.MAE), opt(m.TrainLoss), opt(m.TrainAccuracy), opt(m.FederatedAccuracy), opt(m.FederatedLoss), opt(m.IterateAccuracy), opt(m.IterateLoss),
			num(m.Epsilon), strconv.FormatInt(m.BytesDown, 10), strconv.FormatInt(m.BytesUp, 10), strconv.Itoa(m.Examples),
			num(m.VirtualSeconds), num(m.WallSeconds), num(m.EvalSeconds), num(m.ElapsedSeconds), m.Reason,
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
