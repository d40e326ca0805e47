package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// MaxClaim caps the records one Claim leases, so that its transaction stays
// well inside Badger's size limit with the default memtable size.
const MaxClaim = 256

// Claim implements Store (at most MaxClaim records per call). It reads the due index of each source (ordered by
// due time, so this costs the number of due records, not the store size),
// takes the earliest limit records and leases them in one transaction. Two
// owners scanning at once read the same index keys, so Badger's conflict
// detection lets one commit and makes the other retry on fresh data: a record
// is never leased to two owners at once. A leased record moves in the due
// index to its lease expiry, so it drops out of everyone's scans while the
// lease holds and comes back by itself if its owner dies.
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

	for {
		out, err := b.claim(ctx, owner, srcs, now, lease, limit)
		if errors.Is(err, badger.ErrTxnTooBig) && limit > 1 {
			// Large records: lease fewer at a time.
			limit /= 2
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim for %s: %w", owner, err)
		}
		return out, nil
	}
}

func (b *Badger) claim(ctx context.Context, owner string, srcs []string, now time.Time, lease time.Duration, limit int) ([]*Record, error) {
	type candidate struct {
		due    time.Time
		source string
		id     string
		dkey   []byte
	}
	var out []*Record
	err := b.update(ctx, func(txn *badger.Txn) error {
		out = out[:0]
		var cands []candidate
		for _, src := range srcs {
			p := dueKeyPrefix(src)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			n := 0
			for it.Rewind(); it.Valid() && n < limit; it.Next() {
				k := it.Item().KeyCopy(nil)
				if len(k) < len(p)+8 {
					continue
				}
				due := decTime(k[len(p) : len(p)+8])
				if due.After(now) {
					break
				}
				cands = append(cands, candidate{due, src, string(k[len(p)+8:]), k})
				n++
			}
			// A read-write transaction allows one iterator at a
			// time, and writes below must not show up in it.
			it.Close()
		}
		slices.SortStableFunc(cands, func(a, b candidate) int { return a.due.Compare(b.due) })
		if len(cands) > limit {
			cands = cands[:limit]
		}
		for _, c := range cands {
			key := recordKey(c.source, c.id)
			sr, _, err := readRecord(txn, key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				// Index entries are written with their record, so
				// this should not happen; heal it if it does.
				if err := txn.Delete(c.dkey); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("reading %s %s: %w", c.source, c.id, err)
			}
			r := sr.rec
			if !claimable(r.Status) || dueAt(r).After(now) {
				if !claimable(r.Status) || string(dueKey(r.Source, r.ID, dueAt(r))) != string(c.dkey) {
					if err := txn.Delete(c.dkey); err != nil {
						return err
					}
				}
				continue
			}
			old := *r
			r.LeaseOwner = owner
			r.LeaseUntil = now.Add(lease)
			if err := writeRecord(txn, key, &old, r, sr.bodyKind, sr.body, now); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
