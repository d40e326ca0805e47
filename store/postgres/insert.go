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
// common case, in one statement, its raw body inline, its deliveries beside
// it (none of them laned: see fast).
// No row back means the id is taken (or held by an expired reservation,
// a released record or an expired settled event, which insert_event then
// replaces), and the record goes the insert_event way.
const sqlInsertFast = `WITH e AS (
	INSERT INTO events (source, id, provider, type, subject, status, received_at, event, headers,
		raw_body, batch_index, batch_size, trace_parent, trace_state, reserved_until, retention_us, expires_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
	ON CONFLICT DO NOTHING RETURNING source, id, received_at),
ins AS (
	INSERT INTO deliveries (source, id, destination, pos, status, received_at)
	SELECT e.source, e.id, t.destination, (t.pos - 1)::smallint, t.status, e.received_at
	FROM e, unnest($18::text[], $19::text[]) WITH ORDINALITY AS t(destination, status, pos))
SELECT true FROM e`

// sqlInsertEvent inserts one record of a request whose body is shared
// (bodies, at the sequence's current value); sqlInsertEventInline one
// whose body is inline.
const (
	sqlInsertEvent = `SELECT inserted, existing_status, existing_id, sequences FROM insert_event(
	$1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, currval('bodies_id_seq'), $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`
	sqlInsertEventInline = `SELECT inserted, existing_status, existing_id, sequences FROM insert_event(
	$1, $2, $3, $4, $5, $6, $7, $8, $9, $23, NULL, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`
)

// sqlInsertBody stores a shared body if any record of its request was
// stored.
// currval is volatile: compared with it directly, body_id could not be
// looked up in events_body, and every batch would scan the table; the
// scalar subquery is computed once, and the index takes its value.
const sqlInsertBody = `INSERT INTO bodies (id, body) SELECT currval('bodies_id_seq'), $1::bytea
	WHERE EXISTS (SELECT 1 FROM events WHERE body_id = (SELECT currval('bodies_id_seq')))`

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
		if len(r.in.Records) == 1 {
			// A single event keeps its body inline, as on the fast way.
			rec := r.in.Records[0]
			b.Queue(sqlInsertEventInline, append(insertArgs(rec, r.now), r.in.RawBody)...)
			return func(br pgx.BatchResults) error { return scanResult(br.QueryRow(), rec, &res[0]) }
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
			for i, rec := range r.in.Records {
				if err := scanResult(br.QueryRow(), rec, &res[i]); err != nil {
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
		return func(br pgx.BatchResults) error { return scanResult(br.QueryRow(), r.in.Records[0], res) }
	})
}

