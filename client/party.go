package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/confide-fl/confide/dp"
	"github.com/confide-fl/confide/model"
	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// PartyConfig configures a client's round logic.
type PartyConfig struct {
	// ClientID is the id the server gave the client; encrypted updates carry it.
	ClientID string
	// Store keeps member states across restarts; nil keeps them in memory.
	Store Store
	// SecAggRandomness is the source of the secure-aggregation randomness (member keys,
	// dealings, encryption); nil, the default and the only choice in production, is
	// crypto/rand. Simulations asking for reproducible runs pass a
	// secagg.DeterministicRandomness of their own per client.
	SecAggRandomness *secagg.Randomness
	// MinThreshold and MinContributions are the weakest key committee the client takes part
	// in or encrypts for: a server asking for a lower threshold t or a lower minimum number
	// of contributions m is refused. 0 takes the floor secagg.MinThreshold and
	// secagg.MinContributions (2 each: with t = 1 one member could decrypt an individual
	// update, with m = 1 the "aggregate" is one client's update); lower values are refused
	// by NewParty, higher ones make the client stricter than the server.
	MinThreshold     int
	MinContributions int
	// RequireSecureAggregation refuses fit tasks without a secure-aggregation section,
	// which would send the update in the clear, before training on anything. The result
	// is a FAILED status whose reason the server records. `confide client` sets it unless
	// --require-secure-aggregation=false; the zero value accepts plaintext rounds.
	RequireSecureAggregation bool
	// Workers is the number of goroutines secure-aggregation steps use (default 1).
	Workers int
	// Noise is the source of the distributed noise of user-level DP (DP-FedAvg), which the
	// client adds to its clipped update when a task asks for it, and of the noise on
	// statistics shared without secure aggregation. nil draws from a dp.SecureNoise made on
	// first use; pass a dp.DeterministicNoise only for tests and reproducible simulations.
	Noise dp.NoiseSource

	// The client's own floors, whatever the server asks. MinNoiseMultiplier refuses fit
	// tasks whose DP-SGD noise multiplier σ is below it, before training; 0 (the zero
	// value) also accepts tasks without DP-SGD, which only a client without a privacy
	// budget should allow (`confide client` sets 0.5 unless --no-dp). MinCommitteeSize
	// refuses key committees of fewer than K members (0: 2). MinFloodingSigma refuses
	// decryption shares with flooding noise below σ (0: secagg.DefaultFloodingSigma = 2^30:
	// the secret-key-dependent noise of an aggregate of K uploads is about √K·237 at LogN
	// 13, so σ = 2^30 keeps each coefficient of a share within statistical distance about
	// 2^−19 of one that hides the key at K = 100, 2^−17.5 at K = 1000; see secagg/doc.go).
	MinNoiseMultiplier float64
	MinCommitteeSize   int
	MinFloodingSigma   float64
	// MinUserLevelNoiseMultiplier refuses fit tasks under user-level DP whose own numbers
	// imply a noise multiplier below it on the decrypted sum — √m·noise_std/S for
	// floating-point shares, √(m·σ_z²)/(W·S/δ + √d) for discrete ones (m the committee's
	// min_contributions, S the task's clip, δ the quantisation step, d the dimension) — and
	// tasks of central mode, whose noise the server adds where no client can see it, so
	// that a server cannot have the committee decrypt a sum with less noise than it
	// accounts. 0 (the default): no floor.
	MinUserLevelNoiseMultiplier float64
	// LocalNoiseOnly refuses fit tasks with distributed record-level noise (dp.distributed),
	// in which this client adds only a share σ/√m of DP-SGD's noise and its guarantee rests
	// on the other m − 1 updates of every decrypted sum being honest: its updates then
	// always carry the task's whole noise, whatever other clients do.
	LocalNoiseOnly bool

	// ShareStatistics opts in to sending statistics of the client's data when secure
	// aggregation is off: a noised example count with fit results (the server weighs
	// plaintext updates by it) and noised evaluation results (example count, loss sum,
	// correct count), each a Gaussian mechanism with noise multiplier
	// StatisticsNoiseMultiplier (default 5) that the Trainer charges to its ledger before
	// anything is sent (it must implement StatisticsAccountant unless MinNoiseMultiplier
	// is 0, the no-DP client). Without it nothing computed from the data leaves in the
	// clear: plaintext fit results carry only the update, and evaluate tasks without secure
	// aggregation are refused. Under secure aggregation statistics always travel inside the
	// encrypted aggregate, and this setting does not matter.
	ShareStatistics           bool
	StatisticsNoiseMultiplier float64

	// MaxEvaluationsPerRound bounds the evaluate tasks the client answers per round
	// (default 1): each answer is a function of its test data and the parameters the
	// server chose.
	MaxEvaluationsPerRound int

	// Signer (this client's certificate and private key, issued by the federation's CA)
	// and Verifier (that CA) make the client hold against an active server (secagg's trust
	// model): it encrypts only under a collective key it traced to the CA's identities and
	// to committee floors, signs its key material and every upload, and as a committee
	// member decrypts only sums of at least m certified uploads, once per round and
	// purpose, after spot-checking the aggregate. Give both or neither; without them (a
	// plaintext test network, a passive simulation) the client trusts what the server
	// relays. The Signer's identity must be ClientID.
	Signer   *secagg.Signer
	Verifier *secagg.Verifier

	// ForgetUpdates keeps no copy of the update a fit task made. By default the Party stores
	// the latest one (in Store) and, asked again for the same round with the same model and
	// settings — the round runs again after a server restart — sends it again instead of
	// training and spending privacy twice. The simulator sets it: its virtual clients live
	// in memory and its server never restarts.
	ForgetUpdates bool

	// Logger receives what the client keeps to itself: the detail of errors computed from
	// its data, which the server gets only as a generic reason. nil discards it.
	Logger *slog.Logger
}

// StatisticsAccountant is implemented by Trainers that keep a privacy ledger:
// ChargeStatistics records one Gaussian mechanism of the given noise multiplier on a
// statistic of the local data (sample rate 1, one step) and returns nil only once it is
// durably recorded and within the budget, so the Party may release it.
type StatisticsAccountant interface {
	ChargeStatistics(noiseMultiplier float64) error
}

