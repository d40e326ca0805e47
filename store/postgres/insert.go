package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

const (
	// committers is how many group commits may be in flight at once: while
	// one waits for its WAL flush, the next gathers the requests arriving
	// meanwhile.
	committers = 4
	// maxGroupRecords bounds the records of one group commit, so one
	// transaction stays short however deep the queue.
	maxGroupRecords = 2048
	// commitTimeout bounds one group commit; it is not tied to any one
	// caller, since the group serves them all.
	commitTimeout = 30 * time.Second
	// notifyChannel is the LISTEN/NOTIFY channel of new pending events;
	// the payload is the event's source.
	notifyChannel = "webhook_gateway_events"
)

const sqlInsertEvent = `SELECT inserted, existing_status, existing_id FROM insert_event(
	$1, $2, $3, $4, $5, $6, $7, $8, currval('bodies_id_seq'), $9, $10, $11, $12, $13, $14, $15, $16, $17)`

const sqlInsertBody = `INSERT INTO bodies (id, body) SELECT currval('bodies_id_seq'), $1::bytea
	WHERE EXISTS (SELECT 1 FROM events WHERE body_id = currval('bodies_id_seq'))`

// insertReq is one Insert waiting for its group commit.
type insertReq struct {
	in   *store.Ingest
	now  time.Time
	res  []store.InsertResult
	err  error
	done chan struct{}
}

// inserter gathers concurrent Inserts into group commits: each committer
// takes one waiting request, then every other one already waiting, and
// sends them as one pipelined batch, which PostgreSQL runs as one implicit
// transaction: one round trip and one WAL flush for the whole group.
type inserter struct {
	s    *Store
	reqs chan *insertReq // unbuffered: a request is either taken or refused
	quit chan struct{}
	wg   sync.WaitGroup

	commits, requests, records atomic.Uint64
}

func newInserter(s *Store) *inserter {
	w := &inserter{s: s, reqs: make(chan *insertReq), quit: make(chan struct{})}
	for range committers {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

func (w *inserter) stop() {
	close(w.quit)
	w.wg.Wait()
}

func (w *inserter) run() {
	defer w.wg.Done()
	for {
		var first *insertReq
		select {
		case first = <-w.reqs:
		case <-w.quit:
			return
		}
		group := []*insertReq{first}
		n := len(first.in.Records)
	gather:
		for n < maxGroupRecords {
			select {
			case r := <-w.reqs:
				group = append(group, r)
				n += len(r.in.Records)
			default:
				break gather
			}
		}
		w.commit(group)
	}
}

// commit writes a group. If the group fails for anything but the
// connection, each request is tried alone, so one bad request does not fail
// the others.
func (w *inserter) commit(group []*insertReq) {
	err := w.try(group)
	if err != nil && len(group) > 1 && !isConnError(err) {
		for _, r := range group {
			r.err = w.try([]*insertReq{r})
			close(r.done)
		}
		return
	}
	for _, r := range group {
		r.err = err
		close(r.done)
	}
}

// try sends a group, again after a deadlock with another process's group
// (the server aborts one of the two).
func (w *inserter) try(group []*insertReq) error {
	var err error
	for range 3 {
		if err = w.send(group); !isRetryable(err) {
			return err
		}
	}
	return err
}

func (w *inserter) send(group []*insertReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	b := &pgx.Batch{}
	sources := map[string]bool{}
	for _, r := range group {
		b.Queue("SELECT nextval('bodies_id_seq')")
		for _, rec := range r.in.Records {
			b.Queue(sqlInsertEvent, insertArgs(rec, r.now)...)
			if rec.Status == store.StatusPending || rec.Status == store.StatusRetrying {
				sources[rec.Source] = true
			}
		}
		b.Queue(sqlInsertBody, r.in.RawBody)
	}
	for src := range sources {
		// Delivered at commit, to the workers of every process.
		b.Queue("SELECT pg_notify($1, $2)", notifyChannel, src)
	}
	br := w.s.pool.SendBatch(ctx, b)
	results := make([][]store.InsertResult, len(group))
	err := func() error {
		for gi, r := range group {
			if _, err := br.Exec(); err != nil {
				return err
			}
			res := make([]store.InsertResult, len(r.in.Records))
			for i := range r.in.Records {
				var st *string
				var id []byte
				if err := br.QueryRow().Scan(&res[i].Inserted, &st, &id); err != nil {
					return err
				}
				if !res[i].Inserted {
					res[i].ExistingID = string(id)
					if st != nil {
						res[i].Existing = store.Status(*st)
					}
				}
			}
			if _, err := br.Exec(); err != nil {
				return err
			}
			results[gi] = res
		}
		for range sources {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		return nil
	}()
	// Close reports the commit's outcome: the results above are only
	// true once it succeeds.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("group commit of %d requests: %w", len(group), err)
	}
	w.commits.Add(1)
	w.requests.Add(uint64(len(group)))
	for gi, r := range group {
		r.res = results[gi]
		w.records.Add(uint64(len(r.in.Records)))
	}
	return nil
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
		retentionUS(r.Retention), expires, key, window, now,
	}
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
	if in == nil || len(in.Records) == 0 {
		return nil, errors.New("insert: no records")
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	now := microNow()
	n := len(in.Records)
	for i, r := range in.Records {
		if r == nil {
			return nil, fmt.Errorf("insert: record %d is nil", i)
		}
		if err := store.ValidateKey(r.Source, r.ID); err != nil {
			return nil, fmt.Errorf("insert: record %d: %w", i, err)
		}
		if r.DedupKey != "" {
			if err := store.ValidateDedupKey(r.Source, r.DedupKey, r.DedupWindow); err != nil {
				return nil, fmt.Errorf("insert: record %d (%s %s): %w", i, r.Source, r.ID, err)
			}
		}
		if r.Status == "" {
			r.Status = store.StatusPending
		}
		if !store.ValidStatus(r.Status) {
			return nil, fmt.Errorf("insert: record %d (%s %s): unknown status %q", i, r.Source, r.ID, r.Status)
		}
		if r.ReceivedAt.IsZero() {
			r.ReceivedAt = now
		}
		if r.BatchSize == 0 {
			r.BatchSize = n
		}
		if r.Status == store.StatusReserved {
			r.ReservedUntil = now.Add(s.opts.ReservationExpiry)
		}
	}
	req := &insertReq{in: in, now: now, done: make(chan struct{})}
	select {
	case s.ins.reqs <- req:
	case <-s.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("insert: %w", ctx.Err())
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		// The group commits or not without this caller; an error here
		// acknowledges nothing, and a retry is answered as a duplicate.
		return nil, fmt.Errorf("insert: %w", ctx.Err())
	}
	if req.err != nil {
		return nil, fmt.Errorf("insert: %w", req.err)
	}
	return req.res, nil
}

// microNow is the time now at PostgreSQL's precision, so a time the store
// hands out (ReservedUntil, LeaseUntil) compares equal to what it stored.
func microNow() time.Time { return time.Now().Truncate(time.Microsecond) }

// isConnError reports whether err is the connection failing rather than a
// statement: retrying the requests one by one would only fail them again.
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr)
}

// isRetryable reports a deadlock or serialization failure, which the server
// resolves by aborting one transaction that can simply run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
