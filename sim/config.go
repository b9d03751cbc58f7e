package sim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"

	"github.com/confide-fl/confide/data"
	"github.com/confide-fl/confide/dp/accountant"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/server"
	"github.com/confide-fl/confide/server/strategy"
)

// Config is a simulated federation: what the YAML config of `confide sim` holds. Viper (or
// a YAML decoder) fills it by its yaml tags; Default gives the zero-config experiment;
// WithDefaults fills zero fields and Validate names the key and the fix of every problem.
type Config struct {
	// Name labels the run (results directory, plots).
	Name string `yaml:"name"`
	// Seed makes the run reproducible: partition, initial model, client sampling,
	// heterogeneity draws and (with DP off or dp.deterministic_noise) local shuffling and
	// noise. 0 is a valid seed.
	Seed uint64 `yaml:"seed"`
	// Rounds is the number of federated rounds (the cap when TargetAccuracy is set).
	Rounds int `yaml:"rounds"`
	// TargetAccuracy, when positive, stops the run at the first central evaluation with
	// test accuracy ≥ it; the summary reports the rounds it took.
	TargetAccuracy float64 `yaml:"target_accuracy"`
	// Clients is the number of registered virtual clients (0: one per group for the
	// natural partition).
	Clients int `yaml:"clients"`
	// ClientsPerRound is how many are sampled per round when all are available (the
	// coordinator's fraction_fit is ClientsPerRound/Clients of the available ones).
	ClientsPerRound int `yaml:"clients_per_round"`
	// MinFit is the fewest successful results a round needs (default min(2, clients_per_round)).
	MinFit int `yaml:"min_fit"`
	// MinAvailable is the number of connected clients the coordinator waits for before a
	// round (default: all clients, or a 4σ lower bound of the expected number available).
	MinAvailable int `yaml:"min_available"`

	Dataset DatasetConfig `yaml:"dataset"`
	// Partition splits the training set across clients: iid, dirichlet:α[:min],
	// shards[:k], natural (one client per group: speaking role, mailbox, device),
	// sender-domain (e-mails: each client gets whole sender domains of the From header), or
	// sample:n (each client holds n examples drawn for it on demand, for very large
	// populations).
	Partition string `yaml:"partition"`
	// Model is the architecture (model.Spec); input and output sizes left 0 come from the
	// dataset. An mlp may have a fixed feature stage (model.features, e.g. the scattering
	// transform; its shape defaults to the dataset's image shape): it is computed once for
	// the whole training and test sets, clients train the layers after it on their rows of
	// the features, and the saved model applies it to raw inputs.
	Model model.Spec `yaml:"model"`
	// Strategy is the server's aggregation strategy (fedavg, fedprox, fedavgm, fedadam, …).
	Strategy          strategy.Config       `yaml:"strategy"`
	Training          TrainingConfig        `yaml:"training"`
	DP                DPConfig              `yaml:"dp"`
	SecureAggregation server.SecAggConfig   `yaml:"secure_aggregation"`
	Evaluation        EvaluationConfig      `yaml:"evaluation"`
	Heterogeneity     HeterogeneityConfig   `yaml:"heterogeneity"`
	Deadlines         server.DeadlineConfig `yaml:"deadlines"`

	// Transport is memory (virtual time, the default), grpc (the real gRPC service over an
	// in-process connection, real time) or grpc-tcp (the same over loopback TCP).
	Transport string `yaml:"transport"`
	// Workers is the number of clients trained at once (default GOMAXPROCS).
	Workers int `yaml:"workers"`
	// Precision is the number format of the clients' and the central evaluation's layer
	// math: float32 (the default; 1.5–2.5× the float64 training throughput, the same
	// accuracy — docs/sweeps/float32.md) or float64. Parameters, updates, clipping, DP
	// noise and aggregation are float64 in both (float64 master weights).
	Precision string `yaml:"precision"`
	// ResultsDir receives metrics, plots and the final model; empty: results/NAME-TIME.
	ResultsDir string `yaml:"results_dir"`
	// Plots writes the PNG plots (default true).
	Plots *bool `yaml:"plots"`
	// Ledgers is where clients keep their privacy ledgers and key-committee states: memory
	// (default) or disk (under the results directory, as deployed clients do).
	Ledgers string `yaml:"ledgers"`
}

