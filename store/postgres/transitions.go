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

// Each transition of the life cycle (store/doc.go) is one statement whose
// WHERE clause or CASE expressions carry its condition, so it needs no
// transaction of its own and no lock held across round trips.

// A released record keeps its failed attempt and gives its dedup key up;
// its id is taken over by insert_event.
var sqlRelease = `WITH u AS (
	UPDATE events SET status = 'released', reserved_until = NULL,
		attempts = CASE WHEN $4::bytea IS NULL THEN attempts ELSE array_append(attempts, ` + numberedAttempt("$4::bytea") + `) END,
		expires_at = CASE WHEN retention_us > 0 THEN $5::timestamptz + retention_us * interval '1 microsecond' END
	WHERE source = $1 AND id = $2 AND status = 'reserved' AND reserved_until = $3
	RETURNING source, id)
DELETE FROM dedup_keys k USING u WHERE k.source = u.source AND k.id = u.id`

// numberedAttempt is the attempt in parameter p numbered after the row's
// attempts: a sync attempt is the first of its request, but the record may
// start with the attempts of a released record it replaced.
func numberedAttempt(p string) string {
	return `convert_to(jsonb_set(convert_from(` + p + `, 'UTF8')::jsonb, '{number}',
		to_jsonb(cardinality(attempts) + 1))::text, 'UTF8')`
}

// A delivered reservation holds its dedup key for the window only.
var sqlMarkDelivered = `WITH u AS (
	UPDATE events SET attempts = array_append(attempts, ` + numberedAttempt("$3::bytea") + `), status = 'delivered',
		next_attempt_at = NULL, dead_reason = NULL, reserved_until = NULL,
		lease_owner = NULL, lease_until = NULL,
		expires_at = CASE WHEN retention_us > 0 THEN $4::timestamptz + retention_us * interval '1 microsecond' END
	WHERE source = $1 AND id = $2
	RETURNING source, id),
k AS (UPDATE dedup_keys k SET held_until = k.window_until FROM u
	WHERE k.source = u.source AND k.id = u.id)
SELECT count(*) FROM u`

// The CTE locks the row and reads its lease owner before the update, which
// then decides with it; RETURNING says whether the caller held the lease.
const sqlRecordAttempt = `WITH old AS (
	SELECT COALESCE(lease_owner = $4, false) AS won, status <> 'delivered' AS open
	FROM events WHERE source = $1 AND id = $2 FOR UPDATE)
UPDATE events e SET
	attempts = array_append(e.attempts, $3),
	status = CASE WHEN old.won AND old.open THEN $5 ELSE e.status END,
	next_attempt_at = CASE WHEN old.won AND old.open THEN $6 ELSE e.next_attempt_at END,
	dead_reason = CASE WHEN old.won AND old.open THEN $7 ELSE e.dead_reason END,
	reserved_until = CASE WHEN old.won AND old.open THEN NULL ELSE e.reserved_until END,
	expires_at = CASE WHEN old.won AND old.open AND $5 = 'delivered' AND e.retention_us > 0
		THEN $8::timestamptz + e.retention_us * interval '1 microsecond' ELSE e.expires_at END,
	lease_owner = CASE WHEN old.won THEN NULL ELSE e.lease_owner END,
	lease_until = CASE WHEN old.won THEN NULL ELSE e.lease_until END
FROM old WHERE e.source = $1 AND e.id = $2
RETURNING old.won`

const sqlReleaseLease = `UPDATE events SET lease_owner = NULL, lease_until = NULL
	WHERE source = $1 AND id = $2 AND lease_owner = $3`

