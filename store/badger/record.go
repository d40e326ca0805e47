package badger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webhookgw/caddy-webhook-gateway/store"
)

// Status bytes are also stored as the entry's Badger user-meta, so dedup and
// cache read-backs learn a record's status without reading its value.
var statusMeta = map[store.Status]byte{
	store.StatusReserved:  1,
	store.StatusPending:   2,
	store.StatusRetrying:  3,
	store.StatusDelivered: 4,
	store.StatusDead:      5,
	store.StatusReleased:  6,
	store.StatusUnmatched: 7,
}

var metaStatus = func() map[byte]store.Status {
	m := make(map[byte]store.Status, len(statusMeta))
	for s, b := range statusMeta {
		m[b] = s
	}
	return m
}()

// expiresAt is the Badger expiry of a record: a settled record (delivered,
// released or unmatched) goes after its retention; everything else stays
// until it is delivered, replayed, skipped or purged.
func expiresAt(r *store.Record, now time.Time) uint64 {
	if store.Settled(r.Status) && r.Retention > 0 {
		return uint64(now.Add(r.Retention).Unix())
	}
	return 0
}

// writeRecord stores rec under key with its index entries, replacing those
// of old (the previously stored state, or nil).
//
// A record of body kind payload gets its payload entry (rec.Event and body)
// when it is first written (old nil); later states leave it alone.
func (b *Store) writeRecord(txn *badger.Txn, key []byte, old, rec *store.Record, bodyKind byte, body []byte, now time.Time) error {
	if bodyKind == bodyPayload {
		if old == nil {
			if err := txn.Set(payloadKey(key), encodePayloadValue(rec.Event, body)); err != nil {
				return err
			}
		}
		body = nil
	}
	val, err := encodeRecordValue(rec, bodyKind, body)
	if err != nil {
		return err
	}
	exp := expiresAt(rec, now)
	e := badger.NewEntry(key, val).WithMeta(statusMeta[rec.Status])
	e.ExpiresAt = exp
	if err := txn.SetEntry(e); err != nil {
		return err
	}
	tk := timeKey(rec.ReceivedAt, key)
	if old != nil && !old.ReceivedAt.Equal(rec.ReceivedAt) {
		if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
			return err
		}
	}
	te := badger.NewEntry(tk, encodeSummary(rec))
	te.ExpiresAt = exp
	if err := txn.SetEntry(te); err != nil {
		return err
	}
	if rec.Subject != "" {
		// Rewritten with every state, like the listing entry, so that
		// it carries the same summary and expires with the record.
		if old != nil && old.Subject != "" && !old.ReceivedAt.Equal(rec.ReceivedAt) {
			if err := txn.Delete(subjectKey(old.Subject, old.ReceivedAt, key)); err != nil {
				return err
			}
		}
		se := badger.NewEntry(subjectKey(rec.Subject, rec.ReceivedAt, key), encodeSummary(rec))
		se.ExpiresAt = exp
		if err := txn.SetEntry(se); err != nil {
			return err
		}
	}
	return b.writeDeliveryEntries(txn, key, old, rec)
}

// writeDeliveryEntries replaces the due and lane index entries of old's
// deliveries (nil: none) with those of rec's.
func (b *Store) writeDeliveryEntries(txn *badger.Txn, key []byte, old, rec *store.Record) error {
	type entry struct {
		key, val []byte
	}
	var stale map[string]bool
	if old != nil {
		stale = make(map[string]bool)
		for i := range old.Deliveries {
			d := &old.Deliveries[i]
			if d.Claimable() {
				stale[string(deliveryDueKey(old, d))] = true
			}
			if inLane(d) {
				stale[string(laneKey(d.Destination, d.Lane, d.Sequence))] = true
			}
		}
	}
	var fresh []entry
	for i := range rec.Deliveries {
		d := &rec.Deliveries[i]
		if d.Claimable() {
			k := deliveryDueKey(rec, d)
			b.due.wrote(d.Destination, dueAt(d))
			fresh = append(fresh, entry{k, encodeDueValue(d)})
			delete(stale, string(k))
		}
		if inLane(d) {
			k := laneKey(d.Destination, d.Lane, d.Sequence)
			if !stale[string(k)] {
				fresh = append(fresh, entry{k, key})
			}
			delete(stale, string(k))
		}
	}
	for k := range stale {
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	for _, e := range fresh {
		if err := txn.Set(e.key, e.val); err != nil {
			return err
		}
	}
	return nil
}

// assignSequences numbers each laned delivery of r that is pending and has
// no sequence yet, one more than the last its lane gave, reading and
// writing the lane's counter in txn: Badger's conflict detection then
// orders concurrent inserts into one lane, and the writes gathered into one
// transaction read each other's counters.
func assignSequences(txn *badger.Txn, r *store.Record) error {
	for i := range r.Deliveries {
		d := &r.Deliveries[i]
		if d.Lane == "" || d.Sequence != 0 || !d.Claimable() {
			continue
		}
		k := laneSeqKey(d.Destination, d.Lane)
		var last uint64
		item, err := txn.Get(k)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("reading the sequence of lane %q of %s: %w", d.Lane, d.Destination, err)
		default:
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return errors.New("corrupt lane sequence entry")
				}
				last = binary.BigEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
		}
		d.Sequence = last + 1
		if err := txn.Set(k, binary.BigEndian.AppendUint64(nil, d.Sequence)); err != nil {
			return err
		}
	}
	return nil
}

// deleteRecord removes a stored record, its index entries, its payload and
// its dedup entry (if the entry is still the record's: after the window a
// later record may hold the same key).
func (b *Store) deleteRecord(txn *badger.Txn, key []byte, sr *storedRecord) error {
	old := sr.rec
	if err := txn.Delete(key); err != nil {
		return err
	}
	if old.DedupKey != "" {
		dk := dedupKey(old.Source, old.DedupKey)
		item, err := txn.Get(dk)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if _, id, err := decodeDedupValue(v); err != nil || id == old.ID {
				// An unreadable entry can only block the key.
				if err := txn.Delete(dk); err != nil {
					return err
				}
			}
		}
	}
	if sr.bodyKind == bodyPayload {
		if err := txn.Delete(payloadKey(key)); err != nil {
			return err
		}
	}
	if err := txn.Delete(timeKey(old.ReceivedAt, key)); err != nil {
		return err
	}
	if old.Subject != "" {
		if err := txn.Delete(subjectKey(old.Subject, old.ReceivedAt, key)); err != nil {
			return err
		}
	}
	return b.writeDeliveryEntries(txn, key, old, &store.Record{Source: old.Source, ID: old.ID})
}

// readRecord reads and decodes the record under key in txn, with its event.
func readRecord(txn *badger.Txn, key []byte) (*storedRecord, *badger.Item, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, nil, err
	}
	sr, err := decodeRecordValue(v)
	if err != nil {
		return nil, nil, err
	}
	if sr.bodyKind == bodyPayload {
		err := readPayload(txn, key, func(event, _ []byte) { sr.rec.Event = bytes.Clone(event) })
		if err != nil {
			return nil, nil, err
		}
	}
	return sr, item, nil
}

// readPayload calls fn with the event and raw body in the payload entry of
// the record under key; they are only valid during the call.
func readPayload(txn *badger.Txn, key []byte, fn func(event, body []byte)) error {
	item, err := txn.Get(payloadKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return errors.New("payload entry is missing")
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		event, body, err := splitPayloadValue(v)
		if err == nil {
			fn(event, body)
		}
		return err
	})
}