// DatasetConfig names the dataset and where its files are.
type DatasetConfig struct {
	// Name is mnist, fashion-mnist, shakespeare, spam or synthetic, or a dataset spec file
	// (FILE.yaml, see data.Schema: csv/tsv, jsonl, image folders, idx).
	Name string `yaml:"name"`
	// Dir holds the dataset's files (mnist, fashion-mnist); empty: the default location.
	Dir string `yaml:"dir"`
	// Path is the file of a text dataset (tinyshakespeare.txt, spamassassin.jsonl.gz;
	// empty: the cache's copy, downloaded on first use, see data.Fetch), or for a spec file
	// its training data instead of the spec's path.
	Path string `yaml:"path"`
	// SeqLen is the sequence length of text datasets (0: the dataset's default).
	SeqLen int `yaml:"seq_len"`
	// MaxTest caps the central test set (the first examples), to keep evaluation cheap
	// (0: all).
	MaxTest int `yaml:"max_test"`
	// Synthetic configures FedProx's Synthetic(α, β) (Li et al. 2020): one device per client.
	Synthetic SyntheticConfig `yaml:"synthetic"`
}

// SyntheticConfig is data.SyntheticOptions; the number of devices is the number of clients.
type SyntheticConfig struct {
	// Alpha spreads the devices' models and Beta their inputs (the paper's α and β:
	// Synthetic(1, 1) is the most heterogeneous of its three); IID gives every device the
	// same model and input distribution.
	Alpha float64 `yaml:"alpha"`
	Beta  float64 `yaml:"beta"`
	IID   bool    `yaml:"iid"`
	// Dim and Classes default to the paper's 60 and 10.
	Dim     int `yaml:"dim"`
	Classes int `yaml:"classes"`
	// TestFraction of each device is held out for the central test set (default 0.1, as
	// FedProx does).
	TestFraction float64 `yaml:"test_fraction"`
}

// TrainingConfig is the clients' local training: the server's section, so that every
// setting a federation's clients train with can be simulated. weight_scale defaults to
// the largest client's examples (aggregation weights ≤ 1).
type TrainingConfig = server.TrainingConfig

// DPConfig is the privacy of the run: the server's dp section (server.DPConfig, the same
// keys with the same meaning, mapped to the coordinator as they are by federation), and the
// clients' own settings a deployment gives each client rather than the server. Where the
// sim's defaults differ from the server's: dp.sample_rate defaults to training.batch_size /
// (mean examples per client), at most 1, the same q for every client; under user-level DP
// dp.user_level.expected_clients defaults to (and must equal) clients_per_round, and the
// clip is dp.user_level.clip, so leave dp.update_clip_norm unset.
type DPConfig struct {
	// server.DPConfig's budget_epsilon is also every client's lifetime budget at Delta: a
	// client refuses tasks that would take it past.
	server.DPConfig `yaml:",inline"`
	// DeterministicNoise draws DP noise and Poisson sampling from generators seeded by
	// Seed instead of crypto/rand, so that two runs are identical. It also seeds the
	// clients' secure-aggregation randomness (keys, encryption, flooding noise), with or
	// without DP-SGD. For experiments only: the summary says so when DP-SGD is on, and
	// config.yaml records the setting.
	DeterministicNoise bool `yaml:"deterministic_noise"`
}

