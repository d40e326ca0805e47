package store

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Status is where a delivery stands in its life cycle. A record's own
// Status is the roll-up of its deliveries' (see Rollup).
type Status string

const (
	// StatusReserved holds a dedup key while a synchronous delivery is in
	// flight. A reservation past its ReservedUntil (the process died before
	// the backend answered) no longer blocks the key.
	StatusReserved Status = "reserved"
	// StatusPending: stored durably, waiting for its first delivery attempt.
	StatusPending Status = "pending"
	// StatusRetrying: at least one attempt failed; another is scheduled.
	StatusRetrying Status = "retrying"
	// StatusDelivered: the backend answered 2xx.
	StatusDelivered Status = "delivered"
	// StatusReleased: a sync delivery failed and its reservation was
	// released so the provider's retry gets through. The record holds no
	// key: it is kept to show the failed attempt, which the retry's
	// record takes over (same id), or until its retention passes.
	StatusReleased Status = "released"
	// StatusDead: no further attempt will be made (attempts or age exhausted,
	// or the backend answered 410 Gone). Kept until replayed or purged.
	StatusDead Status = "dead"
	// StatusHeld is a delivery of a sync route's async destination while
	// the route's sync delivery is reserved or released: MarkDelivered makes
	// it pending in the same write that marks the sync delivery delivered,
	// so a provider's retry after a failed sync forward never doubles it.
	// A held delivery is never claimed.
	StatusHeld Status = "held"
	// StatusSkipped is a dead delivery of an ordered lane that an operator
	// skipped (Skip): it gets no further attempt and no longer holds its
	// lane.
	StatusSkipped Status = "skipped"
	// StatusUnmatched is the status of a record that matched none of its
	// route's destinations (their filters refused it): it has no delivery,
	// is kept for its Retention like a delivered record, and is listed and
	// counted as such, never silently dropped. It is never a delivery's
	// status.
	StatusUnmatched Status = "unmatched"
)

// ErrNotFound is returned when no event is stored under a key.
var ErrNotFound = errors.New("event not found")

// ErrNoSpace is returned for a write refused because the store's disk is
// (nearly) full: the write was not made, and may succeed once space is
// freed. The gateway answers it with 503.
var ErrNoSpace = errors.New("store is out of disk space")

// ErrUnsupportedFormat is returned by an engine's Open for data written in
// a format this build does not read (for instance by a build from before
// deliveries were bound to destinations): it is refused whole rather than
// read as empty or half understood.
var ErrUnsupportedFormat = errors.New("store written in an unsupported format")

// ErrNoDelivery is returned by a transition naming a destination the record
// has no delivery for (the event matched that destination's filter at
// ingest, or its route never had it).
var ErrNoDelivery = errors.New("event has no delivery to that destination")

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
	// Destination names the destination an operator's replay was sent to
	// when it was not the delivery's own (see Delivery.Destination); empty
	// for every attempt made to the delivery's destination.
	Destination string `json:"destination,omitempty"`
}

