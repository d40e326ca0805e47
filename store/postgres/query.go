package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// deliveriesJSON is a record's deliveries as one JSON array, in its route's
// order: one column, read in the statement's snapshot with the event.
const deliveriesJSON = `(SELECT json_agg(json_build_object(
	'destination', d.destination, 'status', d.status, 'attempts', d.attempts,
	'next_attempt_at', d.next_attempt_at, 'next_attempt_nanos', d.next_attempt_nanos, 'replays', d.replays, 'dead_reason', d.dead_reason,
	'lease_owner', d.lease_owner, 'lease_until', d.lease_until, 'lane', d.lane, 'sequence', d.sequence)
	ORDER BY d.pos) FROM deliveries d WHERE d.source = e.source AND d.id = e.id)`

// recordColumns are the columns scanRecord reads, of events aliased e.
const recordColumns = `e.source, e.id, e.provider, e.type, e.status, e.received_at, e.event, e.headers,
	e.batch_index, e.batch_size, e.reserved_until, e.retention_us, e.dedup_key, e.dedup_window_us,
	e.subject, e.trace_parent, e.trace_state, ` + deliveriesJSON

// jsonDelivery is one element of deliveriesJSON.
type jsonDelivery struct {
	Destination   string          `json:"destination"`
	Status        string          `json:"status"`
	Attempts      []store.Attempt `json:"attempts"`
	NextAttemptAt *time.Time      `json:"next_attempt_at"`
	NextNanos     int             `json:"next_attempt_nanos"`
	Replays       int             `json:"replays"`
	DeadReason    *string         `json:"dead_reason"`
	LeaseOwner    *string         `json:"lease_owner"`
	LeaseUntil    *time.Time      `json:"lease_until"`
	// Lane is bytea, which JSON shows as \x and its hex digits.
	Lane     *string `json:"lane"`
	Sequence *uint64 `json:"sequence"`
}

func (j *jsonDelivery) delivery() (store.Delivery, error) {
	d := store.Delivery{Destination: j.Destination, Status: store.Status(j.Status), Replays: j.Replays}
	if len(j.Attempts) > 0 {
		d.Attempts = j.Attempts
	}
	if j.NextAttemptAt != nil {
		d.NextAttemptAt = j.NextAttemptAt.Add(time.Duration(j.NextNanos))
	}
	if j.DeadReason != nil {
		d.DeadReason = store.DeadReason(*j.DeadReason)
	}
	if j.LeaseOwner != nil {
		d.LeaseOwner = *j.LeaseOwner
	}
	if j.LeaseUntil != nil {
		d.LeaseUntil = *j.LeaseUntil
	}
	if j.Lane != nil {
		lane, err := hex.DecodeString(strings.TrimPrefix(*j.Lane, `\x`))
		if err != nil {
			return d, fmt.Errorf("lane of the delivery to %s: %w", j.Destination, err)
		}
		d.Lane = string(lane)
	}
	if j.Sequence != nil {
		d.Sequence = *j.Sequence
	}
	return d, nil
}

// scanRecord reads one row of recordColumns, then any extra destinations.
func scanRecord(row pgx.Row, extra ...any) (*store.Record, error) {
	var (
		r                      store.Record
		id, event, headers, dk []byte
		status                 string
		resv                   *time.Time
		subject, tp, ts        *string
		retention              int64
		window                 *int64
		deliveries             []byte
	)
	dest := append([]any{&r.Source, &id, &r.Provider, &r.Type, &status, &r.ReceivedAt, &event, &headers,
		&r.BatchIndex, &r.BatchSize, &resv, &retention, &dk, &window, &subject, &tp, &ts, &deliveries}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	r.ID, r.Status, r.Event = string(id), store.Status(status), event
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &r.Headers); err != nil {
			return nil, fmt.Errorf("headers of %s %s: %w", r.Source, r.ID, err)
		}
	}
	if len(deliveries) > 0 {
		var ds []jsonDelivery
		if err := json.Unmarshal(deliveries, &ds); err != nil {
			return nil, fmt.Errorf("deliveries of %s %s: %w", r.Source, r.ID, err)
		}
		r.Deliveries = make([]store.Delivery, len(ds))
		for i := range ds {
			d, err := ds[i].delivery()
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", r.Source, r.ID, err)
			}
			r.Deliveries[i] = d
		}
	}
	if subject != nil {
		r.Subject = *subject
	}
	if tp != nil {
		r.TraceParent = *tp
	}
	if ts != nil {
		r.TraceState = *ts
	}
	if resv != nil {
		r.ReservedUntil = *resv
	}
	r.Retention = time.Duration(retention) * time.Microsecond
	r.DedupKey = string(dk)
	if window != nil {
		r.DedupWindow = time.Duration(*window) * time.Microsecond
	}
	return &r, nil
}

