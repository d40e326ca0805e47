package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

const recordColumns = `source, id, provider, type, status, received_at, event, headers,
	batch_index, batch_size, attempts, next_attempt_at, replays, dead_reason,
	lease_owner, lease_until, reserved_until, retention_us, dedup_key, dedup_window_us, destination, subject,
	traceparent, tracestate`

// recordColumnsOf is recordColumns qualified by a table alias, for
// statements that join.
func recordColumnsOf(alias string) string {
	cols := strings.Split(recordColumns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// scanRecord reads one row of recordColumns.
func scanRecord(row pgx.Row) (*store.Record, error) {
	var (
		r                      store.Record
		id, event, headers, dk []byte
		status                 string
		attempts               [][]byte
		next, leaseUntil, resv *time.Time
		deadReason, leaseOwner *string
		subject                *string
		parent, state          *string
		retention              int64
		window                 *int64
	)
	err := row.Scan(&r.Source, &id, &r.Provider, &r.Type, &status, &r.ReceivedAt, &event, &headers,
		&r.BatchIndex, &r.BatchSize, &attempts, &next, &r.Replays, &deadReason,
		&leaseOwner, &leaseUntil, &resv, &retention, &dk, &window, &r.Destination, &subject,
		&parent, &state)
	if err != nil {
		return nil, err
	}
	r.ID, r.Status, r.Event = string(id), store.Status(status), event
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &r.Headers); err != nil {
			return nil, fmt.Errorf("headers of %s %s: %w", r.Source, r.ID, err)
		}
	}
	for i, a := range attempts {
		var at store.Attempt
		if err := json.Unmarshal(a, &at); err != nil {
			return nil, fmt.Errorf("attempt %d of %s %s: %w", i+1, r.Source, r.ID, err)
		}
		r.Attempts = append(r.Attempts, at)
	}
	if next != nil {
		r.NextAttemptAt = *next
	}
	if subject != nil {
		r.Subject = *subject
	}
	if parent != nil {
		r.TraceParent = *parent
	}
	if state != nil {
		r.TraceState = *state
	}
	if deadReason != nil {
		r.DeadReason = store.DeadReason(*deadReason)
	}
	if leaseOwner != nil {
		r.LeaseOwner = *leaseOwner
	}
	if leaseUntil != nil {
		r.LeaseUntil = *leaseUntil
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
const live = `(expires_at IS NULL OR expires_at > $3)`

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, source, id string) (*store.Record, error) {
	if err := s.check("get", source, id); err != nil {
		return nil, err
	}
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM events
		WHERE source = $1 AND id = $2 AND `+live, source, []byte(id), s.opts.Now()))
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
		WHERE e.source = $1 AND e.id = $2 AND `+strings.ReplaceAll(live, "expires_at", "e.expires_at"),
		source, []byte(id), s.opts.Now()).Scan(&body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("raw body %s %s: %w", source, id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("raw body %s %s: %w", source, id, err)
	}
	return body, nil
}

// dueAt is the expression of the events_due index: when a pending or
// retrying event is due, its lease aside.
const dueAt = `COALESCE(next_attempt_at, received_at)`

// Claim takes due rows with FOR UPDATE SKIP LOCKED, so claimers of several
// processes never wait for each other and never take one row twice; the
// lease columns then keep the row out of every other claim until the lease
// ends.
var sqlClaim = `UPDATE events e SET lease_owner = $1, lease_until = $2
FROM (SELECT source, id FROM events
	WHERE status IN ('pending', 'retrying') AND ` + dueAt + ` <= $3 AND destination = ANY($4)
		AND (lease_until IS NULL OR lease_until <= $3)
	ORDER BY ` + dueAt + ` LIMIT $5 FOR UPDATE SKIP LOCKED) c
WHERE e.source = c.source AND e.id = c.id
RETURNING ` + recordColumnsOf("e")

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]*store.Record, error) {
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
	rows, err := s.pool.Query(ctx, sqlClaim, owner, now.Add(lease), now, destinations, limit)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Record, error) { return scanRecord(row) })
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return recs, nil
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
		add("source = ?", f.Source)
	}
	if f.ID != "" {
		add("id = ?", []byte(f.ID))
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.Provider != "" {
		add("provider = ?", f.Provider)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.From.IsZero() {
		add("received_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("received_at < ?", f.To)
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
	if f.Cursor != "" {
		at, source, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, at, source, []byte(id))
		n := len(args)
		cond += fmt.Sprintf(" AND (received_at, source, id) < ($%d, $%d, $%d)", n-2, n-1, n)
	}
	args = append(args, limit+1)
	q := `SELECT ` + recordColumns + ` FROM events WHERE ` + cond +
		` ORDER BY received_at DESC, source DESC, id DESC LIMIT $` + strconv.Itoa(len(args))
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
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM events GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("counts: %w", err)
	}
	out := map[store.Status]int{}
	for _, st := range []store.Status{store.StatusReserved, store.StatusPending, store.StatusRetrying, store.StatusDelivered, store.StatusDead, store.StatusReleased} {
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
			SELECT source, id FROM events WHERE `+cond+` LIMIT $`+strconv.Itoa(len(args))+` FOR UPDATE)`, args...)
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
