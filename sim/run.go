package sim

import (
	"container/heap"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/confide-fl/confide/client"
	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/internal/linalg"
	"github.com/confide-fl/confide/model"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
	"github.com/confide-fl/confide/secagg/identitytest"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/train"
)

// Options are a run's collaborators; all are optional.
type Options struct {
	// Train and Test replace the datasets Config.Dataset names (tests, Go programs).
	Train, Test *data.Dataset
	// OnProgress is called as clients finish their tasks; OnRound after every round. Both
	// are called from the goroutine driving the federation and must return quickly.
	OnProgress func(Progress)
	OnRound    func(RoundMetrics)
	// Logger receives the run's structured logs (default: discarded).
	Logger *slog.Logger
	// Canaries are clients added after the partition's (their ids continue the
	// numbering) whose Trainer answers their fit tasks: a privacy audit's canary clients
	// (see canary.go). Not with partition sample:N.
	Canaries []client.Trainer
	// OnModel is called with the released model after every round (the global model, or
	// its average under strategy.ema_decay; round 0: the initial model), before its
	// central evaluation, from the goroutine that evaluates; params may be kept.
	OnModel func(round uint64, params []float64)
	// Live, when set, follows the federation for a dashboard (see package dashboard).
	Live *server.Live
}

// Progress is a snapshot for progress displays.
type Progress struct {
	Round, Rounds   int
	ClientsDone     int // fit results received in this round
	ClientsSampled  int
	Phase           string
	VirtualTime     time.Duration
	LastAccuracy    float64 // central test accuracy of the last evaluation (NaN before)
	CompletedRounds int
	// FeaturesDone of FeaturesTotal examples have been through the model's feature stage
	// (phase "features", before the first round).
	FeaturesDone, FeaturesTotal int
}

