package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// change is the one read-modify-write behind every state transition: it
// reads the record's state (never its payload: a transition rewrites the
// small state record and leaves the canonical event and raw body where they
// were written), shows it to fn with its deliveries' leases overlaid, and
// writes what fn leaves, with its Status rolled up from its deliveries, in
// a transaction shared with concurrent writes (see txnGatherer) and
// retried on conflict. fn may run more than once and must only change
// state fields; it returns false to write nothing. The lease table follows
// the lease fields fn leaves, but only if nobody took the lease meanwhile.
// The record returned has no Event if its payload is kept apart.
func (b *Store) change(ctx context.Context, opName, source, id string, durable bool, fn func(txn *badger.Txn, r *store.Record) (bool, error)) (*store.Record, error) {
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
	var held map[string]lease // the leases fn was shown
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
		// The state before fn, for the index entries it replaces: its
		// deliveries copied, since fn changes them in place.
		old := *sr.rec
		old.Deliveries = slices.Clone(sr.rec.Deliveries)
		rec := sr.rec
		b.leases.overlay(string(key), rec)
		held = leasesOf(rec)
		out = rec
		write, err := fn(txn, rec)
		if err != nil {
			return fnError{err}
		}
		if !write {
			return nil
		}
		rec.Status = store.Rollup(rec.Deliveries)
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

// delivery returns r's delivery to destination, or store.ErrNoDelivery.
func delivery(r *store.Record, destination string) (*store.Delivery, error) {
	if d := r.Delivery(destination); d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("%w %q", store.ErrNoDelivery, destination)
}

// settle moves d to the state dec decides, clearing what belonged to the
// state it leaves.
func settle(d *store.Delivery, dec store.Decision) {
	d.Status = dec.Status
	d.NextAttemptAt, d.DeadReason = time.Time{}, ""
	switch dec.Status {
	case store.StatusRetrying:
		d.NextAttemptAt = dec.NextAttemptAt
	case store.StatusDead:
		d.DeadReason = dec.Reason
	}
}

// syncDelivery is the delivery a MarkDelivered or Release is about: the
// reserved one, else a released one, else (a record stored pending, which
// took the key of an expired reservation) the first.
func syncDelivery(r *store.Record) *store.Delivery {
	for _, s := range []store.Status{store.StatusReserved, store.StatusReleased} {
		for i := range r.Deliveries {
			if r.Deliveries[i].Status == s {
				return &r.Deliveries[i]
			}
		}
	}
	if len(r.Deliveries) > 0 {
		return &r.Deliveries[0]
	}
	return nil
}

// markDelivered applies a sync delivery the backend accepted to r: the
// sync delivery delivered with attempt appended (numbered after the
// attempts it carries), every held delivery pending and due at once.
// Laned deliveries made pending then need their sequences
// (assignSequences) in the same write.
func markDelivered(r *store.Record, attempt store.Attempt) {
	r.ReservedUntil = time.Time{}
	sd := syncDelivery(r)
	if sd == nil {
		return
	}
	attempt.Number = len(sd.Attempts) + 1
	sd.Attempts = append(sd.Attempts, attempt)
	settle(sd, store.Delivered())
	sd.LeaseOwner, sd.LeaseUntil = "", time.Time{}
	for i := range r.Deliveries {
		if d := &r.Deliveries[i]; d.Status == store.StatusHeld {
			d.Status = store.StatusPending
			d.NextAttemptAt = time.Time{}
		}
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
	_, err := b.change(ctx, "mark delivered", source, id, true, func(txn *badger.Txn, r *store.Record) (bool, error) {
		markDelivered(r, attempt)
		return true, assignSequences(txn, r)
	})
	return err
}

// RecordAttempt implements store.Store.
func (b *Store) RecordAttempt(ctx context.Context, source, id, destination, owner string, attempt store.Attempt, d store.Decision) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("record attempt %s %s: %w", source, id, err)
	}
	// A delivery with a lease was claimed, so its record is stored: one
	// made pending by MarkDelivered can be claimed between the commit of
	// its record and the retirement of its reservation just after, and
	// its attempt is the stored record's.
	claimed := b.leases.held(leaseKey(string(recordKey(source, id)), destination), b.opts.Now())
	if done, err := b.reserved(source, id, func(r *reservation) error {
		if claimed {
			return errStoredRecord
		}
		// A reservation is never claimed, so no lease is held on it.
		b.resv.mu.Lock()
		defer b.resv.mu.Unlock()
		dl, err := delivery(r.rec, destination)
		if err != nil {
			return err
		}
		dl.Attempts = append(dl.Attempts, attempt)
		return store.ErrLeaseLost
	}); done && !errors.Is(err, errStoredRecord) {
		return fmt.Errorf("record attempt %s %s by %s: %w", source, id, owner, err)
	}
	lost := false
	_, err := b.change(ctx, "record attempt", source, id, true, func(_ *badger.Txn, r *store.Record) (bool, error) {
		dl, err := delivery(r, destination)
		if err != nil {
			return false, err
		}
		dl.Attempts = append(dl.Attempts, attempt)
		lost = dl.LeaseOwner != owner
		if lost {
			return true, nil // history; the state is the new owner's
		}
		dl.LeaseOwner, dl.LeaseUntil = "", time.Time{}
		if dl.Claimable() {
			settle(dl, d)
		}
		return true, nil
	})
	if err == nil && lost {
		err = fmt.Errorf("record attempt %s %s to %s by %s: %w", source, id, destination, owner, store.ErrLeaseLost)
	}
	return err
}

