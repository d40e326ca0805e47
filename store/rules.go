package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The rules below are the contract's, applied by every engine in the same
// words, so that the conformance suite sees one behaviour.

// MaxKeyPart bounds sources, ids and dedup keys, in bytes: Badger rejects
// keys over 64 KB, and no provider sends ids anywhere near this long, so a
// longer one is an error rather than something to truncate (truncation
// would merge distinct ids).
const MaxKeyPart = 4096

// ValidateKey reports an error if (source, id) cannot key a record: an empty
// part, a NUL byte in the source, or a part over MaxKeyPart.
func ValidateKey(source, id string) error {
	switch {
	case source == "":
		return errors.New("empty source")
	case strings.IndexByte(source, 0) >= 0:
		return fmt.Errorf("source %q contains a NUL byte", source)
	case len(source) > MaxKeyPart:
		return fmt.Errorf("source is %d bytes long; the limit is %d", len(source), MaxKeyPart)
	case id == "":
		return fmt.Errorf("empty event id for source %q", source)
	case len(id) > MaxKeyPart:
		return fmt.Errorf("event id for source %q is %d bytes long; the limit is %d", source, len(id), MaxKeyPart)
	}
	return nil
}

// ValidateDestination reports an error if name cannot name a destination:
// empty, with a NUL byte (engines use NUL as a separator in their keys), or
// over MaxKeyPart.
func ValidateDestination(name string) error {
	switch {
	case name == "":
		return errors.New("empty destination name")
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("destination %q contains a NUL byte", name)
	case len(name) > MaxKeyPart:
		return fmt.Errorf("destination name is %d bytes long; the limit is %d", len(name), MaxKeyPart)
	}
	return nil
}

// ValidateDedupKey reports an error if a record's dedup key is too long or
// its window is not positive.
func ValidateDedupKey(source, key string, window time.Duration) error {
	switch {
	case len(key) > MaxKeyPart:
		return fmt.Errorf("dedup key for source %q is %d bytes long; the limit is %d", source, len(key), MaxKeyPart)
	case window <= 0:
		return fmt.Errorf("dedup key for source %q has no positive dedup window", source)
	}
	return nil
}

// ValidStatus reports whether s is one of the statuses of the life cycle
// (a record's or a delivery's).
func ValidStatus(s Status) bool {
	switch s {
	case StatusPending, StatusReserved, StatusRetrying, StatusDelivered, StatusDead, StatusReleased,
		StatusHeld, StatusSkipped, StatusUnmatched:
		return true
	}
	return false
}

// PrepareInsert validates the records of an Insert and fills in the
// defaults Store.Insert documents: a delivery's Status pending when empty,
// the record's Status its Rollup, ReceivedAt now when zero, BatchSize the
// number of records when zero. Each record needs a valid key
// (ValidateKey), a valid dedup key when it has one (ValidateDedupKey), a
// subject without NUL bytes of at most MaxKeyPart bytes, and deliveries to
// distinct valid destinations (ValidateDestination), with lanes of at most
// MaxKeyPart bytes, each pending, or one reserved (without a lane) and the
// others held (a sync route's). ReservedUntil and lane sequences are the engine's to set.
func PrepareInsert(in *Ingest, now time.Time) error {
	if in == nil || len(in.Records) == 0 {
		return errors.New("insert: no records")
	}
	n := len(in.Records)
	for i, r := range in.Records {
		if r == nil {
			return fmt.Errorf("insert: record %d is nil", i)
		}
		if err := ValidateKey(r.Source, r.ID); err != nil {
			return fmt.Errorf("insert: record %d: %w", i, err)
		}
		if err := prepareDeliveries(r); err != nil {
			return fmt.Errorf("insert: record %d (%s %s): %w", i, r.Source, r.ID, err)
		}
		if strings.IndexByte(r.Subject, 0) >= 0 || len(r.Subject) > MaxKeyPart {
			// Engines key their subject index by it, NUL-terminated.
			return fmt.Errorf("insert: record %d (%s %s): subject has a NUL byte or is over %d bytes", i, r.Source, r.ID, MaxKeyPart)
		}
		if r.DedupKey != "" {
			if err := ValidateDedupKey(r.Source, r.DedupKey, r.DedupWindow); err != nil {
				return fmt.Errorf("insert: record %d (%s %s): %w", i, r.Source, r.ID, err)
			}
		}
		if r.ReceivedAt.IsZero() {
			r.ReceivedAt = now
		}
		if r.BatchSize == 0 {
			r.BatchSize = n
		}
	}
	return nil
}