// Party is a client's per-round logic, with no transport: Handle takes a task and returns
// the result to push. It trains through the Trainer, forms the update Δ = local − global,
// clips it to the task's bound, and either sends it in the clear or encrypts (w·Δ, w, 1)
// under the committee's collective key; as a key-committee member it runs the key setup
// and answers decryption requests. Under user-level DP (the task's user_level_dp) its
// weight is 1, it appends the adaptive clip's indicator when asked, and it adds its share
// of the distributed noise before encrypting. Both the gRPC client (Run) and the simulator
// drive it. A Party handles one task at a time.
type Party struct {
	cfg     PartyConfig
	trainer Trainer
	members map[secagg.SessionID]*secagg.Member
	enc     *secagg.Encryptor
	encKey  string
	// evalRound and evals count the evaluate tasks answered in the latest round.
	evalRound uint64
	evals     int
}

// NewParty returns the round logic of one client.
func NewParty(cfg PartyConfig, trainer Trainer) (*Party, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("client: party needs the client id")
	}
	if trainer == nil {
		return nil, errors.New("client: party needs a trainer")
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	for _, f := range []struct {
		v     *int
		floor int
		name  string
	}{{&cfg.MinThreshold, secagg.MinThreshold, "minimum threshold (min-threshold)"}, {&cfg.MinContributions, secagg.MinContributions, "minimum contributions (min-contributions)"}} {
		switch {
		case *f.v == 0:
			*f.v = f.floor
		case *f.v < f.floor:
			return nil, fmt.Errorf("client: %s %d: must be ≥ %d (0 takes %d): a weaker committee could decrypt a single client's update", f.name, *f.v, f.floor, f.floor)
		}
	}
	switch {
	case cfg.MinCommitteeSize == 0:
		cfg.MinCommitteeSize = 2
	case cfg.MinCommitteeSize < 2:
		return nil, fmt.Errorf("client: minimum committee size (min-committee-size) %d: must be ≥ 2 (0 takes 2)", cfg.MinCommitteeSize)
	}
	if cfg.MinFloodingSigma == 0 {
		cfg.MinFloodingSigma = secagg.DefaultFloodingSigma
	}
	if cfg.StatisticsNoiseMultiplier == 0 {
		cfg.StatisticsNoiseMultiplier = 5
	}
	if cfg.MaxEvaluationsPerRound == 0 {
		cfg.MaxEvaluationsPerRound = 1
	}
	for name, v := range map[string]float64{"minimum noise multiplier (min-noise-multiplier)": cfg.MinNoiseMultiplier, "minimum user-level noise multiplier (min-user-level-noise-multiplier)": cfg.MinUserLevelNoiseMultiplier, "minimum flooding sigma": cfg.MinFloodingSigma, "statistics noise multiplier": cfg.StatisticsNoiseMultiplier} {
		if math.IsNaN(v) || v < 0 || math.IsInf(v, 0) {
			return nil, fmt.Errorf("client: %s %v: must be finite and ≥ 0", name, v)
		}
	}
	if cfg.MaxEvaluationsPerRound < 0 {
		return nil, fmt.Errorf("client: evaluations per round %d: must be ≥ 0 (0 takes 1)", cfg.MaxEvaluationsPerRound)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if (cfg.Signer == nil) != (cfg.Verifier == nil) {
		return nil, errors.New("client: give the party both a Signer and a Verifier (authenticated secure aggregation) or neither")
	}
	if cfg.Signer != nil && cfg.Signer.Identity() != cfg.ClientID {
		return nil, fmt.Errorf("client: the certificate's identity %q is not the client id %q", cfg.Signer.Identity(), cfg.ClientID)
	}
	return &Party{cfg: cfg, trainer: trainer, members: map[secagg.SessionID]*secagg.Member{}}, nil
}

// Handle runs a task and returns its result. Failures of the task become results with
// status FAILED (or REFUSED_PRIVACY_BUDGET) naming the reason; Handle returns an error only
// when ctx ends or the client's own state cannot be saved, in which case nothing must be sent.
func (p *Party) Handle(ctx context.Context, t *pb.Task) (*pb.Result, error) {
	res := &pb.Result{TaskId: t.GetTaskId(), Kind: t.GetKind(), Round: t.GetRound(), Status: pb.ResultStatus_RESULT_STATUS_OK}
	var err error
	switch t.GetKind() {
	case pb.TaskKind_TASK_KIND_FIT:
		fctx := ctx
		if ms := t.GetDeadlineUnixMs(); ms > 0 {
			// Past the server's deadline the result is refused: stop training then, and
			// never pay (in privacy) for an update that cannot be used.
			var cancel context.CancelFunc
			fctx, cancel = context.WithDeadline(ctx, time.UnixMilli(ms))
			defer cancel()
		}
		err = p.fit(fctx, t, res)
	case pb.TaskKind_TASK_KIND_EVALUATE:
		err = p.evaluate(ctx, t, res)
	case pb.TaskKind_TASK_KIND_KEY_SETUP:
		err = p.keySetup(t, res)
	case pb.TaskKind_TASK_KIND_DECRYPT:
		err = p.decrypt(t, res)
	case pb.TaskKind_TASK_KIND_STATISTICS:
		err = p.statistics(ctx, t, res)
	default:
		err = fmt.Errorf("task kind %v unknown to this client (upgrade it)", t.GetKind())
	}
	var fatal *fatalError
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.As(err, &fatal):
		return nil, fatal.err
	case errors.Is(err, ErrBudgetExceeded):
		res.Status = pb.ResultStatus_RESULT_STATUS_REFUSED_PRIVACY_BUDGET
	default:
		res.Status = pb.ResultStatus_RESULT_STATUS_FAILED
	}
	res.Reason = err.Error()
	res.Blobs = nil
	return res, nil
}

// ErrPlaintextRefused is the reason a client that requires secure aggregation gives for a
// fit task without it (PartyConfig.RequireSecureAggregation).
var ErrPlaintextRefused = errors.New("refused: this client requires secure aggregation (require-secure-aggregation) and the fit task would send its update in the clear; enable secure_aggregation on the server, or start the client with --require-secure-aggregation=false")

