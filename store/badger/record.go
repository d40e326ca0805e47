package badger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

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
// deliveries (nil: none) with those of rec's, the record stored under key.
//
// An unordered delivery has a due entry while it is pending or retrying. A
// laned one has a lane entry until it is delivered or skipped, and a due
// entry only while it is pending or retrying and its lane's head, so that
// Claim's scan never walks the deliveries waiting behind a head (a parked
// lane may hold thousands). Whenever a write moves a lane (adds or removes
// an entry), it gives the lane's head, whichever record that is, its due
// entry; see laneHeads for why that is safe against concurrent writes.
func (b *Store) writeDeliveryEntries(txn *badger.Txn, key []byte, old, rec *store.Record) error {
	staleDue := map[string]bool{}
	oldLane := map[string]laneID{}
	lanes := map[laneID]bool{} // the lanes this record is in: true if the write moves them
	if old != nil {
		for i := range old.Deliveries {
			d := &old.Deliveries[i]
			if d.Claimable() {
				staleDue[string(deliveryDueKey(old, d))] = true
			}
			if inLane(d) {
				l := laneID{d.Destination, d.Lane}
				oldLane[string(laneKey(d.Destination, d.Lane, d.Sequence))] = l
				lanes[l] = lanes[l] || false
			}
		}
	}
	type entry struct{ key, val []byte }
	var fresh []entry
	for i := range rec.Deliveries {
		d := &rec.Deliveries[i]
		if inLane(d) {
			l := laneID{d.Destination, d.Lane}
			k := laneKey(d.Destination, d.Lane, d.Sequence)
			if _, ok := oldLane[string(k)]; ok {
				delete(oldLane, string(k))
				lanes[l] = lanes[l] || false
			} else {
				fresh = append(fresh, entry{k, key})
				lanes[l] = true
			}
			continue // its due entry, if it is the head, below
		}
		if d.Claimable() {
			k := deliveryDueKey(rec, d)
			b.due.wrote(d.Destination, dueAt(rec, d))
			fresh = append(fresh, entry{k, encodeDueValue(d)})
			delete(staleDue, string(k))
		}
	}
	for k, l := range oldLane {
		lanes[l] = true
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	for k := range staleDue {
		if err := txn.Delete([]byte(k)); err != nil {
			return err
		}
	}
	for _, e := range fresh {
		if err := txn.Set(e.key, e.val); err != nil {
			return err
		}
	}
	return b.laneHeads(txn, key, rec, lanes)
}

// laneID names a lane: (destination, lane).
type laneID struct{ destination, lane string }

// laneHeads gives the heads of lanes their due entries after a write of
// rec (under key) changed them: rec's own delivery in a lane gets one if
// it is the head and claimable; in a lane the write moved (true), the head,
// whichever record it is, gets one.
//
// Two writes that move one lane at once must see each other, or a head
// could be left without its due entry (say, the head delivered while an
// insert behind it, which saw the head, wrote no due entry). Badger's
// conflict detection sees to it, for the keys a transaction reads: every
// write of a laned delivery reads its lane's first entry (the iterator
// registers it), which the write removing that head deletes; and a write
// that moves a lane reads the lane's sequence counter, which every insert
// into it writes. One that loses retries from a snapshot with the other.
func (b *Store) laneHeads(txn *badger.Txn, key []byte, rec *store.Record, lanes map[laneID]bool) error {
	for l, moved := range lanes {
		if moved {
			if _, err := txn.Get(laneSeqKey(l.destination, l.lane)); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		seq, headKey, err := laneFirst(txn, l)
		if err != nil {
			return err
		}
		if seq == 0 {
			continue // the lane is empty
		}
		head, owner := (*store.Delivery)(nil), rec
		if bytes.Equal(headKey, key) {
			head = rec.Delivery(l.destination)
		} else if moved {
			sr, _, err := readState(txn, headKey)
			if errors.Is(err, badger.ErrKeyNotFound) {
				b.log.Warn("lane entry without its record", zap.String("destination", l.destination), zap.Uint64("sequence", seq))
				continue
			}
			if err != nil {
				return fmt.Errorf("reading the head of a lane of %s: %w", l.destination, err)
			}
			owner, head = sr.rec, sr.rec.Delivery(l.destination)
		}
		if head == nil || head.Lane != l.lane || head.Sequence != seq || !head.Claimable() {
			continue
		}
		b.due.wrote(l.destination, dueAt(owner, head))
		if err := txn.Set(deliveryDueKey(owner, head), encodeDueValue(head)); err != nil {
			return err
		}
	}
	return nil
}

// laneFirst returns the sequence and record key of the first entry of lane
// l in txn (0 if it has none), registering the read.
func laneFirst(txn *badger.Txn, l laneID) (uint64, []byte, error) {
	p := laneKeyPrefix(l.destination, l.lane)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return 0, nil, nil
	}
	item := it.Item()
	k := item.Key()
	if len(k) != len(p)+8 {
		return 0, nil, fmt.Errorf("malformed lane entry of %s", l.destination)
	}
	v, err := itemValueCopy(item)
	if err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint64(k[len(p):]), v, nil
}

// readState reads and decodes the record under key in txn, without its
// payload.
func readState(txn *badger.Txn, key []byte) (*storedRecord, *badger.Item, error) {
	item, err := txn.Get(key)
	if err != nil {
		return nil, nil, err
	}
	v, err := itemValueCopy(item)
	if err != nil {
		return nil, nil, err
	}
	sr, err := decodeRecordValue(v)
	return sr, item, err
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
			if err := itemValue(item, func(v []byte) error {
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
			v, err := itemValueCopy(item)
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
	v, err := itemValueCopy(item)
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
	return itemValue(item, func(v []byte) error {
		event, body, err := splitPayloadValue(v)
		if err == nil {
			fn(event, body)
		}
		return err
	})
}