// Run simulates the federation cfg describes: the real coordinator (server.Coordinator)
// with its strategy, secure aggregation and deadlines, and virtual clients running the real
// client round logic (client.Party) and trainer (client.ModelTrainer, DP-SGD and privacy
// ledger). Only the transport is simulated: in memory with virtual time (the default), or
// the real gRPC service over an in-process or loopback connection. It writes metrics,
// plots and the final model into the results directory unless cfg.ResultsDir is "-".
//
// While it runs with more than one worker it sets the matrix kernels to one goroutine
// each (internal/linalg.Workers), since the workers already use every core; Run is
// therefore not meant to run concurrently with other training in the same process.
func Run(ctx context.Context, cfg Config, opts Options) (*Report, error) {
	r, err := newRun(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer r.pool.close()
	if r.cfg.Workers > 1 {
		prev := linalg.Workers
		linalg.Workers = 1
		defer func() { linalg.Workers = prev }()
	}
	r.driveStart = time.Now()
	r.driveCPU = readCPUUse()
	r.rec.lastEnd = r.driveStart
	switch r.cfg.Transport {
	case TransportMemory:
		err = runMemory(ctx, r)
	default:
		err = runGRPC(ctx, r)
	}
	if err != nil {
		if ctx.Err() == nil {
			return nil, err
		}
		// Interrupted: the round in flight is abandoned (its tasks stop at their next
		// batch), and the rounds completed so far are reported and written like a
		// finished run's, with the global model they produced.
		r.interrupted = true
	}
	r.pool.close()
	rep, err := r.report()
	if err != nil {
		return nil, err
	}
	if r.cfg.ResultsDir != "-" {
		if err := writeResults(r, rep); err != nil {
			return rep, err
		}
	}
	if r.interrupted {
		return rep, fmt.Errorf("sim: interrupted after %d of %d rounds: %w", rep.Summary.Rounds, rep.Summary.RoundsPlanned, ctx.Err())
	}
	return rep, nil
}

// run is the state shared by the transports.
type run struct {
	cfg   Config
	opts  Options
	log   *slog.Logger
	train *data.Dataset
	test  *data.Dataset
	// pending is the dataset schema whose statistics the federation estimates before its
	// first round (nil: none); train and test hold those columns raw until then.
	pending *data.Schema
	// schema is a dataset spec's complete schema, as model.confide records it (after the
	// statistics round when there is one); nil for the built-in datasets.
	schema  *data.Schema
	pop     *population
	spec    model.Spec
	fed     server.Config
	coord   *server.Coordinator
	eval    *evaluator
	rec     *recorder
	pool    *pool
	idWidth int
	// start is when the run began, driveStart when the first client joined.
	start      time.Time
	driveStart time.Time
	driveCPU   cpuUse // the runtime's CPU accounting at driveStart
	dirOnce    sync.Once
	dir        string
	// interrupted says the run's context ended before the last round.
	interrupted bool

	// grpcBytesUp and grpcBytesDown are the gRPC service's payload counters.
	grpcBytesUp, grpcBytesDown int64
	// noise is the clients' shared source of user-level DP noise when it is not seeded
	// (nil without user-level DP).
	noise dp.NoiseSource
	// ca issues every virtual client a certified identity and verifier checks them, so that
	// secure aggregation runs in its authenticated (active-server) model as a deployment
	// does; nil without secure aggregation or with secure_aggregation.passive.
	ca       *identitytest.CA
	verifier *secagg.Verifier

	// featureSeconds is the time the model's feature stage took on the training and test
	// sets, featureExamples the examples it transformed (0 without a feature stage).
	featureSeconds  float64
	featureExamples int

	mu     sync.Mutex
	states map[int]*clientState // clients that have been materialised at least once
	// precision is cfg's layer-math precision (validated).
	precision model.Precision
}

// clientState is what a virtual client keeps between its tasks: its store (privacy ledger,
// key-committee member states). Its data is its partition's indices, held by population.
type clientState struct {
	store client.Store
}

func newRun(ctx context.Context, cfg Config, opts Options) (*run, error) {
	cfg = cfg.WithDefaults()
	given := opts.Train != nil && opts.Test != nil
	if err := cfg.validate(given); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	r := &run{cfg: cfg, opts: opts, log: opts.Logger, states: map[int]*clientState{}, start: time.Now()}
	r.precision, _ = cfg.precision() // validated above
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r.train, r.test = opts.Train, opts.Test
	if !given {
		var err error
		if r.train, r.test, r.schema, r.pending, err = loadDataset(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Dataset.Name == "synthetic" && cfg.Clients == 0 {
		r.cfg.Clients = r.train.NumGroups()
	}
	pop, err := newPopulation(r.train, r.cfg)
	if err != nil {
		return nil, err
	}
	if err := pop.addCanaries(len(opts.Canaries)); err != nil {
		return nil, err
	}
	r.pop = pop
	r.cfg.Clients = pop.n
	if err := r.cfg.validate(given); err != nil {
		return nil, fmt.Errorf("sim config: %w", err)
	}
	r.idWidth = len(strconv.Itoa(max(pop.n-1, 0)))
	if r.spec, err = specFor(r.cfg.Model, r.train); err != nil {
		return nil, err
	}
	if r.fed, err = r.federation(); err != nil {
		return nil, err
	}
	r.eval, err = newEvaluator(r.spec, r.test, r.cfg)
	if err != nil {
		return nil, err
	}
	if r.spec.Features != nil {
		if err := r.featurize(ctx); err != nil {
			return nil, err
		}
	}
	r.rec = newRecorder(r)
	so := server.Options{Central: r.eval.central, CentralIterate: r.eval.iterate}
	if opts.OnModel != nil {
		so.Central = func(round uint64, params []float64) (map[string]float64, error) {
			opts.OnModel(round, params)
			return r.eval.central(round, params)
		}
	}
	if r.cfg.DP.UserLevel.On() {
		if r.cfg.DP.DeterministicNoise {
			so.Noise = dp.NewDeterministicNoise(mix(r.cfg.Seed, 0x7365727665726e))
		} else {
			s, err := dp.NewSecureNoise()
			if err != nil {
				return nil, err
			}
			so.Noise, r.noise = s, s
		}
	}
	if sa := r.cfg.SecureAggregation; sa.Enabled && !sa.Passive {
		if r.ca, err = identitytest.NewCA(r.cfg.Seed); err != nil {
			return nil, err
		}
		if r.verifier, err = secagg.NewVerifier([]*x509.Certificate{r.ca.Certificate()}, nil); err != nil {
			return nil, err
		}
		so.Verifier = r.verifier
		so.UploadStore = server.TempUploadStore("") // memory independent of the clients per round
	}
	r.coord, err = server.New(r.fed, so)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	r.fed = r.coord.Config()
	r.pool = newPool(r.cfg.Workers)
	return r, nil
}

// specFor completes a model spec with the dataset's sizes (fields left 0, the image shape
// of a feature stage, an mlp's embedded columns) and checks it.
func specFor(s model.Spec, ds *data.Dataset) (model.Spec, error) {
	s.Hidden = slices.Clone(s.Hidden)
	if s.Features != nil {
		f := *s.Features
		if ds.IsText() {
			return s, fmt.Errorf("model.features reads images; dataset %s holds token sequences (remove model.features)", ds.Name)
		}
		if len(f.Shape) == 0 {
			if len(ds.Shape) != 2 {
				return s, fmt.Errorf("model.features.shape is empty and dataset %s has no 2-D image shape: set it to the [rows, cols] of its %d features", ds.Name, ds.Dim)
			}
			f.Shape = ds.Shape
		}
		f.Shape = slices.Clone(f.Shape)
		s.Features = &f
	}
	if s.IsSequence() {
		if !ds.IsText() {
			return s, fmt.Errorf("model.type = %s reads token sequences; dataset %s has dense features (use model.type: mlp)", s.Type, ds.Name)
		}
		if s.Vocab == 0 {
			s.Vocab = ds.VocabSize
		}
		if s.Type == model.TypeTransformer && s.MaxLen == 0 {
			s.MaxLen = ds.SeqLen
		}
		if ds.Task == data.TaskNextToken {
			if s.Task == "" {
				s.Task = model.TaskNextToken
			}
			if s.Output == 0 {
				s.Output = ds.VocabSize
			}
		}
	} else {
		if s.Type == model.TypeCNN && len(s.Image) == 0 && len(ds.Shape) == 2 {
			s.Image = slices.Clone(ds.Shape) // a greyscale image dataset
		}
		if s.Input == 0 {
			s.Input = ds.Dim
		}
	}
	if s.Output == 0 {
		s.Output = ds.NumClasses
	}
	// An mlp that leaves out embeddings takes the dataset's embedded columns.
	s, err := train.FitEmbeddings(s, ds)
	if err != nil {
		return s, fmt.Errorf("model: %w", err)
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("model: %w", err)
	}
	m, err := model.New(s, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return s, fmt.Errorf("model: %w", err)
	}
	if err := train.CheckCompatible(m, ds); err != nil {
		return s, fmt.Errorf("model vs dataset: %w", err)
	}
	return s, nil
}

// featurize computes the model's feature stage once for the whole simulation: on the
// training set, whose rows the clients then gather (each trains the layers after the stage
// on its rows of the features), and on the test set of the central evaluation. The stage is
// fixed and built from no data, so this costs no privacy.
func (r *run) featurize(ctx context.Context) error {
	m, err := model.New(r.spec, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	// The stage with its defaults filled in (a cnn's channels-last layout): the clients
	// check the features they are handed against the task's model by this spec.
	r.spec.Features = m.Spec.Features
	start := time.Now()
	total, done := r.train.N+r.test.N, 0
	progress := func(n int) {
		done += n
		if r.opts.OnProgress != nil {
			r.opts.OnProgress(Progress{Rounds: r.cfg.Rounds, Phase: "features", FeaturesDone: done, FeaturesTotal: total, LastAccuracy: math.NaN()})
		}
	}
	trainSet, err := train.Featurize(ctx, m.Features(), r.train, progress)
	if err != nil {
		return fmt.Errorf("model.features on the training set: %w", err)
	}
	testSet, err := train.Featurize(ctx, m.Features(), r.test, progress)
	if err != nil {
		return fmt.Errorf("model.features on the test set: %w", err)
	}
	r.pop.train = trainSet
	r.eval.test, r.eval.transformed = testSet, true
	r.train, r.test = trainSet, testSet // the raw images are not needed again: let them go
	r.featureSeconds, r.featureExamples = time.Since(start).Seconds(), total
	r.log.Info("features computed", slog.String("features", r.spec.Features.String()), slog.Int("examples", total), slog.Float64("seconds", r.featureSeconds))
	return nil
}

// federation is the coordinator's configuration for the simulated population.
func (r *run) federation() (server.Config, error) {
	c := r.cfg
	n := r.pop.n
	// fraction_fit·available must round up to clients_per_round when all are available.
	frac := float64(c.ClientsPerRound) / float64(n)
	for frac > 0 && int(math.Ceil(frac*float64(n))) > c.ClientsPerRound {
		frac = math.Nextafter(frac, 0)
	}
	minAvail := c.MinAvailable
	if minAvail == 0 {
		minAvail = expectedAvailable(n, c.Heterogeneity.Availability)
	}
	minAvail = max(minAvail, c.MinFit)
	if c.SecureAggregation.Enabled {
		minAvail = max(minAvail, c.SecureAggregation.CommitteeSize)
	}
	largest, total := 0, 0
	for k := range n {
		largest = max(largest, r.pop.size(k))
		total += r.pop.size(k)
	}
	q := c.DP.SampleRate
	if q == 0 && c.DP.NoiseMultiplier > 0 && total > 0 {
		q = min(1, float64(c.Training.BatchSize)*float64(n)/float64(total))
	}
	// The dp section is the server's; only q is derived here when it is left 0.
	d := c.DP.DPConfig
	d.SampleRate = q
	sa := c.SecureAggregation
	f := server.Config{
		Rounds: c.Rounds, Model: r.spec, Seed: c.Seed,
		Sampling: server.SamplingConfig{
			FractionFit: frac, MinFit: c.MinFit, MinAvailable: minAvail,
			FractionEvaluate: c.Evaluation.Fraction,
		},
		Deadlines: c.Deadlines,
		Strategy:  c.Strategy,
		Training:  c.Training,
		DP:        d,
		SecAgg:    sa,
	}
	if r.pending != nil {
		f.Dataset = r.pending // its statistics round runs before round 1
	}
	if f.Training.WeightScale == 0 {
		// Weights w = examples/largest ≤ 1 = the secure-aggregation weight bound.
		f.Training.WeightScale = float64(largest)
	}
	if f.Sampling.FractionEvaluate > 0 {
		f.Sampling.MinEvaluate = 1
	}
	f = f.WithDefaults()
	if sa.Enabled && sa.MaxContributors == 0 && f.SecAgg.MaxContributors < c.ClientsPerRound {
		return f, fmt.Errorf("secure_aggregation: with dp.update_clip_norm = %g the encrypted sum has room for %d updates, fewer than clients_per_round = %d: lower dp.update_clip_norm (the room grows as it shrinks) or set secure_aggregation.max_contributors with a smaller log_scale",
			f.DP.UpdateClipNorm, f.SecAgg.MaxContributors, c.ClientsPerRound)
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("federation derived from the sim config: %w", err)
	}
	return f, nil
}

// expectedAvailable is the number of clients the coordinator waits for: all of them, or,
// when each is available with probability a, a 4σ lower bound of the binomial count.
func expectedAvailable(n int, a float64) int {
	if a >= 1 {
		return n
	}
	mean := a * float64(n)
	sd := math.Sqrt(float64(n) * a * (1 - a))
	return max(1, int(math.Floor(mean-4*sd)))
}

// id is client k's id: "c" and its zero-padded index, so ids sort like indices.
func (r *run) id(k int) string {
	s := strconv.Itoa(k)
	for len(s) < r.idWidth {
		s = "0" + s
	}
	return "c" + s
}

// index parses a client id back to its index.
func (r *run) index(id string) (int, error) {
	if len(id) < 2 || id[0] != 'c' {
		return 0, fmt.Errorf("sim: client id %q is not one of the simulation's", id)
	}
	k, err := strconv.Atoi(id[1:])
	if err != nil || k < 0 || k >= r.pop.n {
		return 0, fmt.Errorf("sim: client id %q is not one of the simulation's", id)
	}
	return k, nil
}

// state returns client k's persistent state, creating it on first use.
func (r *run) state(k int) (*clientState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.states[k]; ok {
		return st, nil
	}
	st := &clientState{}
	if r.cfg.Ledgers == LedgersDisk {
		s, err := client.NewDirStore(filepath.Join(r.resultsDir(), "clients", r.id(k)))
		if err != nil {
			return nil, err
		}
		st.store = s
	} else {
		st.store = client.NewMemoryStore()
	}
	r.states[k] = st
	return st, nil
}

// taskSeed is the seed of client k's trainer for a task: 0 (crypto/rand) unless clients
// are seeded, else a function of the run's seed, the client and the task.
func (r *run) taskSeed(k int, round uint64, kind int32) uint64 {
	if !r.cfg.seededClients() {
		return 0
	}
	return max(1, mix(r.cfg.Seed, 0x7461736b, uint64(k), round, uint64(kind)))
}

// secAggRandomness is client k's secure-aggregation randomness: nil (crypto/rand) unless
// deterministic noise is requested, else derived from the run's seed and the client's id.
func (r *run) secAggRandomness(k int) *secagg.Randomness {
	if !r.cfg.DP.DeterministicNoise {
		return nil
	}
	return secagg.DeterministicRandomness(r.cfg.Seed, r.id(k))
}

// signer is virtual client k's identity (nil in the passive model): an Ed25519 key and a
// certificate of the run's CA, made on first use.
func (r *run) signer(k int) (*secagg.Signer, error) {
	if r.ca == nil {
		return nil, nil
	}
	id, err := r.ca.Issue(r.id(k))
	if err != nil {
		return nil, err
	}
	return secagg.NewSigner(id.Certificate, id.Key)
}

// clientNoise is the source of client k's noise for a task of a round (user-level DP's
// distributed noise, the noise on statistics shared without secure aggregation): the run's
// secure source (nil: the party makes its own), or with deterministic noise one seeded
// from the run's seed, the client and the round. nil when the client draws no noise.
func (r *run) clientNoise(k int, round uint64) dp.NoiseSource {
	if !r.cfg.DP.UserLevel.On() && r.cfg.SecureAggregation.Enabled {
		return nil
	}
	if r.cfg.DP.DeterministicNoise {
		return dp.NewDeterministicNoise(mix(r.cfg.Seed, 0x7573657264, uint64(k), round))
	}
	return r.noise
}

// handle runs one task of client k on worker w: the client is materialised for it (its
// round logic, its trainer over its dataset view and ledger) and forgotten after.
func (r *run) handle(ctx context.Context, w *worker, k int, st *clientState, t *pb.Task) (*pb.Result, error) {
	// Without secure aggregation a real client shares no statistics of its data unless its
	// operator opts in; the simulated clients opt in (a noised example count, so FedAvg
	// weighs by examples as in McMahan et al. 2017, and noised evaluation results, charged
	// to their ledgers). Under secure aggregation the statistics travel encrypted.
	signer, err := r.signer(k)
	if err != nil {
		return nil, err
	}
	p, err := client.NewParty(client.PartyConfig{
		ClientID: r.id(k), Store: st.store, SecAggRandomness: r.secAggRandomness(k), Noise: r.clientNoise(k, t.GetRound()),
		ShareStatistics: !r.cfg.SecureAggregation.Enabled, ForgetUpdates: true, Signer: signer, Verifier: r.verifier,
	}, &virtualTrainer{r: r, k: k, store: st.store, w: w})
	if err != nil {
		return nil, err
	}
	return p.Handle(ctx, t)
}

// virtualTrainer is a client's client.Trainer: it materialises the client (its dataset
// view, a ModelTrainer over its ledger) on a worker for each task, so an idle client holds
// no model, no data copy and no trainer.
type virtualTrainer struct {
	r     *run
	k     int
	store client.Store
	// w is the worker running the whole task (memory transport); nil means acquire one
	// per call (gRPC transport), in which case returned parameters are copied before the
	// worker goes back to the pool.
	w *worker
}

var _ client.Trainer = (*virtualTrainer)(nil)

// trainer materialises the client's ModelTrainer; the caller closes it. budget is nil for
// evaluate tasks, which spend no privacy and so open no ledger.
func (t *virtualTrainer) trainer(w *worker, seed uint64, budget *dp.Budget) (*client.ModelTrainer, error) {
	m, _ := t.r.cfg.DP.accountant() // validated with the config
	return client.NewModelTrainer(client.ModelTrainerConfig{
		Train:  t.r.pop.view(t.k, &w.buf),
		Budget: budget, LedgerOptions: []dp.LedgerOption{dp.WithAccountant(m)},
		Store: t.store, Seed: seed, Models: w.models,
		// The view holds the client's rows of the features computed once (featurize).
		Featured: t.r.spec.Features, Precision: t.r.precision,
	})
}

// clientBudget is every client's ledger budget under DP-SGD (nil without: the clients then
// keep no ledger). dp.budget_epsilon 0 means "no limit, still accounted", so that an
// experiment can measure what a configuration spends; a dp.Ledger has no unlimited budget,
// so that case gets the largest finite ε, which no run reaches.
func (c Config) clientBudget() *dp.Budget {
	if !c.dpOn() {
		return nil
	}
	eps := c.DP.BudgetEpsilon
	if eps == 0 {
		eps = math.MaxFloat64
	}
	return &dp.Budget{Epsilon: eps, Delta: c.DP.Delta}
}

func (t *virtualTrainer) Fit(ctx context.Context, global []float64, cfg client.FitConfig) (client.FitResult, error) {
	if c := t.r.canary(t.k); c != nil {
		return c.Fit(ctx, global, cfg)
	}
	w, release, err := t.worker(ctx)
	if err != nil {
		return client.FitResult{}, err
	}
	defer release()
	mt, err := t.trainer(w, t.r.taskSeed(t.k, cfg.Round, 1), t.r.cfg.clientBudget())
	if err != nil {
		return client.FitResult{}, err
	}
	defer mt.Close()
	fr, err := mt.Fit(ctx, global, cfg)
	if err == nil && t.w == nil {
		fr.Params = slices.Clone(fr.Params)
	}
	return fr, err
}

func (t *virtualTrainer) Evaluate(ctx context.Context, params []float64, cfg client.EvaluateConfig) (client.EvaluateResult, error) {
	w, release, err := t.worker(ctx)
	if err != nil {
		return client.EvaluateResult{}, err
	}
	defer release()
	// A client never evaluates on its training data: virtual client k evaluates on its
	// share of the test set, every n-th example from k (as `confide client` takes an IID
	// share of the test set).
	mt, err := client.NewModelTrainer(client.ModelTrainerConfig{
		Train: t.r.pop.view(t.k, &w.buf), Test: t.r.testShare(t.k), Store: t.store,
		Seed: t.r.taskSeed(t.k, cfg.Round, 2), Models: w.models, Featured: t.r.spec.Features,
		Precision: t.r.precision,
	})
	if err != nil {
		return client.EvaluateResult{}, err
	}
	defer mt.Close()
	return mt.Evaluate(ctx, params, cfg)
}

var _ client.StatisticsAccountant = (*virtualTrainer)(nil)

// ChargeStatistics charges the client's ledger for statistics it shares without secure
// aggregation (see client.ModelTrainer.ChargeStatistics).
func (t *virtualTrainer) ChargeStatistics(z float64) error {
	w, release, err := t.worker(context.Background())
	if err != nil {
		return err
	}
	defer release()
	mt, err := t.trainer(w, 0, t.r.cfg.clientBudget())
	if err != nil {
		return err
	}
	defer mt.Close()
	return mt.ChargeStatistics(z)
}

// testShare is virtual client k's local test set: the central test examples k, k+n, k+2n, …
// for n clients (none when there are more clients than test examples).
func (r *run) testShare(k int) *data.Dataset {
	n := r.pop.n
	var idx []int
	for i := k; i < r.test.N; i += n {
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return nil
	}
	return r.test.Subset(idx)
}

func (t *virtualTrainer) worker(ctx context.Context) (*worker, func(), error) {
	if t.w != nil {
		return t.w, func() {}, nil
	}
	w, err := t.r.pool.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	return w, func() { t.r.pool.release(w) }, nil
}

// worker is one slot of the pool: a model cache and dataset buffers reused by every client
// it runs.
type worker struct {
	models *client.Models
	buf    viewBuffers
}

// pool lends workers, GOMAXPROCS of them by default. Jobs started with spawn run
// earliest-due first, so that results are ready in about the order the virtual clock
// needs them and few finished results wait in memory.
type pool struct {
	idle    chan *worker
	wg      sync.WaitGroup
	mu      sync.Mutex
	pending pendingJobs
}

type pendingJob struct {
	due time.Duration
	seq uint64
	f   func(w *worker)
}

type pendingJobs []pendingJob

func (q pendingJobs) Len() int { return len(q) }
func (q pendingJobs) Less(i, j int) bool {
	if q[i].due != q[j].due {
		return q[i].due < q[j].due
	}
	return q[i].seq < q[j].seq
}
func (q pendingJobs) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pendingJobs) Push(x any)   { *q = append(*q, x.(pendingJob)) }
func (q *pendingJobs) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = pendingJob{} // the backing array must not keep the job (its task and result) alive
	*q = old[:len(old)-1]
	return e
}

func newPool(n int) *pool {
	p := &pool{idle: make(chan *worker, n)}
	for range n {
		p.idle <- &worker{models: client.NewModels()}
	}
	return p
}

func (p *pool) acquire(ctx context.Context) (*worker, error) {
	select {
	case w := <-p.idle:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pool) release(w *worker) { p.idle <- w }

// spawn queues f, due at virtual time due (seq breaks ties); it runs on a worker, after
// every queued job due earlier, or with nil if ctx ends first.
func (p *pool) spawn(ctx context.Context, due time.Duration, seq uint64, f func(w *worker)) {
	p.mu.Lock()
	heap.Push(&p.pending, pendingJob{due: due, seq: seq, f: f})
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		w, err := p.acquire(ctx)
		p.mu.Lock()
		j := heap.Pop(&p.pending).(pendingJob)
		p.mu.Unlock()
		if err != nil {
			j.f(nil)
			return
		}
		defer p.release(w)
		j.f(w)
	}()
}

// close waits for every job started with spawn.
func (p *pool) close() { p.wg.Wait() }