// fatalError marks errors after which the client must not answer (its state is unsaved).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// refusedDP is the reason for a fit task whose DP-SGD is weaker than the client's floor.
func (p *Party) checkDPFloor(dpc *pb.DPSpec) error {
	sigma := dpc.GetNoiseMultiplier()
	if floor := p.cfg.MinNoiseMultiplier; sigma < floor {
		if sigma == 0 {
			return fmt.Errorf("refused: the task trains without DP-SGD (noise multiplier 0), this client requires a noise multiplier of at least %g (min-noise-multiplier; a client without a privacy budget runs with --no-dp): %w", floor, ErrBudgetExceeded)
		}
		return fmt.Errorf("refused: the task's DP-SGD noise multiplier %g is below this client's minimum %g (min-noise-multiplier): %w", sigma, floor, ErrBudgetExceeded)
	}
	if sigma > 0 {
		if q, steps := dpc.GetSampleRate(), dpc.GetSteps(); !(q > 0 && q <= 1) || steps < 1 {
			return fmt.Errorf("the task's DP-SGD schedule (sample_rate %v, steps %d) is incomplete: the server must fix both (dp.sample_rate) so every client's ε follows from the task; upgrade the server", q, steps)
		}
	}
	return nil
}

func (p *Party) fit(ctx context.Context, t *pb.Task, res *pb.Result) error {
	fitStart := time.Now()
	spec := t.GetFit()
	if spec == nil {
		return errors.New("fit task without a fit spec")
	}
	ms, dim, err := modelSpec(spec.GetModel())
	if err != nil {
		return err
	}
	pbytes, err := blob.Find(t.GetBlobs(), blob.Params)
	if err != nil {
		return err
	}
	global, err := blob.DecodeFloats(pbytes, dim)
	if err != nil {
		return fmt.Errorf("global parameters: %w", err)
	}
	var (
		enc    *secagg.Encryptor
		params secagg.Parameters
	)
	if sa := spec.GetSecagg(); sa != nil {
		if enc, params, err = p.encryptor(t, sa); err != nil {
			return err
		}
	} else if p.cfg.RequireSecureAggregation {
		return ErrPlaintextRefused
	}
	dpc := spec.GetDp()
	if err := p.checkDPFloor(dpc); err != nil {
		return err
	}
	ul := spec.GetUserLevelDp()
	if err := p.checkUserLevelFloor(ul, spec.GetUpdateClipNorm(), spec.GetSecagg(), params, dim); err != nil {
		return err
	}
	stats := spec.GetStatistics()
	if stats != nil {
		if enc == nil {
			return errors.New("the fit task asks for statistics without secure aggregation; they travel only inside the encrypted aggregate")
		}
		if ul != nil {
			return errors.New("the fit task asks for training statistics under user-level DP, whose guarantee does not cover them")
		}
		if c := stats.GetLossCap(); !(c > 0) || math.IsInf(c, 0) {
			return fmt.Errorf("statistics.loss_cap %v: must be finite and > 0", c)
		}
	}
	cfg := FitConfigFromSpec(spec)
	cfg.Round, cfg.Model = t.GetRound(), ms
	distributed := dpc.GetDistributed()
	if distributed {
		switch {
		case p.cfg.LocalNoiseOnly:
			return fmt.Errorf("refused: the task splits DP-SGD's noise across clients (dp.distributed) and this client adds its whole noise itself (local-noise-only): %w", ErrBudgetExceeded)
		case stats != nil:
			return errors.New("the fit task asks for training statistics under distributed noise (dp.distributed), whose guarantee does not cover them")
		}
		if err := distributedNoise(&cfg, spec, dim); err != nil {
			return err
		}
	}
	if cfg.Dataset, err = shippedSchema(spec.GetDatasetSchema()); err != nil {
		return err
	}
	var (
		sc      *scaffoldRound
		control []byte // the server's control variate, part of the task (fitKey)
	)
	if spec.GetScaffold() != nil {
		if ul != nil {
			return errors.New("the fit task asks for SCAFFOLD under user-level DP, whose guarantee does not cover control variates")
		}
		if sc, cfg.Correction, err = p.startScaffold(t, spec.GetScaffold(), dim, enc != nil); err != nil {
			return err
		}
		if control, err = blob.Find(t.GetBlobs(), blob.Control); err != nil {
			return err
		}
	}
	key := fitKey(t.GetRound(), pbytes, control, spec)
	made, err := p.madeUpdate(key)
	if err != nil {
		return err
	}
	// Discrete user-level noise is drawn afresh by every encryption, so the same update
	// encrypted for a second key committee could be opened twice with independent noise;
	// an update that carries only a share of the noise (distributed noise) must never be
	// in two decrypted sums either — a second committee could open this round's sum
	// without it, and the difference is the update: send either again only to the
	// committee it was made for.
	var session []byte
	if enc != nil && noiseBindsCommittee(spec, params.Literal()) {
		session = spec.GetSecagg().GetSession()
	}
	if err := made.resendableTo(session); err != nil {
		return err
	}
	var (
		fr    FitResult
		delta []float64
	)
	if made != nil {
		// The round runs again (the server restarted) from the same model with the same
		// settings: send the update already made, which the ledger already paid for,
		// instead of training (and paying) twice.
		fr, delta = FitResult{NumExamples: made.NumExamples, Metrics: made.Metrics}, slices.Clone(made.Delta)
	} else {
		if fr, err = p.trainer.Fit(ctx, global, cfg); err != nil {
			return p.private("local training", err)
		}
		if len(fr.Params) != dim {
			return fmt.Errorf("trainer returned %d parameters, model has %d", len(fr.Params), dim)
		}
		if fr.NumExamples < 1 {
			return p.private("local training", fmt.Errorf("trainer reports %d examples", fr.NumExamples))
		}
		delta = make([]float64, dim, dim+3)
		for i := range delta {
			delta[i] = fr.Params[i] - global[i]
		}
		if err := checkFinite(delta); err != nil {
			return p.private("local update", err)
		}
		var dc []float64
		if sc != nil {
			if dc, err = sc.finish(p, global, fr.Params, fr.Steps, cfg.Optimizer.LR); err != nil {
				return p.private("SCAFFOLD", err)
			}
		}
		clip := spec.GetUpdateClipNorm()
		norm := clipL2(delta, clip)
		if ul != nil {
			if delta, err = p.userLevel(delta, norm, clip, ul); err != nil {
				return fmt.Errorf("user-level DP: %w", err)
			}
		}
		delta = append(delta, dc...) // SCAFFOLD's Δc_i right after the update
		if err := p.saveMadeUpdate(key, madeUpdate{Round: t.GetRound(), NumExamples: fr.NumExamples, Metrics: fr.Metrics, Delta: delta, Session: session}); err != nil {
			return err
		}
	}
	// "epsilon" (the client's total ε) follows from the tasks it took, not from its data.
	if eps, ok := fr.Metrics["epsilon"]; ok {
		res.Metrics = map[string]float64{"epsilon": eps}
	}
	if enc == nil {
		if p.cfg.ShareStatistics {
			n, err := p.releaseCounts(float64(fr.NumExamples))
			if err != nil {
				return err
			}
			res.NumExamples = int64(n[0])
		}
		res.Blobs = []*pb.Blob{blob.New(blob.Update, blob.EncodeFloats(delta))}
		return nil
	}
	if stats != nil {
		delta = append(delta, statisticSlots(fr.Metrics, stats.GetLossCap(), params.Literal().ClipBound)...)
	}
	w := 1.0 // user-level DP, distributed noise and SCAFFOLD: uniform weights
	if ul == nil && sc == nil && !distributed {
		ws := spec.GetWeightScale()
		if !(ws > 0) {
			return fmt.Errorf("weight_scale %v: must be positive", ws)
		}
		w = min(float64(fr.NumExamples)/ws, spec.GetMaxWeight())
	}
	encStart := time.Now()
	// Encrypted straight into the upload's bytes, chunk by chunk (no EncryptedUpdate beside
	// them): what the client holds besides the update is the upload, kept for the push
	// and its retries, and one ciphertext per encryption worker.
	b, err := enc.EncryptBinary(secagg.UploadContext{Round: t.GetRound(), Purpose: secagg.PurposeFit, TaskID: t.GetTaskId(), TaskDigest: [32]byte(key)}, delta, w)
	if err != nil {
		return p.private("encrypting the update", err)
	}
	res.Blobs = []*pb.Blob{blob.New(blob.EncryptedUpdate, b)}
	p.cfg.Logger.Info("update encrypted", "task", t.GetTaskId(), "round", t.GetRound(), "values", len(delta), "bytes", len(b),
		"train_seconds", encStart.Sub(fitStart).Seconds(), "encrypt_seconds", time.Since(encStart).Seconds())
	return nil
}

