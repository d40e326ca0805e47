package badger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// change is the one read-modify-write behind every state transition: it
// reads the record's state (never its payload: a transition rewrites the
// small state record and leaves the canonical event and raw body where they
// were written), shows it to fn with its delivery lease overlaid, and writes
// what fn leaves, in a transaction shared with concurrent writes (see
// txnGatherer) and retried on conflict. fn may run more than
// once and must only change state fields; it returns false to write nothing.
// The lease table follows the lease fields fn leaves, but only if nobody took
// the lease meanwhile. The record returned has no Event if its payload is
// kept apart.
func (b *Store) change(ctx context.Context, opName, source, id string, durable bool, fn func(r *store.Record) (bool, error)) (*store.Record, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return nil, fmt.Errorf("%s: %w", opName, err)
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := b.space.allow(recordOverhead, false); err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", opName, source, id, err)
	}
	key := recordKey(source, id)
	b.hand.forget(string(key))
	var out *store.Record
	var held lease // the lease fn was shown
	wrote := false
	op := &gatherOp{ctx: ctx, key: string(key), size: recordOverhead, durable: durable}
	op.fn = func(txn *badger.Txn) error {
		wrote = false
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := itemValueCopy(item)
		if err != nil {
			return err
		}
		sr, err := decodeRecordValue(v)
		if err != nil {
			return err
		}
		old := *sr.rec
		rec := sr.rec
		b.leases.overlay(string(key), rec)
		held = lease{owner: rec.LeaseOwner, until: rec.LeaseUntil}
		out = rec
		write, err := fn(rec)
		if err != nil {
			return fnError{err}
		}
		if !write {
			return nil
		}
		wrote = true
		return b.writeRecord(txn, key, &old, persisted(rec), sr.bodyKind, sr.body, b.opts.Now())
	}
	err = b.gather.write(op)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%s %s %s: %w", opName, source, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s %s: %w", opName, source, id, err)
	}
	b.leases.apply(string(key), held, out)
	if !wrote {
		return out, nil
	}
	b.refreshCache([][]byte{key}, durable)
	return out, nil
}

// settle moves r to the state d decides, clearing what belonged to the
// state it leaves.
func settle(r *store.Record, d store.Decision) {
	r.Status = d.Status
	r.NextAttemptAt, r.DeadReason, r.ReservedUntil = time.Time{}, "", time.Time{}
	switch d.Status {
	case store.StatusRetrying:
		r.NextAttemptAt = d.NextAttemptAt
	case store.StatusDead:
		r.DeadReason = d.Reason
	}
}

// MarkDelivered implements store.Store. A reservation (held in memory, see
// reservations) is written once, delivered, with its payload; a stored
// record has its state changed.
func (b *Store) MarkDelivered(ctx context.Context, source, id string, attempt store.Attempt) error {
	if done, err := b.reserved(source, id, func(r *reservation) error {
		return b.deliverReserved(ctx, r, attempt)
	}); done {
		if err != nil {
			return fmt.Errorf("mark delivered %s %s: %w", source, id, err)
		}
		return nil
	}
	_, err := b.change(ctx, "mark delivered", source, id, true, func(r *store.Record) (bool, error) {
		r.Attempts = append(r.Attempts, attempt)
		settle(r, store.Delivered())
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		return true, nil
	})
	return err
}

// RecordAttempt implements store.Store.
func (b *Store) RecordAttempt(ctx context.Context, source, id, owner string, attempt store.Attempt, d store.Decision) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("record attempt %s %s: %w", source, id, err)
	}
	if done, err := b.reserved(source, id, func(r *reservation) error {
		// A reservation is never claimed, so no lease is held on it.
		b.resv.mu.Lock()
		r.rec.Attempts = append(r.rec.Attempts, attempt)
		b.resv.mu.Unlock()
		return store.ErrLeaseLost
	}); done {
		return fmt.Errorf("record attempt %s %s by %s: %w", source, id, owner, err)
	}
	lost := false
	_, err := b.change(ctx, "record attempt", source, id, true, func(r *store.Record) (bool, error) {
		r.Attempts = append(r.Attempts, attempt)
		lost = r.LeaseOwner != owner
		if lost {
			return true, nil // history; the state is the new owner's
		}
		r.LeaseOwner, r.LeaseUntil = "", time.Time{}
		if r.Status != store.StatusDelivered {
			settle(r, d)
		}
		return true, nil
	})
	if err == nil && lost {
		err = fmt.Errorf("record attempt %s %s by %s: %w", source, id, owner, store.ErrLeaseLost)
	}
	return err
}

// ReleaseLease implements store.Store. Leases live in memory (see leaseTable), so
// giving one back writes nothing.
func (b *Store) ReleaseLease(ctx context.Context, source, id, owner string) error {
	if err := store.ValidateKey(source, id); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.leases.release(string(recordKey(source, id)), owner)
	return nil
}

// RecordReplay implements store.Store.
func (b *Store) RecordReplay(ctx context.Context, source, id string, attempt store.Attempt, delivered bool) (*store.Record, error) {
	attempt.Replay = true
	var out *store.Record
	if done, err := b.reserved(source, id, func(r *reservation) error {
		b.resv.mu.Lock()
		r.rec.Attempts = append(r.rec.Attempts, attempt)
		r.rec.Replays++
		b.resv.mu.Unlock()
		out = b.resv.view(r)
		return nil
	}); done {
		return out, err
	}
	return b.change(ctx, "record replay", source, id, true, func(r *store.Record) (bool, error) {
		r.Attempts = append(r.Attempts, attempt)
		r.Replays++
		if delivered && r.Status != store.StatusReserved {
			settle(r, store.Delivered())
		}
		return true, nil
	})
}

// reserved runs fn on the reservation of (source, id) if there is one, and
// reports whether there was.
func (b *Store) reserved(source, id string, fn func(*reservation) error) (bool, error) {
	if err := store.ValidateKey(source, id); err != nil {
		return false, nil // the caller's own check reports it
	}
	unlock, err := b.enter()
	if err != nil {
		return true, err
	}
	defer unlock()
	r := b.resv.get(string(recordKey(source, id)))
	if r == nil {
		return false, nil
	}
	return true, fn(r)
}

// Release implements store.Store. Reservations live in memory (see
// reservations): releasing one writes it for the first time, released, with
// its payload and without a dedup entry, as MarkDelivered writes it
// delivered. Releasing a key that is absent or no longer reserved (delivered
// meanwhile, or taken over after the reservation expired) does nothing and
// is not an error.
func (b *Store) Release(ctx context.Context, source, id string, reservedUntil time.Time, failed *store.Attempt) error {
	if err := store.ValidateKey(source, id); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	_, err := b.reserved(source, id, func(r *reservation) error {
		if !r.rec.ReservedUntil.Equal(reservedUntil) {
			return nil
		}
		return b.writeReserved(ctx, r, failed, store.StatusReleased)
	})
	if err != nil {
		return fmt.Errorf("release %s %s: %w", source, id, err)
	}
	return nil
}