// EvaluationConfig sets the evaluation cadence.
type EvaluationConfig struct {
	// Every evaluates the global model on the central test set every this many rounds
	// (and after the last); default 1.
	Every int `yaml:"every"`
	// BatchSize of central evaluation (default 1000).
	BatchSize int `yaml:"batch_size"`
	// Fraction of the available clients evaluating the global model on their local data
	// each round (federated evaluation; 0, the default, turns it off).
	Fraction float64 `yaml:"fraction"`
}

// HeterogeneityConfig makes clients differ in speed and reliability. Draws are pure
// functions of (Seed, client, round), so a run is reproducible.
type HeterogeneityConfig struct {
	// SpeedSigma spreads per-client compute speeds log-normally: client k's tasks take
	// exp(SpeedSigma·z_k) times the nominal time, z_k ~ N(0, 1). 0: all alike.
	SpeedSigma float64 `yaml:"speed_sigma"`
	// Dropout is the probability that a sampled client crashes during its fit task (it
	// stops answering; the coordinator notices by its silence or the deadline).
	Dropout float64 `yaml:"dropout"`
	// Availability is the probability that a client is connected in a round (default 1);
	// an idle client that is unavailable disconnects, and reconnects when available.
	Availability float64 `yaml:"availability"`
	// ExampleTime is the virtual time one example-epoch of local training takes at nominal
	// speed (default 1ms); Latency is added to every task (default 100ms).
	ExampleTime time.Duration `yaml:"example_time"`
	Latency     time.Duration `yaml:"latency"`
}

// Transports.
const (
	TransportMemory  = "memory"
	TransportGRPC    = "grpc"
	TransportGRPCTCP = "grpc-tcp"
)

// Ledger locations.
const (
	LedgersMemory = "memory"
	LedgersDisk   = "disk"
)

// Default is the zero-config experiment of `confide sim` (examples/mnist-mlp.yaml): an MLP
// on MNIST, 100 clients with Dirichlet(0.5) label skew, 10 per round, DP-SGD on every
// client and secure aggregation (its default, packed encoding: 14-bit values, an update of
// 786,581 bytes of ciphertext against the float encoding's 1,048,742; the same accuracy
// and ε). DP-SGD gets the most from a privacy budget with large batches and large noise
// (σ = 3.5 on an expected batch of 512, about a whole client's data, for 3 local epochs)
// and with tanh activations (Papernot et al. 2021, "Tempered Sigmoid Activations for Deep
// Learning with Differential Privacy"); every client's lifetime budget is ε = 8 at δ =
// 1e-5, so a client that was sampled often refuses instead of exceeding it; the server
// step decays with a cosine to a tenth, so the last rounds' noise barely moves the final
// model. It reaches about 91% test accuracy in 100 rounds (no client above ε = 8, mean
// about 7.96).
func Default() Config {
	return Config{
		Name: "mnist-mlp", Seed: 1, Rounds: 100, Clients: 100, ClientsPerRound: 10,
		Dataset:   DatasetConfig{Name: "mnist"},
		Partition: "dirichlet:0.5",
		Model:     model.Spec{Type: model.TypeMLP, Hidden: []int{64}, Activation: "tanh"},
		Strategy:  strategy.Config{Name: strategy.NameFedAvg, ServerLRDecay: strategy.DecayCosine},
		Training:  TrainingConfig{Epochs: 3, BatchSize: 512, Optimizer: "sgd", LR: 2, Momentum: 0.9},
		DP: DPConfig{DPConfig: server.DPConfig{NoiseMultiplier: 3.5, MaxGradNorm: 1, Delta: 1e-5, UpdateClipNorm: 50,
			BudgetEpsilon: 8}},
		SecureAggregation: server.SecAggConfig{
			Enabled: true, CommitteeSize: 5, Threshold: 3,
		},
		Evaluation: EvaluationConfig{Every: 1},
	}
}