// publicError marks an error whose text depends only on the task and the client's
// configuration, never on its data, so it may travel to the server as a reason.
type publicError struct{ err error }

func (e *publicError) Error() string { return e.err.Error() }
func (e *publicError) Unwrap() error { return e.err }

// TaskError marks err as computed from the task alone (a bad setting the server sent, a
// model that does not fit the local schema): a Trainer wraps such errors so the server
// learns the reason. Any other error of a Trainer reaches the server only as a generic
// reason, since it may carry values of the local data (a loss, an example index).
func TaskError(err error) error {
	if err == nil {
		return nil
	}
	return &publicError{err}
}

// private turns an error of a step that reads local data into a reason the server may
// see: refusals on privacy grounds and TaskErrors keep their text; anything else is
// logged locally and replaced by a generic reason.
func (p *Party) private(step string, err error) error {
	var pub *publicError
	if errors.Is(err, ErrBudgetExceeded) || errors.As(err, &pub) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", step, err)
	}
	var fatal *fatalError
	if errors.As(err, &fatal) {
		return err
	}
	p.cfg.Logger.Warn("task failed; the server gets only a generic reason", "step", step, "err", err)
	return fmt.Errorf("%s failed (the reason stays in the client's log: it may depend on local data)", step)
}

// statisticSlots encodes a task's mean loss and accuracy into two values within the
// secure-aggregation coordinate bound b (see StatisticsSpec): min(loss, cap)·b/cap and
// accuracy·b. A metric the trainer did not report counts as the worst value (loss cap,
// accuracy 0), so a silent trainer cannot flatter the aggregate.
func statisticSlots(metrics map[string]float64, lossCap, b float64) []float64 {
	loss, ok := metrics["loss"]
	if !ok || math.IsNaN(loss) || loss > lossCap {
		loss = lossCap
	}
	acc := metrics["accuracy"]
	if math.IsNaN(acc) {
		acc = 0
	}
	// The factor 1 − 1e-12 keeps a value at the cap strictly within the encryptor's bound.
	return []float64{max(loss, 0) / lossCap * b * (1 - 1e-12), min(max(acc, 0), 1) * b * (1 - 1e-12)}
}

// releaseCounts noises vals (sums over local examples, each of sensitivity 1 when one
// example is added or removed; the first is the example count) with the Gaussian mechanism
// of noise multiplier StatisticsNoiseMultiplier over their L2 sensitivity √len(vals),
// charging it to the Trainer's ledger first. The count comes back rounded.
func (p *Party) releaseCounts(vals ...float64) ([]float64, error) {
	z := p.cfg.StatisticsNoiseMultiplier
	if acc, ok := p.trainer.(StatisticsAccountant); ok {
		if err := acc.ChargeStatistics(z); err != nil {
			return nil, p.private("charging the shared statistics", err)
		}
	} else if p.cfg.MinNoiseMultiplier > 0 {
		return nil, errors.New("share-statistics needs a trainer that keeps a privacy ledger (StatisticsAccountant); this one does not, so nothing is shared")
	}
	src, err := p.noise()
	if err != nil {
		return nil, err
	}
	std := z * math.Sqrt(float64(len(vals)))
	out := make([]float64, len(vals))
	for i, v := range vals {
		out[i] = v + std*src.Normal()
	}
	// The example count, sent as an integer of at least 1: a small client's noised count
	// can fall below zero, which the server refuses (post-processing; ε is unchanged).
	out[0] = max(1, math.Round(out[0]))
	return out, nil
}

// clipL2 scales v in place to L2 norm at most c (c ≤ 0: no clipping) and returns its norm
// before clipping: DP-FedAvg's user-level clipping (McMahan et al. 2018). The factor is
// shaved by 1e-12 so rounding can never push a coordinate past c, which the
// secure-aggregation encryptor checks exactly.
func clipL2(v []float64, c float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	n := math.Sqrt(s)
	if !(c > 0) || n <= c {
		return n
	}
	f := c / n * (1 - 1e-12)
	for i := range v {
		v[i] *= f
	}
	return n
}

