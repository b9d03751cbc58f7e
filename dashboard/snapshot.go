package dashboard

import (
	"context"
	"sync"
)

// Source is what the dashboard reads: the federation's state now, and a signal after
// each change. Implementations: server.Live (fed by a gRPC service or the simulator).
type Source interface {
	// Snapshot returns the current state. The caller may keep it: it shares nothing with
	// the source.
	Snapshot(ctx context.Context) (Snapshot, error)
	// Watch returns a channel that receives a value after the state changed (changes in
	// quick succession may arrive as one); it is closed when ctx ends.
	Watch(ctx context.Context) <-chan struct{}
}

// Snapshot is a federation at a glance. Everything in it is what the aggregation server
// holds in any case: its configuration, its own records of rounds, the registry of
// clients with their liveness, its own privacy accounting of each client (from the tasks
// it issued, or what a client reported), the committee's membership. Nothing in it is
// derived from a client's data except the aggregates the server releases anyway
// (evaluation metrics, the contributors' mean training loss).
type Snapshot struct {
	// Kind is "server" or "simulation"; Name the federation's or experiment's name.
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// State is the coordinator's phase: waiting, key-setup, fit, decrypt, evaluate or
	// finished (or "stopped" when a simulation ended early, with the reason in Waiting).
	State string `json:"state"`
	// Waiting says why no round is starting (the coordinator's latest reason), while it is.
	Waiting string `json:"waiting,omitempty"`
	// Round is the number of finished rounds, Rounds the rounds configured, Current the
	// round in progress (0 between rounds).
	Round   uint64 `json:"round"`
	Rounds  int    `json:"rounds"`
	Current uint64 `json:"current,omitempty"`
	// Strategy names the aggregation strategy.
	Strategy string `json:"strategy,omitempty"`
	// Clock is the coordinator's clock: "wall" (a server: time since it started) or
	// "virtual" (a simulation's simulated time); Now is its reading in seconds when the
	// state was observed.
	Clock string  `json:"clock"`
	Now   float64 `json:"now"`
	// ClientsOnline and ClientsRegistered count the clients connected and known.
	ClientsOnline     int `json:"clients_online"`
	ClientsRegistered int `json:"clients_registered"`
	// InitialAccuracy is the central accuracy of the model before round 1 (nil: none).
	InitialAccuracy *float64   `json:"initial_accuracy,omitempty"`
	Privacy         Privacy    `json:"privacy"`
	Committee       *Committee `json:"committee,omitempty"`
	// Clients lists registered clients sorted by id, at most a source-defined number of
	// them (ClientsRegistered says how many there are).
	Clients []Client `json:"clients"`
	// History holds one record per finished round, in order.
	History []Round `json:"history,omitempty"`
	// CheckpointDir is the directory whose *.confide files the page offers for download
	// (empty: none); Checkpoints is what the handler found there.
	CheckpointDir string       `json:"-"`
	Checkpoints   []Checkpoint `json:"checkpoints"`
}

// Privacy is the federation's DP configuration and what the server's accounting says has
// been spent.
type Privacy struct {
	// DPSGD: clients train with DP-SGD (record-level DP) with these settings.
	DPSGD           bool    `json:"dp_sgd"`
	NoiseMultiplier float64 `json:"noise_multiplier,omitempty"`
	MaxGradNorm     float64 `json:"max_grad_norm,omitempty"`
	SampleRate      float64 `json:"sample_rate,omitempty"`
	Steps           int     `json:"steps,omitempty"`
	Delta           float64 `json:"delta,omitempty"`
	Accountant      string  `json:"accountant,omitempty"`
	// UpdateClipNorm bounds every client update (0: none).
	UpdateClipNorm float64 `json:"update_clip_norm,omitempty"`
	// EpsilonMax is the largest record-level ε of any client, EpsilonMean the mean over
	// the ClientsAccounted clients with an ε above 0: each client's ε is the server's own
	// account of the fit tasks it issued it, or what the client reported if more.
	EpsilonMax       float64 `json:"epsilon_max"`
	EpsilonMean      float64 `json:"epsilon_mean"`
	ClientsAccounted int     `json:"clients_accounted"`
	// UserLevel is DP-FedAvg's user-level DP (nil: off).
	UserLevel *UserLevel `json:"user_level,omitempty"`
	// SecureAggregation: the server sees only sums of encrypted updates.
	SecureAggregation bool `json:"secure_aggregation"`
}

