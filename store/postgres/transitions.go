package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Each transition of the life cycle (store/doc.go) is one call of a
// server-side function (migrations/001_store.sql): one round trip, one
// transaction that locks the event's row, updates the delivery and rewrites
// the event's rolled-up status, so no lock is held across round trips and
// the transitions of one event's several deliveries never interleave.

// Codes the transition functions answer with.
const (
	codeDone       = 0
	codeNotFound   = 1
	codeNoDelivery = 2
	codeLeaseLost  = 3
	codeNotDead    = 4
)

// codeErr is the store's error for a transition function's code.
func codeErr(code int) error {
	switch code {
	case codeDone:
		return nil
	case codeNotFound:
		return store.ErrNotFound
	case codeNoDelivery:
		return store.ErrNoDelivery
	case codeLeaseLost:
		return store.ErrLeaseLost
	case codeNotDead:
		return store.ErrNotDead
	}
	return fmt.Errorf("transition answered unknown code %d", code)
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, source, id string, reservedUntil time.Time, failed *store.Attempt) error {
	if err := s.check("release", source, id); err != nil {
		return err
	}
	if reservedUntil.IsZero() {
		return nil // no reservation carries a zero expiry
	}
	var a *string
	if failed != nil {
		b, err := json.Marshal(failed)
		if err != nil {
			return fmt.Errorf("release %s %s: %w", source, id, err)
		}
		str := string(b)
		a = &str
	}
	if _, err := s.pool.Exec(ctx, `SELECT release_event($1, $2, $3, $4, $5)`,
		source, []byte(id), reservedUntil, a, s.microNow()); err != nil {
		return fmt.Errorf("release %s %s: %w", source, id, err)
	}
	return nil
}

// MarkDelivered implements store.Store.
func (s *Store) MarkDelivered(ctx context.Context, source, id string, attempt store.Attempt) error {
	if err := s.check("mark delivered", source, id); err != nil {
		return err
	}
	a, err := json.Marshal(attempt)
	if err != nil {
		return fmt.Errorf("mark delivered %s %s: %w", source, id, err)
	}
	var code int
	if err := s.pool.QueryRow(ctx, `SELECT mark_delivered($1, $2, $3, $4, $5)`,
		source, []byte(id), string(a), s.microNow(), s.notify.channel).Scan(&code); err != nil {
		return fmt.Errorf("mark delivered %s %s: %w", source, id, err)
	}
	if err := codeErr(code); err != nil {
		return fmt.Errorf("mark delivered %s %s: %w", source, id, err)
	}
	return nil
}

// attemptReq is one RecordAttempt in a group commit.
type attemptReq struct {
	source, id, destination string
	args                    []any
	// code is the answer of record_attempt.
	code int
}

// maxGroupAttempts bounds the attempts of one group commit.
const maxGroupAttempts = 256

// newAttempter groups the RecordAttempts of concurrent delivery workers
// into shared commits, as Inserts are: each is durable before it returns,
// and many share one WAL flush.
func newAttempter(s *Store) *grouper[*attemptReq] {
	return newGrouper(&s.stats, maxGroupAttempts, func(*attemptReq) int { return 1 }, s.writeAttempts)
}