// checkUserLevelFloor refuses a user-level DP task whose noise, as the task itself sizes
// it, makes a noise multiplier below MinUserLevelNoiseMultiplier on the smallest sum the
// committee decrypts (see PartyConfig).
func (p *Party) checkUserLevelFloor(ul *pb.UserLevelDPSpec, clip float64, sa *pb.SecAggSpec, params secagg.Parameters, dim int) error {
	floor := p.cfg.MinUserLevelNoiseMultiplier
	if ul == nil || !(floor > 0) {
		return nil
	}
	if !(clip > 0) || math.IsInf(clip, 0) {
		return fmt.Errorf("update_clip_norm %v: user-level DP needs a positive clip norm", clip)
	}
	m := float64(max(sa.GetParams().GetMinContributions(), 1))
	var z float64
	switch lit := params.Literal(); {
	case sa != nil && lit.NoiseVariance > 0:
		// The sensitivity the server's accountant uses (dp.DiscreteUserLevel), in steps.
		d := dp.DiscreteUserLevel{Clip: clip, MaxWeight: lit.MaxWeight, Step: secagg.PackedStep(lit.ClipBound, lit.MaxWeight, lit.ValueBits), Dim: dim}
		s, err := d.Sensitivity()
		if err != nil {
			return fmt.Errorf("user-level DP: %w", err)
		}
		z = math.Sqrt(m*float64(lit.NoiseVariance)) / s.L2
	case sa != nil:
		z = math.Sqrt(m) * ul.GetNoiseStd() / clip
	}
	if !(z >= floor) {
		how := "its noise shares"
		if z == 0 {
			how = "it asks for no noise from the clients (central mode: the server adds it where no client can check)"
		}
		return fmt.Errorf("refused: under user-level DP %s make a noise multiplier of %.4g on a sum of %d updates, below this client's minimum %g (min-user-level-noise-multiplier): %w", how, z, int(m), floor, ErrBudgetExceeded)
	}
	return nil
}

// userLevel applies the client-side steps of user-level DP to the clipped update delta
// (norm before clipping: norm, clip norm: clip): it appends the adaptive clip's centred
// indicator 1[norm ≤ clip] − ½ (Andrew et al. 2021; sensitivity ½) when asked, then adds the task's distributed noise
// shares, N(0, noise_std²) to every coordinate of the update and N(0,
// clip_indicator_noise_std²) to the indicator. The noise is drawn after clipping, so the
// noised update may exceed the clip norm; the server's secure-aggregation bound leaves room.
func (p *Party) userLevel(delta []float64, norm, clip float64, ul *pb.UserLevelDPSpec) ([]float64, error) {
	std, istd := ul.GetNoiseStd(), ul.GetClipIndicatorNoiseStd()
	if !(clip > 0) {
		return nil, fmt.Errorf("update_clip_norm %v: user-level DP needs a positive clip norm", clip)
	}
	for name, v := range map[string]float64{"noise_std": std, "clip_indicator_noise_std": istd} {
		if math.IsNaN(v) || v < 0 || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s %v: must be finite and ≥ 0", name, v)
		}
	}
	dim := len(delta)
	if ul.GetClipIndicator() {
		delta = append(delta, dp.ClipIndicator(norm, clip))
	} else if istd != 0 {
		return nil, fmt.Errorf("clip_indicator_noise_std %v without clip_indicator", istd)
	}
	if std == 0 && istd == 0 {
		return delta, nil
	}
	src, err := p.noise()
	if err != nil {
		return nil, err
	}
	if err := dp.AddGaussianNoise(delta[:dim], std, src); err != nil {
		return nil, err
	}
	if err := dp.AddGaussianNoise(delta[dim:], istd, src); err != nil {
		return nil, err
	}
	return delta, nil
}

// noise returns the configured noise source, or a secure one made on first use.
func (p *Party) noise() (dp.NoiseSource, error) {
	if p.cfg.Noise == nil {
		s, err := dp.NewSecureNoise()
		if err != nil {
			return nil, err
		}
		p.cfg.Noise = s
	}
	return p.cfg.Noise, nil
}

func checkFinite(v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("value %d is %v", i, x)
		}
	}
	return nil
}

func modelSpec(m *pb.ModelSpec) (model.Spec, int, error) {
	if m == nil {
		return model.Spec{}, 0, errors.New("task carries no model spec")
	}
	key := string(m.GetSpecJson())
	parsed, ok := specs.get(key)
	if !ok {
		s, err := model.ParseSpec(m.GetSpecJson())
		if err != nil {
			return model.Spec{}, 0, err
		}
		dim, err := s.NumParams()
		if err != nil {
			return model.Spec{}, 0, err
		}
		parsed = parsedSpec{spec: s, dim: dim}
		specs.put(key, parsed)
	}
	if int64(parsed.dim) != m.GetNumParams() {
		return model.Spec{}, 0, fmt.Errorf("model spec has %d parameters, the task announces %d", parsed.dim, m.GetNumParams())
	}
	s := parsed.spec
	s.Hidden = slices.Clone(s.Hidden)
	return s, parsed.dim, nil
}

// parsedSpec is a validated model spec and its parameter count.
type parsedSpec struct {
	spec model.Spec
	dim  int
}

