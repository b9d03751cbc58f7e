package secagg

import (
	"errors"
	"fmt"
)

// Conditions callers act on. Errors returned by the package wrap these where they apply, so
// test them with errors.Is.
var (
	// ErrTooFewContributions: the aggregate holds fewer updates than the committee's
	// minimum; members refuse to decrypt it and the server does not ask.
	ErrTooFewContributions = errors.New("secagg: aggregate holds fewer contributions than the committee's minimum")
	// ErrAlreadyDecrypted: the member already decrypted this aggregate for another member
	// set, or (against an active server) another aggregate of the same round and purpose;
	// it never decrypts one aggregate for two sets, nor two aggregates of one round and
	// purpose.
	ErrAlreadyDecrypted = errors.New("secagg: aggregate already decrypted with another member set")
	// ErrNotReady: the member has not finished the key setup (no threshold share yet), or
	// the key setup lacks announcements or dealings.
	ErrNotReady = errors.New("secagg: key setup not finished")
	// ErrDuplicate: a second, different message from the same sender (client update in a
	// round, member announcement or dealing).
	ErrDuplicate = errors.New("secagg: duplicate message from the same sender")
	// ErrWrongSession: the message belongs to another session, round or aggregate.
	ErrWrongSession = errors.New("secagg: message of another session, round or aggregate")
	// ErrInconsistentDecryption: the decrypted count slot does not match the number of
	// updates added, so a share was wrong, missing or for another set; the decoded sum is
	// discarded.
	ErrInconsistentDecryption = errors.New("secagg: decrypted count does not match the aggregate")
	// ErrFrozen: a decryption request was issued for the aggregate, so no more updates can
	// be added to it.
	ErrFrozen = errors.New("secagg: aggregate frozen for decryption")
	// ErrUnauthenticated: a certificate does not chain to the federation's CA (or is not
	// valid now, or not for client authentication), a signature does not verify, or a
	// message that must be signed is not. Against an active server this is how substituted
	// key material, forged uploads and replays show.
	ErrUnauthenticated = errors.New("secagg: not signed by a certificate of the federation's CA")
	// ErrSpotCheck: the server's opening does not prove that the aggregate's c1 is the sum
	// of the listed uploads (a Merkle path does not lead to an upload's signed commitment,
	// or the sum differs at a checked position). The member refuses to decrypt.
	ErrSpotCheck = errors.New("secagg: spot check failed: the aggregate is not the sum of the listed uploads")
	// ErrStaleRound: a decryption request for an earlier round than one the member already
	// decrypted (or was challenged on) for the same purpose; rounds only move forward.
	ErrStaleRound = errors.New("secagg: decryption request for an earlier round")
	// ErrMixedTasks: the uploads a decryption request lists were signed under different
	// task digests (UploadContext.TaskDigest), so the server gave their clients different
	// settings (a learning rate, a clip, a noise share) in one round; the member refuses to
	// decrypt their sum.
	ErrMixedTasks = errors.New("secagg: the listed uploads were made under different tasks")
)

// Field names a setting of ParametersLiteral or CommitteeConfig, the subject of a FieldError.
type Field string

// The fields NewParameters and CommitteeConfig.Validate check.
const (
	FieldLogN             Field = "LogN"
	FieldLogQ             Field = "LogQ"
	FieldLogScale         Field = "LogScale"
	FieldFloodingSigma    Field = "FloodingSigma"
	FieldClipBound        Field = "ClipBound"
	FieldMaxWeight        Field = "MaxWeight"
	FieldMaxContributors  Field = "MaxContributors"
	FieldCommitteeSize    Field = "Size" // CommitteeConfig.Size
	FieldThreshold        Field = "Threshold"
	FieldMinContributions Field = "MinContributions"
	// The packed encoding's (packing.go).
	FieldValueBits     Field = "ValueBits"
	FieldPrimes        Field = "Primes"
	FieldNoiseVariance Field = "NoiseVariance"
)

// String is the field's name in this package's messages.
func (f Field) String() string {
	if f == FieldCommitteeSize {
		return "committee Size"
	}
	return string(f)
}

// FieldError is an invalid setting of ParametersLiteral or CommitteeConfig: the field at
// fault, its value, and what it must be. Its message names fields as this package does
// (Error) or as the caller's configuration does (Explain): a layer above maps fields to its
// own keys without parsing messages.
type FieldError struct {
	Field Field
	Value any
	// format and args make the message; a Field among args is named by Explain's name.
	format string
	args   []any
}

func fieldError(f Field, value any, format string, args ...any) *FieldError {
	return &FieldError{Field: f, Value: value, format: format, args: args}
}

// Explain returns the message with every field named by name (e.g. a config file's keys).
func (e *FieldError) Explain(name func(Field) string) string {
	args := make([]any, len(e.args))
	for i, a := range e.args {
		if f, ok := a.(Field); ok {
			a = name(f)
		}
		args[i] = a
	}
	return fmt.Sprintf(e.format, args...)
}

func (e *FieldError) Error() string { return "secagg: " + e.Explain(Field.String) }