// WithDefaults returns c with zero fields filled. Model input and output sizes are filled
// later, from the dataset (see Run).
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = c.Dataset.Name
		if c.Name == "" {
			c.Name = "sim"
		}
	}
	if c.Partition == "" {
		c.Partition = "iid"
	}
	if c.Strategy.Name == "" {
		c.Strategy.Name = strategy.NameFedAvg
	}
	t := &c.Training
	if t.Epochs == 0 {
		t.Epochs = 1
	}
	if t.BatchSize == 0 {
		t.BatchSize = 32
	}
	if t.Optimizer == "" {
		t.Optimizer = "sgd"
	}
	if t.LR == 0 {
		t.LR = 0.1
	}
	if c.DP.MaxGradNorm == 0 {
		c.DP.MaxGradNorm = 1
	}
	if c.DP.Delta == 0 {
		c.DP.Delta = 1e-5
	}
	if u := &c.DP.UserLevel; u.On() && u.ExpectedClients == 0 {
		u.ExpectedClients = c.ClientsPerRound
	}
	if c.SecureAggregation.Enabled && c.DP.UpdateClipNorm == 0 && !c.DP.UserLevel.On() {
		c.DP.UpdateClipNorm = 10
	}
	if sa := &c.SecureAggregation; sa.Enabled && sa.MinContributions == 0 {
		if u := c.DP.UserLevel; u.Mode == server.UserLevelDistributed && u.ExpectedClients > 0 {
			// Distributed noise shares are sized for the committee's minimum (see
			// server.DistributedMinContributions).
			sa.MinContributions = server.DistributedMinContributions(u.ExpectedClients)
		}
	}
	if c.MinFit == 0 {
		c.MinFit = min(2, max(c.ClientsPerRound, 1))
		if sa := c.SecureAggregation; sa.Enabled {
			c.MinFit = max(c.MinFit, sa.MinContributions)
		}
	}
	e := &c.Evaluation
	if e.Every == 0 {
		e.Every = 1
	}
	if e.BatchSize == 0 {
		e.BatchSize = 1000
	}
	h := &c.Heterogeneity
	if h.Availability == 0 {
		h.Availability = 1
	}
	if h.ExampleTime == 0 {
		h.ExampleTime = time.Millisecond
	}
	if h.Latency == 0 {
		h.Latency = 100 * time.Millisecond
	}
	if c.Transport == "" {
		c.Transport = TransportMemory
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Plots == nil {
		t := true
		c.Plots = &t
	}
	if c.Ledgers == "" {
		c.Ledgers = LedgersMemory
	}
	if c.Dataset.Name == "synthetic" && c.Dataset.Synthetic.TestFraction == 0 {
		c.Dataset.Synthetic.TestFraction = 0.1
	}
	return c
}

// Validate checks the configuration (after WithDefaults), naming each bad key and its fix.
// The number of clients of a natural partition is checked against the dataset in Run.
func (c Config) Validate() error { return c.validate(false) }

