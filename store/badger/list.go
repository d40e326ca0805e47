package badger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// purgeChunk bounds one Purge transaction, well within Badger's limit with
// the default memtable size; Purge halves it if a transaction is too big.
const purgeChunk = 500

// matchSummary reports whether a record of source with summary s matches
// f but for its subject, id and time range. With a destination, the status
// filtered on is that delivery's.
func matchSummary(f *store.Filter, source string, s *summary) bool {
	if (f.Source != "" && f.Source != source) ||
		(f.Provider != "" && f.Provider != s.provider) ||
		(f.Type != "" && f.Type != s.typ) {
		return false
	}
	if f.Destination == "" {
		return f.Status == "" || f.Status == s.status
	}
	for _, d := range s.deliveries {
		if d.destination == f.Destination {
			return f.Status == "" || f.Status == d.status
		}
	}
	return false
}

// summaryOf is the listing summary of r.
func summaryOf(r *store.Record) *summary {
	s := &summary{status: r.Status, provider: r.Provider, typ: r.Type}
	for i := range r.Deliveries {
		s.deliveries = append(s.deliveries, deliverySummary{r.Deliveries[i].Destination, r.Deliveries[i].Status})
	}
	return s
}

func matchRecord(f *store.Filter, r *store.Record) bool {
	return matchSummary(f, r.Source, summaryOf(r)) &&
		(f.Subject == "" || f.Subject == r.Subject) &&
		(f.ID == "" || f.ID == r.ID) &&
		(f.From.IsZero() || !r.ReceivedAt.Before(f.From)) &&
		(f.To.IsZero() || r.ReceivedAt.Before(f.To))
}

