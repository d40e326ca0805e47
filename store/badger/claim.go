package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// MaxClaim caps the records one Claim leases.
const MaxClaim = 256

// Claim implements store.Store (at most MaxClaim records per call). It hands out
// just-stored events from memory first (see handover). Then it reads the
// due index of each destination (ordered by due time, so this costs the number of
// due records, not the store size), takes leases on the earliest limit
// records that no other owner holds, and only then reads them, from a
// snapshot taken after the leases: a write that a lease holder could race
// with is either visible to that read or made by this owner. Leases live in
// memory (see leaseTable), so claiming writes nothing to disk.
func (b *Store) Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]*store.Record, error) {
	if owner == "" {
		return nil, errors.New("claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %v is not positive", lease)
	}
	if limit <= 0 || len(destinations) == 0 {
		return nil, nil
	}
	limit = min(limit, MaxClaim)
	dests := slices.Clone(destinations)
	slices.Sort(dests)
	dests = slices.Compact(dests)
	for _, d := range dests {
		if err := store.ValidateDestination(d); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Just-stored events first, from memory; then the due index.
	until := now.Add(lease)
	out := b.hand.take(dests, limit, func(key string) (string, time.Time, bool) {
		return owner, until, b.leases.take(key, owner, now, until)
	})
	for range claimRounds {
		if len(out) == limit {
			break
		}
		got, passed, err := b.claim(ctx, owner, dests, now, lease, limit-len(out))
		if err != nil && len(out) > 0 {
			// The records of earlier rounds are leased: hand them out
			// rather than leave them idle until their lease runs out.
			b.log.Warn("claim: a later round failed", zap.String("owner", owner), zap.Error(err))
			break
		}
		if err != nil {
			return nil, fmt.Errorf("claim for %s: %w", owner, err)
		}
		out = append(out, got...)
		if len(out) == limit || passed == 0 {
			break
		}
	}
	return out, nil
}

// claimRounds bounds the scans of one Claim. A scan can pass over records
// that were delivered after its snapshot of the due index was taken, and
// more rounds fill the workers that freed up instead of leaving them idle
// until the next poll.
const claimRounds = 4

type claimCandidate struct {
	due    time.Time
	source string
	id     string
	dkey   []byte
}

// claim is one round of Claim: scan the due index of each destination,
// lease the earliest due candidates, read their records back. passed counts
// the leased candidates that turned out not to be due any more.
func (b *Store) claim(ctx context.Context, owner string, dests []string, now time.Time, leaseFor time.Duration, limit int) (out []*store.Record, passed int, err error) {
	cands, err := b.scanDue(dests, now, limit)
	if err != nil {
		return nil, 0, err
	}
	mine := lease{owner, now.Add(leaseFor)}
	taken := cands[:0]
	for _, c := range cands {
		if len(taken) == limit {
			break
		}
		if b.leases.take(string(recordKey(c.source, c.id)), owner, now, mine.until) {
			taken = append(taken, c)
		}
	}
	if len(taken) == 0 {
		return nil, 0, nil
	}
	out, passed, stale, err := b.readClaimed(taken, mine, now)
	if err != nil {
		for _, c := range taken {
			b.leases.drop(string(recordKey(c.source, c.id)), mine)
		}
		return nil, 0, err
	}
	if len(stale) > 0 {
		b.dropDueEntries(ctx, stale)
	}
	return out, passed, nil
}

// scanDue returns up to limit due, unleased candidates of each
// destination, earliest due first, and moves each destination's scan mark
// (see dueMarks).
func (b *Store) scanDue(dests []string, now time.Time, limit int) ([]claimCandidate, error) {
	var cands []claimCandidate
	from := make([]time.Time, len(dests))
	clock := time.Now()
	for i, dest := range dests {
		from[i] = b.due.begin(dest, clock)
	}
	scanned := 0
	defer func() {
		for _, dest := range dests[scanned:] {
			b.due.cancel(dest) // the transaction failed before scanning them
		}
	}()
	err := b.db.View(func(txn *badger.Txn) error {
		for i, dest := range dests {
			var first time.Time
			var found bool
			cands, first, found = b.dueCandidates(txn, dest, from[i], now, limit, cands)
			b.due.scanned(dest, first, found)
			scanned++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(cands, func(a, b claimCandidate) int { return a.due.Compare(b.due) })
	return cands, nil
}

// readClaimed reads the records of the candidates leased to mine and
// returns those still due, with the lease set. A candidate no longer due
// (delivered or rescheduled since the scan) gives its lease back and counts
// in passed; stale lists the due index entries that match no record.
func (b *Store) readClaimed(taken []claimCandidate, mine lease, now time.Time) (out []*store.Record, passed int, stale [][]byte, err error) {
	reads := 0
	err = b.view(func(txn *badger.Txn) error {
		// Run again when value-log GC moved a record during the read:
		// the leases not given back yet are still held, and giving one
		// back twice does nothing. On view's last run a record that still
		// cannot be read is skipped like any unreadable one.
		reads++
		out, passed, stale = out[:0], 0, stale[:0]
		for _, c := range taken {
			key := recordKey(c.source, c.id)
			sr, _, err := readRecord(txn, key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				stale = append(stale, c.dkey)
				b.leases.drop(string(key), mine)
				continue
			}
			if errors.Is(err, errValueMoved) && reads <= maxValueMovedRetries {
				return err
			}
			if err != nil {
				// One unreadable record must not stop the delivery of
				// every other due event of its source.
				b.log.Error("claim: skipping an unreadable record",
					zap.String("source", c.source), zap.String("id", c.id), zap.Error(err))
				b.leases.drop(string(key), mine)
				continue
			}
			r := sr.rec
			if !claimable(r.Status) || r.NextAttemptAt.After(now) {
				passed++
				b.leases.drop(string(key), mine)
				if !claimable(r.Status) || string(recordDueKey(r)) != string(c.dkey) {
					// Usually delivered since the scan, which removed
					// the entry already.
					if _, err := txn.Get(c.dkey); err == nil {
						stale = append(stale, c.dkey)
					}
				}
				continue
			}
			r.LeaseOwner, r.LeaseUntil = mine.owner, mine.until
			out = append(out, r)
		}
		return nil
	})
	return out, passed, stale, err
}

// dropDueEntries deletes due index entries that match no record. Index
// entries are written and deleted with their record, so none should; one
// that does would be scanned by every claim, so it is removed rather than
// skipped forever.
func (b *Store) dropDueEntries(ctx context.Context, stale [][]byte) {
	if err := b.update(ctx, func(txn *badger.Txn) error {
		for _, k := range stale {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.log.Warn("removing stale due index entries", zap.Error(err))
	}
}

// dueCandidates appends up to limit records of dest that are due at now
// and not leased, scanning from from (zero: the beginning). It also returns
// the due time of the first live entry it saw.
func (b *Store) dueCandidates(txn *badger.Txn, dest string, from, now time.Time, limit int, cands []claimCandidate) (_ []claimCandidate, first time.Time, found bool) {
	p := dueKeyPrefix(dest)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	defer it.Close()
	seek := p
	if !from.IsZero() {
		seek = encTime(dueKeyPrefix(dest), from)
	}
	n := 0
	for it.Seek(seek); it.Valid() && n < limit; it.Next() {
		k := it.Item().Key()
		if len(k) < len(p)+8 {
			continue
		}
		due := decTime(k[len(p) : len(p)+8])
		if !found {
			first, found = due, true
		}
		if due.After(now) {
			break
		}
		src, id, ok := dueRecordOf(k[len(p)+8:])
		if !ok {
			continue
		}
		if b.leases.held(string(recordKey(src, id)), now) {
			// In flight: its due entry stays put while it is
			// delivered.
			continue
		}
		cands = append(cands, claimCandidate{due, src, id, it.Item().KeyCopy(nil)})
		n++
	}
	return cands, first, found
}
