package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// MaxClaim caps the records one Claim leases.
const MaxClaim = 256

// Claim implements Store (at most MaxClaim records per call). It reads the
// due index of each source (ordered by due time, so this costs the number of
// due records, not the store size), takes leases on the earliest limit
// records that no other owner holds, and only then reads them, from a
// snapshot taken after the leases: a write that a lease holder could race
// with is either visible to that read or made by this owner. Leases live in
// memory (see leaseTable), so claiming writes nothing to disk.
func (b *Badger) Claim(ctx context.Context, owner string, sources []string, now time.Time, lease time.Duration, limit int) ([]*Record, error) {
	if owner == "" {
		return nil, errors.New("claim: empty owner")
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim: lease %v is not positive", lease)
	}
	if limit <= 0 || len(sources) == 0 {
		return nil, nil
	}
	limit = min(limit, MaxClaim)
	srcs := slices.Clone(sources)
	slices.Sort(srcs)
	srcs = slices.Compact(srcs)
	for _, s := range srcs {
		if err := validateKey(s, "-"); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
	}
	unlock, err := b.enter()
	if err != nil {
		return nil, err
	}
	defer unlock()
	out, err := b.claim(ctx, owner, srcs, now, lease, limit)
	if err != nil {
		return nil, fmt.Errorf("claim for %s: %w", owner, err)
	}
	return out, nil
}

type claimCandidate struct {
	due    time.Time
	source string
	id     string
	dkey   []byte
}

func (b *Badger) claim(ctx context.Context, owner string, srcs []string, now time.Time, leaseFor time.Duration, limit int) ([]*Record, error) {
	var cands []claimCandidate
	err := b.db.View(func(txn *badger.Txn) error {
		for _, src := range srcs {
			cands = b.dueCandidates(txn, src, now, limit, cands)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(cands, func(a, b claimCandidate) int { return a.due.Compare(b.due) })
	until := now.Add(leaseFor)
	mine := lease{owner, until}
	taken := cands[:0]
	for _, c := range cands {
		if len(taken) == limit {
			break
		}
		if b.leases.take(string(recordKey(c.source, c.id)), owner, now, until) {
			taken = append(taken, c)
		}
	}
	if len(taken) == 0 {
		return nil, nil
	}

	var out []*Record
	var stale [][]byte // index entries that no longer match their record
	err = b.db.View(func(txn *badger.Txn) error {
		for _, c := range taken {
			key := recordKey(c.source, c.id)
			sr, _, err := readRecord(txn, key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				stale = append(stale, c.dkey)
				b.leases.apply(string(key), mine, &Record{})
				continue
			}
			if err != nil {
				return fmt.Errorf("reading %s %s: %w", c.source, c.id, err)
			}
			r := sr.rec
			if !claimable(r.Status) || r.NextAttemptAt.After(now) {
				if !claimable(r.Status) || string(dueKey(r.Source, r.ID, dueAt(r))) != string(c.dkey) {
					stale = append(stale, c.dkey)
				}
				b.leases.apply(string(key), mine, &Record{})
				continue
			}
			r.LeaseOwner, r.LeaseUntil = owner, until
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		for _, c := range taken {
			b.leases.apply(string(recordKey(c.source, c.id)), mine, &Record{})
		}
		return nil, err
	}
	if len(stale) > 0 {
		// Index entries are written with their record, so these come
		// only from records written before leases moved to memory (their
		// due entry sat at the lease's end); heal them.
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
	return out, nil
}

// dueCandidates appends up to limit records of src that are due at now and
// not leased.
func (b *Badger) dueCandidates(txn *badger.Txn, src string, now time.Time, limit int, cands []claimCandidate) []claimCandidate {
	p := dueKeyPrefix(src)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid() && n < limit; it.Next() {
		k := it.Item().Key()
		if len(k) < len(p)+8 {
			continue
		}
		due := decTime(k[len(p) : len(p)+8])
		if due.After(now) {
			break
		}
		id := string(k[len(p)+8:])
		if b.leases.held(string(recordKey(src, id)), now) {
			// In flight: its due entry stays put while it is
			// delivered.
			continue
		}
		cands = append(cands, claimCandidate{due, src, id, it.Item().KeyCopy(nil)})
		n++
	}
	return cands
}
