package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

const (
	// maxGroupRecords bounds the records of one group commit, so one
	// transaction stays short however deep the queue.
	maxGroupRecords = 2048
	// notifyChannel is the LISTEN/NOTIFY channel of new pending events
	// (of the default schema; see channelFor); the payload is the event's
	// destination.
	notifyChannel = "webhook_gateway_events"
)

// sqlInsertFast stores a single-event request without a dedup key, the
// common case, in one statement, its raw body inline. No row back means the
// id is taken (or held by an expired reservation or delivered event, which
// insert_event then replaces), and the record goes the insert_event way.
const sqlInsertFast = `INSERT INTO events (source, id, provider, type, status, received_at, event, headers,
	raw_body, batch_index, batch_size, next_attempt_at, reserved_until, retention_us, expires_at, destination, subject,
	traceparent, tracestate)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
	ON CONFLICT DO NOTHING RETURNING true`

// sqlInsertEvent inserts one record of a request whose body is shared
// (bodies, at the sequence's current value); sqlInsertEventInline one
// whose body is inline.
const (
	sqlInsertEvent = `SELECT inserted, existing_status, existing_id FROM insert_event(
	$1, $2, $3, $4, $5, $6, $7, $8, NULL, currval('bodies_id_seq'), $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`
	sqlInsertEventInline = `SELECT inserted, existing_status, existing_id FROM insert_event(
	$1, $2, $3, $4, $5, $6, $7, $8, $22, NULL, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`
)

// sqlInsertBody stores a shared body if any record of its request was
// stored.
const sqlInsertBody = `INSERT INTO bodies (id, body) SELECT currval('bodies_id_seq'), $1::bytea
	WHERE EXISTS (SELECT 1 FROM events WHERE body_id = currval('bodies_id_seq'))`

// insertReq is one Insert in a group commit.
type insertReq struct {
	in  *store.Ingest
	now time.Time
	res []store.InsertResult
}

func newInserter(s *Store) *grouper[*insertReq] {
	return newGrouper(&s.stats, maxGroupRecords, func(r *insertReq) int { return len(r.in.Records) }, s.writeInserts)
}

// writeInserts writes a group of Inserts in one transaction.
func (s *Store) writeInserts(ctx context.Context, group []*insertReq) error {
	results := make([][]store.InsertResult, len(group))
	var again []slot // fast inserts that found the id taken
	err := s.insertBatch(ctx, group, func(b *pgx.Batch, r *insertReq, gi int) func(pgx.BatchResults) error {
		results[gi] = make([]store.InsertResult, len(r.in.Records))
		res := results[gi]
		if fast(r.in) {
			rec := r.in.Records[0]
			b.Queue(sqlInsertFast, fastArgs(rec, r.in.RawBody, r.now)...)
			return func(br pgx.BatchResults) error {
				err := br.QueryRow().Scan(&res[0].Inserted)
				if errors.Is(err, pgx.ErrNoRows) {
					again = append(again, slot{gi, 0})
					return nil
				}
				return err
			}
		}
		b.Queue("SELECT nextval('bodies_id_seq')")
		for _, rec := range r.in.Records {
			b.Queue(sqlInsertEvent, insertArgs(rec, r.now)...)
		}
		b.Queue(sqlInsertBody, r.in.RawBody)
		return func(br pgx.BatchResults) error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			for i := range r.in.Records {
				if err := scanResult(br.QueryRow(), &res[i]); err != nil {
					return err
				}
			}
			_, err := br.Exec()
			return err
		}
	})
	if err == nil && len(again) > 0 {
		err = s.insertAgain(ctx, group, again, results)
	}
	if err != nil {
		return fmt.Errorf("group commit of %d requests: %w", len(group), err)
	}
	for gi, r := range group {
		r.res = results[gi]
	}
	return nil
}

// slot is one record of a group: request gi, record i.
type slot struct{ gi, i int }

// insertAgain runs insert_event for the single-event requests whose fast
// insert found the id taken: it replaces an expired holder, or tells the
// status of the live one.
func (s *Store) insertAgain(ctx context.Context, group []*insertReq, again []slot, results [][]store.InsertResult) error {
	sub := make([]*insertReq, len(again))
	for k, sl := range again {
		sub[k] = group[sl.gi]
	}
	return s.insertBatch(ctx, sub, func(b *pgx.Batch, r *insertReq, k int) func(pgx.BatchResults) error {
		b.Queue(sqlInsertEventInline, append(insertArgs(r.in.Records[0], r.now), r.in.RawBody)...)
		res := &results[again[k].gi][0]
		return func(br pgx.BatchResults) error { return scanResult(br.QueryRow(), res) }
	})
}

