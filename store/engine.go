package store

import "time"

// The helpers below let an engine outside this package apply the same rules
// as Badger, so that the conformance suite sees one contract.

// ValidateKey reports an error if (source, id) cannot key a record: an empty
// part, a NUL byte in the source, or a part over the length limit.
func ValidateKey(source, id string) error { return validateKey(source, id) }

// ValidateDedupKey reports an error if a record's dedup key is too long or
// its window is not positive.
func ValidateDedupKey(source, key string, window time.Duration) error {
	return validateDedupKey(source, key, window)
}

// ValidStatus reports whether s is one of the statuses of the life cycle.
func ValidStatus(s Status) bool { return validStatus(s) }

// Validate reports an error if d is not a decision RecordAttempt accepts.
func (d Decision) Validate() error { return d.validate() }

// Notifier is implemented by an engine shared between processes: fn is
// called, without blocking, whenever any process sharing the store has
// committed a pending event, so that the delivery workers of every process
// wake at once instead of at their next poll. The returned func stops the
// calls.
type Notifier interface {
	Subscribe(fn func(source string)) (stop func())
}