// UserLevel is the federation's user-level DP and its ε so far.
type UserLevel struct {
	Mode            string  `json:"mode"`
	NoiseMultiplier float64 `json:"noise_multiplier"`
	Clip            float64 `json:"clip,omitempty"`
	Adaptive        bool    `json:"adaptive,omitempty"`
	Epsilon         float64 `json:"epsilon"`
	Delta           float64 `json:"delta,omitempty"`
}

// Committee is the secure-aggregation key committee: its session, K members and threshold
// t; Holders confirmed their threshold share, HoldersOnline of them are connected (the
// committee can decrypt while HoldersOnline ≥ Threshold).
type Committee struct {
	Session       string `json:"session"`
	Stage         string `json:"stage"`
	Ready         bool   `json:"ready"`
	Size          int    `json:"size"`
	Threshold     int    `json:"threshold"`
	Holders       int    `json:"holders"`
	HoldersOnline int    `json:"holders_online"`
	// FormedRound is the number of rounds finished when it became ready.
	FormedRound uint64 `json:"formed_round,omitempty"`
	// LastFailure is why the latest key setup was abandoned (empty: none failed).
	LastFailure string `json:"last_failure,omitempty"`
}

// Client is one registered client as the server sees it.
type Client struct {
	ID     string `json:"id"`
	Online bool   `json:"online"`
	// SeenAgo is how long before the snapshot (Clock seconds) the client was last heard
	// from.
	SeenAgo float64 `json:"seen_ago"`
	// Sampled counts the rounds it was sampled for, Rounds those it contributed to,
	// Refusals the fit tasks it refused (privacy budget), Dropouts those it did not answer
	// in time.
	Sampled  int `json:"sampled"`
	Rounds   int `json:"rounds"`
	Refusals int `json:"refusals"`
	Dropouts int `json:"dropouts"`
	// Epsilon is its record-level ε as the server accounts it (or as it reported, if more).
	Epsilon float64 `json:"epsilon"`
	// Member: it holds a seat of the current key committee.
	Member bool `json:"member,omitempty"`
}

// Round is one finished round.
type Round struct {
	Round  uint64 `json:"round"`
	Failed bool   `json:"failed,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Sampled clients; Contributors whose update was aggregated; Dropouts did not answer
	// in time (crashed, offline, past the deadline); Refusals declined on privacy-budget
	// grounds; Errors failed or sent invalid results.
	Sampled      int `json:"sampled"`
	Contributors int `json:"contributors"`
	Dropouts     int `json:"dropouts"`
	Refusals     int `json:"refusals"`
	Errors       int `json:"errors"`
	// Accuracy and Loss of the central evaluation, FederatedAccuracy and FederatedLoss of
	// the federated one, TrainLoss the contributors' mean training loss (nil: none).
	Accuracy          *float64 `json:"accuracy,omitempty"`
	Loss              *float64 `json:"loss,omitempty"`
	FederatedAccuracy *float64 `json:"federated_accuracy,omitempty"`
	FederatedLoss     *float64 `json:"federated_loss,omitempty"`
	TrainLoss         *float64 `json:"train_loss,omitempty"`
	// Epsilon is the largest record-level ε of any client after the round, UserEpsilon
	// the federation's user-level ε so far (0: off).
	Epsilon     float64 `json:"epsilon"`
	UserEpsilon float64 `json:"user_epsilon,omitempty"`
	// BytesUp and BytesDown are the payload bytes clients sent and received for the round.
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
	// Seconds is the wall time from the round's start to its model update.
	Seconds float64 `json:"seconds"`
	// Revision increases with every change to the record (an evaluation or the traffic
	// that arrives after the round finished), so a stream resends changed rounds only.
	Revision uint64 `json:"revision"`
}

// Checkpoint is a model file offered for download.
type Checkpoint struct {
	Name     string `json:"name"`
	Bytes    int64  `json:"bytes"`
	Modified string `json:"modified"`
}

// Broadcast tells watchers that something changed; a Source embeds one. The zero value is
// ready to use. Notify never blocks: a watcher that has not taken the last signal gets
// one signal for all changes since.
type Broadcast struct {
	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
}

// Watch implements Source.Watch.
func (b *Broadcast) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	if b.watchers == nil {
		b.watchers = map[chan struct{}]struct{}{}
	}
	b.watchers[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.watchers, ch)
		close(ch)
		b.mu.Unlock()
	}()
	return ch
}

// Notify signals every watcher.
func (b *Broadcast) Notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
