package server

import (
	"fmt"
	"time"

	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/server/strategy"
)

// Event is an input of the coordinator: a client joined, left or spoke, a result arrived, or
// time passed. The transport (gRPC service or simulator) turns what it sees into events.
type Event interface{ isEvent() }

// Join: a client registered or reconnected.
type Join struct {
	ClientID          string
	CommitteeEligible bool
}

// Leave: a client said it is going away.
type Leave struct{ ClientID string }

// Evaluated: the driver's answer to an EvaluationRequest (Err non-empty when it failed).
type Evaluated struct {
	Round   uint64
	Metrics map[string]float64
	Err     string
}

// Disconnected: the connection a client's session ran over closed. The client is offline
// until it calls again; its outstanding tasks fail now.
type Disconnected struct{ ClientID string }

// Heartbeat: a client is alive (any call from a client is as good as a heartbeat).
type Heartbeat struct{ ClientID string }

// Tick: Elapsed time passed. It is the coordinator's only clock: deadlines and client
// timeouts are measured in the sum of the ticks it has seen.
type Tick struct{ Elapsed time.Duration }

// ResultIn: a client pushed the result of a task. The result's blobs carry their data.
type ResultIn struct {
	ClientID string
	Result   *pb.Result
	// Via names the intermediate aggregator that relayed the result, if one did.
	Via string
}

func (Join) isEvent()         {}
func (Leave) isEvent()        {}
func (Disconnected) isEvent() {}
func (Evaluated) isEvent()    {}
func (Heartbeat) isEvent()    {}
func (Tick) isEvent()         {}
func (ResultIn) isEvent()     {}

// Envelope is a task for a client.
type Envelope struct {
	To   string
	Task *pb.Task
	// Deadline is when the task's phase ends, in the coordinator's time (see Now); 0 means
	// none. A driver with a wall clock turns it into Task.DeadlineUnixMs.
	Deadline time.Duration
}

// Revocation withdraws a task the client has not started: its phase ended. A result for it
// would be refused as late.
type Revocation struct {
	To     string
	TaskID string
}

// Ready is what one Step asks the caller to do, in this order: write Persist durably, then
// deliver Send and Revoke, then act on Notices (metrics, logs). Evaluate asks the driver to
// evaluate models centrally (Coordinator.CentralEvaluator), outside Step, one at a time,
// and to answer each with an Evaluated event; Work asks it to run computations (adding
// encrypted uploads, combining decryption shares), outside Step, one at a time in order,
// answering each with the event its Run returns. So Step starts no goroutine and does no
// work that grows with the model beyond copying parameters. Nothing in it is shared with
// the coordinator's state except blob data, which is read-only, and the aggregates the
// Work uses, which the coordinator does not touch until the Work's answer is back.
type Ready struct {
	Persist []Record
	Send    []Envelope
	Revoke  []Revocation
	Notices []Notice
	// Evaluate lists central evaluations to run.
	Evaluate []EvaluationRequest
	// Work lists computations to run, in order.
	Work []Work
}

// EvaluationRequest asks for the central evaluation of the model released after Round:
// Params is the global model, or the strategy's average of the global models when it
// keeps one (strategy.ema_decay), in which case Iterate is the global iterate the clients
// train from (nil otherwise). Run carries it out.
type EvaluationRequest struct {
	Round   uint64
	Params  []float64
	Iterate []float64
}

// Record is a state change the coordinator needs persisted before its messages go out (the
// durable store replays them after a restart).
type Record interface{ isRecord() }

// ClientRecord: a client registered.
type ClientRecord struct {
	ClientID          string
	CommitteeEligible bool
}

// KeySetupRecord: an accepted key-setup message (announcement or dealing, marshalled);
// replaying them into secagg.KeySetup restores the setup.
type KeySetupRecord struct {
	Session [16]byte
	Stage   pb.KeySetupStage
	Member  uint16
	Client  string
	Message []byte
}

// CommitteeRecord: a key committee finished its setup after FormedRound rounds.
type CommitteeRecord struct {
	Session     [16]byte
	Members     []string // Members[i] is the client holding member id i+1
	Holders     []uint16 // the member ids that confirmed their threshold share
	PublicKey   []byte
	FormedRound uint64
}

// RoundRecord: a round finished; Params is the new global model (a checkpoint), the
// iterate the clients train from and a resumed server continues.
type RoundRecord struct {
	Round  uint64
	Params []float64
	// Released is the model the federation releases after the round when the strategy
	// averages the global models (strategy.ema_decay; nil otherwise): checkpoint files
	// hold it. The average itself resumes from StrategyState.
	Released      []float64
	StrategyState []byte
	// SamplerState is the sampling generator's state after the round (a restarted server
	// continues the same sequence).
	SamplerState []byte
	// Privacy holds the round's privacy figures, typed (they are in Metrics too).
	Privacy      RoundPrivacy
	Metrics      map[string]float64
	Contributors []string
	Failed       bool
	Reason       string
}

