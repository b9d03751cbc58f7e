package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"google.golang.org/protobuf/proto"

	"github.com/confide-fl/confide/proto/blob"
	pb "github.com/confide-fl/confide/proto/confide/v1"
	"github.com/confide-fl/confide/secagg"
)

// madeUpdateName is the Store entry of the latest update a client made.
const madeUpdateName = "last-update.json"

// madeUpdate is the latest update a client made for a fit task: the clipped (and, under
// user-level DP with floating-point shares, noised) Δ, the example count and the trainer's
// metrics. A server that restarts runs the interrupted round again from the same model;
// the client then sends this update again rather than train (and spend privacy) a second
// time. Re-sending the same update releases nothing new; under secure aggregation the
// committee decrypts at most one aggregate a round, so two sums over different sets of the
// same updates are never both opened. The distributed discrete Gaussian's shares are drawn
// by each encryption, not stored in Δ, and an update with distributed noise (record- or
// user-level) carries only a share of the noise, so a second committee opening the round's
// sum without it would expose it: such updates are sent again only to the key committee
// (Session) they were first encrypted for.
type madeUpdate struct {
	Key         []byte             `json:"key"`
	Round       uint64             `json:"round"`
	NumExamples int                `json:"num_examples"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Delta       []float64          `json:"-"`
	// Session is the key committee's session the update was made for, when its noise is
	// drawn at encryption (discrete user-level DP) or distributed; empty otherwise.
	Session []byte `json:"session,omitempty"`
	// Values holds Delta as little-endian float64 (base64 in the JSON).
	Values []byte `json:"values"`
}

// resendableTo refuses to send m (nil: nothing made yet) again for the key committee
// session, when its noise is drawn at encryption (session non-empty) and it was made for
// another committee: both could open it, each with independent noise.
func (m *madeUpdate) resendableTo(session []byte) error {
	if m == nil || len(session) == 0 || bytes.Equal(m.Session, session) {
		return nil
	}
	return fmt.Errorf("refused: this round's update was made for another key committee, and its noise is distributed (a share in each update, or drawn at each encryption); sending it to a second committee could let both open sums with and without it: %w", ErrBudgetExceeded)
}

// noiseBindsCommittee reports whether an update made for spec under secure aggregation
// with parameters lit may only go to the key committee it was made for: its noise is drawn
// at encryption (discrete user-level DP) or is a share of distributed noise (record-level
// dp.distributed, or user-level noise_std), so two committees opening sums with and
// without it would expose it.
func noiseBindsCommittee(spec *pb.FitSpec, lit secagg.ParametersLiteral) bool {
	return lit.NoiseVariance > 0 || spec.GetDp().GetDistributed() || spec.GetUserLevelDp().GetNoiseStd() > 0
}

// fitKey identifies what a fit task asks for: its round, the global parameters, SCAFFOLD's
// server control variate (nil without SCAFFOLD) and every setting but the
// secure-aggregation ones (a new committee does not change the update). It is also the fit
// upload's signed task digest (taskDigest).
func fitKey(round uint64, params, control []byte, spec *pb.FitSpec) []byte {
	var extra [][]byte
	if control != nil {
		extra = append(extra, control)
	}
	d := taskDigest("fit", round, params, spec, extra...)
	return d[:]
}

// taskDigest digests what a task of the given kind asks for: its round, the global
// parameters it starts from, every setting of its spec but the secure-aggregation field
// (the committee's session and parameters, which the key pins) and any further inputs of
// the task (SCAFFOLD's control variate, which steers every client's update as much as the
// global model does), so it is the same for every client of one honest round and differs
// when the server gives clients different settings. Signed into each upload (secagg.UploadContext.TaskDigest), it lets
// the committee refuse a sum of updates made under different tasks: a server could
// otherwise give all clients but one a tiny learning rate, clip or weight scale, so that
// their updates and noise shares vanish and the decrypted sum is that one client's update
// with only its own share of the noise.
func taskDigest(kind string, round uint64, params []byte, spec proto.Message, extra ...[]byte) [32]byte {
	s := proto.Clone(spec)
	if f := s.ProtoReflect().Descriptor().Fields().ByName("secagg"); f != nil {
		s.ProtoReflect().Clear(f)
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	h := sha256.New()
	fmt.Fprintf(h, "confide %s %d\x00", kind, round)
	h.Write(params)
	h.Write(b)
	for _, e := range extra {
		fmt.Fprintf(h, "\x00%d\x00", len(e)) // length-prefixed: no two lists hash alike
		h.Write(e)
	}
	return [32]byte(h.Sum(nil))
}

// madeUpdate returns the stored update for key, nil if the latest one is for another task.
func (p *Party) madeUpdate(key []byte) (*madeUpdate, error) {
	b, err := p.cfg.Store.Load(madeUpdateName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &fatalError{err}
	}
	var m madeUpdate
	if err := json.Unmarshal(b, &m); err != nil || !bytes.Equal(m.Key, key) || len(m.Values)%8 != 0 {
		return nil, nil // another task's (or unreadable): train afresh
	}
	if m.Delta, err = blob.DecodeFloats(m.Values, len(m.Values)/8); err != nil || checkFinite(m.Delta) != nil {
		return nil, nil
	}
	return &m, nil
}

// saveMadeUpdate stores the update before it can be sent (unless the Party forgets them).
func (p *Party) saveMadeUpdate(key []byte, m madeUpdate) error {
	if p.cfg.ForgetUpdates {
		return nil
	}
	m.Key, m.Values = key, blob.EncodeFloats(m.Delta)
	b, err := json.Marshal(m)
	if err != nil {
		return &fatalError{fmt.Errorf("storing the update: %w", err)}
	}
	if err := p.cfg.Store.Save(madeUpdateName, b); err != nil {
		return &fatalError{err}
	}
	return nil
}