const sqlRecordAttempt = `SELECT record_attempt($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

// writeAttempts writes a group of attempts in one transaction, in key
// order: each locks its event's row, and two processes' groups locking the
// same rows in the same order wait for each other instead of deadlocking.
func (s *Store) writeAttempts(ctx context.Context, group []*attemptReq) error {
	sorted := slices.Clone(group)
	slices.SortFunc(sorted, func(a, b *attemptReq) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.id, b.id), cmp.Compare(a.destination, b.destination))
	})
	b := &pgx.Batch{}
	for _, r := range sorted {
		b.Queue(sqlRecordAttempt, r.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		for _, r := range sorted {
			if err := br.QueryRow().Scan(&r.code); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// RecordAttempt implements store.Store.
func (s *Store) RecordAttempt(ctx context.Context, source, id, destination, owner string, attempt store.Attempt, d store.Decision) error {
	if err := s.checkDelivery("record attempt", source, id, destination); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("record attempt %s %s to %s: %w", source, id, destination, err)
	}
	a, err := json.Marshal(attempt)
	if err != nil {
		return fmt.Errorf("record attempt %s %s to %s: %w", source, id, destination, err)
	}
	var reason, next any
	var nanos int16
	switch d.Status {
	case store.StatusDead:
		reason = string(d.Reason)
	case store.StatusRetrying:
		next, nanos = d.NextAttemptAt, int16(d.NextAttemptAt.Nanosecond()%1000)
	}
	r := &attemptReq{source: source, id: id, destination: destination,
		args: []any{source, []byte(id), destination, owner, string(a), string(d.Status), next, nanos, reason, s.microNow(), s.notify.channel}}
	if err := s.att.do(ctx, s.closed, r); err != nil {
		return fmt.Errorf("record attempt %s %s to %s: %w", source, id, destination, err)
	}
	if err := codeErr(r.code); err != nil {
		return fmt.Errorf("record attempt %s %s to %s by %s: %w", source, id, destination, owner, err)
	}
	return nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, source, id, destination, owner string) error {
	if err := s.checkDelivery("release lease", source, id, destination); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `SELECT release_lease($1, $2, $3, $4, $5)`,
		source, []byte(id), destination, owner, s.notify.channel); err != nil {
		return fmt.Errorf("release lease %s %s to %s: %w", source, id, destination, err)
	}
	return nil
}

// transitionThenGet runs a transition function, then reads the record as it
// left it, in one round trip (a pipelined batch, one implicit
// transaction).
func (s *Store) transitionThenGet(ctx context.Context, op, source, id, destination, sql string, args ...any) (*store.Record, error) {
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	b.Queue(`SELECT `+recordColumns+` FROM events e WHERE source = $1 AND id = $2`, source, []byte(id))
	br := s.pool.SendBatch(ctx, b)
	var code int
	var r *store.Record
	err := br.QueryRow().Scan(&code)
	if err == nil && code == codeDone {
		r, err = scanRecord(br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = codeErr(code)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s %s to %s: %w", op, source, id, destination, err)
	}
	return r, nil
}

// RecordReplay implements store.Store.
func (s *Store) RecordReplay(ctx context.Context, source, id, destination string, attempt store.Attempt, delivered bool) (*store.Record, error) {
	if err := s.checkDelivery("record replay", source, id, destination); err != nil {
		return nil, err
	}
	attempt.Replay = true
	a, err := json.Marshal(attempt)
	if err != nil {
		return nil, fmt.Errorf("record replay %s %s: %w", source, id, err)
	}
	return s.transitionThenGet(ctx, "record replay", source, id, destination,
		`SELECT record_replay($1, $2, $3, $4, $5, $6, $7)`,
		source, []byte(id), destination, string(a), delivered, s.microNow(), s.notify.channel)
}

// Skip implements store.Store.
func (s *Store) Skip(ctx context.Context, source, id, destination string) (*store.Record, error) {
	if err := s.checkDelivery("skip", source, id, destination); err != nil {
		return nil, err
	}
	return s.transitionThenGet(ctx, "skip", source, id, destination,
		`SELECT skip_delivery($1, $2, $3, $4, $5)`,
		source, []byte(id), destination, s.microNow(), s.notify.channel)
}

// check refuses a call on a closed store or with a key no record can have.
func (s *Store) check(op, source, id string) error {
	if err := s.enter(); err != nil {
		return err
	}
	if err := store.ValidateKey(source, id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// checkDelivery is check with a destination, which must be a valid name.
func (s *Store) checkDelivery(op, source, id, destination string) error {
	if err := s.check(op, source, id); err != nil {
		return err
	}
	if err := store.ValidateDestination(destination); err != nil {
		return fmt.Errorf("%s %s %s: %w", op, source, id, err)
	}
	return nil
}