// ReleaseLease implements store.Store. Leases live in memory (see leaseTable), so
// giving one back writes nothing.
func (b *Store) ReleaseLease(ctx context.Context, source, id, destination, owner string) error {
	if err := store.ValidateKey(source, id); err != nil {
		return fmt.Errorf("release lease: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	b.leases.release(leaseKey(string(recordKey(source, id)), destination), owner)
	return nil
}

// RecordReplay implements store.Store.
func (b *Store) RecordReplay(ctx context.Context, source, id, destination string, attempt store.Attempt, delivered bool) (*store.Record, error) {
	attempt.Replay = true
	var out *store.Record
	if done, err := b.reserved(source, id, func(r *reservation) error {
		b.resv.mu.Lock()
		dl, err := delivery(r.rec, destination)
		if err == nil {
			dl.Attempts = append(dl.Attempts, attempt)
			dl.Replays++
		}
		b.resv.mu.Unlock()
		out = b.resv.view(r)
		return err
	}); done {
		if err != nil {
			return nil, fmt.Errorf("record replay %s %s: %w", source, id, err)
		}
		return out, nil
	}
	return b.change(ctx, "record replay", source, id, true, func(_ *badger.Txn, r *store.Record) (bool, error) {
		dl, err := delivery(r, destination)
		if err != nil {
			return false, err
		}
		dl.Attempts = append(dl.Attempts, attempt)
		dl.Replays++
		if delivered && dl.Status != store.StatusReserved && dl.Status != store.StatusHeld {
			settle(dl, store.Delivered())
		}
		return true, nil
	})
}

// Skip implements store.Store.
func (b *Store) Skip(ctx context.Context, source, id, destination string) (*store.Record, error) {
	if done, err := b.reserved(source, id, func(r *reservation) error {
		b.resv.mu.Lock()
		defer b.resv.mu.Unlock()
		if _, err := delivery(r.rec, destination); err != nil {
			return err
		}
		return store.ErrNotDead // a reservation's deliveries are reserved or held
	}); done {
		return nil, fmt.Errorf("skip %s %s: %w", source, id, err)
	}
	return b.change(ctx, "skip", source, id, true, func(_ *badger.Txn, r *store.Record) (bool, error) {
		dl, err := delivery(r, destination)
		if err != nil {
			return false, err
		}
		if dl.Status != store.StatusDead {
			return false, fmt.Errorf("%w: its delivery to %q is %s", store.ErrNotDead, destination, dl.Status)
		}
		// The dead reason stays: it is why the operator skipped it.
		dl.Status = store.StatusSkipped
		dl.NextAttemptAt = time.Time{}
		return true, nil
	})
}

// errStoredRecord is returned by a reserved callback whose transition
// applies to the stored record although a reservation is still in memory.
var errStoredRecord = errors.New("the record is stored")

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