// prepareDeliveries checks a record's deliveries, defaults their status and
// sets the record's.
func prepareDeliveries(r *Record) error {
	reserved, held := 0, 0
	for j := range r.Deliveries {
		d := &r.Deliveries[j]
		if err := ValidateDestination(d.Destination); err != nil {
			return fmt.Errorf("delivery %d: %w", j, err)
		}
		for _, e := range r.Deliveries[:j] {
			if e.Destination == d.Destination {
				return fmt.Errorf("two deliveries to destination %q", d.Destination)
			}
		}
		if len(d.Lane) > MaxKeyPart {
			return fmt.Errorf("delivery to %q: lane is %d bytes long; the limit is %d", d.Destination, len(d.Lane), MaxKeyPart)
		}
		if d.Status == "" {
			d.Status = StatusPending
		}
		switch d.Status {
		case StatusPending:
		case StatusReserved:
			reserved++
			if d.Lane != "" {
				// Made in the request, it is ordered by the provider.
				return fmt.Errorf("delivery to %q: a reserved (sync) delivery has no lane", d.Destination)
			}
		case StatusHeld:
			held++
		default:
			return fmt.Errorf("delivery to %q: inserted %s; want pending, reserved or held", d.Destination, d.Status)
		}
		d.Sequence = 0
	}
	switch {
	case reserved > 1:
		return errors.New("more than one reserved delivery")
	case held > 0 && reserved == 0:
		return errors.New("held deliveries without a reserved one")
	case reserved == 1 && held != len(r.Deliveries)-1:
		return errors.New("a reserved delivery beside pending ones; the others must be held")
	}
	r.Status = Rollup(r.Deliveries)
	return nil
}

// Page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// ErrIDWithoutSource is returned by Filter.Validate for a filter naming an
// event id but no source: ids are unique only within a source, so such a
// filter could select (or purge) events of several sources at once.
var ErrIDWithoutSource = errors.New("an event id filter needs a source")

// Validate reports an error if f cannot select records: a source or subject
// with a NUL byte (no record has one), an id without a source
// (ErrIDWithoutSource), or a time range that From and To leave empty.
// List and Purge refuse such a filter rather than answer nothing.
func (f *Filter) Validate() error {
	if f.Source != "" && strings.IndexByte(f.Source, 0) >= 0 {
		return fmt.Errorf("source %q contains a NUL byte", f.Source)
	}
	if strings.IndexByte(f.Destination, 0) >= 0 {
		return fmt.Errorf("destination %q contains a NUL byte", f.Destination)
	}
	if strings.IndexByte(f.Subject, 0) >= 0 {
		return fmt.Errorf("subject %q contains a NUL byte", f.Subject)
	}
	if f.ID != "" && f.Source == "" {
		return fmt.Errorf("id %q: %w", f.ID, ErrIDWithoutSource)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("empty time range: from %s is not before to %s", f.From.Format(time.RFC3339Nano), f.To.Format(time.RFC3339Nano))
	}
	return nil
}

// PageSize is the number of records one List returns at most: Limit,
// DefaultListLimit when it is not positive, never more than MaxListLimit.
func (f *Filter) PageSize() int {
	if f.Limit <= 0 {
		return DefaultListLimit
	}
	return min(f.Limit, MaxListLimit)
}

// Validate reports an error if d is not a decision RecordAttempt accepts.
func (d Decision) Validate() error {
	switch {
	case d.Status == StatusDelivered, d.Status == StatusRetrying:
	case d.Status == StatusDead && d.Reason != "":
	case d.Status == StatusDead:
		return errors.New("a dead decision without a reason")
	default:
		return fmt.Errorf("decision to status %q; want delivered, retrying or dead", d.Status)
	}
	return nil
}
