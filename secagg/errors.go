package secagg

import "errors"

// Conditions callers act on. Errors returned by the package wrap these where they apply, so
// test them with errors.Is.
var (
	// ErrTooFewContributions: the aggregate holds fewer updates than the committee's
	// minimum; members refuse to decrypt it and the server does not ask.
	ErrTooFewContributions = errors.New("secagg: aggregate holds fewer contributions than the committee's minimum")
	// ErrAlreadyDecrypted: the member already decrypted this aggregate for another member
	// set; it never decrypts one aggregate for two sets.
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
)