// validate is Validate; datasetGiven skips the dataset keys (Options supplies the data).
func (c Config) validate(datasetGiven bool) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Rounds < 1 {
		bad("rounds = %d: must be ≥ 1", c.Rounds)
	}
	if _, err := c.precision(); err != nil {
		bad("%v", err)
	}
	if math.IsNaN(c.TargetAccuracy) || c.TargetAccuracy < 0 || c.TargetAccuracy > 1 {
		bad("target_accuracy = %v: must be in [0, 1] (0: run all rounds)", c.TargetAccuracy)
	}
	spec, err := data.ParsePartitionSpec(c.Partition)
	sampleN, isSample := parseSamplePartition(c.Partition)
	switch {
	case isSample && sampleN < 1:
		bad("partition = %q: sample:N needs N ≥ 1 examples per client, e.g. sample:60", c.Partition)
	case !isSample && err != nil:
		bad("partition = %q: %v (or sample:N for very large populations)", c.Partition, err)
	}
	natural := err == nil && spec.Kind == data.PartitionKindNatural
	if c.Clients < 0 || (c.Clients == 0 && !natural && c.Dataset.Name != "synthetic") {
		bad("clients = %d: must be ≥ 1 (0 only with partition natural: one client per group)", c.Clients)
	}
	if c.Clients > maxClients {
		bad("clients = %d: at most %d", c.Clients, maxClients)
	}
	if c.ClientsPerRound < 1 || (c.Clients > 0 && c.ClientsPerRound > c.Clients) {
		bad("clients_per_round = %d: must be in [1, clients = %d]", c.ClientsPerRound, c.Clients)
	}
	if c.MinFit < 1 || c.MinFit > max(c.ClientsPerRound, 1) {
		bad("min_fit = %d: must be in [1, clients_per_round = %d]", c.MinFit, c.ClientsPerRound)
	}
	if c.MinAvailable < 0 || (c.Clients > 0 && c.MinAvailable > c.Clients) {
		bad("min_available = %d: must be in [0, clients = %d] (0: derived from heterogeneity.availability)", c.MinAvailable, c.Clients)
	}
	switch c.Dataset.Name {
	case "mnist", "fashion-mnist", "shakespeare", "spam", "synthetic":
	case "":
		if datasetGiven {
			break
		}
		bad("dataset.name is empty: use mnist, fashion-mnist, shakespeare, spam or synthetic")
	default:
		if !datasetGiven && !data.IsSchemaFile(c.Dataset.Name) {
			bad("dataset.name = %q: use mnist, fashion-mnist, shakespeare, spam, synthetic or a dataset spec file (FILE.yaml)", c.Dataset.Name)
		}
	}
	if c.Dataset.SeqLen < 0 || c.Dataset.MaxTest < 0 {
		bad("dataset.seq_len and dataset.max_test must be ≥ 0")
	}
	if c.Dataset.Name == "synthetic" {
		s := c.Dataset.Synthetic
		if !(s.Alpha >= 0) || !(s.Beta >= 0) || math.IsInf(s.Alpha, 0) || math.IsInf(s.Beta, 0) {
			bad("dataset.synthetic.alpha = %v, beta = %v: must be finite and ≥ 0, e.g. 1 and 1", s.Alpha, s.Beta)
		}
		if !(s.TestFraction > 0 && s.TestFraction < 1) {
			bad("dataset.synthetic.test_fraction = %v: must be in (0, 1), e.g. 0.1", s.TestFraction)
		}
		if c.Partition != "natural" {
			bad("partition = %q: the synthetic dataset has one device per client; use partition: natural", c.Partition)
		}
	}
	if c.Model.Type == "" {
		bad("model.type is empty: use mlp, cnn, rnn, lstm, gru or transformer")
	}
	if f := c.Model.Features; f != nil {
		if c.Model.Type != "" && c.Model.Type != model.TypeMLP && c.Model.Type != model.TypeCNN {
			bad("model.features: a feature stage reads dense images; use model.type: mlp or cnn, or remove model.features")
		}
		input := c.Model.Input
		if len(f.Shape) == 0 {
			input = 0 // the shape comes from the dataset; the run checks it against the data
		}
		if err := f.Validate(input); err != nil {
			// One error a line (errors.Join), each naming its key under features.
			for _, line := range strings.Split(err.Error(), "\n") {
				bad("model.%s", line)
			}
		}
	}
	if err := c.Strategy.Validate(c.SecureAggregation.Enabled); err != nil {
		errs = append(errs, err)
	}
	t := c.Training
	if t.Epochs < 1 {
		bad("training.epochs = %d: must be ≥ 1", t.Epochs)
	}
	if t.BatchSize < 1 {
		bad("training.batch_size = %d: must be ≥ 1", t.BatchSize)
	}
	if _, err := model.NewOptimizer(t.OptimizerConfig()); err != nil {
		bad("training: %v (keys training.optimizer, training.lr, training.momentum, training.nesterov, training.weight_decay, training.beta1, training.beta2, training.eps)", err)
	}
	d := c.DP
	if d.NoiseMultiplier < 0 || math.IsNaN(d.NoiseMultiplier) || math.IsInf(d.NoiseMultiplier, 0) {
		bad("dp.noise_multiplier = %v: must be ≥ 0 (0 turns DP-SGD off)", d.NoiseMultiplier)
	}
	if !(d.MaxGradNorm > 0) || math.IsInf(d.MaxGradNorm, 0) {
		bad("dp.max_grad_norm = %v: must be positive", d.MaxGradNorm)
	}
	if !(d.Delta > 0 && d.Delta < 1) {
		bad("dp.delta = %v: must be in (0, 1), below 1/(examples per client)", d.Delta)
	}
	if d.UpdateClipNorm < 0 || math.IsNaN(d.UpdateClipNorm) || math.IsInf(d.UpdateClipNorm, 0) {
		bad("dp.update_clip_norm = %v: must be ≥ 0 (0: no user-level clipping)", d.UpdateClipNorm)
	}
	if q := d.SampleRate; math.IsNaN(q) || q < 0 || q > 1 {
		bad("dp.sample_rate = %v: must be in (0, 1] (0: training.batch_size / mean examples per client)", q)
	}
	switch {
	case d.Steps < 0:
		bad("dp.steps = %d: must be ≥ 1 (0: ⌈training.epochs / dp.sample_rate⌉)", d.Steps)
	case d.Steps > 0 && d.NoiseMultiplier == 0:
		bad("dp.steps = %d schedules DP-SGD, which is off (dp.noise_multiplier = 0): drop it or set dp.noise_multiplier", d.Steps)
	}
	if d.BudgetEpsilon < 0 || math.IsNaN(d.BudgetEpsilon) || math.IsInf(d.BudgetEpsilon, 0) {
		bad("dp.budget_epsilon = %v: must be ≥ 0 (0: no limit)", d.BudgetEpsilon)
	}
	if _, err := d.accountant(); err != nil {
		bad("%v", err)
	}
	if d.BudgetEpsilon > 0 && d.NoiseMultiplier == 0 {
		bad("dp.budget_epsilon = %v with dp.noise_multiplier = 0: clients with a budget refuse training without DP-SGD; set dp.noise_multiplier > 0 or drop the budget", d.BudgetEpsilon)
	}
	if u := d.UserLevel; u.On() && u.ExpectedClients != c.ClientsPerRound {
		bad("dp.user_level.expected_clients = %d and clients_per_round = %d differ: under user-level DP clients are Poisson-sampled with clients_per_round expected per round; drop dp.user_level.expected_clients", u.ExpectedClients, c.ClientsPerRound)
	}
	if sa := c.SecureAggregation; sa.Enabled {
		if sa.CommitteeSize < 1 || (c.Clients > 0 && sa.CommitteeSize > c.Clients) {
			bad("secure_aggregation.committee_size = %d: must be in [1, clients = %d]", sa.CommitteeSize, c.Clients)
		}
		if sa.Threshold < 1 || sa.Threshold > sa.CommitteeSize {
			bad("secure_aggregation.threshold = %d: must be in [1, committee_size = %d]", sa.Threshold, sa.CommitteeSize)
		}
		if sa.MinContributions > c.MinFit {
			bad("secure_aggregation.min_contributions = %d exceeds min_fit = %d: a round with min_fit results could never be decrypted", sa.MinContributions, c.MinFit)
		}
	}
	e := c.Evaluation
	if e.Every < 1 {
		bad("evaluation.every = %d: must be ≥ 1", e.Every)
	}
	if e.BatchSize < 1 {
		bad("evaluation.batch_size = %d: must be ≥ 1", e.BatchSize)
	}
	if !(e.Fraction >= 0 && e.Fraction <= 1) {
		bad("evaluation.fraction = %v: must be in [0, 1]", e.Fraction)
	}
	h := c.Heterogeneity
	if !(h.SpeedSigma >= 0) || h.SpeedSigma > 5 {
		bad("heterogeneity.speed_sigma = %v: must be in [0, 5] (log-normal spread of client speeds)", h.SpeedSigma)
	}
	if !(h.Dropout >= 0 && h.Dropout < 1) {
		bad("heterogeneity.dropout = %v: must be in [0, 1)", h.Dropout)
	}
	if !(h.Availability > 0 && h.Availability <= 1) {
		bad("heterogeneity.availability = %v: must be in (0, 1]", h.Availability)
	}
	if h.ExampleTime < 0 || h.Latency < 0 {
		bad("heterogeneity.example_time = %v, latency = %v: must be ≥ 0", h.ExampleTime, h.Latency)
	}
	for key, v := range map[string]time.Duration{"fit": c.Deadlines.Fit, "evaluate": c.Deadlines.Evaluate, "key_setup": c.Deadlines.KeySetup, "decrypt": c.Deadlines.Decrypt, "client_timeout": c.Deadlines.ClientTimeout} {
		if v < 0 {
			bad("deadlines.%s = %v: must be positive (e.g. 10m), or 0 for the default", key, v)
		}
	}
	switch c.Transport {
	case TransportMemory:
	case TransportGRPC, TransportGRPCTCP:
		if h.SpeedSigma != 0 || h.Dropout != 0 || h.Availability != 1 {
			bad("transport = %s runs in real time with every client connected: heterogeneity (speed_sigma, dropout, availability) needs transport: memory", c.Transport)
		}
		if c.Clients > maxGRPCClients {
			bad("transport = %s runs a goroutine and a connection per client: at most %d clients (use transport: memory)", c.Transport, maxGRPCClients)
		}
	default:
		bad("transport = %q: use memory, grpc or grpc-tcp", c.Transport)
	}
	if c.Workers < 1 {
		bad("workers = %d: must be ≥ 1 (0: one per core)", c.Workers)
	}
	switch c.Ledgers {
	case LedgersMemory, LedgersDisk:
	default:
		bad("ledgers = %q: use memory or disk", c.Ledgers)
	}
	if c.Ledgers == LedgersDisk && c.Clients > 100_000 {
		bad("ledgers = disk with %d clients: a directory per client is too many; use ledgers: memory", c.Clients)
	}
	return errors.Join(errs...)
}