// cache remembers a few values derived from what tasks carry, shared by every Party of the
// process (the simulator runs many): a server ships the same model spec and the same
// secure-aggregation parameters with every task, and deriving them (parsing and bounding
// the spec, the CKKS ring tables) costs up to milliseconds per task. At most
// maxCached entries are kept; a server sending more distinct ones only empties it.
type cache[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

const maxCached = 16

var (
	specs        = &cache[parsedSpec]{m: map[string]parsedSpec{}}
	secAggParams = &cache[secagg.Parameters]{m: map[string]secagg.Parameters{}}
	// publicKeys holds the collective keys of recent sessions by session id, as received
	// (and, with a Verifier, verified by an encryptor made from them): the server sends a
	// session's key to a client once.
	publicKeys = &cache[*sessionKey]{m: map[string]*sessionKey{}}
)

// sessionKey is a session's collective public key and its encoding.
type sessionKey struct {
	key *secagg.PublicKey
	raw []byte
}

func (c *cache[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *cache[V]) put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[key] = v
}

// SecAggLiteral is the secure-aggregation parameters a task carries (unchecked): what a
// client, or an aggregator summing its clients' uploads, builds its secagg.Parameters
// from, so that both derive the same ones as the server.
func SecAggLiteral(sp *pb.SecAggParams) secagg.ParametersLiteral {
	return secagg.ParametersLiteral{
		LogN: int(sp.GetLogN()), LogQ: int(sp.GetLogQ()), LogScale: int(sp.GetLogScale()), FloodingSigma: sp.GetFloodingSigma(),
		ClipBound: sp.GetClipBound(), MaxWeight: sp.GetMaxWeight(), MaxContributors: int(sp.GetMaxContributors()),
		ValueBits: int(sp.GetValueBits()), Primes: int(sp.GetPrimes()), NoiseVariance: sp.GetNoiseVariance(),
	}
}

// secAggParams decodes and validates the task's secure-aggregation parameters against the
// client's own minimums and the committee against secagg's rules (CommitteeConfig.Validate),
// for every task that carries them: among those, 2t > K, since a member refuses a second
// aggregate only of a round it decrypted itself, and with two disjoint sets of t members a
// hostile server could open a round's sum with and without this client's upload.
func (p *Party) secAggParams(sp *pb.SecAggParams) (secagg.Parameters, secagg.CommitteeConfig, error) {
	if sp == nil {
		return secagg.Parameters{}, secagg.CommitteeConfig{}, errors.New("task carries no secure-aggregation parameters")
	}
	cc := secagg.CommitteeConfig{Size: int(sp.GetCommitteeSize()), Threshold: int(sp.GetThreshold()), MinContributions: int(sp.GetMinContributions())}
	if cc.Size < p.cfg.MinCommitteeSize {
		return secagg.Parameters{}, cc, fmt.Errorf("the server's secure_aggregation.committee_size %d is below this client's minimum %d (min-committee-size)", cc.Size, p.cfg.MinCommitteeSize)
	}
	if cc.Threshold < p.cfg.MinThreshold {
		return secagg.Parameters{}, cc, fmt.Errorf("the server's secure_aggregation.threshold %d is below this client's minimum %d (min-threshold)", cc.Threshold, p.cfg.MinThreshold)
	}
	if cc.MinContributions < p.cfg.MinContributions {
		return secagg.Parameters{}, cc, fmt.Errorf("the server's secure_aggregation.min_contributions %d is below this client's minimum %d (min-contributions)", cc.MinContributions, p.cfg.MinContributions)
	}
	lit := SecAggLiteral(sp)
	key := fmt.Sprintf("%+v", lit)
	params, ok := secAggParams.get(key)
	if !ok {
		var err error
		if params, err = secagg.NewParameters(lit); err != nil {
			return secagg.Parameters{}, cc, serverKeys(err)
		}
		secAggParams.put(key, params)
	}
	if err := cc.Validate(params); err != nil {
		return secagg.Parameters{}, cc, serverKeys(err)
	}
	if fs := params.Literal().FloodingSigma; fs < p.cfg.MinFloodingSigma {
		return secagg.Parameters{}, cc, fmt.Errorf("the server's secure_aggregation.flooding_sigma %g is below this client's minimum %g: decryption shares with less flooding noise may leak the committee's key shares", fs, p.cfg.MinFloodingSigma)
	}
	return params, cc, nil
}

// serverKeys words an error of secagg's parameter checks on what a task carries in the
// server's config keys, which the operator who has to fix them knows.
func serverKeys(err error) error {
	var fe *secagg.FieldError
	if !errors.As(err, &fe) {
		return fmt.Errorf("the server's secure-aggregation settings: %w", err)
	}
	return fmt.Errorf("the server's secure-aggregation settings: %s", fe.Explain(serverKey))
}

// serverKey is the key of the server's config that sets a field of secagg's parameters:
// secure_aggregation.<field in snake_case>, but for the clip bound (dp.update_clip_norm)
// and the modulus, which is fixed.
func serverKey(f secagg.Field) string {
	switch f {
	case secagg.FieldClipBound:
		return "dp.update_clip_norm"
	case secagg.FieldCommitteeSize:
		return "secure_aggregation.committee_size"
	case secagg.FieldLogQ:
		return "the modulus bits (fixed)"
	}
	var b strings.Builder
	for i, r := range string(f) {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return "secure_aggregation." + b.String()
}

func (p *Party) encryptor(t *pb.Task, sa *pb.SecAggSpec) (*secagg.Encryptor, secagg.Parameters, error) {
	params, cc, err := p.secAggParams(sa.GetParams())
	if err != nil {
		return nil, params, err
	}
	session, err := sessionOf(sa.GetSession())
	if err != nil {
		return nil, params, err
	}
	// The server sends a session's collective key (with the signed roster and shares that
	// let the client verify it) once per client; later tasks of the session refer to it.
	pk, ok := publicKeys.get(session.String())
	pkb, ferr := blob.Find(t.GetBlobs(), blob.PublicKey)
	switch {
	case ferr == nil:
		if pk == nil || !bytes.Equal(pk.raw, pkb) {
			var k secagg.PublicKey
			if err := k.UnmarshalBinary(pkb); err != nil {
				return nil, params, err
			}
			pk = &sessionKey{key: &k, raw: pkb}
		}
	case !ok:
		return nil, params, fmt.Errorf("no collective public key of session %s at hand (the client restarted since the server sent it); the server sends it again with the next task", session)
	}
	if pk.key.Session != session {
		return nil, params, fmt.Errorf("public key of session %s, the task names another session", pk.key.Session)
	}
	// The members decrypt sums of at least the minimum in the key's roster (which they sign
	// under an authenticated setup), not the task's claim, and distributed noise shares
	// (dp.distributed, user-level noise_std, column statistics) are sized by that m: a
	// server claiming m' > m would have every client add σ/√m' where σ/√m is due.
	if kc := pk.key.Committee(); kc != cc {
		return nil, params, fmt.Errorf("the task's secure_aggregation committee_size %d, threshold %d, min_contributions %d differ from %d, %d, %d of the committee that made session %s's key, which is what its members enforce: the server must send its committee's own settings", cc.Size, cc.Threshold, cc.MinContributions, kc.Size, kc.Threshold, kc.MinContributions, session)
	}
	key := string(pk.raw)
	if p.enc != nil && p.encKey == key {
		return p.enc, params, nil
	}
	ecfg := secagg.EncryptorConfig{ClientID: p.cfg.ClientID, Workers: p.cfg.Workers, Randomness: p.cfg.SecAggRandomness, Signer: p.cfg.Signer, Verifier: p.cfg.Verifier}
	if p.cfg.Verifier != nil {
		// The committee that made the key, as the signed roster says, meets this client's
		// floors (the task's claims are checked against them too, in secAggParams).
		ecfg.Floors = secagg.CommitteeConfig{Size: p.cfg.MinCommitteeSize, Threshold: p.cfg.MinThreshold, MinContributions: p.cfg.MinContributions}
	}
	enc, err := secagg.NewEncryptor(params, pk.key, ecfg)
	if err != nil {
		return nil, params, err
	}
	// Only a key that verified is kept for the session's later tasks.
	publicKeys.put(session.String(), pk)
	p.enc, p.encKey = enc, key
	return enc, params, nil
}

func (p *Party) evaluate(ctx context.Context, t *pb.Task, res *pb.Result) error {
	spec := t.GetEvaluate()
	if spec == nil {
		return errors.New("evaluate task without an evaluate spec")
	}
	if t.GetRound() != p.evalRound {
		p.evalRound, p.evals = t.GetRound(), 0
	}
	if p.evals >= p.cfg.MaxEvaluationsPerRound {
		return fmt.Errorf("refused: already answered %d evaluate task(s) in round %d, this client's limit per round", p.evals, t.GetRound())
	}
	sa := spec.GetSecagg()
	if sa == nil && !p.cfg.ShareStatistics {
		return errors.New("refused: evaluation results leave this client only inside the secure aggregate (enable secure_aggregation on the server), or noised if the client opts in with share-statistics")
	}
	ms, dim, err := modelSpec(spec.GetModel())
	if err != nil {
		return err
	}
	var (
		enc    *secagg.Encryptor
		params secagg.Parameters
	)
	if sa != nil {
		if c := spec.GetStatistics().GetLossCap(); !(c > 0) || math.IsInf(c, 0) {
			return fmt.Errorf("statistics.loss_cap %v: must be finite and > 0", c)
		}
		if ws := spec.GetWeightScale(); !(ws > 0) {
			return fmt.Errorf("weight_scale %v: must be positive", ws)
		}
		if enc, params, err = p.encryptor(t, sa); err != nil {
			return err
		}
	}
	pbytes, err := blob.Find(t.GetBlobs(), blob.Params)
	if err != nil {
		return err
	}
	vals, err := blob.DecodeFloats(pbytes, dim)
	if err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	p.evals++
	schema, err := shippedSchema(spec.GetDatasetSchema())
	if err != nil {
		return err
	}
	er, err := p.trainer.Evaluate(ctx, vals, EvaluateConfig{Round: t.GetRound(), Model: ms, BatchSize: int(spec.GetBatchSize()), Config: spec.GetConfig(), Dataset: schema})
	if err != nil {
		return p.private("evaluation", err)
	}
	if er.NumExamples < 1 {
		return p.private("evaluation", fmt.Errorf("trainer evaluated %d examples", er.NumExamples))
	}
	metrics := map[string]float64{"loss": er.Loss}
	for k, v := range er.Metrics {
		metrics[k] = v
	}
	if enc == nil {
		// Opted in without secure aggregation: the example count, the loss sum (each loss
		// capped, in units of the cap) and the correct count, noised.
		const lossCap = 20
		n := float64(er.NumExamples)
		loss := min(max(er.Loss, 0), lossCap)
		if math.IsNaN(er.Loss) {
			loss = lossCap
		}
		noised, err := p.releaseCounts(n, n*loss/lossCap, n*metrics["accuracy"])
		if err != nil {
			return err
		}
		cnt := max(noised[0], 1)
		res.NumExamples = int64(cnt)
		res.Metrics = map[string]float64{"loss": max(noised[1], 0) * lossCap / cnt, "accuracy": min(max(noised[2]/cnt, 0), 1)}
		return nil
	}
	slots := statisticSlots(metrics, spec.GetStatistics().GetLossCap(), params.Literal().ClipBound)
	w := min(float64(er.NumExamples)/spec.GetWeightScale(), spec.GetMaxWeight())
	b, err := enc.EncryptBinary(secagg.UploadContext{Round: t.GetRound(), Purpose: secagg.PurposeEvaluation, TaskID: t.GetTaskId(), TaskDigest: taskDigest("evaluate", t.GetRound(), pbytes, spec)}, slots, w)
	if err != nil {
		return p.private("encrypting the evaluation", err)
	}
	res.Blobs = []*pb.Blob{blob.New(blob.EncryptedUpdate, b)}
	return nil
}

func sessionOf(b []byte) (secagg.SessionID, error) {
	var s secagg.SessionID
	if len(b) != len(s) {
		return s, fmt.Errorf("session id of %d bytes, want %d", len(b), len(s))
	}
	copy(s[:], b)
	return s, nil
}

func memberStateName(s secagg.SessionID) string { return "member-" + hex.EncodeToString(s[:]) }

// requestStateName is the Store entry of the decryption request a member challenged last.
func requestStateName(s secagg.SessionID) string { return "request-" + hex.EncodeToString(s[:]) }

// member returns the member state of a session, loading it from the store after a restart.
func (p *Party) member(params secagg.Parameters, s secagg.SessionID, id uint32) (*secagg.Member, error) {
	m, ok := p.members[s]
	if !ok {
		b, err := p.cfg.Store.Load(memberStateName(s))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no key-committee state for session %s (this client did not announce in it)", s)
		}
		if err != nil {
			return nil, &fatalError{err}
		}
		if m, err = secagg.LoadMemberWithConfig(params, b, p.memberConfig(secagg.MemberConfig{})); err != nil {
			return nil, fmt.Errorf("loading member state of session %s: %w", s, err)
		}
		p.members[s] = m
	}
	if uint32(m.ID()) != id {
		return nil, fmt.Errorf("task names member %d, this client is member %d of session %s", id, m.ID(), s)
	}
	return m, nil
}

// memberConfig completes a member's configuration with the client's workers, randomness
// and identity.
func (p *Party) memberConfig(c secagg.MemberConfig) secagg.MemberConfig {
	c.Workers, c.Randomness, c.Signer, c.Verifier = p.cfg.Workers, p.cfg.SecAggRandomness, p.cfg.Signer, p.cfg.Verifier
	return c
}

// saveMember persists the member state before its message may be sent.
func (p *Party) saveMember(s secagg.SessionID, m *secagg.Member) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return &fatalError{fmt.Errorf("member state: %w", err)}
	}
	if err := p.cfg.Store.Save(memberStateName(s), b); err != nil {
		return &fatalError{err}
	}
	return nil
}