// RoundPrivacy is a round's privacy: the largest record-level ε of any client as the server
// accounts it; under user-level DP the federation's (ε, δ) so far, the round's clip norm S,
// and the least noise (standard deviations) any released sum carried on an update
// coordinate and on the adaptive clip's indicator sum.
type RoundPrivacy struct {
	EpsilonMax                 float64
	UserEpsilon, UserDelta     float64
	UpdateClip                 float64
	SumNoiseStd, CountNoiseStd float64
}

// EvaluationRecord: the central evaluation of the global model after Round (Round 0: the
// initial model). Stores keep it with the round's metrics, as central_<metric>.
type EvaluationRecord struct {
	Round   uint64
	Metrics map[string]float64
	Err     string
}

func (EvaluationRecord) isRecord() {}

// PrivacyRecord: a client's total record-level (DP-SGD) ε at δ: the server's own account
// when it issued the client a fit task of round Round (every task fixes σ, q and the steps),
// or, with Withdrawn, when it took that charge back because the client refused the task on
// its privacy budget, or, with Reported, what the client said its ledger holds.
type PrivacyRecord struct {
	ClientID  string
	Round     uint64
	Epsilon   float64
	Delta     float64
	Reported  bool
	Withdrawn bool
}

func (ClientRecord) isRecord()    {}
func (KeySetupRecord) isRecord()  {}
func (CommitteeRecord) isRecord() {}
func (RoundRecord) isRecord()     {}
func (PrivacyRecord) isRecord()   {}

// Notice reports progress for metrics and logs.
type Notice interface{ isNotice() }

// RoundStarted: a round's fit phase began with these clients.
type RoundStarted struct {
	Round   uint64
	Clients []string
}

// RoundFinished: a round's model update is done (Failed when it could not update).
type RoundFinished struct {
	Round        uint64
	Contributors int
	Failures     []strategy.Failure
	Metrics      map[string]float64
	Failed       bool
	Reason       string
}

// EvaluationFinished: a round's evaluation (centralised and/or federated) is done.
type EvaluationFinished struct {
	Round       uint64
	Central     map[string]float64
	Federated   map[string]float64
	Evaluations int
}

// CommitteeReady: a key committee holds its collective key.
type CommitteeReady struct {
	Session string
	Members []string
}

// KeySetupFailed: a key setup was abandoned; a new one starts with other members.
type KeySetupFailed struct {
	Session string
	Reason  string
	Missing []string
}

// PrivacySpent: a client's total ε, as the server accounts it or (Reported) as the client
// reported it.
type PrivacySpent struct {
	ClientID string
	Epsilon  float64
	Reported bool
}

// ClientOffline: a client was not heard from within the client timeout.
type ClientOffline struct{ ClientID string }

// ClientExpired: a client offline for longer than deadlines.registration_ttl was forgotten.
type ClientExpired struct{ ClientID string }

// Waiting: no round starts, and why (too few clients online, too few for a committee).
type Waiting struct{ Reason string }

// Finished: all rounds are done.
type Finished struct{ Rounds uint64 }

func (RoundStarted) isNotice()       {}
func (RoundFinished) isNotice()      {}
func (EvaluationFinished) isNotice() {}
func (CommitteeReady) isNotice()     {}
func (KeySetupFailed) isNotice()     {}
func (PrivacySpent) isNotice()       {}
func (ClientOffline) isNotice()      {}
func (Finished) isNotice()           {}
func (Waiting) isNotice()            {}
func (ClientExpired) isNotice()      {}

// RejectCode classifies why the coordinator refused an event.
type RejectCode int

const (
	// RejectUnknownClient: the client never joined (or left).
	RejectUnknownClient RejectCode = iota + 1
	// RejectUnknownTask: no such task was ever issued.
	RejectUnknownTask
	// RejectDuplicate: the task was already answered.
	RejectDuplicate
	// RejectLate: the task's phase ended (deadline passed or round over).
	RejectLate
	// RejectWrongClient: the task belongs to another client.
	RejectWrongClient
	// RejectInvalid: the result is malformed or out of bounds.
	RejectInvalid
)

func (c RejectCode) String() string {
	switch c {
	case RejectUnknownClient:
		return "unknown client"
	case RejectUnknownTask:
		return "unknown task"
	case RejectDuplicate:
		return "duplicate"
	case RejectLate:
		return "late"
	case RejectWrongClient:
		return "wrong client"
	case RejectInvalid:
		return "invalid"
	}
	return fmt.Sprintf("RejectCode(%d)", int(c))
}

// RejectError is the error Step returns for an event it refuses; the coordinator's state is
// unchanged except that an invalid result counts as the client's failure for its task.
type RejectError struct {
	Code RejectCode
	Msg  string
}

func (e *RejectError) Error() string { return "server: " + e.Code.String() + ": " + e.Msg }

func reject(code RejectCode, format string, a ...any) *RejectError {
	return &RejectError{Code: code, Msg: fmt.Sprintf(format, a...)}
}