// insertBatch sends one pipelined batch, an implicit transaction: queue adds the
// statements of each request and returns how to read their results; a
// NOTIFY per destination with new pending events follows, delivered to every
// process at commit.
func (s *Store) insertBatch(ctx context.Context, group []*insertReq, queue func(*pgx.Batch, *insertReq, int) func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	locks := queueLaneLocks(b, group)
	reads := make([]func(pgx.BatchResults) error, len(group))
	dests := map[string]bool{}
	for gi, r := range group {
		reads[gi] = queue(b, r, gi)
		for _, rec := range r.in.Records {
			for _, d := range rec.Deliveries {
				if d.Status == store.StatusPending {
					dests[d.Destination] = true
				}
			}
		}
	}
	for dest := range dests {
		b.Queue("SELECT pg_notify($1, $2)", s.notify.channel, dest)
	}
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		for range locks {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
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

// The lanes a group numbers deliveries in are locked at its start, in one
// order (absent rows made first, at 0), so that two groups numbering in the
// same lanes wait for each other instead of deadlocking, whatever the order
// of their records.
const (
	sqlMakeLanes = `INSERT INTO lanes (destination, lane, last)
	SELECT k.destination, k.lane, 0 FROM unnest($1::text[], $2::bytea[]) AS k(destination, lane)
	ORDER BY k.destination, k.lane
	ON CONFLICT DO NOTHING`
	sqlLockLanes = `SELECT 1 FROM lanes l JOIN unnest($1::text[], $2::bytea[]) AS k(destination, lane)
	ON l.destination = k.destination AND l.lane = k.lane
	ORDER BY l.destination, l.lane FOR UPDATE OF l`
)

// queueLaneLocks queues the locking of the lanes of group's pending laned
// deliveries, if any, and returns the statements queued.
func queueLaneLocks(b *pgx.Batch, group []*insertReq) []string {
	type key struct{ dest, lane string }
	seen := map[key]bool{}
	var keys []key
	for _, r := range group {
		for _, rec := range r.in.Records {
			for _, d := range rec.Deliveries {
				k := key{d.Destination, d.Lane}
				if d.Lane != "" && d.Status == store.StatusPending && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) < 2 && len(group) < 2 {
		return nil // one request in one lane: nothing to order
	}
	if len(keys) == 0 {
		return nil
	}
	dests := make([]string, len(keys))
	lanes := make([][]byte, len(keys))
	for i, k := range keys {
		dests[i], lanes[i] = k.dest, []byte(k.lane)
	}
	b.Queue(sqlMakeLanes, dests, lanes)
	b.Queue(sqlLockLanes, dests, lanes)
	return []string{sqlMakeLanes, sqlLockLanes}
}

func scanResult(row pgx.Row, rec *store.Record, res *store.InsertResult) error {
	var st *string
	var id []byte
	var seqs []*int64
	if err := row.Scan(&res.Inserted, &st, &id, &seqs); err != nil {
		return err
	}
	if !res.Inserted {
		res.ExistingID = string(id)
		if st != nil {
			res.Existing = store.Status(*st)
		}
		return nil
	}
	setSequences(rec, seqs)
	return nil
}

// setSequences gives the caller's record the sequence numbers its laned
// deliveries were stored with.
func setSequences(rec *store.Record, seqs []*int64) {
	for i, n := range seqs {
		if i < len(rec.Deliveries) && n != nil {
			rec.Deliveries[i].Sequence = uint64(*n)
		}
	}
}

// fast reports whether a request takes the one-statement insert: a single
// record without a dedup key or a lane. A laned delivery goes through
// insert_deliveries, which decides whether it heads its lane in a statement
// of its own, after the lane's row is locked.
func fast(in *store.Ingest) bool {
	if len(in.Records) != 1 || in.Records[0].DedupKey != "" {
		return false
	}
	for _, d := range in.Records[0].Deliveries {
		if d.Lane != "" {
			return false
		}
	}
	return true
}

func fastArgs(r *store.Record, body []byte, now time.Time) []any {
	a := insertArgs(r, now)
	// insertArgs' order, the dedup key and window and now left out.
	return []any{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], body, a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[19], a[20]}
}

// insertArgs are the arguments of insert_event from p_source to
// p_lanes, the raw body and the body id left out.
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
	if store.Settled(r.Status) && r.Retention > 0 {
		expires = now.Add(r.Retention)
	}
	dests := make([]string, len(r.Deliveries))
	statuses := make([]string, len(r.Deliveries))
	lanes := make([][]byte, len(r.Deliveries))
	for i, d := range r.Deliveries {
		dests[i], statuses[i] = d.Destination, string(d.Status)
		if d.Lane != "" {
			lanes[i] = []byte(d.Lane)
		}
	}
	return []any{
		r.Source, []byte(r.ID), r.Provider, r.Type, subjectOrNil(r.Subject), string(r.Status),
		r.ReceivedAt, []byte(r.Event), headers,
		r.BatchIndex, r.BatchSize, textOrNil(r.TraceParent), textOrNil(r.TraceState), timeOrNil(r.ReservedUntil),
		retentionUS(r.Retention), expires, key, window, now, dests, statuses, lanes,
	}
}

// textOrNil stores an empty string as NULL.
func textOrNil(s string) any {
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
