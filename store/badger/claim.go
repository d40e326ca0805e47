package badger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// MaxClaim caps the deliveries one Claim leases.
const MaxClaim = 256

// Claim implements store.Store (at most MaxClaim deliveries per call). It
// hands out just-stored deliveries from memory first (see handover). Then it
// reads the due index of each destination (ordered by due time, so this
// costs the number of due deliveries, not the store size), takes leases on
// the earliest limit deliveries that no other owner holds, and only then
// reads their records, from a snapshot taken after the leases: a write that
// a lease holder could race with is either visible to that read or made by
// this owner. Leases live in memory (see leaseTable), so claiming writes
// nothing to disk.
//
// A laned delivery is a candidate only when it is its lane's head (the
// first entry under the lane's prefix in the lane index), checked in the
// scan's snapshot and again in the read after the lease: the head leaves
// the lane index only in the write that delivers or skips it, so the next
// one cannot be read as head while it is in flight, and a lease on the head
// keeps a second owner off it.
func (b *Store) Claim(ctx context.Context, owner string, destinations []string, now time.Time, lease time.Duration, limit int) ([]store.Claimed, error) {
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
	// Just-stored deliveries first, from memory; then the due index.
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
			// The deliveries of earlier rounds are leased: hand them
			// out rather than leave them idle until their lease runs
			// out.
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

// claimRounds bounds the scans of one Claim. A scan can pass over
// deliveries that were made after its snapshot of the due index was taken,
// and more rounds fill the workers that freed up instead of leaving them
// idle until the next poll.
const claimRounds = 4

type claimCandidate struct {
	due    time.Time
	dest   string
	source string
	id     string
	dkey   []byte
}

func (c *claimCandidate) leaseKey() string {
	return leaseKey(string(recordKey(c.source, c.id)), c.dest)
}

// claim is one round of Claim: scan the due index of each destination,
// lease the earliest due candidates, read their records back. passed counts
// the leased candidates that turned out not to be due any more.
func (b *Store) claim(ctx context.Context, owner string, dests []string, now time.Time, leaseFor time.Duration, limit int) (out []store.Claimed, passed int, err error) {
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
		if b.leases.take(c.leaseKey(), owner, now, mine.until) {
			taken = append(taken, c)
		}
	}
	if len(taken) == 0 {
		return nil, 0, nil
	}
	out, passed, stale, err := b.readClaimed(taken, mine, now)
	if err != nil {
		for _, c := range taken {
			b.leases.drop(c.leaseKey(), mine)
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
// returns those still due (and, laned, still their lane's head), with the
// lease set. A candidate no longer due (delivered or rescheduled since the
// scan) gives its lease back and counts in passed; stale lists the due
// index entries that match no delivery.
func (b *Store) readClaimed(taken []claimCandidate, mine lease, now time.Time) (out []store.Claimed, passed int, stale [][]byte, err error) {
	reads := 0
	err = b.view(func(txn *badger.Txn) error {
		// Run again when value-log GC moved a record during the read:
		// the leases not given back yet are still held, and giving one
		// back twice does nothing. On view's last run a record that still
		// cannot be read is skipped like any unreadable one.
		reads++
		out, passed, stale = out[:0], 0, stale[:0]
		heads := map[string]uint64{}
		for _, c := range taken {
			key := recordKey(c.source, c.id)
			lk := c.leaseKey()
			sr, _, err := readRecord(txn, key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				stale = append(stale, c.dkey)
				b.leases.drop(lk, mine)
				continue
			}
			if errors.Is(err, errValueMoved) && reads <= maxValueMovedRetries {
				return err
			}
			if err != nil {
				// One unreadable record must not stop the delivery of
				// every other due event of its destination.
				b.log.Error("claim: skipping an unreadable record",
					zap.String("source", c.source), zap.String("id", c.id), zap.Error(err))
				b.leases.drop(lk, mine)
				continue
			}
			r := sr.rec
			d := r.Delivery(c.dest)
			if d == nil || !d.Claimable() || d.NextAttemptAt.After(now) || !isHead(txn, heads, d) {
				passed++
				b.leases.drop(lk, mine)
				if d == nil || !d.Claimable() || string(deliveryDueKey(r, d)) != string(c.dkey) {
					// Usually delivered since the scan, which removed
					// the entry already.
					if _, err := txn.Get(c.dkey); err == nil {
						stale = append(stale, c.dkey)
					}
				}
				continue
			}
			b.leases.view(string(key), r)
			d.LeaseOwner, d.LeaseUntil = mine.owner, mine.until
			out = append(out, store.Claimed{Record: r, Destination: c.dest})
		}
		return nil
	})
	return out, passed, stale, err
}

// isHead reports whether d, if laned, is the head of its lane in txn's
// snapshot; heads caches the lanes looked up (lane prefix → head sequence,
// 0 for an empty lane).
func isHead(txn *badger.Txn, heads map[string]uint64, d *store.Delivery) bool {
	if d.Lane == "" {
		return true
	}
	return d.Sequence != 0 && laneHead(txn, heads, d.Destination, d.Lane) == d.Sequence
}

// laneHead returns the sequence of the head of (destination, lane) in
// txn's snapshot, 0 if the lane is empty.
func laneHead(txn *badger.Txn, heads map[string]uint64, destination, lane string) uint64 {
	p := laneKeyPrefix(destination, lane)
	if seq, ok := heads[string(p)]; ok {
		return seq
	}
	var seq uint64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
	it.Rewind()
	if it.Valid() {
		if k := it.Item().Key(); len(k) == len(p)+8 {
			seq = binary.BigEndian.Uint64(k[len(p):])
		}
	}
	it.Close()
	heads[string(p)] = seq
	return seq
}

// dropDueEntries deletes due index entries that match no delivery. Index
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

// dueCandidates appends up to limit deliveries to dest that are due at now,
// not leased and, laned, the heads of their lanes, scanning from from
// (zero: the beginning). It also returns the due time of the first live
// entry it saw.
func (b *Store) dueCandidates(txn *badger.Txn, dest string, from, now time.Time, limit int, cands []claimCandidate) (_ []claimCandidate, first time.Time, found bool) {
	p := dueKeyPrefix(dest)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	defer it.Close()
	seek := p
	if !from.IsZero() {
		seek = encTime(dueKeyPrefix(dest), from)
	}
	var heads map[string]uint64
	n := 0
	for it.Seek(seek); it.Valid() && n < limit; it.Next() {
		item := it.Item()
		k := item.Key()
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
		if b.leases.held(leaseKey(string(recordKey(src, id)), dest), now) {
			// In flight: its due entry stays put while it is
			// delivered.
			continue
		}
		var lane string
		var seq uint64
		if err := itemValue(item, func(v []byte) error {
			var err error
			lane, seq, err = decodeDueValue(v)
			return err
		}); err != nil {
			b.log.Error("claim: skipping an unreadable due entry", zap.String("destination", dest), zap.Error(err))
			continue
		}
		if lane != "" {
			if heads == nil {
				heads = map[string]uint64{}
			}
			if laneHead(txn, heads, dest, lane) != seq {
				continue // waits behind its lane's head
			}
		}
		cands = append(cands, claimCandidate{due, dest, src, id, item.KeyCopy(nil)})
		n++
	}
	return cands, first, found
}