func (p *Party) keySetup(t *pb.Task, res *pb.Result) error {
	spec := t.GetKeySetup()
	if spec == nil {
		return errors.New("key-setup task without a key-setup spec")
	}
	params, cc, err := p.secAggParams(spec.GetParams())
	if err != nil {
		return err
	}
	s, err := sessionOf(spec.GetSession())
	if err != nil {
		return err
	}
	switch spec.GetStage() {
	case pb.KeySetupStage_KEY_SETUP_STAGE_ANNOUNCE:
		m, ok := p.members[s]
		if !ok {
			if m, err = secagg.NewMember(params, p.memberConfig(secagg.MemberConfig{Session: s, ID: secagg.MemberID(spec.GetMemberId()), Committee: cc})); err != nil {
				return err
			}
			if err := p.saveMember(s, m); err != nil {
				return err
			}
			p.members[s] = m
		} else if uint32(m.ID()) != spec.GetMemberId() {
			return fmt.Errorf("already member %d of session %s, asked to be member %d", m.ID(), s, spec.GetMemberId())
		}
		b, err := m.Announcement().MarshalBinary()
		if err != nil {
			return err
		}
		res.Blobs = []*pb.Blob{blob.New(blob.Announcement, b)}
	case pb.KeySetupStage_KEY_SETUP_STAGE_DEAL:
		m, err := p.member(params, s, spec.GetMemberId())
		if err != nil {
			return err
		}
		rb, err := blob.Find(t.GetBlobs(), blob.Roster)
		if err != nil {
			return err
		}
		var ro secagg.Roster
		if err := ro.UnmarshalBinary(rb); err != nil {
			return err
		}
		d, err := m.Deal(&ro)
		if err != nil {
			return err
		}
		if err := p.saveMember(s, m); err != nil {
			return err
		}
		b, err := d.MarshalBinary()
		if err != nil {
			return err
		}
		res.Blobs = []*pb.Blob{blob.New(blob.Dealing, b)}
	case pb.KeySetupStage_KEY_SETUP_STAGE_RECEIVE:
		m, err := p.member(params, s, spec.GetMemberId())
		if err != nil {
			return err
		}
		vb, err := blob.Find(t.GetBlobs(), blob.Delivery)
		if err != nil {
			return err
		}
		var v secagg.ShareDelivery
		if err := v.UnmarshalBinary(vb); err != nil {
			return err
		}
		if err := m.ReceiveShares(&v); err != nil {
			return err
		}
		if err := p.saveMember(s, m); err != nil {
			return err
		}
	default:
		return fmt.Errorf("key-setup stage %v unknown", spec.GetStage())
	}
	return nil
}