// A delivered event past its retention is gone, whether or not the sweep
// has deleted it yet.
const live = `(e.expires_at IS NULL OR e.expires_at > $3)`

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, source, id string) (*store.Record, error) {
	if err := s.check("get", source, id); err != nil {
		return nil, err
	}
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM events e
		WHERE e.source = $1 AND e.id = $2 AND `+live, source, []byte(id), s.opts.Now()))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("get %s %s: %w", source, id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get %s %s: %w", source, id, err)
	}
	return r, nil
}

// RawBody implements store.Store.
func (s *Store) RawBody(ctx context.Context, source, id string) ([]byte, error) {
	if err := s.check("raw body", source, id); err != nil {
		return nil, err
	}
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(e.raw_body, b.body) FROM events e LEFT JOIN bodies b ON b.id = e.body_id
		WHERE e.source = $1 AND e.id = $2 AND `+live,
		source, []byte(id), s.opts.Now()).Scan(&body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("raw body %s %s: %w", source, id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("raw body %s %s: %w", source, id, err)
	}
	return body, nil
}

// dueAt is the expression of the deliveries_due index: when a pending or
// retrying delivery is due, its lease aside.
const dueAt = `COALESCE(next_attempt_at, received_at)`

// Claim takes due delivery rows with FOR UPDATE SKIP LOCKED, so claimers of
// several processes never wait for each other and never take one row
// twice; the lease columns then keep the row out of every other claim until
// the lease ends. A laned delivery is looked at only at the head of its lane
// (lane_head, which the inserts and the lanes_moved triggers keep), and
// taken only when no delivery ahead of it holds the lane: neither delivered
// nor skipped, or under a live lease (delivered by a replay while a
// worker's attempt is in flight). The second condition is the first said
// again from the rows themselves, so that no mistake in keeping the heads
// can put two deliveries of a lane in flight: at worst it would stall one.
//
// Each destination is read by its own ordered scan of deliveries_due that
// stops after limit rows: with destination = ANY(...) the index could not
// give the order, and every claim read and sorted the whole due backlog
// (122 ms a claim at 100,000 due deliveries, against 0.06 ms). Of the rows
// locked that way, those beyond limit are left unleased, and their locks
// go with the claim's commit.
//
// The check is a scalar subquery rather than NOT EXISTS, which the planner
// may turn into an anti-join reading every delivery holding a lane: this is
// one probe of deliveries_lane per candidate.
//
// Under READ COMMITTED the lane condition is read in the statement's
// snapshot, which can only be behind: a delivery ahead that turned
// delivered after the snapshot still blocks (the next claim takes the one
// behind it), and nothing ahead can start blocking again, since a delivered
// or skipped delivery is never claimed and sequence numbers are given in
// commit order. The row's own condition (status, lease) is checked again on
// its newest version when the row lock is taken, so of two claimers that
// both see the new head only one leases it.
var sqlClaim = `WITH c AS (
	UPDATE deliveries d SET lease_owner = $1, lease_until = $2
	FROM (SELECT k.source, k.id, k.destination FROM unnest($4::text[]) AS dst(name),
		LATERAL (SELECT source, id, destination, ` + dueAt + ` AS due FROM deliveries x
			WHERE status IN ('pending', 'retrying') AND (lane IS NULL OR lane_head)
				AND destination = dst.name AND ` + dueAt + ` <= $3
				AND (lease_until IS NULL OR lease_until <= $3)
				AND (NOT lane_hold OR (SELECT 1 FROM deliveries p
					WHERE p.lane_hold AND p.destination = x.destination AND p.lane = x.lane AND p.sequence < x.sequence
						AND (p.status NOT IN ('delivered', 'skipped') OR p.lease_until > $3) LIMIT 1) IS NULL)
			ORDER BY ` + dueAt + ` LIMIT $5 FOR UPDATE SKIP LOCKED) k
		ORDER BY k.due LIMIT $5) k
	WHERE d.source = k.source AND d.id = k.id AND d.destination = k.destination
	RETURNING d.source, d.id, d.destination)
SELECT ` + recordColumns + `, c.destination FROM c JOIN events e ON e.source = c.source AND e.id = c.id`

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]store.Claimed, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, errors.New("claim: empty lease owner")
	}
	if limit <= 0 || len(destinations) == 0 {
		return nil, nil
	}
	for _, d := range destinations {
		if err := store.ValidateDestination(d); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
	}
	now = now.Truncate(time.Microsecond)
	until := now.Add(lease)
	// The claim commits with its WAL flushed, like every write: a lease
	// lost to a crash of the database server would let another gateway
	// send the delivery again while this one is sending it.
	rows, err := s.pool.Query(ctx, sqlClaim, owner, until, now, destinations, limit)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Claimed, error) {
		var c store.Claimed
		r, err := scanRecord(row, &c.Destination)
		if err != nil {
			return c, err
		}
		// The record was read in the snapshot before the lease was set.
		if d := r.Delivery(c.Destination); d != nil {
			d.LeaseOwner, d.LeaseUntil = owner, until
		}
		c.Record = r
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return out, nil
}