// scanTime walks the listing index newest first, starting strictly below
// start (nil: from the newest, or from f.To), and calls fn for each entry
// that matches f until fn returns false. It reads summaries only. A filter
// with a subject walks that subject's index instead, and one with an id
// reads the one record it names; either way fn and start speak of listing
// keys, so cursors and the merge of reservations work alike.
func scanTime(txn *badger.Txn, f *store.Filter, start []byte, fn func(tkey, rkey []byte) (bool, error)) error {
	if f.ID != "" {
		return scanOne(txn, f, start, fn)
	}
	base := []byte(prefixTime)
	if f.Subject != "" {
		base = subjectKeyPrefix(f.Subject)
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: base, Reverse: true, PrefetchValues: false})
	defer it.Close()
	var seek []byte
	switch {
	case start != nil:
		seek = append(bytes.Clone(base), start[len(prefixTime):]...)
	case !f.To.IsZero():
		// Every key at time To is longer, hence greater, so seeking
		// here excludes To itself.
		seek = encTime(bytes.Clone(base), f.To)
	default:
		seek = append(bytes.Clone(base), bytes.Repeat([]byte{0xff}, 9)...)
	}
	from := []byte(nil)
	if !f.From.IsZero() {
		from = encTime(nil, f.From)
	}
	hdr := len(base) + 8
	for it.Seek(seek); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if start != nil && bytes.Equal(k, seek) {
			continue
		}
		if len(k) <= hdr {
			continue
		}
		if from != nil && bytes.Compare(k[len(base):hdr], from) < 0 {
			return nil
		}
		source, _, ok := splitRecordKey(k[hdr:])
		if !ok {
			continue
		}
		if f.Source != "" && source != f.Source {
			continue
		}
		var sum summary
		if err := itemValue(item, func(v []byte) error {
			var err error
			sum, err = decodeSummary(v)
			return err
		}); err != nil {
			return err
		}
		if !matchSummary(f, source, &sum) {
			continue
		}
		tkey := append([]byte(prefixTime), k[len(base):]...)
		more, err := fn(tkey, tkey[len(prefixTime)+8:])
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// scanOne is scanTime for a filter with an id: the record (f.Source, f.ID),
// if it matches the rest of f and lies below start.
func scanOne(txn *badger.Txn, f *store.Filter, start []byte, fn func(tkey, rkey []byte) (bool, error)) error {
	rkey := recordKey(f.Source, f.ID)
	sr, _, err := readRecord(txn, rkey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !matchRecord(f, sr.rec) {
		return nil
	}
	tkey := timeKey(sr.rec.ReceivedAt, rkey)
	if start != nil && bytes.Compare(tkey, start) >= 0 {
		return nil
	}
	_, err = fn(tkey, rkey)
	return err
}

func decodeCursor(c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	k, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !bytes.HasPrefix(k, []byte(prefixTime)) || len(k) <= len(prefixTime)+8 {
		return nil, fmt.Errorf("%w %q", store.ErrInvalidCursor, c)
	}
	return k, nil
}

// List implements store.Store. Limit defaults to DefaultListLimit and is capped at
// MaxListLimit. The cursor is opaque to callers; it stays valid across
// writes, so paging through a changing store neither repeats nor skips
// records that were there all along.
func (b *Store) List(ctx context.Context, f store.Filter) ([]*store.Record, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	start, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	limit := f.PageSize()
	unlock, err := b.enter()
	if err != nil {
		return nil, "", err
	}
	defer unlock()

	var out []*store.Record
	var last []byte
	cursor := ""
	emit := func(r *store.Record, tkey []byte) bool {
		if len(out) == limit {
			// There is at least one more: hand out a cursor.
			cursor = base64.RawURLEncoding.EncodeToString(last)
			return false
		}
		out = append(out, r)
		last = tkey
		return true
	}
	// Reservations in memory are merged in by their listing keys, as if
	// they were in the index.
	allHeld := b.resv.matching(&f, start)
	held := allHeld
	err = b.view(func(txn *badger.Txn) error {
		// A filter with an id reads its record by key, which view runs
		// again if value-log GC moved it meanwhile.
		out, last, cursor, held = out[:0], nil, "", allHeld
		return scanTime(txn, &f, start, func(tkey, rkey []byte) (bool, error) {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			for len(held) > 0 && bytes.Compare(held[0].tkey, tkey) > 0 {
				if !emit(b.resv.view(held[0].res), held[0].tkey) {
					return false, nil
				}
				held = held[1:]
			}
			sr, _, err := readRecord(txn, rkey)
			if errors.Is(err, badger.ErrKeyNotFound) {
				return true, nil // expired between index and record
			}
			if err != nil {
				return false, err
			}
			b.leases.view(string(rkey), sr.rec)
			return emit(sr.rec, tkey), nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	for _, h := range held {
		if cursor != "" || !emit(b.resv.view(h.res), h.tkey) {
			break
		}
	}
	return out, cursor, nil
}

// Counts implements store.Store. Every status a record can have is present
// in the result, zero or not. It scans the listing index (not the records),
// about a second per million records.
func (b *Store) Counts(ctx context.Context) (map[store.Status]int, error) {
	counts := make(map[store.Status]int, len(statusMeta))
	for s := range statusMeta {
		counts[s] = 0
	}
	err := b.scanSummaries(ctx, func(s *summary) { counts[s.status]++ }, func(r *store.Record) { counts[r.Status]++ })
	if err != nil {
		return nil, fmt.Errorf("counting records: %w", err)
	}
	return counts, nil
}

// DeliveryCounts implements store.Store, from the listing index like
// Counts.
func (b *Store) DeliveryCounts(ctx context.Context) (map[string]map[store.Status]int, error) {
	counts := map[string]map[store.Status]int{}
	add := func(dest string, st store.Status) {
		m := counts[dest]
		if m == nil {
			m = map[store.Status]int{}
			counts[dest] = m
		}
		m[st]++
	}
	err := b.scanSummaries(ctx, func(s *summary) {
		for _, d := range s.deliveries {
			add(d.destination, d.status)
		}
	}, func(r *store.Record) {
		for i := range r.Deliveries {
			add(r.Deliveries[i].Destination, r.Deliveries[i].Status)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("counting deliveries: %w", err)
	}
	return counts, nil
}

// scanSummaries calls stored with the summary of every stored record and
// held with every reservation in memory.
func (b *Store) scanSummaries(ctx context.Context, stored func(*summary), held func(*store.Record)) error {
	unlock, err := b.enter()
	if err != nil {
		return err
	}
	defer unlock()
	err = b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixTime), PrefetchValues: false})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := itemValue(it.Item(), func(v []byte) error {
				s, err := decodeSummary(v)
				if err == nil {
					stored(&s)
				}
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range b.resv.matching(&store.Filter{}, nil) {
		held(b.resv.view(l.res))
	}
	return nil
}

// Purge implements store.Store. Filter.Cursor is ignored; a positive Filter.Limit
// caps how many records one call deletes (0: all that match). Records are
// deleted in transactions of a few hundred, each re-checking the filter
// against the record's current state, so a record that changed meanwhile
// (say, delivered while purging dead ones) is left alone. Shared batch bodies
// whose last record is gone are removed by the periodic body sweep.
func (b *Store) Purge(ctx context.Context, f store.Filter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	unlock, err := b.enter()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := b.space.allow(0, false); err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	total := 0
	var start []byte
	chunkSize := purgeChunk
	for f.Limit <= 0 || total < f.Limit {
		chunk := chunkSize
		if f.Limit > 0 {
			chunk = min(chunk, f.Limit-total)
		}
		var rkeys [][]byte
		var lastT []byte
		err := b.view(func(txn *badger.Txn) error {
			rkeys, lastT = rkeys[:0], nil
			return scanTime(txn, &f, start, func(tkey, rkey []byte) (bool, error) {
				rkeys = append(rkeys, rkey)
				lastT = tkey
				return len(rkeys) < chunk, nil
			})
		})
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		if len(rkeys) == 0 {
			break
		}
		for _, k := range rkeys {
			b.hand.forget(string(k))
		}
		var deleted []string
		var leased map[string]lease // the leases the deleted records had
		err = b.update(ctx, func(txn *badger.Txn) error {
			deleted = deleted[:0]
			leased = make(map[string]lease)
			for _, k := range rkeys {
				sr, _, err := readRecord(txn, k)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !matchRecord(&f, sr.rec) {
					continue
				}
				if err := b.deleteRecord(txn, k, sr); err != nil {
					return err
				}
				deleted = append(deleted, string(k))
				for _, d := range sr.rec.Deliveries {
					lk := leaseKey(string(k), d.Destination)
					if l, ok := b.leases.get(lk); ok {
						leased[lk] = l
					}
				}
			}
			return nil
		})
		if errors.Is(err, badger.ErrTxnTooBig) && chunkSize > 1 {
			chunkSize /= 2
			continue
		}
		if err != nil {
			return total, fmt.Errorf("purge: %w", err)
		}
		b.cache.deleted(deleted...)
		// Only the leases seen: a record inserted and claimed again
		// since the commit keeps its new owner's.
		for k, l := range leased {
			b.leases.drop(k, l)
		}
		total += len(deleted)
		if len(deleted) > 0 {
			b.reclaimDue.Store(true)
		}
		start = lastT
		if len(rkeys) < chunk {
			break
		}
	}
	if f.Limit <= 0 || total < f.Limit {
		total += b.resv.purge(&f, max(f.Limit-total, 0))
	}
	return total, nil
}
