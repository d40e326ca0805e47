package ops

import (
	"errors"
	"net/http"
)

// Kinds of failure an operation reports, so that the admin API and the
// console answer the same status for the same mistake. An operation's error
// wraps one of them without changing its text: errors.Is tells the kind,
// Error() stays the message a user reads.
var (
	// ErrInvalid marks a request the caller must change: a bad filter,
	// time, status or cursor, or an unknown store.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound marks an absent event, or no store loaded at all.
	ErrNotFound = errors.New("not found")
	// ErrNotReplayable marks an event that cannot be replayed: its source
	// has no async route in this store, or its synchronous delivery is in
	// flight.
	ErrNotReplayable = errors.New("cannot be replayed")
	// ErrConflict marks an operation the event's current state does not
	// allow: skipping a delivery that is not dead.
	ErrConflict = errors.New("conflicts with the current state")
)

// kindError is err, classified as kind.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Mark classifies err as kind (ErrInvalid, ErrNotFound or ErrNotReplayable)
// and keeps its message; a nil err stays nil.
func Mark(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kindError{kind: kind, err: err}
}

// HTTPStatus is the status an HTTP front end answers for an operation's
// error: 400, 404, 409, or 500 for anything that is not the caller's doing.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNotReplayable), errors.Is(err, ErrConflict):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}