// insertBatch sends one pipelined batch, an implicit transaction: queue adds the
// statements of each request and returns how to read their results; a
// NOTIFY per destination with new pending events follows, delivered to every
// process at commit.
func (s *Store) insertBatch(ctx context.Context, group []*insertReq, queue func(*pgx.Batch, *insertReq, int) func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	reads := make([]func(pgx.BatchResults) error, len(group))
	dests := map[string]bool{}
	for gi, r := range group {
		reads[gi] = queue(b, r, gi)
		for _, rec := range r.in.Records {
			if rec.Status == store.StatusPending || rec.Status == store.StatusRetrying {
				dests[rec.Destination] = true
			}
		}
	}
	for dest := range dests {
		b.Queue("SELECT pg_notify($1, $2)", s.notify.channel, dest)
	}
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		for _, read := range reads {
			if err := read(br); err != nil {
				return err
			}
		}
		for range dests {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	// Close reports the commit's outcome: the results read are only true
	// once it succeeds.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func scanResult(row pgx.Row, res *store.InsertResult) error {
	var st *string
	var id []byte
	if err := row.Scan(&res.Inserted, &st, &id); err != nil {
		return err
	}
	if !res.Inserted {
		res.ExistingID = string(id)
		if st != nil {
			res.Existing = store.Status(*st)
		}
	}
	return nil
}

// fast reports whether a request takes the one-statement insert.
func fast(in *store.Ingest) bool { return len(in.Records) == 1 && in.Records[0].DedupKey == "" }

func fastArgs(r *store.Record, body []byte, now time.Time) []any {
	a := insertArgs(r, now)
	// insertArgs' order, the dedup key and window and now left out.
	return []any{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], body, a[8], a[9], a[10], a[11], a[12], a[13], a[17], a[18], a[19], a[20]}
}

func insertArgs(r *store.Record, now time.Time) []any {
	var headers []byte
	if len(r.Headers) > 0 {
		headers, _ = json.Marshal(r.Headers) // an http.Header always encodes
	}
	var key []byte
	var window any
	if r.DedupKey != "" {
		key = []byte(r.DedupKey)
		window = r.DedupWindow.Microseconds()
	}
	var expires any
	if r.Status == store.StatusDelivered && r.Retention > 0 {
		expires = now.Add(r.Retention)
	}
	return []any{
		r.Source, []byte(r.ID), r.Provider, r.Type, string(r.Status),
		r.ReceivedAt, []byte(r.Event), headers,
		r.BatchIndex, r.BatchSize, timeOrNil(r.NextAttemptAt), timeOrNil(r.ReservedUntil),
		retentionUS(r.Retention), expires, key, window, now, r.Destination, subjectOrNil(r.Subject),
		stringOrNil(r.TraceParent), stringOrNil(r.TraceState),
	}
}

// stringOrNil is NULL for an empty string: an event of an untraced route
// has no trace context.
func stringOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// subjectOrNil is NULL for a record without a subject, which keeps it out
// of the events_subject_received index.
func subjectOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func retentionUS(d time.Duration) int64 { return max(d.Microseconds(), 0) }

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Insert implements store.Store. Every insert is durable (synchronous_commit
// is on for the whole store); durable=false only tells that the caller would
// accept less.
func (s *Store) Insert(ctx context.Context, in *store.Ingest, durable bool) ([]store.InsertResult, error) {
	now := s.microNow()
	if err := store.PrepareInsert(in, now); err != nil {
		return nil, err
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	for _, r := range in.Records {
		if r.Status == store.StatusReserved {
			r.ReservedUntil = now.Add(s.opts.ReservationExpiry)
		}
	}
	req := &insertReq{in: in, now: now}
	if err := s.ins.do(ctx, s.closed, req); err != nil {
		// After a timeout the group commits or not without this caller;
		// an error acknowledges nothing, and a retry is answered as a
		// duplicate.
		return nil, fmt.Errorf("insert: %w", err)
	}
	return req.res, nil
}

// microNow is the store's time now at PostgreSQL's precision, so a time the
// store hands out (ReservedUntil, LeaseUntil) compares equal to what it
// stored.
func (s *Store) microNow() time.Time { return s.opts.Now().Truncate(time.Microsecond) }
