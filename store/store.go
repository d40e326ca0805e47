// Package store keeps every event the gateway accepts: the dedup reservation,
// the raw request, the canonical event and its delivery history. The default
// implementation is an embedded Badger database; the Store interface is what a
// shared engine (Redis, PostgreSQL) would implement to run several gateways
// behind one load balancer.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Status is where an event stands in its delivery life cycle.
type Status string

const (
	// StatusReserved holds a dedup key while a synchronous delivery is in
	// flight. A reservation whose lease has run out (the process died before
	// the backend answered) no longer blocks the key.
	StatusReserved Status = "reserved"
	// StatusPending: stored durably, waiting for its first delivery attempt.
	StatusPending Status = "pending"
	// StatusRetrying: at least one attempt failed; another is scheduled.
	StatusRetrying Status = "retrying"
	// StatusDelivered: the backend answered 2xx.
	StatusDelivered Status = "delivered"
	// StatusDead: no further attempt will be made (attempts or age exhausted,
	// or the backend answered 410 Gone). Kept until replayed or purged.
	StatusDead Status = "dead"
)

// ErrNotFound is returned when no event is stored under a key.
var ErrNotFound = errors.New("event not found")

// ErrInvalidCursor is returned by List for a cursor it did not hand out.
var ErrInvalidCursor = errors.New("invalid cursor")

// Attempt records one delivery attempt.
type Attempt struct {
	Number  int           `json:"number"`
	At      time.Time     `json:"at"`
	Status  int           `json:"status,omitempty"` // HTTP status; 0 on network error
	Latency time.Duration `json:"latency"`
	Error   string        `json:"error,omitempty"`
	Replay  bool          `json:"replay,omitempty"`
}

// Record is one canonical event and its state.
type Record struct {
	Source     string    `json:"source"`
	ID         string    `json:"id"`
	Provider   string    `json:"provider"`
	Type       string    `json:"type"`
	Status     Status    `json:"status"`
	ReceivedAt time.Time `json:"received_at"`
	// Event is the canonical event exactly as it is delivered.
	Event json.RawMessage `json:"event,omitempty"`
	// Headers are the provider's request headers, secrets removed.
	Headers http.Header `json:"headers,omitempty"`
	// BatchIndex and BatchSize place the event in the request it came in;
	// BatchSize is 1 for a single-event request.
	BatchIndex int `json:"batch_index"`
	BatchSize  int `json:"batch_size"`

	Attempts      []Attempt `json:"attempts,omitempty"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitempty"`
	Replays       int       `json:"replays,omitempty"`

	// LeaseOwner and LeaseUntil mark a record claimed by one delivery worker,
	// so two configurations alive during a reload never send the same
	// attempt twice.
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitempty"`

	// Retention is how long the record is kept once delivered; zero or
	// negative keeps it until purged.
	Retention time.Duration `json:"retention"`

	// DedupKey, when set, decides insert-if-absent instead of the id, for
	// senders that give no event id: the record gets an id of its own and
	// holds (Source, DedupKey) for DedupWindow from its insertion. Within
	// the window a record with the same key is a duplicate of this one;
	// afterwards the key is free and the same content is a new event.
	// (Source, ID) stays unique either way.
	DedupKey string `json:"dedup_key,omitempty"`
	// DedupWindow is how long DedupKey is held; it must be positive when
	// DedupKey is set. A live reservation holds its key for as long as its
	// lease, even past the window.
	DedupWindow time.Duration `json:"dedup_window,omitempty"`
}

// Ingest is one accepted request: its raw body (stored once, even for a batch)
// and the records normalized from it.
type Ingest struct {
	RawBody []byte
	Records []*Record
}

// InsertResult tells, for each record of an Ingest in order, whether it was
// stored or was already present (a duplicate).
type InsertResult struct {
	Inserted bool
	// Existing is the stored record's status when Inserted is false.
	Existing Status
	// ExistingID is the id of the stored record this one duplicates when
	// Inserted is false: the record's own id for an id duplicate, the id
	// of the record holding the dedup key for a dedup-key duplicate.
	ExistingID string
}

// Filter selects records for listing and bulk replay. Zero fields match all.
type Filter struct {
	Source   string
	Provider string
	Type     string
	Status   Status
	From     time.Time // ReceivedAt >= From
	To       time.Time // ReceivedAt < To
	// Cursor continues a previous List; Limit caps the page (default 100,
	// at most 1000). Purge ignores Cursor and treats a positive Limit as
	// the most records to delete in one call.
	Cursor string
	Limit  int
}

// Store is the persistence contract of the gateway.
type Store interface {
	// Insert atomically stores each record whose (source, id) is absent
	// and, for a record with a DedupKey, whose (source, dedup key) is not
	// held by a record inserted less than its DedupWindow ago: N concurrent
	// Inserts of the same key store it exactly once. A StatusReserved
	// record whose LeaseUntil has passed counts as absent, for its id and
	// its dedup key.
	// With durable set, Insert returns only after the write is synced to
	// disk (and a duplicate only once the stored copy is); concurrent
	// durable writes share one sync. Insert fills in defaults on the given
	// records: Status pending if empty, ReceivedAt now if zero, BatchSize
	// len(Records) if zero, and LeaseUntil now plus the store's
	// reservation lease for StatusReserved records.
	Insert(ctx context.Context, in *Ingest, durable bool) ([]InsertResult, error)
	// Get returns one record, or ErrNotFound.
	Get(ctx context.Context, source, id string) (*Record, error)
	// RawBody returns the request body a record came in.
	RawBody(ctx context.Context, source, id string) ([]byte, error)
	// Update reads a record, applies fn and writes it back in one
	// transaction; fn's error aborts the write and is returned. fn may run
	// more than once (a concurrent write to the record forces a retry), so
	// it must only modify the record it is given, and may not change its
	// Source, ID or Event. A record set to StatusDelivered expires after its
	// Retention. Returns ErrNotFound for an absent record.
	Update(ctx context.Context, source, id string, durable bool, fn func(*Record) error) (*Record, error)
	// Release deletes a reservation, and the dedup key it holds, so a
	// retry of the same event can get through. reservedUntil is the LeaseUntil that Insert set on the
	// reserving record: it tells this reservation from a newer one that
	// took the key over after its lease ran out, which must stay. Releasing
	// an absent, non-reserved or taken-over record does nothing and is not
	// an error.
	Release(ctx context.Context, source, id string, reservedUntil time.Time) error
	// Claim leases up to limit due records (pending or retrying, next attempt
	// at or before now, lease free or expired) among sources, for lease:
	// it sets LeaseOwner and LeaseUntil = now+lease. No two owners hold a
	// lease on one record at once. A worker ends its lease early by zeroing
	// LeaseOwner and LeaseUntil in the Update that records its attempt;
	// otherwise the record is not claimable again before LeaseUntil. An
	// implementation may return fewer than limit records per call.
	Claim(ctx context.Context, owner string, sources []string, now time.Time, lease time.Duration, limit int) ([]*Record, error)
	// List returns records matching f, newest first, and a cursor for the
	// next page ("" when done).
	List(ctx context.Context, f Filter) ([]*Record, string, error)
	// Counts returns the number of records in each status (every status
	// present, zero or not).
	Counts(ctx context.Context) (map[Status]int, error)
	// Purge deletes records matching f, with the dedup keys they hold; it
	// returns how many.
	Purge(ctx context.Context, f Filter) (int, error)
	// Close releases the store. It is safe to call more than once.
	Close() error
}