// Delivery is the state of one event's delivery to one destination: an
// event has one per destination its route named and its filters matched,
// fixed at Insert, each with its own status, attempts, schedule and lease.
type Delivery struct {
	// Destination names the destination: the delivery engine serving
	// that name claims it (see Claim), and a replay goes there unless the
	// operator names another. A config reload that moves the destination
	// to other upstreams takes the delivery along, and two routes sharing
	// a source never take each other's deliveries.
	Destination string `json:"destination"`
	// Status is one of pending, retrying, delivered, dead, skipped, and,
	// for a sync route's record, reserved or released (the sync delivery)
	// and held (its async destinations, see StatusHeld).
	Status   Status    `json:"status"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// NextAttemptAt is when a retrying delivery is due; a pending one is
	// due at the record's ReceivedAt (or, made pending by MarkDelivered,
	// at that moment).
	NextAttemptAt time.Time `json:"next_attempt_at,omitempty"`
	Replays       int       `json:"replays,omitempty"`
	// DeadReason says why a dead delivery gets no further attempt.
	DeadReason DeadReason `json:"dead_reason,omitempty"`
	// LeaseOwner and LeaseUntil show the delivery lease of a claimed
	// delivery (see Claim), so two configurations alive during a reload
	// never send the same attempt twice. They are set by the store, never
	// by its callers. A delivery its lease owner has delivered or settled
	// dead shows no lease to any reader.
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	// Lane is the ordering key of a delivery to an ordered destination
	// (its order_by value: a subject, say), empty for an unordered one.
	// Deliveries of one (Destination, Lane) are claimed one at a time in
	// Sequence order (see Claim).
	Lane string `json:"lane,omitempty"`
	// Sequence numbers the deliveries of one (Destination, Lane) from 1 in
	// the order they became pending: Insert numbers a pending delivery
	// (ReceivedAt, then BatchIndex, within one Ingest), MarkDelivered a
	// held one when it makes it pending, since only then is the event
	// accepted (a sync route's released event never is, and must not hold
	// its lane). The store assigns it; zero without a lane, and for a
	// held delivery until then. A reserved (sync) delivery has no lane.
	Sequence uint64 `json:"sequence,omitempty"`
}

// Claimable reports whether d may be claimed when due: pending or
// retrying.
func (d *Delivery) Claimable() bool {
	return d.Status == StatusPending || d.Status == StatusRetrying
}

// Record is one canonical event and its deliveries.
type Record struct {
	Source   string `json:"source"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Type     string `json:"type"`
	// Subject is the canonical event's subject (the id of the customer,
	// order or transaction it is about), empty when the provider gives
	// none. It never changes; both engines index it for Filter.Subject.
	Subject string `json:"subject,omitempty"`
	// Status is the roll-up of Deliveries (see Rollup), kept by the store
	// with every transition; Insert ignores the caller's.
	Status     Status    `json:"status"`
	ReceivedAt time.Time `json:"received_at"`
	// Deliveries are the event's deliveries, one per destination, in the
	// order its route names them. The set is fixed at Insert: a later
	// config change does not rewrite it. None means the event matched no
	// destination (StatusUnmatched).
	Deliveries []Delivery `json:"deliveries"`
	// Event is the canonical event exactly as it is delivered.
	Event json.RawMessage `json:"event,omitempty"`
	// Headers are the provider's request headers, secrets removed.
	Headers http.Header `json:"headers,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the
	// gateway's span for the request that brought the event, empty when
	// the route is not traced: each later delivery attempt and replay is a
	// span of that trace, hours later and on another gateway too.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// BatchIndex and BatchSize place the event in the request it came in;
	// BatchSize is 1 for a single-event request.
	BatchIndex int `json:"batch_index"`
	BatchSize  int `json:"batch_size"`

	// ReservedUntil is when a StatusReserved record stops blocking its
	// keys if it is neither released nor delivered (its process died
	// mid-delivery). Insert sets it; it is also what Release is given to
	// tell this reservation from a newer one.
	ReservedUntil time.Time `json:"reserved_until,omitempty"`

	// Retention is how long the record is kept once settled (delivered,
	// released or unmatched, see Rollup); zero or negative keeps it until
	// purged.
	Retention time.Duration `json:"retention"`

	// DedupKey, when set, decides insert-if-absent instead of the id, for
	// senders that give no event id: the record gets an id of its own and
	// holds (Source, DedupKey) for DedupWindow from its insertion. Within
	// the window a record with the same key is a duplicate of this one;
	// afterwards the key is free and the same content is a new event.
	// (Source, ID) stays unique either way.
	DedupKey string `json:"dedup_key,omitempty"`
	// DedupWindow is how long DedupKey is held; it must be positive when
	// DedupKey is set. A live reservation holds its key until it expires
	// (ReservedUntil), even past the window.
	DedupWindow time.Duration `json:"dedup_window,omitempty"`
}

// Delivery returns the record's delivery to destination, or nil.
func (r *Record) Delivery(destination string) *Delivery {
	for i := range r.Deliveries {
		if r.Deliveries[i].Destination == destination {
			return &r.Deliveries[i]
		}
	}
	return nil
}

// Rollup is a record's status from its deliveries' statuses, the first
// that applies: unmatched (no delivery), reserved (the sync delivery is in
// flight), released (it failed), dead (any delivery dead: an operator must
// look), retrying, pending, delivered (every delivery delivered or
// skipped).
func Rollup(ds []Delivery) Status {
	if len(ds) == 0 {
		return StatusUnmatched
	}
	has := func(s Status) bool {
		for i := range ds {
			if ds[i].Status == s {
				return true
			}
		}
		return false
	}
	for _, s := range []Status{StatusReserved, StatusReleased, StatusDead, StatusRetrying, StatusPending} {
		if has(s) {
			return s
		}
	}
	return StatusDelivered
}

// Settled reports whether a record in status s is done with (delivered,
// released or unmatched): it expires after its Retention.
func Settled(s Status) bool {
	return s == StatusDelivered || s == StatusReleased || s == StatusUnmatched
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
	// Subject matches records whose Subject is exactly this; it is served
	// by an index, so a listing by subject does not scan the store.
	Subject string
	// ID selects the one record (Source, ID); it needs Source (Validate
	// refuses it alone), since ids are unique only within a source.
	ID string
	// Destination matches records with a delivery to this destination;
	// with Status, that delivery's status rather than the record's.
	Destination string
	Status      Status
	From        time.Time // ReceivedAt >= From
	To          time.Time // ReceivedAt < To
	// Cursor continues a previous List; Limit caps the page (default 100,
	// at most 1000). Purge ignores Cursor and treats a positive Limit as
	// the most records to delete in one call.
	Cursor string
	Limit  int
}

// DeadReason is why a record is dead: a fixed set, so that metrics and
// operators can tell the cases apart.
type DeadReason string

const (
	// DeadGone: the backend answered 410 Gone.
	DeadGone DeadReason = "gone"
	// DeadAttemptsExhausted: the last allowed attempt failed.
	DeadAttemptsExhausted DeadReason = "attempts_exhausted"
	// DeadMaxAge: the next attempt would fall after the event's maximum
	// age.
	DeadMaxAge DeadReason = "max_age"
)

// Decision is where a scheduled delivery attempt leaves its record. Build
// one with Delivered, RetryAt or Dead.
type Decision struct {
	// Status is StatusDelivered, StatusRetrying or StatusDead.
	Status Status
	// NextAttemptAt is when a retrying record is due again.
	NextAttemptAt time.Time
	// Reason is why a dead record is dead.
	Reason DeadReason
}

// Delivered is the decision after a 2xx.
func Delivered() Decision { return Decision{Status: StatusDelivered} }

// RetryAt schedules another attempt at t.
func RetryAt(t time.Time) Decision { return Decision{Status: StatusRetrying, NextAttemptAt: t} }

// Dead gives up on the record for reason.
func Dead(reason DeadReason) Decision { return Decision{Status: StatusDead, Reason: reason} }

// Claimed is one delivery a Claim leased: its record (with every delivery)
// and the destination of the leased one.
type Claimed struct {
	Record      *Record
	Destination string
}

// ErrLeaseLost is returned by RecordAttempt when the caller's lease ran out
// and the record was claimed by another owner meanwhile: the attempt is kept
// as history, but the record's state is the new owner's to decide.
var ErrLeaseLost = errors.New("delivery lease lost to another owner")

// Store is the persistence contract of the gateway: one method per state
// change, each a single conditional write in any engine (see doc.go for the
// life cycle). The conformance suite in store/storetest checks an engine
// against it.
type Store interface {
	// Insert atomically stores each record whose (source, id) is absent
	// and, for a record with a DedupKey, whose (source, dedup key) is not
	// held by a record inserted less than its DedupWindow ago: N concurrent
	// Inserts of the same key store it exactly once. A StatusReserved
	// record whose ReservedUntil has passed counts as absent, for its id
	// and its dedup key. A record's deliveries are pending (async
	// delivery), or one is reserved (a sync delivery about to be made;
	// Insert is the reservation, Release or MarkDelivered ends it) and the
	// others held. With durable set, Insert returns only after the write
	// is synced to disk (and a duplicate only once the stored copy is);
	// concurrent durable writes share one sync. Insert fills in defaults
	// on the given records (see PrepareInsert): a delivery's Status
	// pending if empty, the record's Status its Rollup, ReceivedAt now if
	// zero, BatchSize len(Records) if zero, ReservedUntil now plus the
	// store's reservation expiry for a reserved record, and the Sequence
	// of every pending delivery with a Lane: one more than the last its
	// (destination, lane) was given, in the order of the records within
	// one Ingest (a held one gets its own from MarkDelivered).
	Insert(ctx context.Context, in *Ingest, durable bool) ([]InsertResult, error)
	// Get returns one record, or ErrNotFound.
	Get(ctx context.Context, source, id string) (*Record, error)
	// RawBody returns the request body a record came in.
	RawBody(ctx context.Context, source, id string) ([]byte, error)

	// Release ends a reservation whose sync delivery failed, so a retry
	// of the same event can get through: the reserved delivery becomes
	// StatusReleased (its held ones stay held), with failed appended to
	// its attempts when not nil (nil for an event never forwarded), and
	// the record holds neither its id nor its dedup key. An Insert of the
	// same (source, id) takes its place and carries the attempts of each
	// delivery over to the delivery of the same destination; otherwise it
	// expires after its Retention like a delivered record. reservedUntil
	// is the ReservedUntil that Insert set on the reserving record: it
	// tells this reservation from a newer one that took the key over
	// after it expired, which must stay. Releasing an absent, non-reserved
	// or taken-over record does nothing and is not an error.
	Release(ctx context.Context, source, id string, reservedUntil time.Time, failed *Attempt) error
	// MarkDelivered records a sync delivery the backend accepted: the
	// reserved delivery becomes delivered with the attempt appended
	// (numbered after the attempts carried over from a released record),
	// and every held delivery pending, due now (with its lane's next
	// Sequence if it has a Lane), in the same durable write, before it
	// returns. Returns ErrNotFound for an absent record.
	MarkDelivered(ctx context.Context, source, id string, attempt Attempt) error

	// Claim leases up to limit due deliveries whose Destination is among
	// destinations to owner until now+lease, and returns them with their
	// records, the leased delivery's LeaseOwner and LeaseUntil set. A
	// delivery is due when it is pending or retrying, its next attempt is
	// at or before now, no live lease is on it, and, when it has a Lane,
	// every delivery of its (destination, lane) with a smaller Sequence is
	// delivered or skipped (so a dead one parks its lane, and one lane is
	// never delivered two at a time). A delivery of any other destination
	// is never returned, whatever its source. No two owners hold a lease
	// on one delivery at once. The lease ends with RecordAttempt or
	// ReleaseLease, or when it runs out. An implementation may return
	// fewer than limit deliveries per call.
	Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]Claimed, error)
	// RecordAttempt appends a scheduled attempt made under owner's lease
	// to the record's delivery to destination, applies the decision to it
	// and ends the lease, durably. If the lease was lost to another owner
	// the attempt is appended but the state is left alone and ErrLeaseLost
	// is returned; a delivery delivered meanwhile (by a replay) stays
	// delivered. Returns ErrNotFound for an absent record, ErrNoDelivery
	// for an absent delivery.
	RecordAttempt(ctx context.Context, source, id, destination, owner string, attempt Attempt, d Decision) error
	// ReleaseLease gives owner's lease on the delivery to destination back
	// without an attempt, so it is claimable again at once. Releasing a
	// lease owner does not hold does nothing.
	ReleaseLease(ctx context.Context, source, id, destination, owner string) error
	// RecordReplay appends an operator's replay attempt to the record's
	// delivery to destination and counts it; delivered (that destination
	// answered 2xx; a replay sent elsewhere, named in the attempt, is
	// history only) makes the delivery delivered, whatever its status but
	// reserved or held. A replay does not touch the lease: an engine
	// holding one records its own attempt later. Returns the record as
	// stored, ErrNotFound or ErrNoDelivery.
	RecordReplay(ctx context.Context, source, id, destination string, attempt Attempt, delivered bool) (*Record, error)
	// Skip settles a dead delivery as skipped, so the deliveries behind it
	// in its lane go on: an operator's decision that the backend will
	// never get this event. Returns the record as stored, ErrNotFound,
	// ErrNoDelivery, or ErrNotDead for a delivery that is not dead.
	Skip(ctx context.Context, source, id, destination string) (*Record, error)

	// List returns records matching f, newest first, and a cursor for the
	// next page ("" when done).
	List(ctx context.Context, f Filter) ([]*Record, string, error)
	// Counts returns the number of records in each status (every status a
	// record can have, zero or not).
	Counts(ctx context.Context) (map[Status]int, error)
	// DeliveryCounts returns, per destination named by any stored
	// delivery, the number of deliveries in each status (statuses with
	// none left out): a destination's queue depth and dead count for its
	// operator page and metrics.
	DeliveryCounts(ctx context.Context) (map[string]map[Status]int, error)
	// Purge deletes records matching f, with the dedup keys they hold; it
	// returns how many.
	Purge(ctx context.Context, f Filter) (int, error)
	// Close releases the store. It is safe to call more than once.
	Close() error
}

// ErrNotDead is returned by Skip for a delivery that is not dead.
var ErrNotDead = errors.New("delivery is not dead")

// Notifier is implemented by an engine shared between processes: fn is
// called, without blocking, with a destination whenever any process sharing
// the store has committed a delivery to it that became pending (an insert,
// MarkDelivered, or a lane moving on), so that the
// delivery workers of every process wake at once instead of at their next
// poll. The returned func stops the calls.
type Notifier interface {
	Subscribe(fn func(destination string)) (stop func())
}