func (p *Party) decrypt(t *pb.Task, res *pb.Result) error {
	spec := t.GetDecrypt()
	if spec == nil {
		return errors.New("decrypt task without a decrypt spec")
	}
	params, _, err := p.secAggParams(spec.GetParams())
	if err != nil {
		return err
	}
	s, err := sessionOf(spec.GetSession())
	if err != nil {
		return err
	}
	m, err := p.member(params, s, spec.GetMemberId())
	if err != nil {
		return err
	}
	qb, err := blob.Find(t.GetBlobs(), blob.Request)
	if err != nil && spec.GetStage() == pb.DecryptStage_DECRYPT_STAGE_SHARE {
		// The request came with the challenge step, and the member kept it.
		if qb, err = p.cfg.Store.Load(requestStateName(s)); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no decryption request of session %s at hand for the share step (the client lost its state since the challenge)", s)
		} else if err != nil {
			return &fatalError{err}
		}
	}
	if err != nil {
		return err
	}
	var req secagg.DecryptionRequest
	if err := req.UnmarshalBinary(qb); err != nil {
		return err
	}
	if req.Round != t.GetRound() {
		return fmt.Errorf("decryption request of round %d in a task of round %d", req.Round, t.GetRound())
	}
	var sh *secagg.DecryptionShare
	switch spec.GetStage() {
	case pb.DecryptStage_DECRYPT_STAGE_UNSPECIFIED:
		sh, err = m.DecryptionShare(&req)
	case pb.DecryptStage_DECRYPT_STAGE_CHALLENGE:
		// Commit the server to this aggregate (recorded before the challenge goes out)
		// and ask it to open random positions of every listed upload.
		ch, err := m.Challenge(&req)
		if err != nil {
			return err
		}
		if err := p.saveMember(s, m); err != nil {
			return err
		}
		// Keep the request for the share step, so the server need not send it twice.
		if err := p.cfg.Store.Save(requestStateName(s), qb); err != nil {
			return &fatalError{err}
		}
		b, err := ch.MarshalBinary()
		if err != nil {
			return err
		}
		res.Blobs = []*pb.Blob{blob.New(blob.Challenge, b)}
		return nil
	case pb.DecryptStage_DECRYPT_STAGE_SHARE:
		ob, ferr := blob.Find(t.GetBlobs(), blob.Opening)
		if ferr != nil {
			return ferr
		}
		var op secagg.Opening
		if err := op.UnmarshalBinary(ob); err != nil {
			return err
		}
		sh, err = m.DecryptionShare(&req, &op)
	default:
		return fmt.Errorf("decryption stage %v unknown to this client (upgrade it)", spec.GetStage())
	}
	if err != nil {
		return err
	}
	if err := p.saveMember(s, m); err != nil {
		return err
	}
	b, err := sh.MarshalBinary()
	if err != nil {
		return err
	}
	res.Blobs = []*pb.Blob{blob.New(blob.Share, b)}
	return nil
}