const sqlRecordReplay = `UPDATE events SET attempts = array_append(attempts, $3), replays = replays + 1,
	status = CASE WHEN $4 AND status <> 'reserved' THEN 'delivered' ELSE status END,
	next_attempt_at = CASE WHEN $4 AND status <> 'reserved' THEN NULL ELSE next_attempt_at END,
	dead_reason = CASE WHEN $4 AND status <> 'reserved' THEN NULL ELSE dead_reason END,
	expires_at = CASE WHEN $4 AND status <> 'reserved' AND retention_us > 0
		THEN $5::timestamptz + retention_us * interval '1 microsecond' ELSE expires_at END
	WHERE source = $1 AND id = $2
	RETURNING ` + recordColumns

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, source, id string, reservedUntil time.Time, failed *store.Attempt) error {
	if err := s.check("release", source, id); err != nil {
		return err
	}
	if reservedUntil.IsZero() {
		return nil // no reservation carries a zero expiry
	}
	var a []byte
	if failed != nil {
		var err error
		if a, err = json.Marshal(failed); err != nil {
			return fmt.Errorf("release %s %s: %w", source, id, err)
		}
	}
	if _, err := s.pool.Exec(ctx, sqlRelease, source, []byte(id), reservedUntil, a, s.microNow()); err != nil {
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
	var n int
	if err := s.pool.QueryRow(ctx, sqlMarkDelivered, source, []byte(id), a, s.microNow()).Scan(&n); err != nil {
		return fmt.Errorf("mark delivered %s %s: %w", source, id, err)
	}
	if n == 0 {
		return fmt.Errorf("mark delivered %s %s: %w", source, id, store.ErrNotFound)
	}
	return nil
}

// attemptReq is one RecordAttempt in a group commit.
type attemptReq struct {
	args []any
	// found and won are the answer: the record exists, and the caller
	// held its lease.
	found, won bool
}

// maxGroupAttempts bounds the attempts of one group commit.
const maxGroupAttempts = 256

// newAttempter groups the RecordAttempts of concurrent delivery workers
// into shared commits, as Inserts are: each is durable before it returns,
// and many share one WAL flush.
func newAttempter(s *Store) *grouper[*attemptReq] {
	return newGrouper(&s.stats, maxGroupAttempts, func(*attemptReq) int { return 1 }, s.writeAttempts)
}

// writeAttempts writes a group of attempts in one transaction.
func (s *Store) writeAttempts(ctx context.Context, group []*attemptReq) error {
	b := &pgx.Batch{}
	for _, r := range group {
		b.Queue(sqlRecordAttempt, r.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		for _, r := range group {
			err := br.QueryRow().Scan(&r.won)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				r.found = false
			case err != nil:
				return err
			default:
				r.found = true
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
func (s *Store) RecordAttempt(ctx context.Context, source, id, owner string, attempt store.Attempt, d store.Decision) error {
	if err := s.check("record attempt", source, id); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("record attempt %s %s: %w", source, id, err)
	}
	a, err := json.Marshal(attempt)
	if err != nil {
		return fmt.Errorf("record attempt %s %s: %w", source, id, err)
	}
	var reason any
	if d.Status == store.StatusDead {
		reason = string(d.Reason)
	}
	var next any
	if d.Status == store.StatusRetrying {
		next = d.NextAttemptAt
	}
	r := &attemptReq{args: []any{source, []byte(id), a, owner, string(d.Status), next, reason, s.microNow()}}
	switch err := s.att.do(ctx, s.closed, r); {
	case err != nil:
		return fmt.Errorf("record attempt %s %s: %w", source, id, err)
	case !r.found:
		return fmt.Errorf("record attempt %s %s: %w", source, id, store.ErrNotFound)
	case !r.won:
		return fmt.Errorf("record attempt %s %s by %s: %w", source, id, owner, store.ErrLeaseLost)
	}
	return nil
}

// ReleaseLease implements store.Store.
func (s *Store) ReleaseLease(ctx context.Context, source, id, owner string) error {
	if err := s.check("release lease", source, id); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, sqlReleaseLease, source, []byte(id), owner); err != nil {
		return fmt.Errorf("release lease %s %s: %w", source, id, err)
	}
	return nil
}

// RecordReplay implements store.Store.
func (s *Store) RecordReplay(ctx context.Context, source, id string, attempt store.Attempt, delivered bool) (*store.Record, error) {
	if err := s.check("record replay", source, id); err != nil {
		return nil, err
	}
	attempt.Replay = true
	a, err := json.Marshal(attempt)
	if err != nil {
		return nil, fmt.Errorf("record replay %s %s: %w", source, id, err)
	}
	r, err := scanRecord(s.pool.QueryRow(ctx, sqlRecordReplay, source, []byte(id), a, delivered, s.microNow()))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("record replay %s %s: %w", source, id, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("record replay %s %s: %w", source, id, err)
	}
	return r, nil
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