// where builds the WHERE clause of a filter, its arguments numbered from
// len(args)+1.
func where(f store.Filter, args []any) (string, []any) {
	var conds []string
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Source != "" {
		add("e.source = ?", f.Source)
	}
	if f.ID != "" {
		add("e.id = ?", []byte(f.ID))
	}
	if f.Subject != "" {
		add("e.subject = ?", f.Subject)
	}
	if f.Provider != "" {
		add("e.provider = ?", f.Provider)
	}
	if f.Type != "" {
		add("e.type = ?", f.Type)
	}
	switch {
	case f.Destination != "" && f.Status != "":
		// The status of that destination's delivery, not the record's.
		args = append(args, f.Destination, string(f.Status))
		conds = append(conds, fmt.Sprintf(`EXISTS (SELECT 1 FROM deliveries d WHERE d.source = e.source AND d.id = e.id
			AND d.destination = $%d AND d.status = $%d)`, len(args)-1, len(args)))
	case f.Destination != "":
		add("EXISTS (SELECT 1 FROM deliveries d WHERE d.source = e.source AND d.id = e.id AND d.destination = ?)", f.Destination)
	case f.Status != "":
		add("e.status = ?", string(f.Status))
	}
	if !f.From.IsZero() {
		add("e.received_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("e.received_at < ?", f.To)
	}
	if len(conds) == 0 {
		return "true", args
	}
	return strings.Join(conds, " AND "), args
}

// List implements store.Store: newest first by (received_at, source, id),
// the order of the events_received index, which a cursor continues.
func (s *Store) List(ctx context.Context, f store.Filter) ([]*store.Record, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	if err := s.enter(); err != nil {
		return nil, "", err
	}
	limit := f.PageSize()
	cond, args := where(f, nil)
	// An event past its retention is gone, swept or not.
	args = append(args, s.opts.Now())
	cond += fmt.Sprintf(" AND (e.expires_at IS NULL OR e.expires_at > $%d)", len(args))
	if f.Cursor != "" {
		at, source, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, source, []byte(id))
		n := len(args)
		cond += fmt.Sprintf(" AND (e.received_at, e.source, e.id) < ($%d, $%d, $%d)", n-2, n-1, n)
	}
	args = append(args, limit+1)
	q := `SELECT ` + recordColumns + ` FROM events e WHERE ` + cond +
		` ORDER BY e.received_at DESC, e.source DESC, e.id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		last := recs[limit-1]
		next = encodeCursor(last.ReceivedAt, last.Source, last.ID)
	}
	return recs, next, nil
}

// A cursor is the position of the last record of a page: its received_at
// in microseconds, the length of its source, its source and its id.
func encodeCursor(at time.Time, source, id string) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(at.UnixMicro()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(source)))
	b = append(b, source...)
	b = append(b, id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string) (time.Time, string, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 12 {
		return time.Time{}, "", "", store.ErrInvalidCursor
	}
	at := time.UnixMicro(int64(binary.BigEndian.Uint64(b)))
	n := binary.BigEndian.Uint32(b[8:])
	rest := b[12:]
	if uint64(n) >= uint64(len(rest)) {
		return time.Time{}, "", "", store.ErrInvalidCursor
	}
	return at, string(rest[:n]), string(rest[n:]), nil
}

// Counts implements store.Store, from an index-only scan of
// events_status_received.
func (s *Store) Counts(ctx context.Context) (map[store.Status]int, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	// Events past their retention that the sweep has not deleted yet are
	// gone for every reader: counted by their own index and taken off.
	rows, err := s.pool.Query(ctx, `SELECT status, sum(n)::bigint FROM (
		SELECT status, count(*) AS n FROM events GROUP BY status
		UNION ALL
		SELECT status, -count(*) FROM events WHERE expires_at <= $1 GROUP BY status) c
		GROUP BY status`, s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	out := map[store.Status]int{}
	for _, st := range []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered,
		store.StatusDead, store.StatusReleased, store.StatusUnmatched} {
		out[st] = 0
	}
	var st string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[store.Status(st)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	return out, nil
}

// DeliveryCounts implements store.Store, from an index-only scan of
// deliveries_destination_status.
func (s *Store) DeliveryCounts(ctx context.Context) (map[string]map[store.Status]int, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT destination, status, sum(n)::bigint FROM (
		SELECT destination, status, count(*) AS n FROM deliveries GROUP BY destination, status
		UNION ALL
		SELECT d.destination, d.status, -count(*) FROM events e JOIN deliveries d ON d.source = e.source AND d.id = e.id
			WHERE e.expires_at <= $1 GROUP BY d.destination, d.status) c
		GROUP BY destination, status HAVING sum(n) > 0`, s.opts.Now())
	if err != nil {
		return nil, fmt.Errorf("delivery counts: %w", err)
	}
	out := map[string]map[store.Status]int{}
	var dest, st string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&dest, &st, &n}, func() error {
		if out[dest] == nil {
			out[dest] = map[store.Status]int{}
		}
		out[dest][store.Status(st)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delivery counts: %w", err)
	}
	return out, nil
}

// purgeBatch bounds one delete of Purge, so a purge of millions of events
// never holds millions of row locks in one transaction.
const purgeBatch = 1000

// Purge implements store.Store, in batches of at most purgeBatch rows; the
// dedup keys and bodies go with their events (the events_deleted trigger).
func (s *Store) Purge(ctx context.Context, f store.Filter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	total := 0
	for {
		batch := purgeBatch
		if f.Limit > 0 {
			batch = min(batch, f.Limit-total)
		}
		cond, args := where(f, nil)
		args = append(args, batch)
		tag, err := s.pool.Exec(ctx, `DELETE FROM events WHERE (source, id) IN (
			SELECT e.source, e.id FROM events e WHERE `+cond+` LIMIT $`+strconv.Itoa(len(args))+` FOR UPDATE)`, args...)
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < batch || (f.Limit > 0 && total >= f.Limit) {
			return total, nil
		}
	}
}
