package delivery

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Bounds of RecordRetryDelay.
const (
	recordRetryMin = 50 * time.Millisecond
	recordRetryMax = time.Second
)

// RecordRetryDelay is the wait before the try-th new attempt (from 1) to
// write an outcome the store did not take: 50 ms doubling up to 1 s, each
// drawn between half and all of it. A store back from a restart is written
// to within about a second, and the writers that failed together do not
// come back in step.
func RecordRetryDelay(try int) time.Duration {
	d := recordRetryMax
	if try < 6 { // 50 ms << 5 is past the ceiling
		d = min(recordRetryMin<<max(try-1, 0), recordRetryMax)
	}
	return d/2 + rand.N(d/2+1)
}

// record writes an attempt's outcome and the decision it led to. A write
// that fails (the database restarting, a full disk) is tried again, with
// RecordRetryDelay between tries, for as long as this engine holds the
// event's lease and is not stopped past its StopTimeout: while the lease
// holds, nobody else sends the event, so an outcome recorded late is still
// the only one. Without it, the event would be sent again once the lease
// ran out, although the backend may already have it.
//
// The contract has no way to extend a lease, and extending it would need
// the store that is failing, so once the lease is about to run out the
// outcome is given up: the event is claimed again and sent again, with the
// same Idempotency-Key (delivery is at least once).
//
// A write that failed may still have been committed (an answer lost with
// its connection), so before each new try the record is read: an attempt
// already there is not appended a second time.
func (e *Engine) record(rec *store.Record, del *store.Delivery, attempt store.Attempt, d store.Decision, log *zap.Logger) error {
	until := del.LeaseUntil
	if until.IsZero() {
		until = e.cfg.Now().Add(e.cfg.Lease)
	}
	timeout := recordTimeout
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := e.cfg.Store.RecordAttempt(ctx, rec.Source, rec.ID, e.cfg.Destination, e.cfg.Owner, attempt, d)
		cancel()
		if err == nil || !retryableRecord(err) {
			return err
		}
		wait := RecordRetryDelay(try)
		left := until.Sub(e.cfg.Now()) - wait
		if left <= 0 {
			return err // the lease runs out: the event will be claimed again
		}
		log.Warn("recording delivery attempt failed; trying again while the lease lasts",
			zap.Int("try", try), zap.Duration("lease_left", until.Sub(e.cfg.Now())), zap.Error(err))
		select {
		case <-time.After(wait):
		case <-e.attemptCtx.Done():
			return err // stopping, and StopTimeout has passed
		}
		timeout = min(recordTimeout, left)
		if landed, err := e.recorded(rec, attempt, timeout); landed {
			return err
		}
	}
}

// retryableRecord reports whether a RecordAttempt that failed with err may
// succeed if tried again: not when the answer is final (the lease went to
// another owner, the event is gone) or the store is closed.
func retryableRecord(err error) bool {
	return !errors.Is(err, store.ErrLeaseLost) && !errors.Is(err, store.ErrNotFound) &&
		!errors.Is(err, store.ErrClosed)
}

// recorded reports whether attempt is already in the stored record (a
// write whose answer was lost), and then what RecordAttempt would have
// answered: nil, or ErrLeaseLost when another owner holds the lease.
func (e *Engine) recorded(rec *store.Record, attempt store.Attempt, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stored, err := e.cfg.Store.Get(ctx, rec.Source, rec.ID)
	if err != nil {
		return false, nil
	}
	d := stored.Delivery(e.cfg.Destination)
	if d == nil || !HasAttempt(d, attempt) {
		return false, nil
	}
	if d.LeaseOwner != "" && d.LeaseOwner != e.cfg.Owner {
		return true, store.ErrLeaseLost
	}
	return true, nil
}

// HasAttempt reports whether the delivery d holds attempt (same number,
// time and kind): a write reported failed may have been committed, and
// appending the attempt again would show the backend a request it got
// once. A nil d holds none.
func HasAttempt(d *store.Delivery, attempt store.Attempt) bool {
	if d == nil {
		return false
	}
	for _, a := range d.Attempts {
		if a.Number == attempt.Number && a.Replay == attempt.Replay && a.At.Equal(attempt.At) {
			return true
		}
	}
	return false
}