// maxClients bounds the population (client ids and per-client state are sized for it).
const maxClients = 10_000_000

// maxGRPCClients bounds the population of the gRPC transports.
const maxGRPCClients = 2000

// parseSamplePartition reports whether s is "sample:N" and its N (0 when malformed).
func parseSamplePartition(s string) (int, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	rest, ok := strings.CutPrefix(s, "sample")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutPrefix(rest, ":")
	if !ok {
		return 0, rest == ""
	}
	var n int
	if _, err := fmt.Sscanf(rest, "%d", &n); err != nil || fmt.Sprint(n) != rest {
		return 0, true
	}
	return n, true
}

// accountant is the method dp.accountant names.
func (d DPConfig) accountant() (accountant.Method, error) {
	a, err := d.Accounting()
	return a.Method, err
}

// dpOn reports whether clients train with DP-SGD.
func (c Config) dpOn() bool { return c.DP.NoiseMultiplier > 0 }

// precision is the layer math's number format (Precision; empty: float32).
func (c Config) precision() (model.Precision, error) {
	if c.Precision == "" {
		return model.Float32, nil
	}
	p, err := model.ParsePrecision(c.Precision)
	if err != nil {
		return p, fmt.Errorf("precision: %w", err)
	}
	return p, nil
}

// seededClients reports whether clients' randomness (shuffling, and DP noise and Poisson
// sampling when DP is on) comes from seeded generators. Without DP (DP-SGD or user-level)
// there is no noise to protect, so shuffling is always seeded.
func (c Config) seededClients() bool {
	return !(c.dpOn() || c.DP.UserLevel.On()) || c.DP.DeterministicNoise
}
